"""Protocol blocks (``epochs``) of an IBL session, checked against the ALF files they come from."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl.alf import AlfSession
from nwbridge.interfaces.ibl.epochs import IblEpochsInterface, protocol_blocks

PERIODS = "_ibl_passivePeriods.intervalsTable.csv"
PERIOD_PROTOCOL = {"spontaneousActivity": "spontaneous", "RFM": "receptive_field_mapping",
                   "taskReplay": "task_replay"}


def copy_session(session: Path, tmp_path: Path) -> Path:
    """A writable copy of a session, in the same <lab>/Subjects/<subject>/<date>/<number> layout."""
    target = tmp_path.joinpath(*session.parts[-5:])
    shutil.copytree(session, target)
    return target


def new_session(tmp_path: Path) -> Path:
    path = tmp_path / "testlab" / "Subjects" / "mouse1" / "2021-05-10" / "001"
    (path / "alf").mkdir(parents=True)
    return path


def write_periods(session: Path, periods: dict[str, tuple[float, float]]) -> Path:
    """The passive periods table as IBL writes it: the row labels in an unnamed first column."""
    path = session / "alf" / PERIODS
    pd.DataFrame(periods, index=["start", "stop"]).to_csv(path)
    return path


def expected_blocks(session: Path) -> pd.DataFrame:
    """The blocks computed from the files with pandas alone, independently of nwbridge."""
    rows = []
    alf = session / "alf"
    if (alf / "_ibl_trials.table.pqt").exists():
        trials = pd.read_parquet(alf / "_ibl_trials.table.pqt")
        rows.append(("task", trials["intervals_0"].min(), trials["intervals_1"].max()))
    elif (alf / "_ibl_trials.intervals.npy").exists():
        intervals = np.load(alf / "_ibl_trials.intervals.npy")
        rows.append(("task", intervals[:, 0].min(), intervals[:, 1].max()))
    if (alf / PERIODS).exists():
        periods = pd.read_csv(alf / PERIODS, index_col=0)
        for column, protocol in PERIOD_PROTOCOL.items():
            rows.append((protocol, periods.loc["start", column], periods.loc["stop", column]))
    return (pd.DataFrame(rows, columns=["protocol", "start_time", "stop_time"])
            .sort_values("start_time").reset_index(drop=True))


def assert_epochs_match(nwbfile, expected: pd.DataFrame) -> None:
    epochs = nwbfile.epochs
    assert list(epochs["protocol"][:]) == list(expected["protocol"])
    np.testing.assert_array_equal(epochs["start_time"][:], expected["start_time"].to_numpy())
    np.testing.assert_array_equal(epochs["stop_time"][:], expected["stop_time"].to_numpy())
    assert np.all(np.diff(epochs["start_time"][:]) >= 0)
    assert "stimulus_block" in epochs.description
    for name in ("start_time", "stop_time", "protocol"):
        assert epochs[name].description


def test_generated_session_has_every_block(ibl_session, roundtrip):
    expected = expected_blocks(ibl_session)
    assert set(expected["protocol"]) == {"task", "spontaneous", "receptive_field_mapping", "task_replay"}
    nwbfile = roundtrip(IblEpochsInterface(ibl_session))
    assert_epochs_match(nwbfile, expected)


def test_protocol_blocks_table(ibl_session):
    blocks = protocol_blocks(AlfSession(ibl_session))
    assert list(blocks.columns) == ["protocol", "start_time", "stop_time"]
    assert list(blocks.index) == list(range(len(blocks)))
    expected = expected_blocks(ibl_session)
    pd.testing.assert_frame_equal(blocks, expected, check_dtype=False)
    # The envelope of the passive protocol is not a block.
    assert "passiveProtocol" not in set(blocks["protocol"])


def test_legacy_trials_layout(ibl_session, tmp_path, roundtrip):
    """Older sessions have _ibl_trials.intervals.npy and no table: the task block is the same."""
    session = copy_session(ibl_session, tmp_path)
    alf = session / "alf"
    table_path = alf / "_ibl_trials.table.pqt"
    if table_path.exists():
        table = pd.read_parquet(table_path)
        for column in table.columns:
            if column.startswith("intervals_"):
                continue
            np.save(alf / f"_ibl_trials.{column}.npy", table[column].to_numpy())
        np.save(alf / "_ibl_trials.intervals.npy", table[["intervals_0", "intervals_1"]].to_numpy())
        table_path.unlink()
    assert not table_path.exists() and (alf / "_ibl_trials.intervals.npy").exists()
    expected = expected_blocks(session)
    assert expected.loc[expected["protocol"] == "task"].shape[0] == 1
    nwbfile = roundtrip(IblEpochsInterface(session))
    assert_epochs_match(nwbfile, expected)
    # Identical to the table layout's task block.
    assert_epochs_match(nwbfile, expected_blocks(ibl_session))


def test_legacy_layout_from_generator(tmp_path, roundtrip):
    """The generator's own legacy layout: every trials attribute its own .npy, no table."""
    from nwbridge.testing import make_ibl_session

    session = make_ibl_session(tmp_path, n_trials=20, duration_s=900, seed=3, legacy_trials=True)
    assert (session / "alf" / "_ibl_trials.intervals.npy").exists()
    assert not (session / "alf" / "_ibl_trials.table.pqt").exists()
    nwbfile = roundtrip(IblEpochsInterface(session))
    assert_epochs_match(nwbfile, expected_blocks(session))


