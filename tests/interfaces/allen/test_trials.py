"""Allen change-detection trials, checked value by value against the session file read with h5py."""

from __future__ import annotations

import shutil
import uuid

import h5py
import numpy as np
import pytest
from hdmf.common import VectorIndex
from pynwb.base import TimeSeriesReferenceVectorData
from pynwb.epoch import TimeIntervals

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.tables import Column, build_table
from nwbridge.interfaces.allen.trials import AllenTrialsInterface
from support.allen_files import EditedSource

TRIALS = "intervals/trials"
OUTCOMES = ("hit", "miss", "false_alarm", "correct_reject", "aborted")
SHARED = ["start_time", "stop_time", "stimulus_onset_time", "response_time", "reward_time", "reward_volume_ul",
          "is_rewarded", "outcome"]
CHANGE_DETECTION = ["is_change", "go", "catch", "initial_image_name", "change_image_name", "change_frame",
                    "change_time_no_display_delay", "lick_times", "hit", "false_alarm", "miss", "correct_reject",
                    "aborted", "auto_rewarded", "trial_length"]


# --- reading the source independently, and editing copies of it -------------------------------

def raw_column(raw, name: str, table: str = TRIALS) -> np.ndarray:
    values = raw[f"{table}/{name}"][:]
    if values.dtype.kind == "O":
        return np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
    return values


def raw_ragged(raw, name: str, table: str = TRIALS) -> list[np.ndarray]:
    flat, ends = raw[f"{table}/{name}"][:], raw[f"{table}/{name}_index"][:].astype(np.int64)
    return np.split(flat, ends[:-1])


def natural_images_table(raw) -> str:
    return next(f"intervals/{name}" for name in raw["intervals"] if name.startswith("Natural_Images"))


def edited_copy(vbn_session, tmp_path, edit):
    """A copy of the generated session file, changed by ``edit(h5py.File)``."""
    target = tmp_path / vbn_session.session_file.name
    shutil.copy(vbn_session.session_file, target)
    with h5py.File(target, "r+") as file:
        edit(file)
    return target


def replace_column(file, table: str, name: str, values: np.ndarray) -> None:
    """Rewrite one column of a table with other values (or another dtype), keeping its attributes."""
    location = f"{table}/{name}"
    attributes = dict(file[location].attrs)
    del file[location]
    values = np.asarray(values)
    dtype = h5py.string_dtype() if values.dtype.kind in "OU" else values.dtype
    file.create_dataset(location, data=values.astype(object) if values.dtype.kind == "U" else values, dtype=dtype)
    file[location].attrs.update(attributes)


def add_column(file, table: str, name: str, values: np.ndarray, description: str = "no description") -> None:
    """Add a plain column to a table, as hdmf writes one."""
    values = np.asarray(values)
    dtype = h5py.string_dtype() if values.dtype.kind in "OU" else values.dtype
    dataset = file.create_dataset(f"{table}/{name}", data=values.astype(object) if values.dtype.kind == "U"
                                  else values, dtype=dtype)
    dataset.attrs.update({"neurodata_type": "VectorData", "namespace": "hdmf-common", "description": description,
                          "object_id": str(uuid.uuid4())})
    file[table].attrs["colnames"] = [*[c.decode() if isinstance(c, bytes) else c
                                       for c in file[table].attrs["colnames"]], name]


def as_text_with_na(values: np.ndarray) -> np.ndarray:
    """Numbers as AllenSDK writes them in mixed columns: text, "N/A" for NaN."""
    return np.array(["N/A" if np.isnan(v) else repr(float(v)) for v in values], dtype=object)


def edited_table(table, **changes):
    """A copy of a source table in memory; ``changes``: column -> new values (None: drop the column)."""
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
        if isinstance(values, tuple):
            values, ends = values
        columns.append(Column(name, target.description, values, ends=ends))
    for name, values in changes.items():
        if name not in table.colnames and values is not None:
            columns.append(Column(name, "added", values))
    return build_table(TimeIntervals, name=table.name, description=table.description, columns=columns)


def use_source(monkeypatch, interface_class, source) -> None:
    monkeypatch.setattr(interface_class, "source", property(lambda self: source))


def convert(roundtrip, session_file):
    return roundtrip(AllenTrialsInterface(session_file)).trials


