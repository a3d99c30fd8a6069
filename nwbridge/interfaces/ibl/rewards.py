"""Water rewards of the IBL task, from the trials' feedback."""

from __future__ import annotations

import warnings

import numpy as np
from pynwb.event import EventsTable, TimestampVectorData

from ...errors import MissingSourceFileError
from ..tables import Column, build_table
from .base import IblInterface

__all__ = ["IblRewardsInterface"]


class IblRewardsInterface(IblInterface):
    """Rewards as the core ``EventsTable`` ``rewards`` (in ``/events``).

    The IBL has no reward dataset of its own: a reward is the valve opening at the feedback
    time of a correct trial (``feedbackType == 1``), of volume ``rewardVolume`` (µL).
    """

    display_name = "IBL rewards"

    @classmethod
    def is_available(cls, session) -> bool:
        return session.has("trials")

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        attributes, files = self.session.load_object("trials")
        for attribute in ("feedbackType", "feedback_times", "rewardVolume"):
            if attribute not in attributes:
                expected = self.session.session_path / "alf" / f"_ibl_trials.{attribute}.npy"
                raise MissingSourceFileError(expected, f"trials attribute {attribute!r}, needed for rewards, not found")
        rewarded = np.asarray(attributes["feedbackType"]) == 1
        times = np.asarray(attributes["feedback_times"], dtype=np.float64)[rewarded]
        volumes = np.asarray(attributes["rewardVolume"], dtype=np.float64)[rewarded]
        timed = ~np.isnan(times)
        if not timed.all():
            # An event table is ordered by time: a reward without a time cannot be placed in it.
            warnings.warn(f"{files['feedback_times']}: {int((~timed).sum())} rewarded trials have no feedback "
                          "time; they are in the trials table but not in the rewards events", stacklevel=2)
        order = np.argsort(times[timed], kind="stable")
        nwbfile.add_events_table(build_table(
            EventsTable,
            name="rewards",
            description="Water rewards: valve openings at the feedback time of correct trials.",
            source_description="IBL trials: feedback_times where feedbackType == 1, volume rewardVolume",
            columns=[
                Column("timestamp", "Time the reward valve opened (s).", times[timed][order],
                       vector_class=TimestampVectorData),
                Column("volume_ul", "Volume of water delivered (µL).", volumes[timed][order]),
                Column("auto_rewarded", "Whether the reward was given without a correct response; these "
                       "rewards are the feedback of correct trials, so always False.", np.zeros(int(timed.sum()), dtype=bool)),
            ],
        ))
