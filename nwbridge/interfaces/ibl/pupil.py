"""IBL pupil diameter (``alf/_ibl_<name>Camera.features.pqt``) as ``PupilTracking`` ``pupil``.

The IBL derives the pupil diameter per video frame from the four pupil keypoints of the pose
estimation of the left and right cameras (``pupilDiameter_raw``, NaN where the keypoints were
unreliable) and smooths it (``pupilDiameter_smooth``, gaps filled). The left camera is the
primary one (the IBL's own loader reads only it): its columns are ``pupil_diameter`` (smooth) and
``pupil_diameter_raw``. Another camera's columns carry its name (``pupil_diameter_right_camera``,
``pupil_diameter_raw_right_camera``): the cameras differ in resolution, so their pixels are not the
same size and the two diameters are not interchangeable. Any other column of a features table is
kept as ``<snake_case>_<camera>``.
"""

from __future__ import annotations

from neuroconv.tools.nwb_helpers import get_module
from pynwb.base import TimeSeries
from pynwb.behavior import PupilTracking

from ...errors import SourceFileError
from .alf import AlfSession, column_name, load_table
from .base import IblInterface
from .camera_times import BEHAVIOR_MODULE_DESCRIPTION, CAMERA_VIEWS, CAMERAS, load_camera_times, times_for_rows

__all__ = ["IblPupilInterface", "pupil_series_name"]

# Features column -> (NWB name stem, description).
KNOWN_COLUMNS = {
    "pupilDiameter_smooth": ("pupil_diameter", "Pupil diameter, smoothed by the IBL pipeline (gaps in the raw "
                             "estimate filled); features column 'pupilDiameter_smooth'."),
    "pupilDiameter_raw": ("pupil_diameter_raw", "Pupil diameter estimated by the IBL per frame from the four pupil "
                          "keypoints (top, bottom, left, right) of the pose estimation; NaN where the keypoints "
                          "were unreliable; features column 'pupilDiameter_raw'."),
}


def pupil_series_name(column: str, camera: str, *, primary: bool) -> str:
    """NWB name of a features column of one camera.

    The two pupil diameters of the primary camera get the plain names of the representation;
    everything else carries the camera's NWB name, so no two cameras' series can collide.
    """
    if column in KNOWN_COLUMNS:
        stem = KNOWN_COLUMNS[column][0]
        return stem if primary else f"{stem}_{CAMERAS[camera]}"
    return f"{column_name(column)}_{CAMERAS[camera]}"


class IblPupilInterface(IblInterface):
    """Pupil diameter from the IBL video features (``pupil`` with ``pupil_diameter``, ...)."""

    display_name = "IBL pupil diameter"

    @classmethod
    def is_available(cls, session: AlfSession) -> bool:
        return any(session.has(f"{camera}Camera", "features") for camera in CAMERAS)

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        cameras = [camera for camera in CAMERAS if self.session.has(f"{camera}Camera", "features")]
        if not cameras:
            return
        # CAMERAS is ordered left, right, body: the first camera with features is the primary one.
        primary = cameras[0]
        series: list[TimeSeries] = []
        for camera in cameras:
            series.extend(self._camera_series(camera, primary=camera == primary))
        behavior = get_module(nwbfile, "behavior", BEHAVIOR_MODULE_DESCRIPTION)
        behavior.add(PupilTracking(name="pupil", time_series=series))

    def _camera_series(self, camera: str, *, primary: bool) -> list[TimeSeries]:
        path = self.session.path(f"{camera}Camera", "features")
        table = load_table(path)
        camera_times = load_camera_times(self.session, camera)
        timestamps, note = times_for_rows(camera_times, len(table), data_path=path, what="features rows")
        source = (f" Per frame of the IBL {CAMERA_VIEWS[camera]}, in pixels of that camera's video "
                  f"(alf/{path.name}).")
        if note:
            source += " " + note
        # Known columns first, in the order of the representation, then the rest in table order.
        ordered = ([c for c in KNOWN_COLUMNS if c in table.columns]
                   + [c for c in table.columns if c not in KNOWN_COLUMNS])
        series: list[TimeSeries] = []
        for column in ordered:
            values = table[column].to_numpy()
            if values.dtype.kind not in "biuf":
                raise SourceFileError(path, f"column '{column}' is not numeric (dtype {values.dtype})")
            if column in KNOWN_COLUMNS:
                description, unit = KNOWN_COLUMNS[column][1], "pixels"
            else:
                description, unit = (f"IBL video features column '{column}' (meaning and unit not documented by "
                                     "the source)."), "unknown"
            series.append(TimeSeries(
                name=pupil_series_name(str(column), camera, primary=primary),
                description=description + source,
                data=values,
                unit=unit,
                # One timestamps dataset per camera: the first series writes it, the others link to it.
                timestamps=series[0] if series else timestamps,
            ))
        return series
