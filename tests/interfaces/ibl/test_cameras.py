"""Camera frames: frame times bit for bit, external video files, no-video sessions, bad input, nwbinspector."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import numpy as np
import pytest
from pynwb import NWBFile
from pynwb.file import Subject

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl.cameras import IblCamerasInterface
from nwbridge.interfaces.ibl.motion_energy import IblMotionEnergyInterface
from nwbridge.interfaces.ibl.pose import IblPoseInterface
from nwbridge.interfaces.ibl.pupil import IblPupilInterface
from nwbridge.writing import write_nwbfile_atomically

CAMERAS = {"left": "left_camera", "right": "right_camera", "body": "body_camera"}


def test_frame_times_round_trip_bit_for_bit_without_video(ibl_session, roundtrip):
    nwbfile = roundtrip(IblCamerasInterface(session_path=ibl_session))
    assert set(nwbfile.acquisition) == {f"video_{name}" for name in CAMERAS.values()}
    for camera, name in CAMERAS.items():
        source = np.load(ibl_session / "alf" / f"_ibl_{camera}Camera.times.npy")
        series = nwbfile.acquisition[f"video_{name}"]
        assert series.timestamps.dtype == np.float64
        np.testing.assert_array_equal(series.timestamps[:], source)
        # No video in the session: the frames are external, and no file is referenced.
        assert series.format == "external"
        assert len(series.external_file) == 0
        assert series.data.shape[0] == 0
        assert f"raw_video_data/_iblrig_{camera}Camera.raw.mp4" in series.description
    # The generator's nominal rates: 60, 150, 30 Hz.
    rates = {name: 1 / np.median(np.diff(nwbfile.acquisition[f"video_{name}"].timestamps[:]))
             for name in CAMERAS.values()}
    assert rates == pytest.approx({"left_camera": 60, "right_camera": 150, "body_camera": 30}, rel=1e-3)


def test_video_files_and_source_paths(small_session, roundtrip):
    session = small_session(videos=True)
    interface = IblCamerasInterface(session_path=session)
    videos = interface.video_files()
    assert videos == {name: session / "raw_video_data" / f"_iblrig_{camera}Camera.raw.mp4"
                      for camera, name in CAMERAS.items()}
    nwbfile = roundtrip(interface)
    for camera, name in CAMERAS.items():
        series = nwbfile.acquisition[f"video_{name}"]
        assert list(series.external_file[:]) == [str(videos[name])]
        assert list(series.starting_frame[:]) == [0]
        np.testing.assert_array_equal(series.timestamps[:], np.load(session / "alf" / f"_ibl_{camera}Camera.times.npy"))


def test_external_files_are_written_as_given(small_session, roundtrip):
    session = small_session(videos=True, cameras=("left", "body"))
    relative = {"left_camera": "sub-KS055_ses-x_desc-processed_behavior+ecephys/video_left_camera.mp4"}
    nwbfile = roundtrip(IblCamerasInterface(session_path=session), external_files=relative)
    assert list(nwbfile.acquisition["video_left_camera"].external_file[:]) == [relative["left_camera"]]
    # A camera the converter did not copy keeps its source path.
    body = session / "raw_video_data" / "_iblrig_bodyCamera.raw.mp4"
    assert list(nwbfile.acquisition["video_body_camera"].external_file[:]) == [str(body)]
    assert "video_right_camera" not in nwbfile.acquisition


def test_external_file_for_a_camera_without_video_is_refused(small_session):
    session = small_session(videos=True, cameras=("left",))
    interface = IblCamerasInterface(session_path=session)
    nwbfile = NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))
    with pytest.raises(ValueError, match="right_camera"):
        interface.add_to_nwbfile(nwbfile, external_files={"right_camera": "right.mp4"})


def test_video_only_for_some_cameras(small_session, roundtrip):
    session = small_session(videos=True)
    (session / "raw_video_data" / "_iblrig_rightCamera.raw.mp4").unlink()
    nwbfile = roundtrip(IblCamerasInterface(session_path=session))
    assert len(nwbfile.acquisition["video_left_camera"].external_file) == 1
    assert len(nwbfile.acquisition["video_right_camera"].external_file) == 0


def test_availability(small_session):
    from nwbridge.interfaces.ibl.alf import AlfSession

    assert IblCamerasInterface.is_available(AlfSession(small_session()))
    session = small_session(cameras=())
    assert not IblCamerasInterface.is_available(AlfSession(session))


def test_non_monotonic_frame_times_name_the_file(small_session):
    session = small_session(cameras=("body",))
    path = session / "alf" / "_ibl_bodyCamera.times.npy"
    times = np.load(path)
    times[100], times[101] = times[101], times[100]
    np.save(path, times)
    nwbfile = NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))
    with pytest.raises(SourceFileError, match="not increasing") as error:
        IblCamerasInterface(session_path=session).add_to_nwbfile(nwbfile)
    assert error.value.path == path
    assert "_ibl_bodyCamera.times.npy" in str(error.value)


def test_truncated_frame_times_name_the_file(small_session):
    session = small_session(cameras=("left",))
    path = session / "alf" / "_ibl_leftCamera.times.npy"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    nwbfile = NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))
    with pytest.raises(SourceFileError, match="truncated") as error:
        IblCamerasInterface(session_path=session).add_to_nwbfile(nwbfile)
    assert error.value.path == path


def test_real_ibl_camera_times(test_data, empty_session, roundtrip):
    """2600 real frame times of an IBL camera (ibllib's QC fixture, float32 as older sessions stored them)."""
    real = np.load(test_data / "ibl" / "qc" / "camera_times.npy")
    assert real.dtype == np.float32 and real.shape == (2600,)
    # IBL stores camera times as float64 now; the cast is exact, so the values are the real ones.
    np.save(empty_session / "alf" / "_ibl_leftCamera.times.npy", real.astype(np.float64))
    acquisition = roundtrip(IblCamerasInterface(session_path=empty_session)).acquisition
    assert set(acquisition) == {"video_left_camera"}
    series = acquisition["video_left_camera"]
    np.testing.assert_array_equal(series.timestamps[:], real.astype(np.float64))
    assert series.timestamps[:].astype(np.float32).tobytes() == real.tobytes()


def test_float32_frame_times_are_widened_exactly(test_data, empty_session, roundtrip):
    """A session that still has float32 times converts to the same float64 values."""
    real = np.load(test_data / "ibl" / "qc" / "camera_times.npy")
    np.save(empty_session / "alf" / "_ibl_rightCamera.times.npy", real)
    series = roundtrip(IblCamerasInterface(session_path=empty_session)).acquisition["video_right_camera"]
    assert series.timestamps.dtype == np.float64
    np.testing.assert_array_equal(series.timestamps[:], real.astype(np.float64))


# --- nwbinspector (dandi config) on a file written by the four video interfaces -----------------------

def _inspect(path):
    import nwbinspector
    from nwbinspector import Importance

    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=path, config=nwbinspector.load_config("dandi")))
    serious = [m for m in messages
               if m.importance in (Importance.CRITICAL, Importance.PYNWB_VALIDATION, Importance.ERROR)]
    return messages, serious