@pytest.fixture
def trials(vbn_session, roundtrip):
    """The trials of the generated session, written and read back."""
    return convert(roundtrip, vbn_session.session_file)


# --- the generated session: every value -------------------------------------------------------

def test_columns_in_the_representation_order(trials, vbn_raw):
    names = list(trials.colnames)
    assert names[:len(SHARED)] == SHARED
    assert names[len(SHARED):len(SHARED) + len(CHANGE_DETECTION)] == CHANGE_DETECTION
    # Every Allen column is there, under its Allen name, except reward_volume (now reward_volume_ul).
    source = [c.decode() if isinstance(c, bytes) else c for c in vbn_raw[TRIALS].attrs["colnames"]]
    assert set(source) - set(names) == {"reward_volume"}
    for name in names:
        assert trials[name].description.strip()


def test_times_are_copied_bit_for_bit(trials, vbn_raw):
    for name in ("start_time", "stop_time", "response_time", "reward_time", "change_time_no_display_delay",
                 "trial_length"):
        np.testing.assert_array_equal(trials[name][:], raw_column(vbn_raw, name), err_msg=name)
        assert trials[name].data.dtype == np.float64
    assert np.all(np.diff(trials["start_time"][:]) >= 0)


def test_lick_times_keep_every_trial_s_licks(trials, vbn_raw):
    expected = raw_ragged(vbn_raw, "lick_times")
    got = trials["lick_times"][:]
    assert len(got) == len(expected)
    for row, (mine, theirs) in enumerate(zip(got, expected)):
        np.testing.assert_array_equal(np.asarray(mine), theirs, err_msg=f"trial {row}")
    assert sum(len(x) for x in expected) > len(expected)  # licks were there to be copied


def test_booleans_and_text_are_copied(trials, vbn_raw):
    for name in ("is_change", "go", "catch", "hit", "false_alarm", "miss", "correct_reject", "aborted",
                 "auto_rewarded"):
        values = np.asarray(trials[name].data[:])
        assert values.dtype == bool, name
        np.testing.assert_array_equal(values, raw_column(vbn_raw, name).astype(bool), err_msg=name)
    for name in ("initial_image_name", "change_image_name"):
        assert list(trials[name][:]) == list(raw_column(vbn_raw, name))


def test_reward_volume_is_converted_from_millilitres(trials, vbn_raw, vbn_session):
    millilitres = raw_column(vbn_raw, "reward_volume")
    np.testing.assert_array_equal(trials["reward_volume_ul"][:], millilitres * 1000.0)
    # The session type says 5 µL per earned reward: the Allen file holds 0.005 (mL).
    earned = raw_column(vbn_raw, "hit").astype(bool)
    assert earned.any()
    expected_ul = float(vbn_session.session_type.split("_")[-2].removesuffix("uL"))
    np.testing.assert_allclose(trials["reward_volume_ul"][:][earned], expected_ul)
    assert np.all(trials["reward_volume_ul"][:][~np.isfinite(raw_column(vbn_raw, "reward_time"))] == 0)


def test_rewarded_and_outcome(trials, vbn_raw):
    reward_time = raw_column(vbn_raw, "reward_time")
    flags = {name: raw_column(vbn_raw, name).astype(bool) for name in (*OUTCOMES, "auto_rewarded")}
    np.testing.assert_array_equal(trials["is_rewarded"][:], np.isfinite(reward_time))
    np.testing.assert_array_equal(trials["is_rewarded"][:], flags["hit"] | flags["auto_rewarded"])
    expected = []
    for row in range(len(reward_time)):
        true = [name for name in OUTCOMES if flags[name][row]]
        expected.append(true[0] if true else "auto_rewarded")
    assert list(trials["outcome"][:]) == expected
    # The session exercises every outcome, including the free-reward trials that are none of the five.
    assert set(expected) == {*OUTCOMES, "auto_rewarded"}
    assert not any(flags[name][flags["auto_rewarded"]].any() for name in OUTCOMES)


