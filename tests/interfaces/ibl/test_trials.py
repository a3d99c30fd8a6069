"""Trials: every ALF attribute round-trips; shared columns are derived correctly; both layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl import IblTrialsInterface
from nwbridge.interfaces.ibl.alf import AlfSession
from nwbridge.interfaces.ibl.trials import trial_column_name


def assert_column_equal(trials, column, expected):
    actual = trials[column].data[:]
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, column
    if expected.dtype.kind == "f":
        np.testing.assert_array_equal(actual, expected, err_msg=column)  # NaN == NaN here, bit for bit otherwise
    else:
        assert (actual == expected).all(), column


def test_generated_session_every_attribute_round_trips(ibl_session, roundtrip):
    nwbfile = roundtrip(IblTrialsInterface(session_path=ibl_session))
    session = AlfSession(ibl_session)
    attributes, _ = session.load_object("trials")
    trials = nwbfile.trials
    np.testing.assert_array_equal(trials["start_time"].data[:], attributes["intervals"][:, 0])
    np.testing.assert_array_equal(trials["stop_time"].data[:], attributes["intervals"][:, 1])
    np.testing.assert_array_equal(trials["bpod_start_time"].data[:], attributes["intervals_bpod"][:, 0])
    for attribute, values in attributes.items():
        if attribute.startswith("intervals"):
            continue
        assert_column_equal(trials, trial_column_name(attribute), values)
    assert len(trials) == len(attributes["intervals"])


def test_shared_columns_are_derived_from_feedback_and_choice(ibl_session, roundtrip):
    trials = roundtrip(IblTrialsInterface(session_path=ibl_session)).trials.to_dataframe()
    rewarded = trials["feedback_type"] == 1
    assert (trials["is_rewarded"] == rewarded).all()
    np.testing.assert_array_equal(trials.loc[rewarded, "reward_time"], trials.loc[rewarded, "feedback_time"])
    assert trials.loc[~rewarded, "reward_time"].isna().all()
    expected = np.where(trials["choice"] == 0, "no_go", np.where(rewarded, "correct", "incorrect"))
    assert (trials["outcome"].to_numpy() == expected).all()
    assert set(trials["outcome"]) <= {"correct", "incorrect", "no_go"}
    # NaN on exactly the side without the stimulus survives the round trip.
    assert (trials["contrast_left"].isna() ^ trials["contrast_right"].isna()).all()
    # Shared columns come first, in the representation's order.
    assert list(trials.columns[:8]) == ["start_time", "stop_time", "stimulus_onset_time", "response_time",
                                        "reward_time", "reward_volume_ul", "is_rewarded", "outcome"]


def test_legacy_layout_gives_the_same_table(tmp_path, roundtrip):
    from nwbridge.testing import make_ibl_session

    table = make_ibl_session(tmp_path / "a", n_trials=30, duration_s=600, seed=3, passive=False, cameras=())
    legacy = make_ibl_session(tmp_path / "b", n_trials=30, duration_s=600, seed=3, passive=False, cameras=(),
                              legacy_trials=True)
    assert not list(legacy.rglob("*trials.table*"))
    first = roundtrip(IblTrialsInterface(session_path=table)).trials.to_dataframe()
    second = roundtrip(IblTrialsInterface(session_path=legacy)).trials.to_dataframe()
    pd.testing.assert_frame_equal(first[sorted(first.columns)], second[sorted(second.columns)])


def test_real_ibl_trials(test_data, empty_session, roundtrip):
    """Real trials of one IBL session (ibllib's brainbox fixture), written as a legacy ALF layout."""
    real = pd.read_csv(test_data / "ibl" / "brainbox" / "trials_df_test.csv")
    alf = empty_session / "alf"
    for attribute in ("stimOn_times", "feedback_times", "goCue_times", "probabilityLeft", "contrastLeft",
                      "contrastRight", "feedbackType", "choice"):
        np.save(alf / f"_ibl_trials.{attribute}.npy", real[attribute].to_numpy())
    # The fixture has no intervals; these bracket each trial's real events (test scaffolding only).
    intervals = np.column_stack([real["goCue_times"].to_numpy() - 0.5, real["feedback_times"].to_numpy() + 1.0])
    np.save(alf / "_ibl_trials.intervals.npy", intervals)
    np.save(alf / "_ibl_trials.rewardVolume.npy", np.where(real["feedbackType"] == 1, 1.5, 0.0))

    trials = roundtrip(IblTrialsInterface(session_path=empty_session)).trials.to_dataframe()
    np.testing.assert_array_equal(trials["stimulus_onset_time"], real["stimOn_times"])
    np.testing.assert_array_equal(trials["go_cue_time"], real["goCue_times"])
    np.testing.assert_array_equal(trials["contrast_left"], real["contrastLeft"])
    np.testing.assert_array_equal(trials["contrast_right"], real["contrastRight"])
    assert trials["contrast_left"].isna().sum() == real["contrastLeft"].isna().sum() == 213
    assert (trials["choice"].to_numpy() == real["choice"].to_numpy()).all()
    # The fixture's own analysis column agrees with the derived outcome.
    assert (trials["is_rewarded"].to_numpy() == (real["correct"] == 1).to_numpy()).all()
    assert (trials["outcome"] == "correct").sum() == (real["correct"] == 1).sum() == 415


def test_newest_revision_wins_unless_one_is_asked_for(tmp_path, roundtrip):
    from nwbridge.testing import make_ibl_session

    session = make_ibl_session(tmp_path, n_trials=20, duration_s=400, seed=1, passive=False, cameras=(),
                               revision="2024-05-06")
    plain = pd.read_parquet(session / "alf" / "_ibl_trials.table.pqt")
    revised = pd.read_parquet(session / "alf" / "#2024-05-06#" / "_ibl_trials.table.pqt")
    assert not np.array_equal(plain["stimOn_times"], revised["stimOn_times"])
    newest = roundtrip(IblTrialsInterface(session_path=session)).trials
    np.testing.assert_array_equal(newest["stimulus_onset_time"].data[:], revised["stimOn_times"])
    older = roundtrip(IblTrialsInterface(session_path=session, revision="2023-01-01")).trials
    np.testing.assert_array_equal(older["stimulus_onset_time"].data[:], plain["stimOn_times"])


def test_attributes_of_different_lengths_name_the_file(empty_session, roundtrip):
    alf = empty_session / "alf"
    np.save(alf / "_ibl_trials.intervals.npy", np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    np.save(alf / "_ibl_trials.choice.npy", np.array([1, -1]))
    with pytest.raises(SourceFileError, match=r"_ibl_trials\.(choice|intervals)\.npy.*has \d trials rows"):
        roundtrip(IblTrialsInterface(session_path=empty_session))


def test_trial_column_names():
    assert trial_column_name("stimOn_times") == "stimulus_onset_time"
    assert trial_column_name("stimOnTrigger_times") == "stimulus_onset_trigger_time"
    assert trial_column_name("itiIn_times") == "iti_in_time"
    assert trial_column_name("included") == "included"
