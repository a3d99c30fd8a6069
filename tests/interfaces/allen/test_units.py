"""Allen units: every spike bit for bit, amplitudes in µV, the recommended-unit rule, every Allen column.

Expected values are read from the generated session file with plain h5py (``vbn_raw``) and computed
here with numpy; output rows are matched to source units by ``source_unit_id``.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.allen.electrodes import AllenProbesInterface
from nwbridge.interfaces.allen.source import open_allen_file
from nwbridge.interfaces.allen.units import (AllenUnitsInterface, _check_spike_times, _Ragged, _reorder_ragged,
                                             is_good_units)
from nwbridge.provenance import ALLEN_DATASET, provenance_record
from nwbridge.schemas.checker import check_file
from nwbridge.writing import write_nwbfile_atomically

RAGGED = ("spike_times", "spike_amplitudes", "waveform_mean")
# Allen columns that fill a shared column unchanged, so are not repeated with the allen_ prefix.
SHARED = {"firing_rate": "firing_rate", "presence_ratio": "presence_ratio", "cluster_id": "source_cluster_id"}


@pytest.fixture(scope="module")
def converted_file(vbn_session, tmp_path_factory):
    """The units (with the probes) converted once into a processed file (provenance set, for the checker)."""
    from pynwb import NWBHDF5IO

    nwbfile = new_nwbfile(source_script=provenance_record(ALLEN_DATASET, native_ids={}, data_revision=None),
                          source_script_file_name="nwbridge")
    AllenUnitsInterface(vbn_session.session_file).add_to_nwbfile(nwbfile)
    path = write_nwbfile_atomically(nwbfile, tmp_path_factory.mktemp("units")
                                    / "sub-x_ses-y_desc-processed_behavior+ecephys.nwb")
    with NWBHDF5IO(str(path), "r") as io:
        yield path, io.read()


@pytest.fixture(scope="module")
def converted(converted_file):
    """The converted file, read back with pynwb."""
    return converted_file[1]


def new_nwbfile(**kwargs) -> NWBFile:
    return NWBFile(session_description="test", identifier="test",
                   session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc), **kwargs)


def source_units(raw) -> dict:
    units = raw["units"]
    ends = units["spike_times_index"][:].astype(np.int64)
    return {"id": units["id"][:], "ends": ends, "starts": np.concatenate([[0], ends[:-1]]),
            "times": units["spike_times"][:], "amplitudes": units["spike_amplitudes"][:],
            "amplitude_ends": units["spike_amplitudes_index"][:].astype(np.int64), "units": units}


def source_rows(units_table, source) -> np.ndarray:
    """Source row of each output unit, through source_unit_id."""
    position = {str(unit): row for row, unit in enumerate(source["id"])}
    return np.array([position[unit] for unit in units_table["source_unit_id"].data[:]])


def ragged(table, name):
    index = table[name]
    ends = index.data[:].astype(np.int64)
    return index.target.data[:], np.concatenate([[0], ends[:-1]]), ends


def damaged_copy(vbn_session, tmp_path, change):
    path = tmp_path / vbn_session.session_file.name
    shutil.copy(vbn_session.session_file, path)
    with h5py.File(path, "r+") as file:
        change(file)
    return path


def convert_copy(path):
    nwbfile = new_nwbfile()
    AllenUnitsInterface(path).add_to_nwbfile(nwbfile)
    return nwbfile


def test_every_spike_time_round_trips_bit_for_bit(converted, vbn_raw):
    units = converted.units
    source = source_units(vbn_raw)
    rows = source_rows(units, source)
    assert sorted(rows) == list(range(len(source["id"])))  # every unit once, noise included
    flat, starts, ends = ragged(units, "spike_times")
    assert flat.dtype == np.float64
    for unit, row in enumerate(rows):
        np.testing.assert_array_equal(flat[starts[unit]:ends[unit]],
                                      source["times"][source["starts"][row]:source["ends"][row]])
    assert len(flat) == len(source["times"])
    np.testing.assert_array_equal(units.id[:], np.arange(len(units)))


def test_units_are_ordered_by_probe_then_as_in_the_source(converted, vbn_raw):
    units = converted.units
    source = source_units(vbn_raw)
    rows = source_rows(units, source)
    probes = np.asarray(units["probe"].data[:], dtype=str)
    assert list(probes) == sorted(probes)
    for probe in set(probes):
        assert (np.diff(rows[probes == probe]) > 0).all()


def test_units_point_at_their_peak_channel(converted, vbn_raw):
    units = converted.units
    electrodes = converted.electrodes
    source = source_units(vbn_raw)
    rows = source_rows(units, source)
    peak_channel_id = source["units"]["peak_channel_id"][:][rows]
    electrode_row = units["electrodes"].target.data[:]
    np.testing.assert_array_equal(units["electrodes"].data[:], np.arange(1, len(units) + 1))  # one channel each
    np.testing.assert_array_equal(electrodes["allen_channel_id"].data[:][electrode_row], peak_channel_id)
    # The shared columns are those of the peak channel, read from the source's electrodes table.
    table = vbn_raw["general/extracellular_ephys/electrodes"]
    channel_row = {int(channel): row for row, channel in enumerate(table["id"][:])}
    source_row = np.array([channel_row[int(channel)] for channel in peak_channel_id])
    np.testing.assert_array_equal(units["peak_channel"].data[:], table["probe_channel_number"][:][source_row])
    np.testing.assert_array_equal(units["depth_um"].data[:], table["probe_vertical_position"][:][source_row])
    np.testing.assert_array_equal(np.asarray(units["probe"].data[:], dtype=str),
                                  table["group_name"].asstr()[:][source_row])
    np.testing.assert_array_equal([group.name for group in units["electrode_group"].data[:]],
                                  table["group_name"].asstr()[:][source_row])
    np.testing.assert_array_equal(units["location"].data[:], electrodes["location"].data[:][electrode_row])
    assert len(converted.electrodes) == len(table["id"])  # the units did not add the channels twice


def test_spike_amplitudes_are_volts_written_as_microvolts(converted, vbn_raw):
    """The Allen description says the amplitudes are in seconds; they are volts."""
    units = converted.units
    source = source_units(vbn_raw)
    assert "(s)" in source["units"]["spike_amplitudes"].attrs["description"]
    rows = source_rows(units, source)
    flat, starts, ends = ragged(units, "spike_amplitudes_uv")
    medians = units["amplitude_median_uv"].data[:]
    for unit, row in enumerate(rows):
        volts = source["amplitudes"][source["starts"][row]:source["ends"][row]]
        np.testing.assert_array_equal(flat[starts[unit]:ends[unit]], volts * 1e6)
        assert medians[unit] == np.median(volts) * 1e6
    # Microvolts: spike amplitudes of tens to hundreds of µV, not 1e-4 "seconds".
    assert 10 < np.median(medians) < 1000


def test_is_good_is_the_allen_rule(converted, vbn_raw):
    units = converted.units
    source = source_units(vbn_raw)
    rows = source_rows(units, source)
    raw = source["units"]
    expected = ((raw["quality"].asstr()[:] == "good") & (raw["isi_violations"][:] < 0.5)
                & (raw["amplitude_cutoff"][:] < 0.1) & (raw["presence_ratio"][:] > 0.9))[rows]
    np.testing.assert_array_equal(units["is_good"].data[:], expected)
    assert expected.any() and not expected.all()
    assert units["is_good"].data.dtype == bool


def test_missing_metrics_fail_the_rule():
    quality = np.array(["good"] * 5 + ["noise"])
    isi = np.array([0.1, np.nan, 0.1, 0.1, 0.1, 0.1])
    cutoff = np.array([0.01, 0.01, np.nan, 0.01, 0.01, 0.01])
    presence = np.array([0.95, 0.95, 0.95, np.nan, 0.95, 0.95])
    isi[4] = 0.5  # the thresholds are strict
    np.testing.assert_array_equal(is_good_units(quality, isi, cutoff, presence), [True, False, False, False, False,
                                                                                  False])


def test_good_units_with_a_missing_metric_are_not_good(vbn_session, vbn_raw, tmp_path):
    """One good unit loses each metric of the rule (NaN): none of the three stays good."""
    good = np.flatnonzero((vbn_raw["units/quality"].asstr()[:] == "good") & (vbn_raw["units/isi_violations"][:] < 0.5)
                          & (vbn_raw["units/amplitude_cutoff"][:] < 0.1) & (vbn_raw["units/presence_ratio"][:] > 0.9))
    metrics = ("isi_violations", "amplitude_cutoff", "presence_ratio")
    assert len(good) > len(metrics)

    def remove_metrics(file):
        for unit, metric in zip(good, metrics):
            file[f"units/{metric}"][unit] = np.nan

    units = convert_copy(damaged_copy(vbn_session, tmp_path, remove_metrics)).units
    is_good = dict(zip(units["source_unit_id"].data[:], units["is_good"].data[:]))
    unit_ids = vbn_raw["units/id"][:]
    assert [is_good[str(unit_ids[unit])] for unit in good] == [False] * len(metrics) + [True] * (len(good) - 3)


def test_every_other_allen_column_is_kept_unchanged(converted, vbn_raw):
    units = converted.units
    source = source_units(vbn_raw)
    rows = source_rows(units, source)
    raw = source["units"]
    names = [name.decode() if isinstance(name, bytes) else name for name in raw.attrs["colnames"]]
    kept = [name for name in names if name not in RAGGED]
    assert {"quality", "isi_violations", "amplitude_cutoff", "snr", "local_index", "peak_channel_id"} <= set(kept)
    for name in kept:
        values = raw[name].asstr()[:] if h5py.check_string_dtype(raw[name].dtype) else raw[name][:]
        written = units[SHARED.get(name, f"allen_{name}")].data[:]
        if values.dtype.kind in "OU":
            np.testing.assert_array_equal(np.asarray(written, dtype=str), values[rows].astype(str))
        else:
            assert written.dtype == values.dtype, name
            np.testing.assert_array_equal(written, values[rows])  # NaN where the source has NaN
    assert not any(f"allen_{name}" in units.colnames for name in SHARED)
    np.testing.assert_array_equal(units["source_unit_id"].data[:], source["id"][rows].astype(str))


def test_waveform_mean_keeps_the_source_values(converted, vbn_raw):
    units = converted.units
    source = source_units(vbn_raw)
    rows = source_rows(units, source)
    flat = vbn_raw["units/waveform_mean"][:]
    ends = vbn_raw["units/waveform_mean_index"][:].astype(np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    written = units["waveform_mean"].data[:]
    assert written.shape == (len(units), 82, 384)  # (units, samples, channels)
    for unit, row in enumerate(rows):
        np.testing.assert_array_equal(written[unit], flat[starts[row]:ends[row]])


def test_resolution_is_the_spike_band_sampling_period(converted, vbn_raw):
    rates = [vbn_raw[f"general/devices/{probe}"].attrs["sampling_rate"] for probe in converted.devices]
    assert converted.units.resolution == 1.0 / max(rates)


def test_units_after_the_probes_interface_share_its_table(vbn_session, vbn_raw):
    nwbfile = new_nwbfile()
    AllenProbesInterface(vbn_session.session_file).add_to_nwbfile(nwbfile)
    table = nwbfile.electrodes
    AllenUnitsInterface(vbn_session.session_file, spike_amplitudes=False, waveform_mean=False).add_to_nwbfile(nwbfile)
    assert nwbfile.electrodes is table and nwbfile.units.electrodes.table is table
    assert "spike_amplitudes_uv" not in nwbfile.units.colnames and "waveform_mean" not in nwbfile.units.colnames


def test_reordering_ragged_rows_copies_whole_runs():
    values = np.arange(10.0)
    source = _Ragged(values=values, ends=np.array([2, 5, 5, 10]))  # units of 2, 3, 0 and 5 spikes
    flat, ends = _reorder_ragged(source, np.array([2, 3, 0, 1]))
    np.testing.assert_array_equal(flat, [5, 6, 7, 8, 9, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(ends, [0, 5, 7, 10])
    same, same_ends = _reorder_ragged(source, np.arange(4))
    assert same is values and list(same_ends) == [2, 5, 5, 10]


def test_checker_passes_the_units(converted_file):
    report = check_file(converted_file[0])
    assert report.source == "allen"
    checked = [result for result in report.results if result.section in ("probes", "units")]
    assert any(result.name == "units" for result in checked)
    assert all(result.status == "pass" and not result.notes for result in checked), checked


def _first_unit_with_spikes(file, at_least=2):
    ends = file["units/spike_times_index"][:].astype(np.int64)
    counts = np.diff(np.concatenate([[0], ends]))
    unit = int(np.flatnonzero(counts >= at_least)[0])
    return unit, int(ends[unit] - counts[unit])


def _swap_first_spikes(file):
    _, start = _first_unit_with_spikes(file)
    times = file["units/spike_times"]
    times[start:start + 2] = times[start:start + 2][::-1]


def _amplitudes_elsewhere(file):
    index = file["units/spike_amplitudes_index"]
    unit, _ = _first_unit_with_spikes(file)
    index[unit] = index[unit] - 1


@pytest.mark.parametrize("change, problem", [
    (lambda file: file["units/peak_channel_id"].__setitem__(3, 12345), "peak_channel_id 12345"),
    (_swap_first_spikes, "not ascending"),
    (_amplitudes_elsewhere, "spike_amplitudes"),
], ids=["peak-channel-nowhere", "spikes-backwards", "amplitudes-misaligned"])
def test_inconsistent_units_name_the_file(vbn_session, tmp_path, change, problem):
    path = damaged_copy(vbn_session, tmp_path, change)
    with pytest.raises(SourceFileError, match=problem) as error:
        convert_copy(path)
    assert error.value.path == open_allen_file(path).path


@pytest.mark.parametrize("times, problem", [
    (np.array([1.0, 2.0, np.nan, 0.5, 0.7]), "spike time 2 \\(unit 10\\) is NaN"),
    (np.array([1.0, 2.0, 3.0, 0.7, 0.5]), "unit 11 are not ascending: spike 4"),
], ids=["nan", "backwards-in-second-unit"])
def test_spike_time_check_tells_the_unit(tmp_path, times, problem):
    """Units of 3 and 2 spikes: a unit may start before the previous one ends, not go backwards itself."""
    with pytest.raises(SourceFileError, match=problem):
        _check_spike_times(_Ragged(values=times, ends=np.array([3, 5])), np.array([10, 11]), tmp_path / "x.nwb")
    _check_spike_times(_Ragged(values=np.array([1.0, 2.0, 3.0, 0.5, 0.7]), ends=np.array([3, 5])),
                       np.array([10, 11]), tmp_path / "x.nwb")


def test_allen_text_metrics_with_na_become_floats():
    """AllenSDK writes missing numbers as "N/A" text: such a column is numeric, NaN where missing."""
    from types import SimpleNamespace

    from nwbridge.interfaces.allen.units import _allen_values

    numbers = _allen_values(SimpleNamespace(data=np.array([b"1.5", b"N/A", b"-2"], dtype=object)), name="snr")
    np.testing.assert_array_equal(numbers, [1.5, np.nan, -2.0])
    texts = _allen_values(SimpleNamespace(data=np.array([b"good", b"noise"], dtype=object)), name="quality")
    assert list(texts) == ["good", "noise"]
    integers = _allen_values(SimpleNamespace(data=np.array([3, 4], dtype=np.int64)), name="local_index")
    assert integers.dtype == np.int64


def test_waveforms_are_samples_by_channels_whichever_way_the_source_stores_them(tmp_path):
    from nwbridge.interfaces.allen.units import _waveform_array

    waveforms = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)  # 2 units, 5 samples, 3 channels
    as_rows_of_samples = _Ragged(values=waveforms.reshape(10, 3), ends=np.array([5, 10]))
    np.testing.assert_array_equal(_waveform_array(as_rows_of_samples, channels_per_unit=np.array([3, 3]),
                                                  path=tmp_path), waveforms)
    as_rows_of_channels = _Ragged(values=waveforms.transpose(0, 2, 1).reshape(6, 5), ends=np.array([3, 6]))
    np.testing.assert_array_equal(_waveform_array(as_rows_of_channels, channels_per_unit=np.array([3, 3]),
                                                  path=tmp_path), waveforms)