def test_session_without_passive_protocol(tmp_path, roundtrip):
    from nwbridge.testing import make_ibl_session

    session = make_ibl_session(tmp_path, n_trials=20, duration_s=400, passive=False, seed=5)
    assert not (session / "alf" / PERIODS).exists()
    nwbfile = roundtrip(IblEpochsInterface(session))
    assert list(nwbfile.epochs["protocol"][:]) == ["task"]
    assert_epochs_match(nwbfile, expected_blocks(session))


def test_passive_only_and_sorted_by_start(tmp_path, roundtrip):
    """Blocks are numbered in time order, whatever the column order of the periods table."""
    session = new_session(tmp_path)
    write_periods(session, {"passiveProtocol": (10.0, 70.0), "taskReplay": (50.0, 70.0),
                            "spontaneousActivity": (10.0, 30.0), "RFM": (30.5, 49.5)})
    assert IblEpochsInterface.is_available(AlfSession(session))
    nwbfile = roundtrip(IblEpochsInterface(session))
    assert list(nwbfile.epochs["protocol"][:]) == ["spontaneous", "receptive_field_mapping", "task_replay"]
    np.testing.assert_array_equal(nwbfile.epochs["start_time"][:], [10.0, 30.5, 50.0])
    np.testing.assert_array_equal(nwbfile.epochs["stop_time"][:], [30.0, 49.5, 70.0])


def test_passive_before_task(tmp_path):
    session = new_session(tmp_path)
    write_periods(session, {"passiveProtocol": (0.0, 30.0), "spontaneousActivity": (0.0, 10.0),
                            "RFM": (10.0, 20.0), "taskReplay": (20.0, 30.0)})
    intervals = np.column_stack([40.0 + np.arange(5) * 3.0, 41.5 + np.arange(5) * 3.0])
    pd.DataFrame({"intervals_0": intervals[:, 0], "intervals_1": intervals[:, 1]}).to_parquet(
        session / "alf" / "_ibl_trials.table.pqt")
    blocks = protocol_blocks(AlfSession(session))
    assert list(blocks["protocol"]) == ["spontaneous", "receptive_field_mapping", "task_replay", "task"]
    assert blocks.loc[3, "start_time"] == 40.0 and blocks.loc[3, "stop_time"] == 41.5 + 12.0


def test_missing_period_is_absent(tmp_path):
    session = new_session(tmp_path)
    write_periods(session, {"passiveProtocol": (0.0, 30.0), "spontaneousActivity": (0.0, 10.0),
                            "RFM": (np.nan, np.nan)})
    blocks = protocol_blocks(AlfSession(session))
    assert list(blocks["protocol"]) == ["spontaneous"]


def test_nothing_to_write(tmp_path):
    session = new_session(tmp_path)
    np.save(session / "alf" / "licks.times.npy", np.arange(3.0))
    assert not IblEpochsInterface.is_available(AlfSession(session))
    assert protocol_blocks(AlfSession(session)).empty


@pytest.mark.parametrize("labels", [["begin", "end"], ["start", "start"], ["0", "1"]])
def test_periods_without_row_labels(tmp_path, labels):
    session = new_session(tmp_path)
    path = session / "alf" / PERIODS
    pd.DataFrame({"passiveProtocol": [0.0, 30.0], "spontaneousActivity": [0.0, 10.0]}, index=labels).to_csv(path)
    with pytest.raises(SourceFileError) as raised:
        protocol_blocks(AlfSession(session))
    assert raised.value.path == path
    assert PERIODS in str(raised.value) and "start" in str(raised.value)


def test_periods_written_without_index(tmp_path):
    session = new_session(tmp_path)
    path = session / "alf" / PERIODS
    pd.DataFrame({"passiveProtocol": [0.0, 30.0], "spontaneousActivity": [0.0, 10.0]}).to_csv(path, index=False)
    with pytest.raises(SourceFileError, match=PERIODS.replace(".", r"\.")):
        protocol_blocks(AlfSession(session))


def test_period_stopping_before_start(tmp_path):
    session = new_session(tmp_path)
    path = write_periods(session, {"passiveProtocol": (0.0, 30.0), "RFM": (20.0, 10.0)})
    with pytest.raises(SourceFileError, match="RFM") as raised:
        protocol_blocks(AlfSession(session))
    assert raised.value.path == path
