"""IBL motion energy of a video region (``alf/<name>Camera.ROIMotionEnergy.npy``).

The IBL pipeline (ibllib ``motion_energy``) crops each grey-scale frame to a rectangle (the
whisker pad for the left and right cameras, the body and tail for the body camera), and gives
for every frame the mean absolute difference of pixel intensities (0-255 grey levels) between
that frame and the next; the last frame repeats the previous value. The rectangle is saved as
``alf/<name>ROIMotionEnergy.position.npy``: width, height, and x, y of its top-left corner, in
pixels of the video (x = column, y = row).

Written to ``processing/behavior``: a ``TimeSeries`` ``motion_energy_<camera>`` per camera (unit
"a.u.", float64 as stored, timestamps = the camera's frame times) and one ``DynamicTable``
``motion_energy_roi`` with a row per camera, so the rectangle is machine-readable.
"""

from __future__ import annotations

import numpy as np
from hdmf.common import DynamicTable
from neuroconv.tools.nwb_helpers import get_module
from pynwb.base import TimeSeries

from ...errors import SourceFileError
from ..tables import Column, build_table
from .alf import AlfSession, load_npy
from .base import IblInterface
from .camera_times import BEHAVIOR_MODULE_DESCRIPTION, CAMERA_VIEWS, CAMERAS, load_camera_times, times_for_rows

__all__ = ["IblMotionEnergyInterface"]

REGIONS = {"left": "the whisker pad", "right": "the whisker pad", "body": "the body and tail"}


def _motion_energy_path(session: AlfSession, camera: str):
    return session.path(f"{camera}Camera", "ROIMotionEnergy", extension="npy", required=False)


def _roi_path(session: AlfSession, camera: str):
    return session.path(f"{camera}ROIMotionEnergy", "position", extension="npy", required=False)


class IblMotionEnergyInterface(IblInterface):
    """Video motion energy per camera (``motion_energy_<camera>``) and its regions (``motion_energy_roi``)."""

    display_name = "IBL motion energy"

    @classmethod
    def is_available(cls, session: AlfSession) -> bool:
        return any(session.has(f"{camera}Camera", "ROIMotionEnergy") or session.has(f"{camera}ROIMotionEnergy")
                   for camera in CAMERAS)

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        behavior = get_module(nwbfile, "behavior", BEHAVIOR_MODULE_DESCRIPTION)
        rois = self._rois()
        for camera, name in CAMERAS.items():
            path = _motion_energy_path(self.session, camera)
            if path is None:
                continue
            values = load_npy(path)
            if values.ndim != 1:
                raise SourceFileError(path, f"expected one value per frame (1-D), found shape {values.shape}")
            if values.dtype.kind not in "iuf":
                raise SourceFileError(path, f"expected numbers, found dtype {values.dtype}")
            camera_times = load_camera_times(self.session, camera)
            timestamps, note = times_for_rows(camera_times, len(values), data_path=path, what="motion energy values")
            description = (f"Motion energy of {REGIONS[camera]} in the IBL {CAMERA_VIEWS[camera]} (alf/{path.name}): "
                           "for each frame, the mean absolute difference of grey-scale pixel intensities (0-255) "
                           "between it and the next frame within a rectangle; the last value repeats the one before. ")
            if camera in rois:
                width, height, x, y = rois[camera][1]
                description += (f"Rectangle: {width:g} x {height:g} pixels with its top-left corner at "
                                f"x={x:g}, y={y:g} (row '{name}' of motion_energy_roi). ")
            series = TimeSeries(name=f"motion_energy_{name}", description=(description + note).strip(),
                                # float32 sources are widened losslessly; float64 ones are written as they are.
                                data=np.asarray(values, dtype=np.float64), unit="a.u.", timestamps=timestamps)
            behavior.add(series)
        if rois:
            cameras = list(rois)
            positions = np.stack([rois[camera][1] for camera in cameras])
            sources = ", ".join(f"{CAMERAS[camera]}: alf/{rois[camera][0].name}" for camera in cameras)
            behavior.add(build_table(
                DynamicTable,
                name="motion_energy_roi",
                description=("Rectangle of each camera's video in which the IBL computed motion_energy_<camera>, in "
                             f"pixels of that camera's video ({sources}; stored as width, height, x, y)."),
                columns=[
                    Column("camera", "Camera (NWB name); its motion energy is motion_energy_<camera>.",
                           np.array([CAMERAS[camera] for camera in cameras], dtype=object)),
                    Column("width", "Width of the rectangle (pixels).", positions[:, 0]),
                    Column("height", "Height of the rectangle (pixels).", positions[:, 1]),
                    Column("x", "Column of the rectangle's top-left corner (pixels from the left edge).",
                           positions[:, 2]),
                    Column("y", "Row of the rectangle's top-left corner (pixels from the top edge).", positions[:, 3]),
                ],
            ))

    def _rois(self) -> dict:
        """Camera -> (file, [w, h, x, y]) for every camera with a motion-energy rectangle."""
        rois = {}
        for camera in CAMERAS:
            path = _roi_path(self.session, camera)
            if path is None:
                continue
            position = load_npy(path)
            if position.shape != (4,) or position.dtype.kind not in "iuf":
                raise SourceFileError(path, f"expected 4 numbers (width, height, x, y), found shape {position.shape} "
                                      f"of {position.dtype}")
            rois[camera] = (path, position)
        return rois
