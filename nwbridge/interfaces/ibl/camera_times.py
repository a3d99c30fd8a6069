"""What the IBL video-derived interfaces share: camera names and frame times.

Cameras, pose, pupil and motion energy all timestamp their rows with the frame times of one
camera (``_ibl_<name>Camera.times.npy``). The IBL extracts those times from the sync signal,
independently of the video pipelines, and the two can disagree by a few frames: a table
computed from the video may have fewer rows than the camera has frame times. One rule is
applied here for every interface, so that pose, pupil and motion energy of one camera stay
aligned with each other: the IBL's own rule (``brainbox.io.one.SessionLoader._check_video_timestamps``),
which keeps the LAST frame times, because in sessions recorded before the GPIO frame counter the
first frames were sometimes not recorded. A :class:`FrameCountWarning` plus a sentence in the NWB
description give both counts and say which times were used. More rows than frame times cannot be
explained that way and is refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import SourceFileError
from .alf import AlfSession, load_npy, require_increasing

__all__ = [
    "BEHAVIOR_MODULE_DESCRIPTION",
    "CAMERAS",
    "CAMERA_VIEWS",
    "CameraTimes",
    "FrameCountWarning",
    "TRIM_KEEPS",
    "load_camera_times",
    "times_for_rows",
]

# ALF camera label -> NWB camera name (REPRESENTATION.md), in the order objects are written.
CAMERAS = {"left": "left_camera", "right": "right_camera", "body": "body_camera"}

# What each camera films and its nominal frame rate, for descriptions.
CAMERA_VIEWS = {
    "left": "left camera (side view of the face, nominally 60 Hz)",
    "right": "right camera (side view of the face, nominally 150 Hz)",
    "body": "body camera (view of the body, nominally 30 Hz)",
}

# Which frame times a table with fewer rows than frames keeps: "last", as the IBL does (see above).
TRIM_KEEPS = "last"

# The same text as the other behavioural interfaces, so whichever creates the module first agrees.
BEHAVIOR_MODULE_DESCRIPTION = "Behavioural data: wheel, licks, video-derived measures."


class FrameCountWarning(UserWarning):
    """A per-frame dataset has fewer rows than its camera has frame times; the times were trimmed."""


@dataclass(frozen=True)
class CameraTimes:
    """The frame times of one camera.

    Parameters
    ----------
    camera : str
        ALF label: ``left``, ``right`` or ``body``.
    times : numpy.ndarray
        Seconds on the session clock, float64.
    path : Path
        The ``_ibl_<camera>Camera.times.npy`` file they come from.
    """

    camera: str
    times: np.ndarray
    path: Path

    @property
    def name(self) -> str:
        """The camera's NWB name (``left_camera``)."""
        return CAMERAS[self.camera]


def load_camera_times(session: AlfSession, camera: str, *, required: bool = True) -> CameraTimes | None:
    """Load and check the frame times of one camera.

    Parameters
    ----------
    session : AlfSession
    camera : str
        ALF label (``left``, ``right``, ``body``).
    required : bool, default: True
        Raise :class:`~nwbridge.errors.MissingSourceFileError` when the file is absent;
        otherwise return ``None``.

    Returns
    -------
    CameraTimes or None
    """
    path = session.path(f"{camera}Camera", "times", extension="npy", required=required)
    if path is None:
        return None
    times = load_npy(path)
    require_increasing(times, path)
    # Older sessions store float32; float64 holds every float32 value exactly.
    return CameraTimes(camera=camera, times=np.asarray(times, dtype=np.float64), path=path)


def times_for_rows(camera_times: CameraTimes, n_rows: int, *, data_path: Path, what: str,
                   keep: str | None = None) -> tuple[np.ndarray, str]:
    """Frame times for a per-frame dataset of ``n_rows`` rows.

    Parameters
    ----------
    camera_times : CameraTimes
        The camera's frame times.
    n_rows : int
        Rows of the dataset.
    data_path : Path
        The dataset's file, named in the error and the warning.
    what : str
        What the rows are, for the messages (e.g. "pose table rows").
    keep : {"first", "last"}, optional
        Which frame times to keep when there are more times than rows; default :data:`TRIM_KEEPS`.

    Returns
    -------
    times : numpy.ndarray
        ``n_rows`` frame times (the array itself when the counts agree).
    note : str
        Empty when the counts agree; otherwise a sentence for the NWB description that gives
        both counts and says which times were used.

    Raises
    ------
    SourceFileError
        When the dataset has more rows than the camera has frame times.
    """
    keep = TRIM_KEEPS if keep is None else keep
    if keep not in ("first", "last"):
        raise ValueError(f"keep must be 'first' or 'last', not {keep!r}")
    n_times = len(camera_times.times)
    if n_rows == n_times:
        return camera_times.times, ""
    if n_rows > n_times:
        raise SourceFileError(
            data_path,
            f"has {n_rows} {what} but {camera_times.path.name} has only {n_times} frame times; "
            "rows without a frame time cannot be placed on the session clock",
        )
    dropped = n_times - n_rows
    note = (f"The {camera_times.name} has {n_times} frame times ({camera_times.path.name}) but "
            f"{data_path.name} has {n_rows} {what}: the rows were taken to be the {keep} {n_rows} "
            f"frames, and the {'last' if keep == 'first' else 'first'} {dropped} "
            f"{'frame time was' if dropped == 1 else 'frame times were'} not used.")
    # Warn as well as describe: a user converting many sessions should learn which ones were trimmed.
    warnings.warn(f"{data_path}: {note}", FrameCountWarning, stacklevel=3)
    times = camera_times.times[:n_rows] if keep == "first" else camera_times.times[dropped:]
    return times, note
