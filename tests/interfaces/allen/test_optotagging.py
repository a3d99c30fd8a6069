"""Allen optotagging, checked value by value against the session file read with h5py."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from hdmf.common import VectorIndex
from pynwb import NWBFile
from pynwb.base import TimeSeriesReferenceVectorData
from pynwb.epoch import TimeIntervals

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.allen.optotagging import AllenOptotaggingInterface
from nwbridge.interfaces.tables import Column, build_table
from support.allen_files import EditedSource

OPTOTAGGING = "processing/optotagging/optogenetic_stimulation"
COLUMNS = ["start_time", "stop_time", "condition", "level", "duration", "stimulus_name"]


def raw_column(raw, name: str) -> np.ndarray:
    values = raw[f"{OPTOTAGGING}/{name}"][:]
    if values.dtype.kind == "O":
        return np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
    return values


def edited_table(table, *, rows=None, **changes):
    """A copy of the source table in memory, of the given rows; ``changes``: column -> values (None: drop)."""
    columns = []
    for name in table.colnames:
        if name in changes and changes[name] is None:
            continue
        vector = table[name]
        target = vector.target if isinstance(vector, VectorIndex) else vector
        if isinstance(target, TimeSeriesReferenceVectorData):
            continue
        ends = np.asarray(vector.data[:]) if isinstance(vector, VectorIndex) else None
        values = changes.get(name, np.asarray(target.data[:]))
        if rows is not None and name not in changes:
            if ends is not None:
                values = np.asarray(values)[rows]  # one tag per row in the Allen files
                ends = np.arange(1, len(values) + 1)
            else:
                values = values[rows]
        columns.append(Column(name, target.description, values, ends=ends))
    for name, values in changes.items():
        if name not in table.colnames and values is not None:
            columns.append(Column(name, "added", values))
    return build_table(TimeIntervals, name=table.name, description=table.description, columns=columns)


def with_table(monkeypatch, vbn_source, table) -> None:
    source = EditedSource(vbn_source, {OPTOTAGGING: table})
    monkeypatch.setattr(AllenOptotaggingInterface, "source", property(lambda self: source))


def new_file() -> NWBFile:
    return NWBFile(session_description="test", identifier="test",
                   session_start_time=datetime(2021, 5, 10, tzinfo=timezone.utc))


@pytest.fixture
def stimulation(vbn_session, roundtrip):
    return roundtrip(AllenOptotaggingInterface(vbn_session.session_file)).intervals["optogenetic_stimulation"]


def test_every_value_round_trips(stimulation, vbn_raw):
    assert list(stimulation.colnames)[:len(COLUMNS)] == COLUMNS
    n = vbn_raw[f"{OPTOTAGGING}/id"].shape[0]
    assert n > 0 and len(stimulation) == n
    for name in ("start_time", "stop_time", "level", "duration"):
        np.testing.assert_array_equal(stimulation[name][:], raw_column(vbn_raw, name), err_msg=name)
        assert stimulation[name].data.dtype == np.float64
    for name in ("condition", "stimulus_name"):
        assert list(stimulation[name][:]) == list(raw_column(vbn_raw, name))
    flat, ends = raw_column(vbn_raw, "tags"), vbn_raw[f"{OPTOTAGGING}/tags_index"][:]
    assert [list(row) for row in stimulation["tags"][:]] == [list(row) for row in np.split(flat, ends[:-1])]
    # The references into the source's optotagging TimeSeries are not copied, and the table says so.
    assert "timeseries" not in stimulation.colnames and "timeseries" in stimulation.description
    assert np.all(np.diff(stimulation["start_time"][:]) >= 0)
    assert "volts" in stimulation["level"].description
    for name in stimulation.colnames:
        assert stimulation[name].description.strip()


def test_levels_and_waveforms_are_the_source_s(stimulation):
    # Several command voltages (V) and both waveforms: a constant column would hide a wrong copy.
    assert len(set(stimulation["level"][:])) > 1
    assert len(set(stimulation["condition"][:])) > 1


def test_unsorted_rows_are_put_in_time_order(monkeypatch, vbn_source, vbn_raw, roundtrip):
    order = np.arange(vbn_raw[f"{OPTOTAGGING}/id"].shape[0])[::-1]
    with_table(monkeypatch, vbn_source, edited_table(vbn_source.require(OPTOTAGGING), rows=order))
    table = roundtrip(AllenOptotaggingInterface(vbn_source.path)).intervals["optogenetic_stimulation"]
    np.testing.assert_array_equal(table["start_time"][:], raw_column(vbn_raw, "start_time"))
    np.testing.assert_array_equal(table["level"][:], raw_column(vbn_raw, "level"))
    assert list(table["condition"][:]) == list(raw_column(vbn_raw, "condition"))
    assert "sorted by start_time" in table.description


def test_na_text_level_becomes_nan(monkeypatch, vbn_source, vbn_raw, roundtrip):
    level = np.array([repr(float(v)) for v in raw_column(vbn_raw, "level")], dtype=object)
    level[1] = "N/A"
    with_table(monkeypatch, vbn_source, edited_table(vbn_source.require(OPTOTAGGING), level=level))
    table = roundtrip(AllenOptotaggingInterface(vbn_source.path)).intervals["optogenetic_stimulation"]
    expected = raw_column(vbn_raw, "level").copy()
    expected[1] = np.nan
    np.testing.assert_array_equal(table["level"][:], expected)


def test_other_columns_are_kept_under_their_allen_names(monkeypatch, vbn_source, vbn_raw, roundtrip):
    n = vbn_raw[f"{OPTOTAGGING}/id"].shape[0]
    fibre = np.arange(n, dtype=np.int64) % 2
    with_table(monkeypatch, vbn_source, edited_table(vbn_source.require(OPTOTAGGING), fibre=fibre))
    table = roundtrip(AllenOptotaggingInterface(vbn_source.path)).intervals["optogenetic_stimulation"]
    np.testing.assert_array_equal(table["fibre"][:], fibre)


def test_missing_column_is_an_error(monkeypatch, vbn_source):
    with_table(monkeypatch, vbn_source, edited_table(vbn_source.require(OPTOTAGGING), level=None))
    with pytest.raises(SourceFileError, match=r"lacks the columns \['level'\]") as error:
        AllenOptotaggingInterface(vbn_source.path).add_to_nwbfile(new_file())
    assert error.value.path == vbn_source.path


def test_stop_before_start_is_an_error(monkeypatch, vbn_source, vbn_raw):
    stop = raw_column(vbn_raw, "stop_time").copy()
    stop[2] = raw_column(vbn_raw, "start_time")[2] - 0.001
    with_table(monkeypatch, vbn_source, edited_table(vbn_source.require(OPTOTAGGING), stop_time=stop))
    with pytest.raises(SourceFileError, match="row 2 stops before it starts"):
        AllenOptotaggingInterface(vbn_source.path).add_to_nwbfile(new_file())


def test_is_available(vbn_source):
    assert AllenOptotaggingInterface.is_available(vbn_source)
    assert not AllenOptotaggingInterface.is_available(EditedSource(vbn_source, {OPTOTAGGING: None}))