def test_change_frame_keeps_the_no_change_sentinel(trials, vbn_raw):
    change_frame = np.asarray(trials["change_frame"].data[:])
    np.testing.assert_array_equal(change_frame, raw_column(vbn_raw, "change_frame"))
    assert change_frame.dtype.kind == "i"
    none = change_frame == -99
    assert none.any() and (~none).any()
    # -99 is "no change": aborted trials, no change time, no stimulus onset.
    np.testing.assert_array_equal(none, raw_column(vbn_raw, "aborted").astype(bool))
    assert not np.asarray(trials["is_change"].data[:])[none].any()
    assert np.isnan(trials["stimulus_onset_time"][:][none]).all()
    assert np.isnan(trials["change_time_no_display_delay"][:][none]).all()


def test_stimulus_onset_is_the_displayed_change_not_the_trial_s_frame_time(trials, vbn_raw, vbn_session):
    images = natural_images_table(vbn_raw)
    start_frame = raw_column(vbn_raw, "start_frame", images)
    start_time = raw_column(vbn_raw, "start_time", images)
    active = raw_column(vbn_raw, "active", images).astype(bool)
    change_frame = raw_column(vbn_raw, "change_frame")
    catch = raw_column(vbn_raw, "catch").astype(bool)
    onset = trials["stimulus_onset_time"][:]
    no_delay = raw_column(vbn_raw, "change_time_no_display_delay")
    changed = change_frame != -99
    for row in np.flatnonzero(changed):
        match = np.flatnonzero(active & (start_frame == change_frame[row]))
        assert match.size == 1
        assert onset[row] == start_time[match[0]]  # bit for bit: the presentation's own start time
    # The trials' change time is the frame time before the monitor's display delay (~20 ms).
    delay = onset[changed] - no_delay[changed]
    assert np.all(delay > 0.015) and np.all(delay < 0.025)
    np.testing.assert_allclose(delay, vbn_session.monitor_delay_s, atol=2e-4)
    # Catch trials carry the sham change: the flash where a change would have happened.
    assert (catch & changed).any() and np.isfinite(onset[catch]).all()


# --- storage quirks, on an edited copy of the source file --------------------------------------

FLOAT_BOOLEANS = ("go", "catch", "hit", "miss", "aborted", "auto_rewarded", "is_change")
TEXT_NUMBERS = ("response_time", "reward_time", "change_time_no_display_delay")


@pytest.fixture(scope="module")
def quirky(vbn_session, tmp_path_factory):
    """A copy of the session file storing trials as AllenSDK does when pandas had missing values:
    booleans as float, numbers as text with "N/A", change_frame as float with NaN; plus two
    Allen columns the representation does not name."""
    n = h5py.File(vbn_session.session_file, "r")[f"{TRIALS}/id"].shape[0]
    latency = np.linspace(0.2, 0.7, n)
    latency[::4] = np.nan
    extras = {"response_latency": latency, "trial_note": np.array([f"note {i}" for i in range(n)], dtype=object)}

    def edit(file):
        for name in FLOAT_BOOLEANS:
            replace_column(file, TRIALS, name, file[f"{TRIALS}/{name}"][:].astype(np.float64))
        for name in TEXT_NUMBERS:
            replace_column(file, TRIALS, name, as_text_with_na(file[f"{TRIALS}/{name}"][:]))
        change_frame = file[f"{TRIALS}/change_frame"][:].astype(np.float64)
        change_frame[change_frame == -99] = np.nan
        replace_column(file, TRIALS, "change_frame", change_frame)
        add_column(file, TRIALS, "response_latency", as_text_with_na(latency))
        add_column(file, TRIALS, "trial_note", extras["trial_note"], description="A free-text note")

    path = edited_copy(vbn_session, tmp_path_factory.mktemp("quirky"), edit)
    with h5py.File(path, "r") as file:  # the copy really stores what is claimed
        assert file[f"{TRIALS}/go"].dtype == np.float64
        assert h5py.check_string_dtype(file[f"{TRIALS}/response_time"].dtype) is not None
        assert np.isnan(file[f"{TRIALS}/change_frame"][:]).any()
    return path, extras


@pytest.fixture
def quirky_trials(quirky, roundtrip):
    return convert(roundtrip, quirky[0])


def test_booleans_stored_as_float_become_bool(quirky_trials, vbn_raw):
    for name in FLOAT_BOOLEANS:
        values = np.asarray(quirky_trials[name].data[:])
        assert values.dtype == bool, name
        np.testing.assert_array_equal(values, raw_column(vbn_raw, name).astype(bool), err_msg=name)
    assert list(quirky_trials["outcome"][:]).count("hit") == int(raw_column(vbn_raw, "hit").sum())


