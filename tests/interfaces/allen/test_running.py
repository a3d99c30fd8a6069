"""Allen running speed and encoder series, checked value by value against the session file read with h5py."""

from __future__ import annotations

from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.allen.running import AllenRunningInterface
from nwbridge.interfaces.allen.source import open_allen_file
from nwbridge.provenance import ALLEN_DATASET, provenance_record
from nwbridge.schemas.checker import check_file
from nwbridge.writing import write_nwbfile_atomically
from support.allen_files import replace_dataset, trimmed_copy

SPEED = "processing/running/speed"
SPEED_UNFILTERED = "processing/running/speed_unfiltered"
# What the running interface reads (the encoder voltages link to the speed's times).
RUNNING = ["processing/running", "acquisition/v_sig", "acquisition/v_in"]


def test_speeds_round_trip_bit_for_bit(vbn_session, vbn_raw, roundtrip):
    behavior = roundtrip(AllenRunningInterface(vbn_session.session_file)).processing["behavior"]
    for name, location in (("running_speed", SPEED), ("running_speed_unfiltered", SPEED_UNFILTERED)):
        series = behavior[name]
        source_data, source_times = vbn_raw[f"{location}/data"], vbn_raw[f"{location}/timestamps"]
        assert series.data.dtype == source_data.dtype and series.timestamps.dtype == source_times.dtype
        np.testing.assert_array_equal(series.data[:], source_data[:])
        np.testing.assert_array_equal(series.timestamps[:], source_times[:])
        assert series.unit == "cm/s"
        assert location in series.description
    # Different series: a mix-up of the filtered and unfiltered speeds would not go unnoticed.
    assert not np.array_equal(behavior["running_speed"].data[:], behavior["running_speed_unfiltered"].data[:])


def test_encoder_series_are_kept_under_their_allen_names(vbn_session, vbn_raw, roundtrip):
    nwbfile = roundtrip(AllenRunningInterface(vbn_session.session_file))
    written = {"allen_running_dx": nwbfile.processing["behavior"]["allen_running_dx"],
               "allen_running_v_sig": nwbfile.acquisition["allen_running_v_sig"],
               "allen_running_v_in": nwbfile.acquisition["allen_running_v_in"]}
    for (name, series), location in zip(written.items(), ("processing/running/dx", "acquisition/v_sig",
                                                          "acquisition/v_in")):
        np.testing.assert_array_equal(series.data[:], vbn_raw[f"{location}/data"][:])
        np.testing.assert_array_equal(series.timestamps[:], vbn_raw[f"{location}/timestamps"][:])
    assert written["allen_running_v_sig"].unit == written["allen_running_v_in"].unit == "volts"
    # dx is an angle that the source labels "cm": the unit says degrees, the description says why.
    assert vbn_raw["processing/running/dx/data"].attrs["unit"] == "cm"
    assert written["allen_running_dx"].unit == "degrees"
    assert "'cm'" in written["allen_running_dx"].description


def test_encoder_series_can_be_left_out(vbn_session, roundtrip):
    nwbfile = roundtrip(AllenRunningInterface(vbn_session.session_file), encoder=False)
    assert set(nwbfile.processing["behavior"].data_interfaces) == {"running_speed", "running_speed_unfiltered"}
    assert not nwbfile.acquisition


def test_times_are_stored_once(vbn_session, roundtrip):
    nwbfile = roundtrip(AllenRunningInterface(vbn_session.session_file))
    with h5py.File(nwbfile.container_source, "r") as file:
        for location in ("processing/behavior/running_speed_unfiltered", "processing/behavior/allen_running_dx",
                         "acquisition/allen_running_v_sig", "acquisition/allen_running_v_in"):
            link = file[location].get("timestamps", getlink=True)
            assert isinstance(link, h5py.SoftLink) and link.path == "/processing/behavior/running_speed/timestamps"


def test_unfiltered_times_of_their_own_are_kept(vbn_session, vbn_raw, tmp_path, roundtrip):
    times = vbn_raw[f"{SPEED}/timestamps"][:] + 0.25
    path = trimmed_copy(vbn_session, tmp_path, RUNNING, lambda file: replace_dataset(
        file, f"{SPEED_UNFILTERED}/timestamps", times))
    behavior = roundtrip(AllenRunningInterface(path)).processing["behavior"]
    np.testing.assert_array_equal(behavior["running_speed_unfiltered"].timestamps[:], times)
    np.testing.assert_array_equal(behavior["running_speed"].timestamps[:], vbn_raw[f"{SPEED}/timestamps"][:])


@pytest.mark.parametrize("change, problem", [
    (lambda file: replace_dataset(file, f"{SPEED}/data", file[f"{SPEED}/data"][:-1]), "data values for"),
    (lambda file: file[f"{SPEED}/timestamps"].__setitem__(7, file[f"{SPEED}/timestamps"][5]), "go backwards"),
    (lambda file: file[f"{SPEED}/timestamps"].__setitem__(3, np.nan), "finite"),
    (lambda file: file[f"{SPEED}/data"].attrs.__setitem__("unit", "m/s"), "'m/s'"),
    (lambda file: file["acquisition/v_in/data"].attrs.__setitem__("unit", "mV"), "'mV'"),
], ids=["length", "backwards", "nan-time", "speed-unit", "voltage-unit"])
def test_inconsistent_running_series_name_the_file(vbn_session, tmp_path, change, problem):
    path = trimmed_copy(vbn_session, tmp_path, RUNNING, change)
    nwbfile = NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))
    with pytest.raises(SourceFileError, match=problem) as error:
        AllenRunningInterface(path).add_to_nwbfile(nwbfile)
    assert error.value.path == path.resolve()


def test_availability(vbn_session, vbn_source, tmp_path):
    assert AllenRunningInterface.is_available(vbn_source)
    path = trimmed_copy(vbn_session, tmp_path, ["processing/licking"])
    assert not AllenRunningInterface.is_available(open_allen_file(path))


def test_checker_passes_the_running_speeds(vbn_session, tmp_path):
    nwbfile = NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc),
                      source_script=provenance_record(ALLEN_DATASET, native_ids={}, data_revision=None),
                      source_script_file_name="nwbridge")
    AllenRunningInterface(vbn_session.session_file).add_to_nwbfile(nwbfile)
    report = check_file(write_nwbfile_atomically(nwbfile, tmp_path / "sub-x_ses-y_desc-processed_behavior+ecephys.nwb"))
    assert report.source == "allen"
    # The encoder series are declared (representation 0.4.0) under their Allen names.
    for name in ("processing/behavior/running_speed", "processing/behavior/running_speed_unfiltered",
                 "processing/behavior/allen_running_dx", "acquisition/allen_running_v_sig",
                 "acquisition/allen_running_v_in"):
        assert report.result(name).status == "pass", report.result(name).messages
    assert not report.extras