def _dandi_ready_nwbfile() -> NWBFile:
    return NWBFile(
        session_description="IBL session", identifier="nwbridge-test-video", session_id="test",
        session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc),
        experiment_description="test", institution="University College London", lab="cortexlab",
        keywords=["test"],
        subject=Subject(subject_id="KS055", species="Mus musculus", sex="F", age="P189D", description="test mouse"),
    )


@pytest.mark.parametrize("videos", [False, True], ids=["without_video", "with_video"])
def test_nwbinspector_dandi_reports_no_critical_or_error(videos, small_session, tmp_path):
    session = small_session(videos=videos)
    output = tmp_path / "nwb" / "sub-KS055_ses-test_desc-processed_behavior.nwb"
    cameras = IblCamerasInterface(session_path=session)
    external = {}
    if videos:
        # What the converter does: copy the videos next to the NWB file, reference them relatively.
        for name, source in cameras.video_files().items():
            target = output.parent / output.stem / f"video_{name}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            external[name] = target.relative_to(output.parent).as_posix()
    nwbfile = _dandi_ready_nwbfile()
    cameras.add_to_nwbfile(nwbfile, external_files=external or None)
    with pytest.warns(UserWarning):  # the pose and features tables are a few frames short
        for interface in (IblPoseInterface, IblPupilInterface, IblMotionEnergyInterface):
            interface(session_path=session).add_to_nwbfile(nwbfile)
    write_nwbfile_atomically(nwbfile, output)

    messages, serious = _inspect(output)
    assert serious == [], [f"{m.importance.name} {m.check_function_name} {m.object_name}: {m.message}" for m in serious]
    empty = [m for m in messages if m.check_function_name == "check_time_series_data_is_not_empty"]
    if videos:
        assert empty == []
    else:
        # The one thing the inspector notes about a camera without video, and it is true.
        assert {m.object_name for m in empty} == {f"video_{name}" for name in CAMERAS.values()}


# --- the shared rule for per-frame tables shorter than the frame times -----------------------------------

def test_times_for_rows(tmp_path):
    from nwbridge.interfaces.ibl.camera_times import CameraTimes, FrameCountWarning, times_for_rows

    times = np.arange(10, dtype=np.float64) / 60
    camera = CameraTimes(camera="left", times=times, path=tmp_path / "_ibl_leftCamera.times.npy")
    table = tmp_path / "_ibl_leftCamera.dlc.pqt"

    same, note = times_for_rows(camera, 10, data_path=table, what="rows")
    assert same is times and note == ""
    # By default the IBL's rule: the first frames were not recorded, so the last times are kept.
    with pytest.warns(FrameCountWarning, match="_ibl_leftCamera.dlc.pqt"):
        last, note = times_for_rows(camera, 7, data_path=table, what="rows")
    np.testing.assert_array_equal(last, times[3:])
    assert "10 frame times" in note and "7 rows" in note
    assert "last 7 frames" in note and "first 3 frame times were not used" in note
    with pytest.warns(FrameCountWarning):
        first, note = times_for_rows(camera, 7, data_path=table, what="rows", keep="first")
    np.testing.assert_array_equal(first, times[:7])
    assert "first 7 frames" in note
    with pytest.raises(SourceFileError, match="has 11 rows") as error:
        times_for_rows(camera, 11, data_path=table, what="rows")
    assert error.value.path == table