def test_na_text_in_numeric_columns_becomes_nan(quirky_trials, vbn_raw):
    for name in TEXT_NUMBERS:
        expected = raw_column(vbn_raw, name)
        assert np.isnan(expected).any()
        np.testing.assert_array_equal(quirky_trials[name][:], expected, err_msg=name)
        assert quirky_trials[name].data.dtype == np.float64
    np.testing.assert_array_equal(quirky_trials["is_rewarded"][:], np.isfinite(raw_column(vbn_raw, "reward_time")))


def test_change_frame_stored_as_float_with_nan_becomes_the_sentinel(quirky_trials, vbn_raw):
    change_frame = np.asarray(quirky_trials["change_frame"].data[:])
    assert change_frame.dtype.kind == "i"
    np.testing.assert_array_equal(change_frame, raw_column(vbn_raw, "change_frame"))
    assert np.isnan(quirky_trials["stimulus_onset_time"][:][change_frame == -99]).all()


def test_other_allen_columns_are_kept_under_their_names(quirky_trials, quirky):
    extras = quirky[1]
    assert list(quirky_trials.colnames)[-2:] == ["response_latency", "trial_note"]
    expected = np.array([float(repr(float(x))) for x in extras["response_latency"]])
    np.testing.assert_array_equal(quirky_trials["response_latency"][:], expected)
    assert quirky_trials["response_latency"].data.dtype == np.float64
    assert list(quirky_trials["trial_note"][:]) == list(extras["trial_note"])
    assert "A free-text note" in quirky_trials["trial_note"].description


# --- inconsistent sources -----------------------------------------------------------------------

def _new_file():
    from datetime import datetime, timezone

    from pynwb import NWBFile

    return NWBFile(session_description="test", identifier="test",
                   session_start_time=datetime(2021, 5, 10, tzinfo=timezone.utc))


def trials_with(monkeypatch, vbn_source, **changes) -> None:
    """Make the trials interface read the session's trials with ``changes`` applied."""
    table = edited_table(vbn_source.require(TRIALS), **changes)
    use_source(monkeypatch, AllenTrialsInterface, EditedSource(vbn_source, {TRIALS: table}))


def test_boolean_with_a_missing_value_is_an_error(monkeypatch, vbn_source, vbn_raw):
    hit = raw_column(vbn_raw, "hit").astype(np.float64)
    hit[3] = np.nan
    trials_with(monkeypatch, vbn_source, hit=hit)
    with pytest.raises(SourceFileError, match=r"'hit' has no value in trial 3") as error:
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())
    assert error.value.path == vbn_source.path


def test_change_frame_pointing_at_no_presentation(monkeypatch, vbn_source, vbn_raw):
    change_frame = raw_column(vbn_raw, "change_frame")
    row = int(np.flatnonzero(change_frame != -99)[0])
    shifted = change_frame.copy()
    shifted[row] += 1
    trials_with(monkeypatch, vbn_source, change_frame=shifted)
    with pytest.raises(SourceFileError, match=rf"change_frame {shifted[row]} of trial {row} is the "
                       "start_frame of no active presentation") as error:
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())
    assert str(vbn_source.path) in str(error.value)


