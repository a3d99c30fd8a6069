"""Allen eye tracking (``acquisition/EyeTracking``): pupil size, ellipse fits, likely blinks, frame times.

AllenSDK stores the ellipses its pipeline fitted, in every frame of the eye camera's video, to
the pupil, the eye and the corneal reflection as one ``EllipseSeries`` each (extension
``ndx-ellipse-eye-tracking``: ``data`` the centre (x, y); datasets ``area``, ``area_raw``
(before outlier removal), ``width``, ``height``, ``angle``) in an ``EllipseEyeTracking``
container, with a boolean TimeSeries ``likely_blink``. The representation spreads them over
core types, so that no extension is needed to read them:

* ``processing/behavior/pupil`` (``PupilTracking``): ``pupil_diameter`` and
  ``pupil_diameter_raw``, derived as 2 sqrt(area / pi) (the diameter of the circle of the
  fitted area; Allen has no diameter, and this makes code written for the IBL's pupil diameter
  run on Allen), and the areas themselves, ``pupil_area``, ``pupil_area_raw``;
* ``processing/behavior/eye_tracking`` (``EyeTracking``): the centres, ``<part>_center``;
* ``processing/behavior/eye_ellipses`` (``BehavioralTimeSeries``): ``<part>_width``,
  ``<part>_height``, ``<part>_angle``, the eye's and the corneal reflection's ``<part>_area``
  and ``<part>_area_raw``, and ``likely_blink``;
* ``acquisition/video_eye_camera`` (``ImageSeries``): the eye camera's frame times. The session
  file has no video, so, as for an IBL camera without its video, ``external_file`` and
  ``starting_frame`` are empty and only the times are stored.

Quirk: the source series say their unit is "meters" but hold pixels of the eye camera's video
(AllenSDK writes the SpatialSeries default unit). Nothing is converted; the output says
pixels (areas: pixels^2; angles: radians) and every description says so.

The source's times are copied bit for bit and stored once: every series with the same times
links to the first one's timestamps.
"""

from __future__ import annotations

import numpy as np
from neuroconv.tools.nwb_helpers import get_module
from pynwb.base import TimeSeries
from pynwb.behavior import BehavioralTimeSeries, EyeTracking, PupilTracking, SpatialSeries
from pynwb.image import ImageSeries

from ...errors import SourceFileError
from .base import AllenInterface
from .running import BEHAVIOR_MODULE_DESCRIPTION, SharedTimestamps, check_times
from .source import AllenFile, nullable_booleans

__all__ = ["AllenEyeTrackingInterface", "PARTS", "CAMERA", "pupil_diameter"]

EYE_TRACKING = "acquisition/EyeTracking"
# Representation part name -> the source's EllipseSeries, in the order they are written.
PARTS = {"pupil": "pupil_tracking", "eye": "eye_tracking", "corneal_reflection": "corneal_reflection_tracking"}
PART_TEXT = {"pupil": "the pupil", "eye": "the eye (the opening between the eyelids)",
             "corneal_reflection": "the reflection of the eye-tracking LED on the cornea"}
# The representation's primary (and only) Allen camera.
CAMERA = "eye_camera"
# Units the source may state for its pixel values: "meters" is AllenSDK's mislabel of pixels.
_PIXEL_UNITS = ("meters", "m", "pixels", "pixel", "px")
_PIXELS_NOT_METERS = "The source series says its unit is \"meters\" but holds pixels of the eye camera's video."
_ANGLES_NOT_METERS = "The source series says its unit is \"meters\"; its angles are in radians."


def pupil_diameter(area: np.ndarray) -> np.ndarray:
    """Diameter of the circle of the given area: 2 sqrt(area / pi), NaN where the area is NaN."""
    return 2.0 * np.sqrt(np.asarray(area, dtype=np.float64) / np.pi)


