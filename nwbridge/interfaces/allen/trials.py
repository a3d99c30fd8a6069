"""Allen change-detection trials (``intervals/trials`` of the session file) as the NWB trials table.

The shared columns of the representation come first, derived from the Allen ones:

- ``stimulus_onset_time`` is the onset of the image change as displayed: the ``start_time`` of
  the active natural-image presentation whose ``start_frame`` is the trial's ``change_frame``
  (the sham change of catch trials too). The trials' own ``change_time_no_display_delay`` is the
  frame time before the monitor's ~20 ms display delay, so it is kept as it is and not used.
- ``reward_volume_ul`` is the Allen ``reward_volume``, in mL, times 1000.
- ``is_rewarded`` is whether a reward time exists (a hit or an auto-reward), ``outcome`` the one
  of ``hit``, ``miss``, ``false_alarm``, ``correct_reject``, ``aborted`` that is true.

Then the change-detection columns, then every other Allen column under its Allen name.
"""

from __future__ import annotations

import numpy as np
from pynwb.epoch import TimeIntervals

from ...errors import SourceFileError
from ..tables import Column, build_table
from .base import AllenInterface
from .source import AllenFile
from .stimuli import (NO_VALUE, SourceColumn, bool_column, extra_column, float_column, int_column,
                      presentation_tables, read_columns, read_presentations, text_column)

__all__ = ["AllenTrialsInterface", "OUTCOMES", "stimulus_onset_times"]

LOCATION = "intervals/trials"
# The Allen outcome columns, in the order of the representation's `outcome` values.
OUTCOMES = ("hit", "miss", "false_alarm", "correct_reject", "aborted")
# Auto-rewarded trials (the free rewards opening a session) are none of the five outcomes.
AUTO_REWARDED = "auto_rewarded"

SHARED_DESCRIPTIONS = {
    "start_time": "Start of the trial (s, session clock).",
    "stop_time": "End of the trial (s, session clock).",
    "stimulus_onset_time": (
        "Onset of the image change as displayed, monitor delay included: the start_time of the active "
        "natural_image_presentations row whose start_frame is the trial's change_frame. For catch trials, the "
        "sham change (the moment a change would have happened). NaN for aborted trials (s, session clock)."),
    "response_time": "Time the task registered the response (the first lick after the change); NaN when none "
                     "(s, session clock).",
    "reward_time": "Time of reward delivery; NaN when unrewarded (s, session clock).",
    "reward_volume_ul": "Volume of water delivered (µL): the Allen reward_volume (mL) x 1000; 0 when unrewarded.",
    "is_rewarded": "Whether a reward was delivered in the trial (hit or auto-reward; reward_time is not NaN).",
    "outcome": ("Trial outcome: 'hit', 'miss', 'false_alarm', 'correct_reject' or 'aborted', the Allen outcome "
                "column that is true; 'auto_rewarded' for the free-reward trials, which are none of these "
                "(no unit)."),
}
CHANGE_DETECTION = {
    # Allen column -> (dtype, description), in the representation's order.
    "is_change": ("bool", "Whether the image changed in the trial (bool)."),
    "go": ("bool", "Go trial: an image change, outside the auto-rewarded trials (bool)."),
    "catch": ("bool", "Catch trial: a sham change, the image stays the same (bool)."),
    "initial_image_name": ("text", "Image shown at the start of the trial (no unit)."),
    "change_image_name": ("text", "Image shown after the change (no unit)."),
    "change_frame": ("int", "Stimulus frame of the change (or sham change); -99 where there is none, the source's "
                     "own value, kept since an integer column cannot hold NaN (is_change is false there) "
                     "(frame index)."),
    "change_time_no_display_delay": ("float", "Time of the change frame without the ~20 ms monitor display "
                                     "delay, so it precedes stimulus_onset_time; NaN when there is none "
                                     "(s, session clock)."),
    "lick_times": ("ragged", "Times of the licks in the trial (s, session clock)."),
    "hit": ("bool", "Lick in the response window of a go trial (bool)."),
    "false_alarm": ("bool", "Lick in the response window of a catch trial (bool)."),
    "miss": ("bool", "No lick in the response window of a go trial (bool)."),
    "correct_reject": ("bool", "No lick in the response window of a catch trial (bool)."),
    "aborted": ("bool", "Trial aborted by a lick before the change (bool)."),
    "auto_rewarded": ("bool", "Reward given at the change without a response (free rewards at the start of the "
                      "session) (bool)."),
    "trial_length": ("float", "Duration of the trial (s)."),
}
REQUIRED = ("start_time", "stop_time", "response_time", "reward_time", "reward_volume", "change_frame",
            *OUTCOMES, AUTO_REWARDED, "is_change", "go", "catch", "initial_image_name", "change_image_name",
            "change_time_no_display_delay", "lick_times")


