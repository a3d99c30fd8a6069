"""Allen licks and rewards as core EventsTables, checked value by value against the session file read with h5py."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.allen.licks import AllenLicksInterface
from nwbridge.interfaces.allen.rewards import AllenRewardsInterface
from nwbridge.interfaces.allen.source import open_allen_file
from nwbridge.provenance import ALLEN_DATASET, provenance_record
from nwbridge.schemas.checker import check_file
from nwbridge.writing import write_nwbfile_atomically
from support.allen_files import replace_dataset, trimmed_copy

LICKS = "processing/licking/licks"
VOLUME = "processing/rewards/volume"
AUTOREWARDED = "processing/rewards/autorewarded"
LICKS_AND_REWARDS = ["processing/licking", "processing/rewards"]


def new_nwbfile() -> NWBFile:
    return NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))


# --- licks -----------------------------------------------------------------------------------

def test_licks_round_trip_bit_for_bit(vbn_session, vbn_raw, roundtrip):
    licks = roundtrip(AllenLicksInterface(vbn_session.session_file)).get_events_table("licks")
    times, frames = vbn_raw[f"{LICKS}/timestamps"][:], vbn_raw[f"{LICKS}/data"][:]
    assert len(times) > 20
    assert licks["timestamp"].data.dtype == np.float64
    np.testing.assert_array_equal(licks["timestamp"].data[:], times)
    assert licks["timestamp"].unit == "seconds"
    assert licks["frame"].data.dtype.kind == "i"
    np.testing.assert_array_equal(licks["frame"].data[:], frames)


def test_lick_frames_stored_as_whole_floats_are_integers(vbn_session, vbn_raw, tmp_path, roundtrip):
    frames = vbn_raw[f"{LICKS}/data"][:]
    path = trimmed_copy(vbn_session, tmp_path, LICKS_AND_REWARDS, lambda file: replace_dataset(
        file, f"{LICKS}/data", frames.astype(np.float64)))
    licks = roundtrip(AllenLicksInterface(path)).get_events_table("licks")
    assert licks["frame"].data.dtype.kind == "i"
    np.testing.assert_array_equal(licks["frame"].data[:], frames)


@pytest.mark.parametrize("change, problem", [
    (lambda file: file[f"{LICKS}/timestamps"].__setitem__(4, file[f"{LICKS}/timestamps"][2]), "go backwards"),
    (lambda file: replace_dataset(file, f"{LICKS}/data", file[f"{LICKS}/data"][:-2]), "data values for"),
    (lambda file: replace_dataset(file, f"{LICKS}/data", file[f"{LICKS}/data"][:] + 0.5), "whole numbers"),
], ids=["backwards", "length", "fractional-frame"])
def test_inconsistent_licks_name_the_file(vbn_session, tmp_path, change, problem):
    path = trimmed_copy(vbn_session, tmp_path, LICKS_AND_REWARDS, change)
    with pytest.raises(SourceFileError, match=problem) as error:
        AllenLicksInterface(path).add_to_nwbfile(new_nwbfile())
    assert error.value.path == path.resolve()


# --- rewards ---------------------------------------------------------------------------------

def test_rewards_round_trip(vbn_session, vbn_raw, roundtrip):
    rewards = roundtrip(AllenRewardsInterface(vbn_session.session_file)).get_events_table("rewards")
    times = vbn_raw[f"{VOLUME}/timestamps"][:]
    assert len(times) > 0
    np.testing.assert_array_equal(rewards["timestamp"].data[:], times)
    assert rewards["timestamp"].unit == "seconds"
    np.testing.assert_array_equal(rewards["volume_ul"].data[:], vbn_raw[f"{VOLUME}/data"][:] * 1000.0)
    np.testing.assert_array_equal(rewards["auto_rewarded"].data[:], vbn_raw[f"{AUTOREWARDED}/data"][:])


def test_volumes_are_converted_from_millilitres(vbn_session, vbn_raw, roundtrip):
    """The source's volumes are mL: an earned reward of a "<n>uL_reward" session must read n µL, not n / 1000."""
    assert vbn_raw[f"{VOLUME}/data"].attrs["unit"] == "mL"
    earned_ul = float(re.search(r"_(\d+(?:\.\d+)?)uL_", vbn_session.session_type).group(1))
    rewards = roundtrip(AllenRewardsInterface(vbn_session.session_file)).get_events_table("rewards")
    earned = ~rewards["auto_rewarded"].data[:].astype(bool)
    assert earned.any()
    np.testing.assert_allclose(rewards["volume_ul"].data[:][earned], earned_ul, rtol=1e-12)
    assert "µL" in rewards["volume_ul"].description