def test_not_aborted_without_change_frame_is_an_error(monkeypatch, vbn_source, vbn_raw):
    change_frame = raw_column(vbn_raw, "change_frame")
    row = int(np.flatnonzero(raw_column(vbn_raw, "catch").astype(bool))[0])
    change_frame[row] = -99
    trials_with(monkeypatch, vbn_source, change_frame=change_frame)
    with pytest.raises(SourceFileError, match=rf"trial {row} is not aborted but has no change frame"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_change_without_change_frame_is_an_error(monkeypatch, vbn_source, vbn_raw):
    change_frame = raw_column(vbn_raw, "change_frame")
    row = int(np.flatnonzero(raw_column(vbn_raw, "hit").astype(bool))[0])
    change_frame[row] = -99
    trials_with(monkeypatch, vbn_source, change_frame=change_frame)
    with pytest.raises(SourceFileError, match=rf"trial {row} has is_change true but no change frame"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_reward_time_without_reward_is_an_error(monkeypatch, vbn_source, vbn_raw):
    row = int(np.flatnonzero(raw_column(vbn_raw, "miss").astype(bool))[0])
    reward_time = raw_column(vbn_raw, "reward_time")
    reward_time[row] = raw_column(vbn_raw, "start_time")[row] + 1.0
    trials_with(monkeypatch, vbn_source, reward_time=reward_time)
    with pytest.raises(SourceFileError, match=rf"trial {row} has reward_time .* but hit False"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_two_outcomes_at_once_is_an_error(monkeypatch, vbn_source, vbn_raw):
    row = int(np.flatnonzero(raw_column(vbn_raw, "miss").astype(bool))[0])
    correct_reject = raw_column(vbn_raw, "correct_reject").astype(bool)
    correct_reject[row] = True
    trials_with(monkeypatch, vbn_source, correct_reject=correct_reject)
    with pytest.raises(SourceFileError, match=rf"trial {row} has several outcomes true"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_no_outcome_is_an_error(monkeypatch, vbn_source, vbn_raw):
    row = int(np.flatnonzero(raw_column(vbn_raw, "miss").astype(bool))[0])
    miss = raw_column(vbn_raw, "miss").astype(bool)
    miss[row] = False
    trials_with(monkeypatch, vbn_source, miss=miss)
    with pytest.raises(SourceFileError, match=rf"trial {row} has none of hit, miss"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_trials_out_of_order_is_an_error(monkeypatch, vbn_source, vbn_raw):
    start = raw_column(vbn_raw, "start_time")
    start[[4, 5]] = start[[5, 4]]
    trials_with(monkeypatch, vbn_source, start_time=start)
    with pytest.raises(SourceFileError, match="trial 5 starts before trial 4"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_broken_lick_index_is_an_error(monkeypatch, vbn_source, vbn_raw):
    flat = vbn_raw[f"{TRIALS}/lick_times"][:]
    ends = vbn_raw[f"{TRIALS}/lick_times_index"][:]
    trials_with(monkeypatch, vbn_source, lick_times=(flat[:-2], ends))
    with pytest.raises(SourceFileError, match="ragged column 'lick_times'"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_missing_column_is_an_error(monkeypatch, vbn_source):
    trials_with(monkeypatch, vbn_source, reward_volume=None)
    with pytest.raises(SourceFileError, match=r"intervals/trials lacks the columns \['reward_volume'\]"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_missing_natural_image_presentations_is_an_error(monkeypatch, vbn_source, vbn_raw):
    images = natural_images_table(vbn_raw)
    use_source(monkeypatch, AllenTrialsInterface, EditedSource(vbn_source, {images: None}))
    with pytest.raises(SourceFileError, match="no Natural_Images_\\*_presentations table"):
        AllenTrialsInterface(vbn_source.path).add_to_nwbfile(_new_file())


def test_is_available(monkeypatch, vbn_source):
    assert AllenTrialsInterface.is_available(vbn_source)
    assert not AllenTrialsInterface.is_available(EditedSource(vbn_source, {TRIALS: None}))


def test_written_trials_conform(vbn_session, tmp_path):
    """Every trials column conforms to the representation, the auto_rewarded outcome included (0.4.0)."""
    from pynwb import NWBHDF5IO

    from nwbridge.provenance import ALLEN_DATASET, provenance_record
    from nwbridge.schemas.checker import check_file

    nwbfile = _new_file()
    nwbfile.source_script = provenance_record(ALLEN_DATASET, native_ids={}, data_revision=None)
    nwbfile.source_script_file_name = "nwbridge"
    AllenTrialsInterface(vbn_session.session_file).add_to_nwbfile(nwbfile)
    path = tmp_path / "sub-1_ses-1_desc-processed_behavior+ecephys.nwb"
    with NWBHDF5IO(path, "w") as io:
        io.write(nwbfile)
    report = check_file(path)
    assert report.source == "allen"
    assert report.result("intervals/trials").status == "pass", report.result("intervals/trials").messages
    with NWBHDF5IO(path, "r") as io:
        assert "auto_rewarded" in set(io.read().trials["outcome"][:])