def stimulus_onset_times(source: AllenFile, change_frame: np.ndarray, aborted: np.ndarray) -> np.ndarray:
    """The displayed onset of each trial's (sham) change, from the natural-image presentations.

    Parameters
    ----------
    source : AllenFile
        The session file.
    change_frame : numpy.ndarray of int
        The trials' ``change_frame`` (-99: none).
    aborted : numpy.ndarray of bool
        The trials' ``aborted``: their onset is NaN.

    Returns
    -------
    numpy.ndarray of float
        ``start_time`` of the active natural-image presentation starting at ``change_frame``.
    """
    path = source.path
    wanted = ~aborted
    onset = np.full(len(change_frame), np.nan)
    if not wanted.any():
        return onset
    without = np.flatnonzero(wanted & (change_frame == NO_VALUE))
    if without.size:
        raise SourceFileError(path, f"{LOCATION}: trial {int(without[0])} is not aborted but has no change frame "
                              f"(change_frame -99)")
    names = presentation_tables(source, warn=False).get("natural_image")
    if not names:
        raise SourceFileError(path, "has no Natural_Images_*_presentations table: the trials' change onsets cannot "
                              "be found")
    images = read_presentations(source, "natural_image", names)
    if "start_frame" not in images.columns:
        raise SourceFileError(path, f"{images.location} has no start_frame column: the trials' change onsets "
                              "cannot be found")
    start_frame = int_column(images.columns["start_frame"], path=path, location=images.location)
    active = images.active & ~images.active_missing if images.active is not None else np.ones(len(start_frame), bool)
    usable = active & (start_frame != NO_VALUE)
    frames, times = start_frame[usable], images.start_time[usable]
    order = np.argsort(frames, kind="stable")
    frames, times = frames[order], times[order]
    if np.any(np.diff(frames) == 0):
        duplicate = int(frames[np.flatnonzero(np.diff(frames) == 0)[0]])
        raise SourceFileError(path, f"{images.location}: two active presentations start at frame {duplicate}")
    targets = change_frame[wanted]
    if len(frames):
        position = np.minimum(np.searchsorted(frames, targets), len(frames) - 1)
        found = frames[position] == targets
    else:
        position, found = np.zeros(len(targets), dtype=np.int64), np.zeros(len(targets), dtype=bool)
    if not np.all(found):
        trial = int(np.flatnonzero(wanted)[np.flatnonzero(~found)[0]])
        raise SourceFileError(path, f"{LOCATION}: the change_frame {int(change_frame[trial])} of trial {trial} is the "
                              f"start_frame of no active presentation in {images.location}")
    onset[wanted] = times[position]
    return onset