def test_autorewarded_is_boolean_although_labelled_millilitres(vbn_session, vbn_raw, roundtrip):
    assert vbn_raw[f"{AUTOREWARDED}/data"].attrs["unit"] == "mL"
    rewards = roundtrip(AllenRewardsInterface(vbn_session.session_file)).get_events_table("rewards")
    flags = rewards["auto_rewarded"].data[:]
    # Booleans, as in the source, not a volume: not multiplied by 1000 nor cast to float.
    assert flags.dtype == bool
    assert set(flags.tolist()) == {True, False}
    np.testing.assert_array_equal(flags, vbn_raw[f"{AUTOREWARDED}/data"][:])


def test_autorewarded_stored_as_float_is_read_as_boolean(vbn_session, vbn_raw, tmp_path, roundtrip):
    flags = vbn_raw[f"{AUTOREWARDED}/data"][:]
    path = trimmed_copy(vbn_session, tmp_path, LICKS_AND_REWARDS, lambda file: replace_dataset(
        file, f"{AUTOREWARDED}/data", flags.astype(np.float64)))
    rewards = roundtrip(AllenRewardsInterface(path)).get_events_table("rewards")
    assert rewards["auto_rewarded"].data.dtype == bool
    np.testing.assert_array_equal(rewards["auto_rewarded"].data[:], flags)


def _own_times(file):
    """Give autorewarded timestamps of its own (instead of the link to the volume's), one of them moved."""
    times = file[f"{VOLUME}/timestamps"][:]
    times[1] += 0.5
    del file[f"{AUTOREWARDED}/timestamps"]
    file.create_dataset(f"{AUTOREWARDED}/timestamps", data=times)


def _nan_flag(file):
    flags = file[f"{AUTOREWARDED}/data"][:].astype(np.float64)
    flags[0] = np.nan
    replace_dataset(file, f"{AUTOREWARDED}/data", flags)


@pytest.mark.parametrize("change, problem", [
    (lambda file: file[f"{VOLUME}/data"].attrs.__setitem__("unit", "uL"), "'uL'"),
    (_own_times, "same timestamps"),
    (_nan_flag, "no value"),
    (lambda file: replace_dataset(file, f"{AUTOREWARDED}/data", file[f"{AUTOREWARDED}/data"][:-1]),
     "data values for"),
    (lambda file: file.__delitem__(AUTOREWARDED), "no processing/rewards/autorewarded"),
], ids=["volume-unit", "times-differ", "missing-flag", "length", "no-autorewarded"])
def test_inconsistent_rewards_name_the_file(vbn_session, tmp_path, change, problem):
    path = trimmed_copy(vbn_session, tmp_path, LICKS_AND_REWARDS, change)
    with pytest.raises(SourceFileError, match=problem) as error:
        AllenRewardsInterface(path).add_to_nwbfile(new_nwbfile())
    assert error.value.path == path.resolve()


# --- both ------------------------------------------------------------------------------------

def test_availability(vbn_session, vbn_source, tmp_path):
    assert AllenLicksInterface.is_available(vbn_source) and AllenRewardsInterface.is_available(vbn_source)

    source = open_allen_file(trimmed_copy(vbn_session, tmp_path, ["processing/running"]))
    assert not AllenLicksInterface.is_available(source) and not AllenRewardsInterface.is_available(source)


def test_checker_passes_licks_and_rewards(vbn_session, tmp_path):
    nwbfile = NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc),
                      source_script=provenance_record(ALLEN_DATASET, native_ids={}, data_revision=None),
                      source_script_file_name="nwbridge")
    AllenLicksInterface(vbn_session.session_file).add_to_nwbfile(nwbfile)
    AllenRewardsInterface(vbn_session.session_file).add_to_nwbfile(nwbfile)
    report = check_file(write_nwbfile_atomically(nwbfile, tmp_path / "sub-x_ses-y_desc-processed_behavior+ecephys.nwb"))
    assert report.source == "allen"
    for name in ("events/licks", "events/rewards"):
        result = report.result(name)
        assert result.status == "pass" and not result.notes, (result.messages, result.notes)
