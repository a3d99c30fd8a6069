"""IBL pose estimation (DeepLabCut and Lightning Pose) as ndx-pose ``PoseEstimation``.

Sources, per camera: ``alf/_ibl_<name>Camera.dlc.pqt`` and ``alf/_ibl_<name>Camera.lightningPose.pqt``,
one row per video frame, columns ``<part>_x``, ``<part>_y``, ``<part>_likelihood`` (pixels), the
Lightning Pose table also ensemble and posterior columns (``<part>_x_ens_median``, ...).

Written to ``processing/behavior``:

* ``pose_<camera>`` (``PoseEstimation``): one ``PoseEstimationSeries`` per keypoint, named after
  the part, data ``(frames, 2)`` x, y in pixels as in the table, ``confidence`` the likelihood.
  When a camera has both tables, ``pose_<camera>`` is Lightning Pose (the newer estimate) and the
  DeepLabCut one is ``pose_<camera>_dlc``.
* ``pose_<camera>[_dlc]_additional_columns`` (``BehavioralTimeSeries``): every other column of the
  table, so nothing is dropped: one ``TimeSeries`` per part and suffix, ``(frames, 2)`` when both
  ``<part>_x_<s>`` and ``<part>_y_<s>`` exist, otherwise one per column, named after it.
* ``Skeletons``: one ``Skeleton`` ``pose_<camera>[_dlc]_skeleton`` per ``PoseEstimation`` (nodes =
  parts; the IBL defines no edges between its keypoints, so there are none).

Timestamps are the camera's frame times trimmed to the table (see :mod:`.camera_times`); one
dataset per ``PoseEstimation``, linked from every other series of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
from neuroconv.tools.nwb_helpers import get_module
from pynwb.base import TimeSeries
from pynwb.behavior import BehavioralTimeSeries

from ...errors import SourceFileError
from .alf import AlfSession, load_table
from .base import IblInterface
from .camera_times import BEHAVIOR_MODULE_DESCRIPTION, CAMERAS, CAMERA_VIEWS, load_camera_times, times_for_rows

__all__ = ["IblPoseInterface", "POSE_TRACKERS", "pose_names", "split_pose_columns"]


@dataclass(frozen=True)
class Tracker:
    """A pose-estimation software whose output the IBL releases."""

    attribute: str  # ALF attribute of ``_ibl_<name>Camera.<attribute>.pqt``
    software: str
    confidence_definition: str


# In order of preference: when a camera has both, the first is ``pose_<camera>``.
POSE_TRACKERS = {
    "lightningPose": Tracker(
        "lightningPose", "Lightning Pose",
        "Likelihood of the keypoint as released by the IBL in the Lightning Pose table (column "
        "'<part>_likelihood'), between 0 and 1, copied unchanged."),
    "dlc": Tracker(
        "dlc", "DeepLabCut",
        "DeepLabCut likelihood of the keypoint (column '<part>_likelihood' of the IBL table): the "
        "network's score-map value at the estimated position, between 0 and 1, copied unchanged. The "
        "IBL's own loaders treat positions with likelihood < 0.9 as missing; the positions here are "
        "not thresholded."),
}

# Suffixes of Lightning Pose columns other than x, y, likelihood: (unit, meaning).
KNOWN_SUFFIXES = {
    "ens_median": ("pixels", "median of the ensemble members' estimates"),
    "ens_var": ("pixels^2", "variance of the ensemble members' estimates"),
    "posterior_var": ("pixels^2", "posterior variance of the ensemble Kalman smoother's estimate"),
}

REFERENCE_FRAME = ("Pixel coordinates in the camera's video frame: (0, 0) is the top-left corner, x increases "
                   "to the right and y downwards.")


def pose_names(session: AlfSession, camera: str) -> dict[str, str]:
    """NWB names of the pose estimations of one camera, by ALF attribute (tracker)."""
    present = [attribute for attribute in POSE_TRACKERS if session.has(f"{camera}Camera", attribute)]
    base = f"pose_{CAMERAS[camera]}"
    # The preferred tracker takes the plain name, so users get the best estimate without choosing.
    return {attribute: base if index == 0 else f"{base}_{attribute}" for index, attribute in enumerate(present)}


@dataclass
class ExtraSeries:
    """A non-keypoint column (or x/y pair of columns) of a pose table."""

    name: str
    columns: tuple[str, ...]
    unit: str
    description: str


def split_pose_columns(columns) -> tuple[list[str], list[ExtraSeries]]:
    """Keypoints and additional series of a pose table.

    Parameters
    ----------
    columns : sequence of str
        The table's columns.

    Returns
    -------
    parts : list of str
        Every ``<part>`` with both ``<part>_x`` and ``<part>_y``, in table order.
    extras : list of ExtraSeries
        Every other column except ``<part>_likelihood``, paired as ``<part>_<s>`` where both
        ``<part>_x_<s>`` and ``<part>_y_<s>`` exist.
    """
    columns = [str(column) for column in columns]
    present = set(columns)
    parts = [column[:-2] for column in columns if column.endswith("_x") and f"{column[:-2]}_y" in present]
    used = {f"{part}_{suffix}" for part in parts for suffix in ("x", "y")}
    used |= {f"{part}_likelihood" for part in parts if f"{part}_likelihood" in present}

    extras: list[ExtraSeries] = []
    for column in columns:
        if column in used:
            continue
        match = re.fullmatch(r"(?P<part>.+)_x_(?P<suffix>.+)", column)
        partner = f"{match['part']}_y_{match['suffix']}" if match else None
        paired_name = f"{match['part']}_{match['suffix']}" if match else None
        # Pair only when the pair's name cannot collide with a column of the table.
        if match and partner in present and partner not in used and paired_name not in present:
            unit, meaning = KNOWN_SUFFIXES.get(match["suffix"], ("unknown", None))
            what = meaning or f"values of columns '{column}' and '{partner}' (meaning not documented by the source)"
            extras.append(ExtraSeries(paired_name, (column, partner), unit,
                                      f"{match['part']}: {what}; columns 0 and 1 are x ('{column}') and "
                                      f"y ('{partner}')."))
            used |= {column, partner}
            continue
        # A lone x or y coordinate statistic still has a known unit; anything else does not.
        lone = re.fullmatch(r".+_[xy]_(?P<suffix>.+)", column)
        unit, meaning = KNOWN_SUFFIXES.get(lone["suffix"] if lone else "", ("unknown", None))
        what = meaning or "meaning and unit not documented by the source"
        extras.append(ExtraSeries(column, (column,), unit, f"Column '{column}' of the table: {what}."))
        used.add(column)
    return parts, extras


class IblPoseInterface(IblInterface):
    """Pose estimation of the IBL cameras (``pose_left_camera``, ...) with every column of the tables."""

    display_name = "IBL pose estimation"

    @classmethod
    def is_available(cls, session: AlfSession) -> bool:
        return any(session.has(f"{camera}Camera", attribute) for camera in CAMERAS for attribute in POSE_TRACKERS)

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        behavior = get_module(nwbfile, "behavior", BEHAVIOR_MODULE_DESCRIPTION)
        if "Skeletons" in behavior.data_interfaces:
            skeletons = behavior.data_interfaces["Skeletons"]
        else:
            skeletons = Skeletons(name="Skeletons")
            behavior.add(skeletons)
        for camera in CAMERAS:
            names = pose_names(self.session, camera)
            if not names:
                continue
            camera_times = load_camera_times(self.session, camera)
            for attribute, name in names.items():
                path = self.session.path(f"{camera}Camera", attribute)
                self._add_pose(nwbfile, behavior, skeletons, name=name, camera=camera, path=path,
                               tracker=POSE_TRACKERS[attribute], camera_times=camera_times)

    def _add_pose(self, nwbfile, behavior, skeletons, *, name: str, camera: str, path: Path, tracker: Tracker,
                  camera_times) -> None:
        table = load_table(path)
        parts, extras = split_pose_columns(table.columns)
        if not parts:
            raise SourceFileError(path, "no keypoint: no pair of columns '<part>_x', '<part>_y'")
        values = {str(column): _numeric_column(table, column, path) for column in table.columns}
        timestamps, note = times_for_rows(camera_times, len(table), data_path=path, what="pose table rows")

        series = []
        for part in parts:
            likelihood = values.get(f"{part}_likelihood")
            series.append(PoseEstimationSeries(
                name=part,
                description=f"Position of keypoint '{part}' estimated by {tracker.software} (columns '{part}_x', "
                            f"'{part}_y' of {path.name}).",
                data=np.column_stack([values[f"{part}_x"], values[f"{part}_y"]]).astype(np.float64, copy=False),
                unit="pixels",
                reference_frame=REFERENCE_FRAME,
                # The first series writes the timestamps; the others link to them.
                timestamps=series[0] if series else timestamps,
                confidence=likelihood,
                confidence_definition=tracker.confidence_definition if likelihood is not None else None,
            ))
        skeleton = Skeleton(name=f"{name}_skeleton", nodes=parts, edges=np.zeros((0, 2), dtype=np.uint8),
                            **({"subject": nwbfile.subject} if nwbfile.subject is not None else {}))
        skeletons.add_skeletons(skeleton)

        description = (f"Keypoints of the IBL {CAMERA_VIEWS[camera]} estimated by {tracker.software} "
                       f"(alf/{path.name}); x, y in pixels of the video frame, confidence = likelihood.")
        if extras:
            description += f" Every other column of the table is in {name}_additional_columns."
        if note:
            description += " " + note
        source_video = nwbfile.acquisition.get(f"video_{CAMERAS[camera]}")
        behavior.add(PoseEstimation(
            name=name,
            pose_estimation_series=series,
            description=description,
            source_software=tracker.software,
            skeleton=skeleton,
            # The camera interface, when it ran first, wrote the video these keypoints come from.
            **({"source_video": source_video} if source_video is not None else {}),
        ))

        if extras:
            behavior.add(BehavioralTimeSeries(
                name=f"{name}_additional_columns",
                time_series=[
                    TimeSeries(
                        name=extra.name,
                        description=f"{tracker.software}, {path.name}: {extra.description}",
                        data=(values[extra.columns[0]] if len(extra.columns) == 1
                              else np.column_stack([values[column] for column in extra.columns])),
                        unit=extra.unit,
                        timestamps=series[0],
                    )
                    for extra in extras
                ],
            ))


def _numeric_column(table: pd.DataFrame, column, path: Path) -> np.ndarray:
    """A table column as a numeric array (NaN kept), refusing text the NWB series cannot hold."""
    values = table[column].to_numpy()
    if values.dtype.kind not in "biuf":
        raise SourceFileError(path, f"column '{column}' is not numeric (dtype {values.dtype}); pose tables hold "
                              "numbers only")
    return values
