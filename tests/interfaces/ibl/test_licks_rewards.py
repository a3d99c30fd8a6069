"""Licks and rewards as core EventsTables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl import IblLicksInterface, IblRewardsInterface


def test_licks_round_trip(ibl_session, roundtrip):
    nwbfile = roundtrip(IblLicksInterface(session_path=ibl_session))
    licks = nwbfile.get_events_table("licks")
    np.testing.assert_array_equal(licks["timestamp"].data[:], np.load(ibl_session / "alf" / "licks.times.npy"))
    assert licks["timestamp"].unit == "seconds"


def test_rewards_are_the_feedback_of_correct_trials(ibl_session, roundtrip):
    nwbfile = roundtrip(IblRewardsInterface(session_path=ibl_session))
    rewards = nwbfile.get_events_table("rewards").to_dataframe()
    trials = pd.read_parquet(ibl_session / "alf" / "_ibl_trials.table.pqt")
    correct = trials[trials["feedbackType"] == 1]
    np.testing.assert_array_equal(rewards["timestamp"], correct["feedback_times"])
    np.testing.assert_array_equal(rewards["volume_ul"], correct["rewardVolume"])
    assert len(rewards) > 0 and not rewards["auto_rewarded"].any()


def test_unsorted_licks_name_the_file(empty_session, roundtrip):
    np.save(empty_session / "alf" / "licks.times.npy", np.array([1.0, 2.0, 1.5]))
    with pytest.raises(SourceFileError, match=r"licks\.times\.npy: timestamps are not increasing"):
        roundtrip(IblLicksInterface(session_path=empty_session))


def test_pickled_npy_is_refused(empty_session, roundtrip):
    np.save(empty_session / "alf" / "licks.times.npy", np.array([1.0, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(SourceFileError, match=r"licks\.times\.npy: holds Python objects"):
        roundtrip(IblLicksInterface(session_path=empty_session))
