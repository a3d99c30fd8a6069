"""The IBL passive protocol, read back from NWB and compared value by value to the ALF files."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pynwb import NWBFile
from pynwb.file import Subject

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl.alf import AlfSession
from nwbridge.interfaces.ibl.epochs import IblEpochsInterface
from nwbridge.interfaces.ibl.passive import IblPassiveInterface
from nwbridge.writing import write_nwbfile_atomically

PERIODS = "_ibl_passivePeriods.intervalsTable.csv"
GABOR = "_ibl_passiveGabor.table.csv"
STIMS = "_ibl_passiveStims.table.csv"
RFM_TIMES = "_ibl_passiveRFM.times.npy"
RFM_FRAMES = "_iblrig_RFMapStim.raw.bin"
PAIRS = {"valve": ("valveOn", "valveOff"), "tone": ("toneOn", "toneOff"), "noise": ("noiseOn", "noiseOff")}
REAL_PROTOCOL = Path(__file__).parents[2] / "data" / "ibl" / "passive" / "passiveChoiceWorld_trials_fixtures.pqt"


# ----------------------------------------------------------------------------------------------
# helpers and fixtures


def copy_session(session: Path, tmp_path: Path) -> Path:
    """A writable copy of a session, in the same <lab>/Subjects/<subject>/<date>/<number> layout."""
    target = tmp_path.joinpath(*session.parts[-5:])
    shutil.copytree(session, target)
    return target


def new_session(tmp_path: Path) -> Path:
    path = tmp_path / "testlab" / "Subjects" / "mouse1" / "2021-05-10" / "001"
    (path / "alf").mkdir(parents=True)
    (path / "raw_passive_data").mkdir()
    return path


def write_periods(session: Path, periods: dict[str, tuple[float, float]]) -> Path:
    path = session / "alf" / PERIODS
    pd.DataFrame(periods, index=["start", "stop"]).to_csv(path)
    return path


def read_periods(session: Path) -> pd.DataFrame:
    return pd.read_csv(session / "alf" / PERIODS, index_col=0)


def block_of(nwbfile, protocol: str) -> int:
    rows = np.flatnonzero(np.asarray(nwbfile.epochs["protocol"][:]) == protocol)
    assert rows.size == 1
    return int(rows[0])


def assert_same(actual, expected) -> None:
    """Equal values, NaN equal to NaN, same length."""
    np.testing.assert_array_equal(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64))


def expected_task_replay(stims: pd.DataFrame) -> pd.DataFrame:
    """Events from the stims table, computed independently: trailing rows where both edges are NaN are
    padding; everything else is an event."""
    events = []
    for kind, (on, off) in PAIRS.items():
        if on not in stims:
            continue
        pair = stims[[on, off]]
        keep = pair.notna().any(axis=1)
        last = keep[keep].index.max() if keep.any() else -1
        pair = pair.loc[:last]
        events += [(start, stop, kind) for start, stop in pair.itertuples(index=False)]
    table = pd.DataFrame(events, columns=["start_time", "stop_time", "stimulus_type"])
    table["key"] = table["start_time"].where(table["start_time"].notna(), table["stop_time"])
    return table.sort_values("key", kind="stable").drop(columns="key").reset_index(drop=True)


@pytest.fixture(scope="module")
def converted(ibl_session, tmp_path_factory):
    """The generated session written with epochs and passive interfaces, read back (module-wide)."""
    from pynwb import NWBHDF5IO

    path = tmp_path_factory.mktemp("passive") / "passive.nwb"
    nwbfile = NWBFile(session_description="test", identifier="test",
                      session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc))
    IblEpochsInterface(ibl_session).add_to_nwbfile(nwbfile)
    IblPassiveInterface(ibl_session).add_to_nwbfile(nwbfile)
    write_nwbfile_atomically(nwbfile, path)
    io = NWBHDF5IO(path, mode="r")
    yield io.read()
    io.close()


# ----------------------------------------------------------------------------------------------
# the generated session, every value


def test_is_available(ibl_session, tmp_path):
    assert IblPassiveInterface.is_available(AlfSession(ibl_session))
    empty = new_session(tmp_path)
    assert not IblPassiveInterface.is_available(AlfSession(empty))
    with pytest.raises(SourceFileError, match=PERIODS.replace(".", r"\.")):
        IblPassiveInterface(empty).add_to_nwbfile(_empty_nwbfile())


def test_passive_periods_keep_the_table_whole(ibl_session, converted):
    source = read_periods(ibl_session)
    table = converted.intervals["passive_periods"]
    assert list(table["period"][:]) == list(source.columns)
    assert "passiveProtocol" in list(table["period"][:])
    assert_same(table["start_time"][:], source.loc["start"])
    assert_same(table["stop_time"][:], source.loc["stop"])


def test_gabor_every_row_and_column(ibl_session, converted):
    source = pd.read_csv(ibl_session / "alf" / GABOR)
    assert len(source) > 0
    table = converted.intervals["gabor_presentations"]
    assert len(table) == len(source)
    assert_same(table["start_time"][:], source["start"])
    assert_same(table["stop_time"][:], source["stop"])
    for column in ("position", "contrast", "phase"):
        assert_same(table[column][:], source[column])
    assert set(table["stimulus_type"][:]) == {"gabor"}
    assert np.asarray(table["is_passive"][:]).dtype == bool and all(table["is_passive"][:])
    assert set(table["stimulus_block"][:]) == {block_of(converted, "task_replay")}
    for name in ("position", "contrast", "phase"):
        assert table[name].description
    assert "deg" in table["position"].description and "rad" in table["phase"].description


def test_task_replay_every_event(ibl_session, converted):
    stims = pd.read_csv(ibl_session / "alf" / STIMS)
    expected = expected_task_replay(stims)
    table = converted.intervals["task_replay_presentations"]
    assert list(table["stimulus_type"][:]) == list(expected["stimulus_type"])
    assert_same(table["start_time"][:], expected["start_time"])
    assert_same(table["stop_time"][:], expected["stop_time"])
    # Every defined on/off value of the source is there, kind by kind, and no other.
    types = np.asarray(table["stimulus_type"][:])
    for kind, (on, off) in PAIRS.items():
        for column, values in (("start_time", stims[on]), ("stop_time", stims[off])):
            written = np.asarray(table[column][:])[types == kind]
            assert_same(np.sort(written[~np.isnan(written)]), np.sort(values.dropna()))
    assert set(table["stimulus_block"][:]) == {block_of(converted, "task_replay")}
    assert all(table["is_passive"][:])


def test_sparse_noise_frames_bit_exact(ibl_session, converted):
    times = np.load(ibl_session / "alf" / RFM_TIMES)
    raw = np.fromfile(ibl_session / "raw_passive_data" / RFM_FRAMES, dtype=np.uint8)
    series = converted.stimulus["sparse_noise_frames"]
    assert series.data.dtype == np.uint8
    assert series.data.shape == (len(times), 15, 15)
    np.testing.assert_array_equal(np.asarray(series.data[:]).ravel(), raw)
    np.testing.assert_array_equal(series.timestamps[:], times)
    assert "0" in series.description and "128" in series.description and "255" in series.description


def test_sparse_noise_presentations(ibl_session, converted):
    times = np.load(ibl_session / "alf" / RFM_TIMES)
    rfm_stop = read_periods(ibl_session).loc["stop", "RFM"]
    table = converted.intervals["sparse_noise_presentations"]
    assert len(table) == len(times)
    assert_same(table["start_time"][:], times)
    assert_same(table["stop_time"][:-1], times[1:])
    assert table["stop_time"][-1] == rfm_stop
    np.testing.assert_array_equal(table["frame_index"][:], np.arange(len(times)))
    assert set(table["stimulus_type"][:]) == {"sparse_noise"}
    assert set(table["stimulus_block"][:]) == {block_of(converted, "receptive_field_mapping")}
    assert "last" in table.description and "RFM" in table.description


def test_stimulus_blocks_are_epochs_rows(converted):
    """Each presentation lies within the epochs row its stimulus_block names."""
    epochs = converted.epochs
    for name in ("gabor_presentations", "task_replay_presentations", "sparse_noise_presentations"):
        table = converted.intervals[name]
        blocks = np.asarray(table["stimulus_block"][:])
        starts = np.asarray(table["start_time"][:])
        block_start = np.asarray(epochs["start_time"][:])[blocks]
        block_stop = np.asarray(epochs["stop_time"][:])[blocks]
        inside = np.isnan(starts) | ((starts >= block_start) & (starts <= block_stop))
        assert inside.all(), name


def test_every_column_described(converted):
    for name in ("passive_periods", "gabor_presentations", "task_replay_presentations",
                 "sparse_noise_presentations"):
        table = converted.intervals[name]
        assert table.description
        for column in table.columns:
            assert column.description and column.description != "no description", (name, column.name)


def test_through_roundtrip_fixture(ibl_session, roundtrip):
    nwbfile = roundtrip(IblEpochsInterface(ibl_session), IblPassiveInterface(ibl_session))
    assert {"passive_periods", "gabor_presentations", "task_replay_presentations",
            "sparse_noise_presentations"} <= set(nwbfile.intervals)
    assert "sparse_noise_frames" in nwbfile.stimulus


def test_dataset_uuids_in_file_names(tmp_path, roundtrip):
    """Files named ``obj.attr.<uuid>.ext`` (as the ONE cache may hold them) are the same datasets."""
    from nwbridge.testing import make_ibl_session

    session = make_ibl_session(tmp_path, n_trials=20, duration_s=900, seed=4, uuid_extras=True)
    assert not (session / "alf" / GABOR).exists()
    (gabor_file,) = (session / "alf").glob("_ibl_passiveGabor.table.*.csv")
    nwbfile = roundtrip(IblEpochsInterface(session), IblPassiveInterface(session))
    source = pd.read_csv(gabor_file)
    assert_same(nwbfile.intervals["gabor_presentations"]["phase"][:], source["phase"])
    assert "sparse_noise_frames" in nwbfile.stimulus


# ----------------------------------------------------------------------------------------------
# task replay: padding and half-NaN pairs


def test_padding_dropped_half_nan_pair_kept(tmp_path, roundtrip):
    session = new_session(tmp_path)
    write_periods(session, {"passiveProtocol": (0.0, 100.0), "taskReplay": (0.0, 100.0)})
    nan = np.nan
    stims = pd.DataFrame({
        "valveOn": [10.0, 20.0, 30.0, 40.0],
        "valveOff": [10.1, 20.1, nan, 40.1],     # the third valve closing was not detected
        "toneOn": [15.0, nan, 35.0, nan],        # the second tone's onset was not detected; then padding
        "toneOff": [15.1, 25.1, 35.1, nan],
        "noiseOn": [12.0, nan, nan, nan],        # one noise burst, three rows of padding
        "noiseOff": [12.5, nan, nan, nan],
    })
    stims.to_csv(session / "alf" / STIMS, index=False)
    nwbfile = roundtrip(IblEpochsInterface(session), IblPassiveInterface(session))
    table = nwbfile.intervals["task_replay_presentations"]
    assert list(table["stimulus_type"][:]) == ["valve", "noise", "tone", "valve", "tone", "valve", "tone",
                                               "valve"]
    assert_same(table["start_time"][:], [10.0, 12.0, 15.0, 20.0, nan, 30.0, 35.0, 40.0])
    assert_same(table["stop_time"][:], [10.1, 12.5, 15.1, 20.1, 25.1, nan, 35.1, 40.1])
    assert "NaN" in table.description and "padding" in table.description
    assert set(table["stimulus_block"][:]) == {0}


def test_interior_nan_pair_is_not_padding(tmp_path):
    """Only the tail is padding: an event with neither edge detected before the last event is kept."""
    from nwbridge.interfaces.ibl.passive import task_replay_events

    stims = pd.DataFrame({"valveOn": [1.0, np.nan, 3.0, np.nan], "valveOff": [1.1, np.nan, 3.1, np.nan]})
    events = task_replay_events(stims, path=tmp_path / STIMS)
    assert len(events) == 3
    assert_same(events["start_time"], [1.0, 3.0, np.nan])


def test_stims_with_half_a_pair(tmp_path, roundtrip):
    session = new_session(tmp_path)
    write_periods(session, {"passiveProtocol": (0.0, 100.0), "taskReplay": (0.0, 100.0)})
    path = session / "alf" / STIMS
    pd.DataFrame({"valveOn": [1.0], "toneOn": [2.0], "toneOff": [2.1]}).to_csv(path, index=False)
    with pytest.raises(SourceFileError, match="valveOff") as raised:
        IblPassiveInterface(session).add_to_nwbfile(_empty_nwbfile())
    assert raised.value.path == path


def test_gabor_without_task_replay_period(tmp_path):
    session = new_session(tmp_path)
    periods = write_periods(session, {"passiveProtocol": (0.0, 100.0), "spontaneousActivity": (0.0, 50.0)})
    pd.DataFrame({"start": [60.0], "stop": [60.3], "position": [35.0], "contrast": [1.0],
                  "phase": [0.5]}).to_csv(session / "alf" / GABOR, index=False)
    with pytest.raises(SourceFileError, match="task_replay") as raised:
        IblPassiveInterface(session).add_to_nwbfile(_empty_nwbfile())
    assert raised.value.path == periods and GABOR in str(raised.value)


def test_rfm_times_without_frames(ibl_session, tmp_path, roundtrip):
    session = copy_session(ibl_session, tmp_path)
    (session / "raw_passive_data" / RFM_FRAMES).unlink()
    with pytest.warns(UserWarning, match="only the times"):
        nwbfile = roundtrip(IblEpochsInterface(session), IblPassiveInterface(session))
    table = nwbfile.intervals["sparse_noise_presentations"]
    assert_same(table["start_time"][:], np.load(session / "alf" / RFM_TIMES))
    assert "frame_index" not in table.colnames and "sparse_noise_frames" not in nwbfile.stimulus


def test_rfm_frames_without_times(ibl_session, tmp_path, roundtrip):
    session = copy_session(ibl_session, tmp_path)
    (session / "alf" / RFM_TIMES).unlink()
    with pytest.warns(UserWarning, match="not converted"):
        nwbfile = roundtrip(IblEpochsInterface(session), IblPassiveInterface(session))
    assert "sparse_noise_presentations" not in nwbfile.intervals
    assert "gabor_presentations" in nwbfile.intervals


def test_unknown_stims_column_is_reported(tmp_path):
    from nwbridge.interfaces.ibl.passive import task_replay_events

    stims = pd.DataFrame({"valveOn": [1.0], "valveOff": [1.1], "laserOn": [2.0]})
    with pytest.warns(UserWarning, match="laserOn"):
        events = task_replay_events(stims, path=tmp_path / STIMS)
    assert list(events["stimulus_type"]) == ["valve"]


# ----------------------------------------------------------------------------------------------
# bad input


def _empty_nwbfile() -> NWBFile:
    return NWBFile(session_description="test", identifier="test",
                   session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc))


def test_rfm_bin_not_whole_frames(ibl_session, tmp_path):
    session = copy_session(ibl_session, tmp_path)
    path = session / "raw_passive_data" / RFM_FRAMES
    with open(path, "ab") as stream:
        stream.write(b"\x80" * 7)
    size = path.stat().st_size
    with pytest.raises(SourceFileError) as raised:
        IblPassiveInterface(session).add_to_nwbfile(_empty_nwbfile())
    assert raised.value.path == path
    assert RFM_FRAMES in str(raised.value) and str(size) in str(raised.value) and "15 x 15" in str(raised.value)


def test_rfm_frame_count_differs_from_times(ibl_session, tmp_path):
    session = copy_session(ibl_session, tmp_path)
    path = session / "raw_passive_data" / RFM_FRAMES
    frames = np.fromfile(path, dtype=np.uint8).reshape(-1, 225)
    n_times = len(np.load(session / "alf" / RFM_TIMES))
    frames[:-2].tofile(path)
    with pytest.raises(SourceFileError) as raised:
        IblPassiveInterface(session).add_to_nwbfile(_empty_nwbfile())
    message = str(raised.value)
    assert raised.value.path == path and RFM_FRAMES in message
    assert f"{len(frames) - 2} frames" in message and f"{n_times} frame times" in message and RFM_TIMES in message


def test_rfm_times_not_monotonic(ibl_session, tmp_path):
    session = copy_session(ibl_session, tmp_path)
    path = session / "alf" / RFM_TIMES
    times = np.load(path)
    times[5], times[6] = times[6], times[5]
    np.save(path, times)
    with pytest.raises(SourceFileError, match="not increasing") as raised:
        IblPassiveInterface(session).add_to_nwbfile(_empty_nwbfile())
    assert raised.value.path == path and RFM_TIMES in str(raised.value)


def test_periods_table_without_row_labels(ibl_session, tmp_path):
    session = copy_session(ibl_session, tmp_path)
    path = session / "alf" / PERIODS
    periods = read_periods(session)
    periods.to_csv(path, index=False)
    with pytest.raises(SourceFileError, match="'start' and 'stop'") as raised:
        IblPassiveInterface(session).add_to_nwbfile(_empty_nwbfile())
    assert raised.value.path == path and PERIODS in str(raised.value)


def test_rfm_period_ends_before_last_frame(ibl_session, tmp_path):
    session = copy_session(ibl_session, tmp_path)
    times = np.load(session / "alf" / RFM_TIMES)
    periods = read_periods(session)
    periods.loc["stop", "RFM"] = times[-1] - 1.0
    periods.to_csv(session / "alf" / PERIODS)
    with pytest.raises(SourceFileError, match="RFM period") as raised:
        IblPassiveInterface(session).add_to_nwbfile(_empty_nwbfile())
    assert raised.value.path == session / "alf" / PERIODS


# ----------------------------------------------------------------------------------------------
# the real IBL passive protocol


# Durations of each kind of event in the replay, for laying the real protocol out in time; they
# do not matter to the checks, which compare counts and stimulus parameters.
DURATIONS = {"G": 0.3, "V": 0.1, "T": 0.1, "N": 0.5}


def session_from_real_protocol(tmp_path: Path, session_id: int) -> tuple[Path, pd.DataFrame]:
    """A session whose passive Gabor and stims tables replay one session of the real protocol."""
    protocol = pd.read_parquet(REAL_PROTOCOL)
    protocol = protocol[protocol["session_id"] == session_id].sort_values("trial_num").reset_index(drop=True)
    replay_start = 1000.0
    # Each event follows the previous one's end after its own stim_delay, as the rig plays them.
    starts = np.empty(len(protocol))
    clock = replay_start
    for row, (delay, kind) in enumerate(zip(protocol["stim_delay"], protocol["stim_type"])):
        starts[row] = clock + delay
        clock = starts[row] + DURATIONS[kind]
    stops = starts + protocol["stim_type"].map(DURATIONS).to_numpy()
    replay_stop = clock + 1.0

    session = new_session(tmp_path)
    write_periods(session, {"passiveProtocol": (0.0, replay_stop), "spontaneousActivity": (0.0, 500.0),
                            "RFM": (500.0, 999.0), "taskReplay": (replay_start, replay_stop)})
    gabor = protocol["stim_type"] == "G"
    pd.DataFrame({"start": starts[gabor], "stop": stops[gabor], "position": protocol.loc[gabor, "position"],
                  "contrast": protocol.loc[gabor, "contrast"], "phase": protocol.loc[gabor, "stim_phase"]}
                 ).to_csv(session / "alf" / GABOR, index=False)
    columns = {}
    for kind, (on, off) in {"V": PAIRS["valve"], "T": PAIRS["tone"], "N": PAIRS["noise"]}.items():
        mask = (protocol["stim_type"] == kind).to_numpy()
        columns[on], columns[off] = pd.Series(starts[mask]), pd.Series(stops[mask])
    pd.DataFrame(columns).to_csv(session / "alf" / STIMS, index=False)  # pandas pads unequal lengths with NaN
    return session, protocol


@pytest.mark.parametrize("session_id", [0, 11])
def test_real_passive_protocol(tmp_path, roundtrip, session_id):
    session, protocol = session_from_real_protocol(tmp_path, session_id)
    nwbfile = roundtrip(IblEpochsInterface(session), IblPassiveInterface(session))

    real_counts = protocol["stim_type"].value_counts().to_dict()
    # The protocol itself, as the IBL rig ships it: 180 Gabor patches and 40 of each sound/valve.
    assert real_counts == {"G": 180, "V": 40, "T": 40, "N": 40}

    gabor = nwbfile.intervals["gabor_presentations"]
    real_gabor = protocol[protocol["stim_type"] == "G"]
    assert len(gabor) == real_counts["G"]
    assert_same(gabor["contrast"][:], real_gabor["contrast"])
    assert_same(gabor["position"][:], real_gabor["position"])
    assert_same(gabor["phase"][:], real_gabor["stim_phase"])
    assert set(np.unique(gabor["contrast"][:])) == {0.0, 0.0625, 0.125, 0.25, 1.0}
    assert set(np.unique(gabor["position"][:])) == {-35.0, 35.0}

    replay = nwbfile.intervals["task_replay_presentations"]
    types = list(replay["stimulus_type"][:])
    assert types.count("valve") == real_counts["V"]
    assert types.count("tone") == real_counts["T"]
    assert types.count("noise") == real_counts["N"]
    # Sorted by start, the replayed sounds and clicks come in the protocol's own order.
    real_order = protocol.loc[protocol["stim_type"] != "G", "stim_type"].map(
        {"V": "valve", "T": "tone", "N": "noise"}).tolist()
    assert types == real_order
    assert not np.isnan(replay["start_time"][:]).any()

    replay_block = block_of(nwbfile, "task_replay")
    assert set(gabor["stimulus_block"][:]) == {replay_block} == set(replay["stimulus_block"][:])


# ----------------------------------------------------------------------------------------------
# nwbinspector


def test_nwbinspector_no_critical_or_error(ibl_session, tmp_path):
    import nwbinspector

    nwbfile = NWBFile(
        session_description="IBL passive protocol test", identifier="passive-test", session_id="test",
        session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc), institution="test",
        experiment_description="test", keywords=["test"], experimenter=["Doe, Jane"], lab="test",
        subject=Subject(subject_id="mouse1", species="Mus musculus", sex="F", age="P90D"),
    )
    IblEpochsInterface(ibl_session).add_to_nwbfile(nwbfile)
    IblPassiveInterface(ibl_session).add_to_nwbfile(nwbfile)
    path = write_nwbfile_atomically(nwbfile, tmp_path / "inspected.nwb")
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=path, config=nwbinspector.load_config("dandi")))
    severe = [message for message in messages
              if message.importance.name in ("CRITICAL", "ERROR", "PYNWB_VALIDATION")]
    assert not severe, "\n".join(f"{m.importance.name} {m.object_name}: {m.message}" for m in severe)