class _Ellipse:
    """The values of one source EllipseSeries, read whole and checked against its timestamps."""

    def __init__(self, source: AllenFile, container, part: str):
        self.location = f"{EYE_TRACKING}/{PARTS[part]}"
        series = _child(container, PARTS[part])
        if series is None:
            raise SourceFileError(source.path, f"has {EYE_TRACKING} but no {self.location}")
        if series.timestamps is None:
            raise SourceFileError(source.path, f"{self.location} has no timestamps")
        self.unit = series.unit
        if self.unit not in _PIXEL_UNITS:
            raise SourceFileError(source.path, f"{self.location}: unit is {self.unit!r}; Allen ellipse fits are in "
                                               "pixels (labelled \"meters\") and no other unit is converted")
        self.reference_frame = series.reference_frame
        self.times = np.asarray(series.timestamps[:])
        check_times(self.times, path=source.path, location=self.location)
        self.center = np.asarray(series.data[:])
        if self.center.ndim != 2 or self.center.shape[1] != 2 or len(self.center) != len(self.times):
            raise SourceFileError(source.path, f"{self.location}: data should be the ellipse centres, "
                                               f"{len(self.times)} x 2 (one x, y per timestamp); found shape "
                                               f"{self.center.shape}")
        self.values: dict[str, np.ndarray | None] = {}
        for field in ("width", "height", "angle", "area", "area_raw"):
            dataset = getattr(series, field, None)
            if dataset is None:
                if field == "area_raw" and part != "pupil":
                    # Optional in the representation for the eye and the corneal reflection.
                    self.values[field] = None
                    continue
                raise SourceFileError(source.path, f"{self.location} has no {field}")
            values = np.asarray(dataset[:])
            if values.ndim != 1 or len(values) != len(self.times):
                raise SourceFileError(source.path, f"{self.location}/{field}: {values.shape} values for "
                                                   f"{len(self.times)} timestamps")
            if values.dtype.kind not in "fiu":
                raise SourceFileError(source.path, f"{self.location}/{field}: not numbers (dtype {values.dtype})")
            if field.startswith("area") and (values < 0).any():
                position = int(np.flatnonzero(values < 0)[0])
                raise SourceFileError(source.path, f"{self.location}/{field}: element {position} is negative "
                                                   f"({values[position]!r}); an area cannot be")
            self.values[field] = values


def _child(container, name: str):
    """A named member of the EllipseEyeTracking container (an attribute of the generated class, or an item)."""
    found = getattr(container, name, None)
    if found is None:
        try:
            found = container[name]
        except (KeyError, TypeError, AttributeError):
            found = None
    return found


