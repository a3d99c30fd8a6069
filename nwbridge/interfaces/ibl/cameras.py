"""IBL camera frames: one ``ImageSeries`` ``video_<camera>`` per camera, in ``acquisition``.

The frames are never copied into the NWB file: the series references the ``.mp4``
(``raw_video_data/_iblrig_<name>Camera.raw.mp4``) through ``external_file`` and carries the
frame times (``alf/_ibl_<name>Camera.times.npy``) as ``timestamps``, float64, bit for bit.

A camera whose frame times are in the session but whose video is not
--------------------------------------------------------------------
The representation still wants its frame times in ``video_<camera>``. What the tools accept
(pynwb 4.2, nwbinspector 0.7 with the "dandi" config) was tried:

* ``data`` empty, no ``external_file``: pynwb refuses to create it (length of data 0 does not
  match the length of the timestamps).
* ``data`` of shape ``(frames, 0, 0)``: accepted everywhere, but it claims frames of zero pixels
  were recorded, a made-up value.
* ``external_file`` naming the mp4 the IBL archive holds: nwbinspector reports CRITICAL
  ("external file does not exist"), and the file would point at nothing.
* ``external_file`` an empty list, ``starting_frame`` an empty list, ``format="external"``:
  valid against the schema, no CRITICAL or ERROR; nwbinspector reports one
  BEST_PRACTICE_VIOLATION ("data is empty"), which is exactly the situation.

The last one is written: it says truthfully that the frames live outside the file and that no
file is referenced, and the description says where the IBL keeps the video. Adding the video
later means setting ``external_file`` (e.g. with ``dandi organize --update-external-file-paths``
after copying it), nothing else.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pynwb.image import ImageSeries

from .alf import AlfSession
from .base import IblInterface
from .camera_times import CAMERA_VIEWS, CAMERAS, load_camera_times

__all__ = ["IblCamerasInterface", "video_path"]

VIDEO_COLLECTION = "raw_video_data"


def video_path(session: AlfSession, camera: str) -> Path | None:
    """The raw video of a camera (``raw_video_data/_iblrig_<camera>Camera.raw.mp4``), or ``None``."""
    return session.path(f"{camera}Camera", "raw", collection=VIDEO_COLLECTION, extension="mp4", required=False)


class IblCamerasInterface(IblInterface):
    """Frame times and video files of the IBL cameras (``video_left_camera``, ...)."""

    display_name = "IBL cameras"

    @classmethod
    def is_available(cls, session: AlfSession) -> bool:
        return any(session.has(f"{camera}Camera", "times") for camera in CAMERAS)

    def video_files(self) -> dict[str, Path]:
        """The source video of every camera that has one.

        Returns
        -------
        dict of str to Path
            NWB camera name (``left_camera``, ...) to its ``.mp4``. The converter copies these next
            to the NWB file and passes the relative paths back as ``external_files``.
        """
        files = {}
        for camera, name in CAMERAS.items():
            path = video_path(self.session, camera)
            # A video without frame times is not referenced (see add_to_nwbfile), so it is not listed.
            if path is not None and self.session.has(f"{camera}Camera", "times"):
                files[name] = path
        return files

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None, *,
                       external_files: dict[str, str] | None = None) -> None:
        """Add one ``ImageSeries`` per camera that has frame times.

        Parameters
        ----------
        nwbfile : NWBFile
        metadata : dict, optional
            Unused; accepted for the neuroconv interface protocol.
        external_files : dict of str to str, optional
            NWB camera name to the path to write in ``external_file`` (normally relative to the
            NWB file, where the converter copied the video). A camera with a video but absent
            from this mapping gets the source path.
        """
        videos = self.video_files()
        for camera, name in CAMERAS.items():
            orphan = video_path(self.session, camera)
            if orphan is not None and name not in videos:
                warnings.warn(f"{orphan}: video without frame times (_ibl_{camera}Camera.times.npy); it cannot "
                              "be placed on the session clock and is not referenced", stacklevel=2)
        unknown = set(external_files or {}) - set(videos)
        if unknown:
            # A path for a camera without a source video would reference a file we never checked.
            raise ValueError(f"external_files names cameras without a source video: {sorted(unknown)}; "
                             f"videos found: {sorted(videos)}")
        for camera, name in CAMERAS.items():
            camera_times = load_camera_times(self.session, camera, required=False)
            if camera_times is None:
                continue
            description = (f"Frames of the IBL {CAMERA_VIEWS[camera]}. Timestamps: frame times on the session "
                           f"clock, from the camera's sync pulses (alf/{camera_times.path.name}).")
            if name in videos:
                external = (external_files or {}).get(name, str(videos[name]))
                series = ImageSeries(name=f"video_{name}", description=description, external_file=[external],
                                     starting_frame=[0], format="external", timestamps=camera_times.times)
            else:
                description += (f" The video (IBL dataset {VIDEO_COLLECTION}/_iblrig_{camera}Camera.raw.mp4) was "
                                "not in the converted session, so no file is referenced: external_file is empty "
                                "and only the frame times are stored.")
                series = ImageSeries(name=f"video_{name}", description=description, external_file=[],
                                     starting_frame=[], format="external", timestamps=camera_times.times)
            nwbfile.add_acquisition(series)
