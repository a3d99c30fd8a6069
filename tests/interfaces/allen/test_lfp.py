"""Allen LFP in the raw file: every sample and timestamp exact, channels on the processed file's rows.

Expected values are read from the generated probe files with plain h5py.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.allen.electrodes import AllenProbesInterface, add_allen_probes
from nwbridge.interfaces.allen.lfp import AllenLfpInterface, _check_timestamps
from nwbridge.parallel_writing import BlockSource
from nwbridge.provenance import ALLEN_DATASET, provenance_record
from nwbridge.schemas.checker import check_file
from nwbridge.writing import write_nwbfile_atomically


def new_nwbfile(**kwargs) -> NWBFile:
    return NWBFile(session_description="test", identifier="test",
                   session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc), **kwargs)


@pytest.fixture(scope="module")
def raw_file(vbn_session, tmp_path_factory):
    """The LFP of every probe converted once into a raw file (provenance set, for the checker), read back.

    The probe files are given in reverse order: they are matched to probes by their probe id.
    """
    from pynwb import NWBHDF5IO

    nwbfile = new_nwbfile(source_script=provenance_record(ALLEN_DATASET, native_ids={}, data_revision=None),
                          source_script_file_name="nwbridge")
    probe_files = [vbn_session.probe_files[name] for name in sorted(vbn_session.probe_files, reverse=True)]
    AllenLfpInterface(vbn_session.session_file, probe_files=probe_files).add_to_nwbfile(nwbfile)
    path = write_nwbfile_atomically(nwbfile, tmp_path_factory.mktemp("lfp") / "sub-x_ses-y_desc-raw_ecephys.nwb")
    with NWBHDF5IO(str(path), "r") as io:
        yield path, io.read()


def source_series(vbn_session, probe):
    probe_id = vbn_session.probe_ids[probe]
    file = h5py.File(vbn_session.probe_files[probe], "r")
    return file, file[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]


def test_every_sample_and_timestamp_is_the_source_s(vbn_session, raw_file):
    _, nwbfile = raw_file
    assert sorted(nwbfile.acquisition) == ["ElectricalSeriesLfpProbeA", "ElectricalSeriesLfpProbeB"]
    for probe in vbn_session.probe_files:
        series = nwbfile.acquisition[f"ElectricalSeriesLfp{probe[0].upper()}{probe[1:]}"]
        file, source = source_series(vbn_session, probe)
        with file:
            assert series.data.dtype == np.float32 and series.data.shape == source["data"].shape
            np.testing.assert_array_equal(series.data[:], source["data"][:])  # volts, bit for bit
            np.testing.assert_array_equal(series.timestamps[:], source["timestamps"][:])
            assert series.conversion == 1.0 and series.unit == "volts"


def test_channels_are_the_processed_file_s_rows(vbn_session, vbn_source, raw_file):
    _, nwbfile = raw_file
    processed = new_nwbfile()
    AllenProbesInterface(vbn_session.session_file).add_to_nwbfile(processed)
    rows = add_allen_probes(processed, vbn_source)
    # The raw file's electrodes table is the processed file's, row for row.
    for column in ("allen_channel_id", "group_name", "probe_channel", "location", "rel_y"):
        np.testing.assert_array_equal(nwbfile.electrodes[column].data[:], processed.electrodes[column].data[:])
    for probe in vbn_session.probe_files:
        series = nwbfile.acquisition[f"ElectricalSeriesLfp{probe[0].upper()}{probe[1:]}"]
        file, source = source_series(vbn_session, probe)
        with file:
            channel_ids = file["general/extracellular_ephys/electrodes/id"][:][source["electrodes"][:]]
        np.testing.assert_array_equal(series.electrodes.data[:], [rows[int(channel)] for channel in channel_ids])
        np.testing.assert_array_equal(nwbfile.electrodes["probe_channel"].data[:][series.electrodes.data[:]],
                                      vbn_session.lfp_channels[probe])
        assert set(nwbfile.electrodes["group_name"].data[:][series.electrodes.data[:]]) == {probe}


def test_the_rate_comes_from_the_timestamps_not_the_group_attribute(vbn_session, vbn_raw, raw_file):
    """The electrode group says 2500 Hz; the released LFP is sampled at ~1250 Hz."""
    _, nwbfile = raw_file
    for probe in vbn_session.probe_files:
        stated = vbn_raw[f"general/extracellular_ephys/{probe}"].attrs["lfp_sampling_rate"]
        series = nwbfile.acquisition[f"ElectricalSeriesLfp{probe[0].upper()}{probe[1:]}"]
        file, source = source_series(vbn_session, probe)
        with file:
            timestamps = source["timestamps"][:]
        derived = (len(timestamps) - 1) / (timestamps[-1] - timestamps[0])
        assert abs(derived - 1250) < 1 and stated == 2500
        assert f"{derived:.6f} Hz" in series.description and f"{stated:g} Hz" in series.description
        assert series.rate is None  # explicit timestamps, never a rate from the attribute


def test_the_lfp_is_streamed_in_blocks(vbn_session, vbn_source):
    nwbfile = new_nwbfile()
    AllenLfpInterface(vbn_session.session_file, probe_files=list(vbn_session.probe_files.values())
                      ).add_to_nwbfile(nwbfile)
    series = nwbfile.acquisition["ElectricalSeriesLfpProbeA"]
    assert isinstance(series.data, BlockSource) and isinstance(series.timestamps, BlockSource)
    sizes = [len(block) for block in series.data.blocks()]
    assert len(sizes) > 1 and sum(sizes) == series.data.shape[0]
    assert max(sizes) <= 2 * 5 * 1250  # a few seconds at a time


def test_current_source_density_is_not_converted(raw_file):
    path, nwbfile = raw_file
    assert not nwbfile.processing
    with h5py.File(path, "r") as file:
        assert "current_source_density" not in str(list(file.keys())) and not list(file["processing"])


def test_checker_passes_the_raw_file_objects(raw_file):
    path, _ = raw_file
    report = check_file(path)
    assert report.source == "allen" and report.file_kind == "raw"
    checked = [result for result in report.results if result.section in ("probes", "raw")]
    assert any(result.name.startswith("acquisition/ElectricalSeriesLfp") for result in checked)
    assert all(result.status in ("pass", "not present") for result in checked), checked


def test_probe_files_are_matched_by_probe_id_not_name(vbn_session, tmp_path):
    renamed = tmp_path / "lfp_of_some_probe.nwb"
    shutil.copy(vbn_session.probe_files["probeB"], renamed)
    recordings = AllenLfpInterface(vbn_session.session_file, probe_files=[renamed]).recordings()
    assert [recording.probe.name for recording in recordings] == ["probeB"]


def test_a_probe_file_of_another_session_names_the_file(vbn_session, tmp_path):
    stranger = tmp_path / "probe_999.nwb"
    shutil.copy(vbn_session.probe_files["probeA"], stranger)
    with h5py.File(stranger, "r+") as file:
        for group in ("general/devices/probeA", "general/extracellular_ephys/probeA"):
            file[group].attrs["probe_id"] = np.int64(999)
    with pytest.raises(SourceFileError, match="probe id 999") as error:
        AllenLfpInterface(vbn_session.session_file, probe_files=[stranger]).add_to_nwbfile(new_nwbfile())
    assert error.value.path.name == stranger.name


def test_a_probe_file_without_lfp_names_the_file(vbn_session, tmp_path):
    empty = tmp_path / "probe_without_lfp.nwb"
    shutil.copy(vbn_session.probe_files["probeA"], empty)
    with h5py.File(empty, "r+") as file:
        del file[f"acquisition/probe_{vbn_session.probe_ids['probeA']}_lfp"]
    with pytest.raises(SourceFileError, match="no LFP container") as error:
        AllenLfpInterface(vbn_session.session_file, probe_files=[empty]).add_to_nwbfile(new_nwbfile())
    assert error.value.path.name == empty.name


def test_two_files_of_one_probe_are_refused(vbn_session):
    probe_file = vbn_session.probe_files["probeA"]
    with pytest.raises(SourceFileError, match="second LFP file of probeA"):
        AllenLfpInterface(vbn_session.session_file, probe_files=[probe_file, probe_file]).recordings()


@pytest.mark.parametrize("timestamps, problem", [
    (np.array([0.0, 0.0008, 0.0008, 0.0024]), "not increasing at sample 2"),
    (np.array([0.0, 0.0008, np.nan, 0.0024]), "not increasing at sample 2"),
    (np.array([0.0, 0.0008, 0.0016]), "4 samples but 3 timestamps"),
], ids=["repeated", "nan", "short"])
def test_inconsistent_timestamps_are_refused(tmp_path, timestamps, problem):
    with pytest.raises(SourceFileError, match=problem):
        _check_timestamps(timestamps, n_samples=4, path=tmp_path / "probe_1.nwb")
    assert _check_timestamps(np.arange(5) * 0.0008, n_samples=5, path=tmp_path) == pytest.approx(1250)