class AllenEyeTrackingInterface(AllenInterface):
    """Pupil size (``pupil``), ellipse centres (``eye_tracking``) and shapes (``eye_ellipses``), eye-camera frames."""

    display_name = "Allen eye tracking"

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return source.object(EYE_TRACKING) is not None

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None, *, camera_frames: bool = True) -> None:
        """Add ``pupil``, ``eye_tracking``, ``eye_ellipses`` to ``processing/behavior`` and the frame times.

        Parameters
        ----------
        nwbfile : NWBFile
        metadata : dict, optional
            Unused; accepted for the neuroconv interface protocol.
        camera_frames : bool, default: True
            Also write ``acquisition/video_eye_camera``: the eye camera's frame times (the eye
            ellipse's timestamps), without the video, which the Allen session file does not include.
        """
        source = self.source
        container = source.require(EYE_TRACKING)
        ellipses = {part: _Ellipse(source, container, part) for part in PARTS}
        blink_times, blinks = self._likely_blink(container)
        shared = SharedTimestamps()
        behavior = get_module(nwbfile, "behavior", BEHAVIOR_MODULE_DESCRIPTION)

        pupil = ellipses["pupil"]
        frames = " in every frame of the eye camera's video, as the Allen pipeline fitted it. " + _PIXELS_NOT_METERS
        circle = ("2 sqrt(area / pi): the diameter of the circle of the area of the ellipse fitted to the pupil "
                  "(AllenSDK takes the pupil's area as that of a circle whose radius is the ellipse's larger "
                  "semi-axis, so this is twice that semi-axis)")
        behavior.add(PupilTracking(name="pupil", time_series=[
            shared.make(TimeSeries, pupil.times, name="pupil_diameter", unit="pixels",
                        data=pupil_diameter(pupil.values["area"]),
                        description=(f"Pupil diameter (pixels), {circle}, from the Allen pupil area after outlier "
                                     f"removal ({pupil.location}/area; NaN where removed)" + frames)),
            shared.make(TimeSeries, pupil.times, name="pupil_diameter_raw", unit="pixels",
                        data=pupil_diameter(pupil.values["area_raw"]),
                        description=(f"Pupil diameter (pixels) before outlier removal, {circle}, from "
                                     f"{pupil.location}/area_raw" + frames)),
            shared.make(TimeSeries, pupil.times, name="pupil_area", unit="pixels^2", data=pupil.values["area"],
                        description=(f"Area of the pupil (pixels^2) after outlier removal ({pupil.location}/area; "
                                     "NaN where removed)" + frames)),
            shared.make(TimeSeries, pupil.times, name="pupil_area_raw", unit="pixels^2",
                        data=pupil.values["area_raw"],
                        description=(f"Area of the pupil (pixels^2) before outlier removal "
                                     f"({pupil.location}/area_raw)" + frames)),
        ]))

        behavior.add(EyeTracking(name="eye_tracking", spatial_series=[
            shared.make(SpatialSeries, ellipse.times, name=f"{part}_center", unit="pixels", data=ellipse.center,
                        reference_frame=self._reference_frame(ellipse),
                        description=(f"Centre (x, y) of the ellipse fitted to {PART_TEXT[part]}, in pixels of the "
                                     f"eye camera's video ({ellipse.location}, data)." + " " + _PIXELS_NOT_METERS))
            for part, ellipse in ellipses.items()
        ]))

        shapes: list[TimeSeries] = []
        for part, ellipse in ellipses.items():
            where = f" of the ellipse fitted to {PART_TEXT[part]} in every frame of the eye camera's video"
            # Semi-axes: AllenSDK computes the eye's and corneal reflection's areas as pi x width x height.
            axis = "as the Allen fit gives it (a semi-axis)"
            fields = [("width", "pixels", f"Width (pixels){where}, {axis}."),
                      ("height", "pixels", f"Height (pixels){where}, {axis}."),
                      ("angle", "radians", f"Orientation (radians){where}, as the Allen fit gives it.")]
            if part != "pupil":
                # The pupil's areas are in `pupil`, with the diameters derived from them.
                fields.append(("area", "pixels^2", f"Area (pixels^2){where}, after outlier removal (NaN where "
                                                   "removed)."))
                if ellipse.values["area_raw"] is not None:
                    fields.append(("area_raw", "pixels^2", f"Area (pixels^2){where}, before outlier removal."))
            for field, unit, text in fields:
                shapes.append(shared.make(
                    TimeSeries, ellipse.times, name=f"{part}_{field}", unit=unit, data=ellipse.values[field],
                    description=f"{text} From {ellipse.location}/{field}. "
                                + (_PIXELS_NOT_METERS if unit != "radians" else _ANGLES_NOT_METERS)))
        shapes.append(shared.make(
            TimeSeries, blink_times, name="likely_blink", unit="n/a", data=blinks,
            description=("True where the Allen pipeline judged that the eye camera's frame probably shows a blink "
                         f"(fits unreliable), false elsewhere ({EYE_TRACKING}/likely_blink).")))
        behavior.add(BehavioralTimeSeries(name="eye_ellipses", time_series=shapes))

        if camera_frames:
            eye = ellipses["eye"]
            nwbfile.add_acquisition(shared.make(
                ImageSeries, eye.times, name=f"video_{CAMERA}", external_file=[], starting_frame=[],
                format="external",
                description=("Frames of the Allen eye camera (video of the mouse's eye). Timestamps: "
                             "frame times on the session clock, the times of the Allen eye-tracking fits "
                             f"({eye.location}). The Allen session file does not include the video, so no file is "
                             "referenced: external_file is empty and only the frame times are stored.")))

    def _likely_blink(self, container) -> tuple[np.ndarray, np.ndarray]:
        source = self.source
        location = f"{EYE_TRACKING}/likely_blink"
        series = _child(container, "likely_blink")
        if series is None:
            raise SourceFileError(source.path, f"has {EYE_TRACKING} but no {location}")
        if series.timestamps is None:
            raise SourceFileError(source.path, f"{location} has no timestamps")
        times = np.asarray(series.timestamps[:])
        check_times(times, path=source.path, location=location)
        values, missing = nullable_booleans(series.data, name=location, path=source.path)
        if values.ndim != 1 or len(values) != len(times):
            raise SourceFileError(source.path, f"{location}: {values.shape} values for {len(times)} timestamps")
        if missing.any():
            raise SourceFileError(source.path, f"{location}: {int(missing.sum())} frames have no value; every "
                                               "frame is either a likely blink or not")
        return times, np.asarray(values, dtype=bool)

    @staticmethod
    def _reference_frame(ellipse: _Ellipse) -> str:
        text = "Pixel coordinates (x, y) in the eye camera's image, as the Allen ellipse fit gives them"
        if ellipse.reference_frame and ellipse.reference_frame.strip():
            text += f" (source reference_frame: {ellipse.reference_frame!r})"
        return text + "."
