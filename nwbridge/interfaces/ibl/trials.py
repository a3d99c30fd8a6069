"""IBL trials (``_ibl_trials.*``) as the NWB trials table.

Both layouts are read: the table (``_ibl_trials.table.pqt`` with loose ``.npy`` attributes
beside it) and the legacy one (every attribute its own ``.npy``). Every ALF attribute becomes
a column; the shared columns of the representation are derived from them.
"""

from __future__ import annotations

import numpy as np
from pynwb.epoch import TimeIntervals

from ...errors import MissingSourceFileError, SourceFileError
from ..tables import Column, build_table
from .alf import column_name, require_increasing
from .base import IblInterface

__all__ = ["IblTrialsInterface", "trial_column_name"]

# ALF attribute -> (NWB column, description). Attributes not listed keep their ALF name in snake_case.
KNOWN_ATTRIBUTES = {
    "stimOn_times": ("stimulus_onset_time", "Time of visual stimulus onset, detected by the photodiode (s)."),
    "response_times": ("response_time", "Time the task registered the response: the wheel reached the "
                       "threshold, or the 60 s no-go timeout elapsed (s)."),
    "feedback_times": ("feedback_time", "Time of feedback: valve opening (correct) or noise burst (incorrect "
                       "or no-go) (s)."),
    "goCue_times": ("go_cue_time", "Time of go-cue tone onset, detected on the sync (s)."),
    "goCueTrigger_times": ("go_cue_trigger_time", "Time the task software triggered the go cue (s)."),
    "firstMovement_times": ("first_movement_time", "Time of the first wheel movement after the go cue, "
                            "detected from the wheel trace (s); NaN if none was detected."),
    "stimOff_times": ("stimulus_offset_time", "Time the visual stimulus disappeared (s)."),
    "stimOnTrigger_times": ("stimulus_onset_trigger_time", "Time the task software triggered the stimulus (s)."),
    "stimOffTrigger_times": ("stimulus_offset_trigger_time", "Time the task software triggered the stimulus "
                             "offset (s)."),
    "stimFreezeTrigger_times": ("stimulus_freeze_trigger_time", "Time the task software froze the stimulus "
                                "at the response (s)."),
    "stimFreeze_times": ("stimulus_freeze_time", "Time the stimulus froze at the response (s)."),
    "contrastLeft": ("contrast_left", "Contrast of the stimulus on the left (0 to 1); NaN when the stimulus "
                     "was on the right."),
    "contrastRight": ("contrast_right", "Contrast of the stimulus on the right (0 to 1); NaN when the stimulus "
                      "was on the left."),
    "probabilityLeft": ("probability_left", "Prior probability that the stimulus appears on the left in this "
                        "block (0.5, 0.2 or 0.8)."),
    "choice": ("choice", "Wheel turn: -1 counter-clockwise, +1 clockwise, 0 no-go (no response within 60 s)."),
    "feedbackType": ("feedback_type", "+1 correct (water reward), -1 incorrect or no-go (noise burst and "
                     "time-out)."),
    "rewardVolume": ("reward_volume_ul", "Volume of water reward delivered (µL); 0 when unrewarded."),
    "quiescencePeriod": ("quiescence_period", "Time the wheel had to stay still before the stimulus appeared (s)."),
}
SHARED_DESCRIPTIONS = {
    "start_time": "Start of the trial (s, session clock).",
    "stop_time": "End of the trial (s, session clock).",
    "reward_time": "Time of reward delivery (the feedback time of correct trials); NaN when unrewarded (s).",
    "is_rewarded": "Whether the trial was rewarded (feedback_type == 1).",
    "outcome": "Trial outcome: 'correct' (feedback_type +1), 'incorrect' (feedback_type -1 with a choice), "
               "'no_go' (choice 0).",
}
# Shared columns first, in the order of the representation, then the IBL-specific ones.
COLUMN_ORDER = ["start_time", "stop_time", "stimulus_onset_time", "response_time", "reward_time",
                "reward_volume_ul", "is_rewarded", "outcome", "go_cue_time", "first_movement_time",
                "feedback_time", "stimulus_offset_time", "contrast_left", "contrast_right",
                "probability_left", "choice", "feedback_type", "quiescence_period"]