class AllenTrialsInterface(AllenInterface):
    """The change-detection trials of an Allen VBN session (``intervals/trials``).

    Writes ``intervals/trials``: the shared columns (``start_time``, ``stop_time``,
    ``stimulus_onset_time``, ``response_time``, ``reward_time``, ``reward_volume_ul``,
    ``is_rewarded``, ``outcome``), the change-detection columns (``is_change``, ``go``, ``catch``,
    ``initial_image_name``, ``change_image_name``, ``change_frame``,
    ``change_time_no_display_delay``, ``lick_times``, ``hit``, ``false_alarm``, ``miss``,
    ``correct_reject``, ``aborted``, ``auto_rewarded``, ``trial_length``), then every other Allen
    trials column under its Allen name.
    """

    display_name = "Allen trials"

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return source.object(LOCATION) is not None

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        source = self.source
        path = source.path
        columns, skipped = read_columns(source.require(LOCATION), path=path, location=LOCATION)
        missing = [name for name in REQUIRED if name not in columns]
        if missing:
            raise SourceFileError(path, f"{LOCATION} lacks the columns {missing}")

        start = float_column(columns.pop("start_time"), path=path, location=LOCATION)
        stop = float_column(columns.pop("stop_time"), path=path, location=LOCATION)
        if np.any(np.diff(start) < 0):
            row = int(np.flatnonzero(np.diff(start) < 0)[0]) + 1
            raise SourceFileError(path, f"{LOCATION}: trial {row} starts before trial {row - 1}: trials must be in "
                                  "time order (presentations refer to them by row)")
        if np.any(stop < start):
            raise SourceFileError(path, f"{LOCATION}: trial {int(np.flatnonzero(stop < start)[0])} stops before it "
                                  "starts")
        flags = {name: self._flag(columns[name]) for name in (*OUTCOMES, AUTO_REWARDED, "is_change", "go", "catch")}
        change_frame = int_column(columns["change_frame"], path=path, location=LOCATION)
        contradiction = np.flatnonzero((change_frame == NO_VALUE) & flags["is_change"])
        if contradiction.size:
            raise SourceFileError(path, f"{LOCATION}: trial {int(contradiction[0])} has is_change true but no change "
                                  "frame (change_frame -99)")

        reward_time = float_column(columns.pop("reward_time"), path=path, location=LOCATION)
        is_rewarded = np.isfinite(reward_time)
        earned = flags["hit"] | flags[AUTO_REWARDED]
        disagree = np.flatnonzero(is_rewarded != earned)
        if disagree.size:
            row = int(disagree[0])
            raise SourceFileError(path, f"{LOCATION}: trial {row} has reward_time {reward_time[row]!r} but hit "
                                  f"{bool(flags['hit'][row])} and auto_rewarded {bool(flags[AUTO_REWARDED][row])}: a "
                                  "reward time belongs to exactly the hit and auto-rewarded trials")
        volume_ml = float_column(columns.pop("reward_volume"), path=path, location=LOCATION)
        volume_ul = volume_ml * 1000.0
        # The representation's volume is 0, not missing, when nothing was delivered.
        volume_ul[~is_rewarded & np.isnan(volume_ul)] = 0.0

        out = [
            Column("start_time", SHARED_DESCRIPTIONS["start_time"], start),
            Column("stop_time", SHARED_DESCRIPTIONS["stop_time"], stop),
            Column("stimulus_onset_time", SHARED_DESCRIPTIONS["stimulus_onset_time"],
                   stimulus_onset_times(source, change_frame, flags["aborted"])),
            Column("response_time", SHARED_DESCRIPTIONS["response_time"],
                   float_column(columns.pop("response_time"), path=path, location=LOCATION)),
            Column("reward_time", SHARED_DESCRIPTIONS["reward_time"], reward_time),
            Column("reward_volume_ul", SHARED_DESCRIPTIONS["reward_volume_ul"], volume_ul),
            Column("is_rewarded", SHARED_DESCRIPTIONS["is_rewarded"], is_rewarded),
            Column("outcome", SHARED_DESCRIPTIONS["outcome"], self._outcome(flags)),
        ]
        for name, (dtype, description) in CHANGE_DETECTION.items():
            if name not in columns:
                continue
            column = columns.pop(name)
            if dtype == "bool":
                out.append(Column(name, description, flags[name]))
            elif dtype == "int":
                values = change_frame if name == "change_frame" else int_column(column, path=path, location=LOCATION)
                out.append(Column(name, description, values))
            elif dtype == "float":
                out.append(Column(name, description, float_column(column, path=path, location=LOCATION)))
            elif dtype == "ragged":
                if column.ends is None:
                    raise SourceFileError(path, f"{LOCATION}: column {name!r} should be ragged (one list per trial)")
                out.append(Column(name, description, float_column(SourceColumn(name, column.values), path=path,
                                                                  location=LOCATION), ends=column.ends))
            else:
                out.append(Column(name, description, text_column(column)))
        for column in columns.values():
            out.append(extra_column(column, path=path, location=LOCATION))
        skipped_note = (f" The source's {', '.join(skipped)} column (references into its stimulus frame timestamps) "
                        "is not copied." if skipped else "")
        nwbfile.trials = build_table(
            TimeIntervals,
            name="trials",
            description=("Trials of the Allen visual change-detection task (go/no-go: lick when the flashed natural "
                         "image changes), from intervals/trials of the Allen session file. Shared columns first, then "
                         "the change-detection ones, then other Allen columns under their Allen names." + skipped_note),
            columns=out,
        )

    def _flag(self, column: SourceColumn) -> np.ndarray:
        """A boolean trials column; AllenSDK may store it as float, and a missing value is an error here."""
        values, missing = bool_column(column, path=self.source.path, location=LOCATION)
        if missing.any():
            raise SourceFileError(self.source.path, f"{LOCATION}: column {column.name!r} has no value in trial "
                                  f"{int(np.flatnonzero(missing)[0])}")
        return values

    def _outcome(self, flags: dict[str, np.ndarray]) -> np.ndarray:
        table = np.column_stack([flags[name] for name in OUTCOMES])
        count = table.sum(axis=1)
        auto = flags[AUTO_REWARDED]
        several = np.flatnonzero(count > 1)
        if several.size:
            row = int(several[0])
            raise SourceFileError(self.source.path, f"{LOCATION}: trial {row} has several outcomes true "
                                  f"({[name for name in OUTCOMES if flags[name][row]]})")
        neither = np.flatnonzero((count == 0) & ~auto)
        if neither.size:
            raise SourceFileError(self.source.path, f"{LOCATION}: trial {int(neither[0])} has none of "
                                  f"{', '.join(OUTCOMES)} true and is not auto-rewarded")
        names = np.array(OUTCOMES, dtype=object)[np.argmax(table, axis=1)]
        return np.where(count == 0, AUTO_REWARDED, names).astype(object)
