"""Pose estimation: every column of the DLC and Lightning Pose tables round-trips; naming; trimming; bad input."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl.alf import AlfSession
from nwbridge.interfaces.ibl.camera_times import FrameCountWarning
from nwbridge.interfaces.ibl.cameras import IblCamerasInterface
from nwbridge.interfaces.ibl.pose import IblPoseInterface, split_pose_columns

CAMERAS = {"left": "left_camera", "right": "right_camera", "body": "body_camera"}
FACE_PARTS = ["nose_tip", "paw_l", "paw_r", "pupil_top_r", "pupil_bottom_r", "pupil_left_r", "pupil_right_r",
              "tongue_end_l", "tongue_end_r", "tube_top", "tube_bottom"]
PARTS = {"left": FACE_PARTS, "right": FACE_PARTS, "body": ["tail_start"]}


def _new_nwbfile() -> NWBFile:
    return NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))


def _check_pose(pose, table: pd.DataFrame, times: np.ndarray, parts: list[str]) -> None:
    """Every keypoint of ``pose`` equals the table; timestamps are the last frame times (the IBL's rule)."""
    assert set(pose.pose_estimation_series) == set(parts)
    for part in parts:
        series = pose.pose_estimation_series[part]
        data = series.data[:]
        assert data.dtype == np.float64 and data.shape == (len(table), 2)
        np.testing.assert_array_equal(data[:, 0], table[f"{part}_x"].to_numpy())
        np.testing.assert_array_equal(data[:, 1], table[f"{part}_y"].to_numpy())
        np.testing.assert_array_equal(np.isnan(data), np.isnan(table[[f"{part}_x", f"{part}_y"]].to_numpy()))
        np.testing.assert_array_equal(series.confidence[:], table[f"{part}_likelihood"].to_numpy())
        assert series.unit == "pixels"
        np.testing.assert_array_equal(series.timestamps[:], times[len(times) - len(table):])
    assert list(pose.skeleton.nodes[:]) == parts
    assert pose.skeleton.edges[:].shape == (0, 2)


def test_dlc_and_lightning_pose_round_trip(ibl_session, roundtrip):
    alf = ibl_session / "alf"
    with pytest.warns(FrameCountWarning) as record:
        behavior = roundtrip(IblPoseInterface(session_path=ibl_session)).processing["behavior"]
    # The generator's pose tables are 1-5 rows short of the camera times: one warning per table.
    assert len([w for w in record if issubclass(w.category, FrameCountWarning)]) == 6

    for camera, name in CAMERAS.items():
        times = np.load(alf / f"_ibl_{camera}Camera.times.npy")
        lp = pd.read_parquet(alf / f"_ibl_{camera}Camera.lightningPose.pqt")
        dlc = pd.read_parquet(alf / f"_ibl_{camera}Camera.dlc.pqt")
        assert 1 <= len(times) - len(lp) <= 5

        # Both tables: the plain name is Lightning Pose, DeepLabCut gets the suffix.
        pose, pose_dlc = behavior[f"pose_{name}"], behavior[f"pose_{name}_dlc"]
        assert pose.source_software == "Lightning Pose" and pose_dlc.source_software == "DeepLabCut"
        _check_pose(pose, lp, times, PARTS[camera])
        _check_pose(pose_dlc, dlc, times, PARTS[camera])
        assert "Lightning Pose" in pose.pose_estimation_series[PARTS[camera][0]].confidence_definition
        assert "DeepLabCut" in pose_dlc.pose_estimation_series[PARTS[camera][0]].confidence_definition
        # The description gives both counts.
        assert f"{len(times)} frame times" in pose.description and f"{len(lp)} pose table rows" in pose.description
        assert behavior["Skeletons"].skeletons[f"pose_{name}_skeleton"] is pose.skeleton

        # The IBL DLC tables blank unsure positions: the NaNs are kept where they are.
        assert dlc[f"{PARTS[camera][0]}_x"].isna().any()

        # Nothing dropped: every ensemble and posterior column is in the additional series.
        extra = behavior[f"pose_{name}_additional_columns"].time_series
        covered = set()
        for part in PARTS[camera]:
            for suffix, unit in (("ens_median", "pixels"), ("ens_var", "pixels^2"), ("posterior_var", "pixels^2")):
                series = extra[f"{part}_{suffix}"]
                assert series.unit == unit
                np.testing.assert_array_equal(series.data[:, 0], lp[f"{part}_x_{suffix}"].to_numpy())
                np.testing.assert_array_equal(series.data[:, 1], lp[f"{part}_y_{suffix}"].to_numpy())
                np.testing.assert_array_equal(series.timestamps[:], times[len(times) - len(lp):])
                covered |= {f"{part}_x_{suffix}", f"{part}_y_{suffix}"}
            covered |= {f"{part}_x", f"{part}_y", f"{part}_likelihood"}
        assert covered == set(lp.columns)
        # The DLC table has only x, y, likelihood: no additional series.
        assert f"pose_{name}_dlc_additional_columns" not in behavior.data_interfaces


def test_one_tracker_takes_the_plain_name(small_session, roundtrip):
    for tracker, software in (("dlc", "DeepLabCut"), ("lightningPose", "Lightning Pose")):
        session = small_session(pose=(tracker,), cameras=("body",))
        with pytest.warns(FrameCountWarning):
            behavior = roundtrip(IblPoseInterface(session_path=session)).processing["behavior"]
        assert behavior["pose_body_camera"].source_software == software
        assert not any(name.endswith("_dlc") or name.endswith("_lightningPose") for name in behavior.data_interfaces)
        assert ("pose_body_camera_additional_columns" in behavior.data_interfaces) == (tracker == "lightningPose")


def test_pose_links_the_camera_video_and_shares_timestamps(small_session, roundtrip):
    session = small_session(cameras=("left",), videos=True)
    with pytest.warns(FrameCountWarning):
        nwbfile = roundtrip(IblCamerasInterface(session_path=session), IblPoseInterface(session_path=session))
    pose = nwbfile.processing["behavior"]["pose_left_camera"]
    assert pose.source_video is nwbfile.acquisition["video_left_camera"]
    # One timestamps dataset per PoseEstimation: the other series link to it.
    import h5py

    with h5py.File(nwbfile.container_source, "r") as file:
        group = file["processing/behavior/pose_left_camera"]
        links = {part: group.get(f"{part}/timestamps", getlink=True) for part in FACE_PARTS}
        extra = file["processing/behavior/pose_left_camera_additional_columns"]
        links["nose_tip_ens_var"] = extra.get("nose_tip_ens_var/timestamps", getlink=True)
    hard = [part for part, link in links.items() if isinstance(link, h5py.HardLink)]
    assert hard == ["nose_tip"]
    assert all(link.path == "/processing/behavior/pose_left_camera/nose_tip/timestamps"
               for part, link in links.items() if part != "nose_tip")


def test_unknown_columns_are_kept(small_session, roundtrip):
    session = small_session(cameras=("body",), pose=("dlc",))
    path = session / "alf" / "_ibl_bodyCamera.dlc.pqt"
    table = pd.read_parquet(path)
    rng = np.random.default_rng(0)
    table["tail_start_x_smoothed"] = rng.normal(size=len(table))
    table["tail_start_y_smoothed"] = rng.normal(size=len(table))
    table["tail_start_occluded"] = rng.integers(0, 2, len(table))
    table.to_parquet(path)
    with pytest.warns(FrameCountWarning):
        behavior = roundtrip(IblPoseInterface(session_path=session)).processing["behavior"]
    extra = behavior["pose_body_camera_additional_columns"].time_series
    assert set(extra) == {"tail_start_smoothed", "tail_start_occluded"}
    np.testing.assert_array_equal(extra["tail_start_smoothed"].data[:],
                                  table[["tail_start_x_smoothed", "tail_start_y_smoothed"]].to_numpy())
    np.testing.assert_array_equal(extra["tail_start_occluded"].data[:], table["tail_start_occluded"].to_numpy())
    # Their meaning is not documented: the unit says so rather than guessing.
    assert extra["tail_start_smoothed"].unit == "unknown" and extra["tail_start_occluded"].unit == "unknown"


def test_split_pose_columns():
    columns = ["a_x", "a_y", "a_likelihood", "a_x_ens_var", "a_y_ens_var", "a_x_ens_median", "b_x", "b_y",
               "frame", "c_x", "a_likelihood_ens_var"]
    parts, extras = split_pose_columns(columns)
    assert parts == ["a", "b"]
    assert [(e.name, e.columns, e.unit) for e in extras] == [
        ("a_ens_var", ("a_x_ens_var", "a_y_ens_var"), "pixels^2"),
        ("a_x_ens_median", ("a_x_ens_median",), "pixels"),  # no y partner: kept as its own column
        ("frame", ("frame",), "unknown"),
        ("c_x", ("c_x",), "unknown"),
        ("a_likelihood_ens_var", ("a_likelihood_ens_var",), "unknown"),  # not a coordinate: no pixel unit
    ]


def test_equal_lengths_do_not_warn(small_session, roundtrip, recwarn):
    session = small_session(cameras=("body",), pose=("dlc",))
    times_path = session / "alf" / "_ibl_bodyCamera.times.npy"
    rows = len(pd.read_parquet(session / "alf" / "_ibl_bodyCamera.dlc.pqt"))
    np.save(times_path, np.load(times_path)[:rows])
    behavior = roundtrip(IblPoseInterface(session_path=session)).processing["behavior"]
    assert not [w for w in recwarn if issubclass(w.category, FrameCountWarning)]
    assert "frame times" not in behavior["pose_body_camera"].description


def test_camera_times_shorter_than_the_pose_table_name_the_pose_file(small_session):
    session = small_session(cameras=("right",), pose=("lightningPose",))
    times_path = session / "alf" / "_ibl_rightCamera.times.npy"
    pose_path = session / "alf" / "_ibl_rightCamera.lightningPose.pqt"
    rows = len(pd.read_parquet(pose_path))
    np.save(times_path, np.load(times_path)[: rows - 10])
    with pytest.raises(SourceFileError, match=re.escape(f"has {rows} pose table rows")) as error:
        IblPoseInterface(session_path=session).add_to_nwbfile(_new_nwbfile())
    assert error.value.path == pose_path
    assert "_ibl_rightCamera.times.npy" in str(error.value)


def test_non_monotonic_camera_times_name_the_times_file(small_session):
    session = small_session(cameras=("left",), pose=("dlc",))
    path = session / "alf" / "_ibl_leftCamera.times.npy"
    times = np.load(path)
    times[500] = times[10]
    np.save(path, times)
    with pytest.raises(SourceFileError, match="not increasing") as error:
        IblPoseInterface(session_path=session).add_to_nwbfile(_new_nwbfile())
    assert error.value.path == path


def test_truncated_camera_times_name_the_file(small_session):
    session = small_session(cameras=("left",), pose=("dlc",))
    path = session / "alf" / "_ibl_leftCamera.times.npy"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(SourceFileError, match="truncated") as error:
        IblPoseInterface(session_path=session).add_to_nwbfile(_new_nwbfile())
    assert error.value.path == path


def test_unreadable_pose_table_names_the_file(small_session):
    session = small_session(cameras=("body",), pose=("dlc",))
    path = session / "alf" / "_ibl_bodyCamera.dlc.pqt"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(SourceFileError) as error:
        IblPoseInterface(session_path=session).add_to_nwbfile(_new_nwbfile())
    assert error.value.path == path


def test_availability(small_session):
    assert IblPoseInterface.is_available(AlfSession(small_session(pose=("dlc",))))
    assert not IblPoseInterface.is_available(AlfSession(small_session(pose=())))
