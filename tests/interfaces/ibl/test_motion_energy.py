"""Motion energy: values and frame times round-trip exactly; the ROI table; length mismatches; bad input."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl.alf import AlfSession
from nwbridge.interfaces.ibl.camera_times import FrameCountWarning
from nwbridge.interfaces.ibl.motion_energy import IblMotionEnergyInterface

CAMERAS = {"left": "left_camera", "right": "right_camera", "body": "body_camera"}


def _new_nwbfile() -> NWBFile:
    return NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))


def test_motion_energy_and_roi_round_trip(ibl_session, roundtrip, recwarn):
    alf = ibl_session / "alf"
    behavior = roundtrip(IblMotionEnergyInterface(session_path=ibl_session)).processing["behavior"]
    # One value per frame time: nothing to trim, nothing to warn about.
    assert not [w for w in recwarn if issubclass(w.category, FrameCountWarning)]
    for camera, name in CAMERAS.items():
        source = np.load(alf / f"{camera}Camera.ROIMotionEnergy.npy")
        series = behavior[f"motion_energy_{name}"]
        assert series.unit == "a.u." and series.data.dtype == np.float64
        np.testing.assert_array_equal(series.data[:], source)
        np.testing.assert_array_equal(series.timestamps[:], np.load(alf / f"_ibl_{camera}Camera.times.npy"))
        width, height, x, y = np.load(alf / f"{camera}ROIMotionEnergy.position.npy")
        assert f"Rectangle: {width:g} x {height:g} pixels with its top-left corner at x={x:g}, y={y:g}" \
            in series.description

    roi = behavior["motion_energy_roi"].to_dataframe()
    assert list(roi.columns) == ["camera", "width", "height", "x", "y"]
    assert list(roi["camera"]) == list(CAMERAS.values())
    for camera, name in CAMERAS.items():
        position = np.load(alf / f"{camera}ROIMotionEnergy.position.npy")
        row = roi[roi["camera"] == name].iloc[0]
        np.testing.assert_array_equal(row[["width", "height", "x", "y"]].to_numpy(dtype=float), position)


def test_shorter_motion_energy_uses_the_last_frame_times(small_session, roundtrip):
    session = small_session(cameras=("body",))
    path = session / "alf" / "bodyCamera.ROIMotionEnergy.npy"
    values = np.load(path)[:-3]
    np.save(path, values)
    times = np.load(session / "alf" / "_ibl_bodyCamera.times.npy")
    with pytest.warns(FrameCountWarning, match="3 frame times were not used"):
        series = roundtrip(IblMotionEnergyInterface(session_path=session)).processing["behavior"][
            "motion_energy_body_camera"]
    np.testing.assert_array_equal(series.data[:], values)
    np.testing.assert_array_equal(series.timestamps[:], times[3:])
    assert f"{len(times)} frame times" in series.description and f"{len(values)} motion energy values" in \
        series.description


def test_longer_motion_energy_names_the_file(small_session):
    session = small_session(cameras=("left",))
    path = session / "alf" / "leftCamera.ROIMotionEnergy.npy"
    np.save(path, np.concatenate([np.load(path), [1.0, 2.0]]))
    with pytest.raises(SourceFileError, match="motion energy values") as error:
        IblMotionEnergyInterface(session_path=session).add_to_nwbfile(_new_nwbfile())
    assert error.value.path == path


def test_truncated_motion_energy_names_the_file(small_session):
    session = small_session(cameras=("right",))
    path = session / "alf" / "rightCamera.ROIMotionEnergy.npy"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(SourceFileError, match="truncated") as error:
        IblMotionEnergyInterface(session_path=session).add_to_nwbfile(_new_nwbfile())
    assert error.value.path == path
    assert "rightCamera.ROIMotionEnergy.npy" in str(error.value)


def test_malformed_roi_names_the_file(small_session):
    session = small_session(cameras=("left",))
    path = session / "alf" / "leftROIMotionEnergy.position.npy"
    np.save(path, np.array([10.0, 20.0, 30.0]))
    with pytest.raises(SourceFileError, match="width, height, x, y") as error:
        IblMotionEnergyInterface(session_path=session).add_to_nwbfile(_new_nwbfile())
    assert error.value.path == path


def test_integer_roi_as_ibllib_writes_it(small_session, roundtrip):
    """ibllib saves the rectangle as integers (``np.asarray([w, h, x, y])`` of ints)."""
    session = small_session(cameras=("left",))
    np.save(session / "alf" / "leftROIMotionEnergy.position.npy", np.array([57, 38, 412, 301]))
    roi = roundtrip(IblMotionEnergyInterface(session_path=session)).processing["behavior"]["motion_energy_roi"]
    frame = roi.to_dataframe()
    assert frame.iloc[0][["width", "height", "x", "y"]].tolist() == [57, 38, 412, 301]
    assert np.issubdtype(roi["x"].data.dtype, np.integer)


def test_real_camera_times(test_data, empty_session, roundtrip):
    """Motion energy placed on 2600 real IBL frame times (ibllib's QC fixture) keeps them bit for bit."""
    real = np.load(test_data / "ibl" / "qc" / "camera_times.npy")
    alf = empty_session / "alf"
    # IBL stores camera times as float64 now (the fixture is float32 from an older session); the cast is exact.
    np.save(alf / "_ibl_leftCamera.times.npy", real.astype(np.float64))
    values = np.random.default_rng(1).gamma(2.0, 3.0, len(real))
    np.save(alf / "leftCamera.ROIMotionEnergy.npy", values)
    behavior = roundtrip(IblMotionEnergyInterface(session_path=empty_session)).processing["behavior"]
    series = behavior["motion_energy_left_camera"]
    np.testing.assert_array_equal(series.timestamps[:], real.astype(np.float64))
    np.testing.assert_array_equal(series.data[:], values)
    # No rectangle file: no table rather than an empty one.
    assert "motion_energy_roi" not in behavior.data_interfaces


def test_availability(small_session):
    assert IblMotionEnergyInterface.is_available(AlfSession(small_session(cameras=("body",))))
    assert not IblMotionEnergyInterface.is_available(AlfSession(small_session(cameras=())))