def trial_column_name(attribute: str) -> str:
    """NWB column for an ALF trials attribute (see :func:`~nwbridge.interfaces.ibl.alf.column_name`)."""
    if attribute in KNOWN_ATTRIBUTES:
        return KNOWN_ATTRIBUTES[attribute][0]
    return column_name(attribute)


class IblTrialsInterface(IblInterface):
    """The trials of the IBL task (``alf/_ibl_trials.*``)."""

    display_name = "IBL trials"

    @classmethod
    def is_available(cls, session) -> bool:
        return session.has("trials")

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        attributes, files = self.session.load_object("trials")
        if "intervals" not in attributes:
            expected = self.session.session_path / "alf" / "_ibl_trials.table.pqt"
            raise MissingSourceFileError(expected, "no trial intervals: neither the trials table nor "
                                         "_ibl_trials.intervals.npy is in the session")
        intervals = np.asarray(attributes.pop("intervals"), dtype=np.float64)
        if intervals.ndim != 2 or intervals.shape[1] != 2:
            raise SourceFileError(files["intervals"], f"trial intervals must be n x 2, found {intervals.shape}")
        require_increasing(intervals[:, 0], files["intervals"])
        if np.any(intervals[:, 1] < intervals[:, 0]):
            first = int(np.flatnonzero(intervals[:, 1] < intervals[:, 0])[0])
            raise SourceFileError(files["intervals"], f"trial {first} stops before it starts")

        columns = {
            "start_time": Column("start_time", SHARED_DESCRIPTIONS["start_time"], intervals[:, 0]),
            "stop_time": Column("stop_time", SHARED_DESCRIPTIONS["stop_time"], intervals[:, 1]),
        }
        for attribute, values in attributes.items():
            if attribute == "intervals_bpod":
                values = np.asarray(values)
                columns["bpod_start_time"] = Column("bpod_start_time", "Trial start on the Bpod clock (s), not "
                                                    "the session clock (ALF intervals_bpod).", values[:, 0])
                columns["bpod_stop_time"] = Column("bpod_stop_time", "Trial end on the Bpod clock (s), not the "
                                                   "session clock (ALF intervals_bpod).", values[:, 1])
                continue
            name = trial_column_name(attribute)
            description = KNOWN_ATTRIBUTES.get(attribute, (None, f"IBL trials attribute '{attribute}' (ALF), as "
                                               "extracted."))[1]
            columns[name] = Column(name, description, _plain_array(values))

        feedback = columns.get("feedback_type")
        if feedback is not None and "feedback_time" in columns:
            rewarded = np.asarray(feedback.data) == 1
            columns["is_rewarded"] = Column("is_rewarded", SHARED_DESCRIPTIONS["is_rewarded"], rewarded)
            columns["reward_time"] = Column("reward_time", SHARED_DESCRIPTIONS["reward_time"],
                                            np.where(rewarded, columns["feedback_time"].data, np.nan))
            if "choice" in columns:
                choice = np.asarray(columns["choice"].data)
                outcome = np.where(choice == 0, "no_go", np.where(rewarded, "correct", "incorrect"))
                columns["outcome"] = Column("outcome", SHARED_DESCRIPTIONS["outcome"], outcome.astype(object))

        ordered = [columns.pop(name) for name in COLUMN_ORDER if name in columns] + list(columns.values())
        nwbfile.trials = build_table(
            TimeIntervals,
            name="trials",
            description="Trials of the IBL visual decision task (two-alternative forced choice with a wheel).",
            columns=ordered,
        )


def _plain_array(values) -> np.ndarray:
    """A column's values as a numpy array HDF5 can store (text as Python strings)."""
    values = np.asarray(values)
    if values.dtype.kind in ("U", "O", "T"):
        return values.astype(str).astype(object)
    return values
