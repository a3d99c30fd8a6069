"""Pupil diameter: raw and smooth of both cameras round-trip; primary camera; trimming; real IBL values."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl.alf import AlfSession
from nwbridge.interfaces.ibl.camera_times import FrameCountWarning
from nwbridge.interfaces.ibl.pupil import IblPupilInterface


def _check(series, values: np.ndarray, times: np.ndarray) -> None:
    np.testing.assert_array_equal(series.data[:], values)
    np.testing.assert_array_equal(np.isnan(series.data[:]), np.isnan(values))
    np.testing.assert_array_equal(series.timestamps[:], times[len(times) - len(values):])
    assert series.unit == "pixels"


def test_left_is_primary_and_right_is_kept(ibl_session, roundtrip):
    alf = ibl_session / "alf"
    with pytest.warns(FrameCountWarning, match="features rows"):
        pupil = roundtrip(IblPupilInterface(session_path=ibl_session)).processing["behavior"]["pupil"]
    assert set(pupil.time_series) == {"pupil_diameter", "pupil_diameter_raw",
                                      "pupil_diameter_right_camera", "pupil_diameter_raw_right_camera"}
    for camera, suffix in (("left", ""), ("right", "_right_camera")):
        features = pd.read_parquet(alf / f"_ibl_{camera}Camera.features.pqt")
        times = np.load(alf / f"_ibl_{camera}Camera.times.npy")
        assert len(features) < len(times)
        smooth, raw = pupil.time_series[f"pupil_diameter{suffix}"], pupil.time_series[f"pupil_diameter_raw{suffix}"]
        _check(smooth, features["pupilDiameter_smooth"].to_numpy(), times)
        _check(raw, features["pupilDiameter_raw"].to_numpy(), times)
        # The raw estimate has gaps (blinks); the smoothed one fills them.
        assert np.isnan(raw.data[:]).any() and not np.isnan(smooth.data[:]).any()
        assert f"{len(times)} frame times" in raw.description and f"{len(features)} features rows" in raw.description


def test_right_camera_alone_is_primary(small_session, roundtrip):
    session = small_session(cameras=("right",))
    with pytest.warns(FrameCountWarning):
        pupil = roundtrip(IblPupilInterface(session_path=session)).processing["behavior"]["pupil"]
    assert set(pupil.time_series) == {"pupil_diameter", "pupil_diameter_raw"}
    features = pd.read_parquet(session / "alf" / "_ibl_rightCamera.features.pqt")
    times = np.load(session / "alf" / "_ibl_rightCamera.times.npy")
    _check(pupil.time_series["pupil_diameter"], features["pupilDiameter_smooth"].to_numpy(), times)
    assert "right camera" in pupil.time_series["pupil_diameter"].description


def test_other_features_columns_are_kept(small_session, roundtrip):
    session = small_session(cameras=("left",))
    path = session / "alf" / "_ibl_leftCamera.features.pqt"
    features = pd.read_parquet(path)
    features["pupilArea_raw"] = np.pi * (features["pupilDiameter_raw"] / 2) ** 2
    features.to_parquet(path)
    with pytest.warns(FrameCountWarning):
        pupil = roundtrip(IblPupilInterface(session_path=session)).processing["behavior"]["pupil"]
    assert set(pupil.time_series) == {"pupil_diameter", "pupil_diameter_raw", "pupil_area_raw_left_camera"}
    np.testing.assert_array_equal(pupil.time_series["pupil_area_raw_left_camera"].data[:],
                                  features["pupilArea_raw"].to_numpy())


def test_camera_times_shorter_than_features_name_the_features_file(small_session):
    session = small_session(cameras=("left",))
    features_path = session / "alf" / "_ibl_leftCamera.features.pqt"
    times_path = session / "alf" / "_ibl_leftCamera.times.npy"
    np.save(times_path, np.load(times_path)[: len(pd.read_parquet(features_path)) - 1])
    nwbfile = NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))
    with pytest.raises(SourceFileError, match="features rows") as error:
        IblPupilInterface(session_path=session).add_to_nwbfile(nwbfile)
    assert error.value.path == features_path


def test_availability(small_session):
    assert IblPupilInterface.is_available(AlfSession(small_session(cameras=("right",))))
    assert not IblPupilInterface.is_available(AlfSession(small_session(cameras=("body",))))


def test_real_ibl_pupil_diameter(test_data, empty_session, roundtrip):
    """Real pupil diameters and frame times from ibllib's QC fixtures, converted as ALF files.

    ``pupil_diameter.npy`` is 200 frames x 2 columns: column 0 is ``pupilDiameter_raw`` (it has the NaN
    gaps) and column 1 ``pupilDiameter_smooth`` (no gaps), as ibllib's own test reads it
    (``ibllib/tests/qc/test_dlc_qc.py``, ``test_check_pupil_diameter_snr``), which expects an SNR of 6.624.
    """
    pupil = np.load(test_data / "ibl" / "qc" / "pupil_diameter.npy")
    assert pupil.shape == (200, 2)
    raw, smooth = pupil[:, 0], pupil[:, 1]
    camera_times = np.load(test_data / "ibl" / "qc" / "camera_times.npy")
    alf = empty_session / "alf"
    # IBL stores camera times as float64 now (the fixture is float32 from an older session); the cast is exact.
    np.save(alf / "_ibl_leftCamera.times.npy", camera_times.astype(np.float64))
    pd.DataFrame({"pupilDiameter_raw": raw, "pupilDiameter_smooth": smooth}).to_parquet(
        alf / "_ibl_leftCamera.features.pqt")

    # The two fixtures are snippets of different lengths: 200 features rows for 2600 frame times.
    with pytest.warns(FrameCountWarning, match="2600 frame times"):
        series = roundtrip(IblPupilInterface(session_path=empty_session)).processing["behavior"]["pupil"].time_series
    _check(series["pupil_diameter_raw"], raw, camera_times.astype(np.float64))
    _check(series["pupil_diameter"], smooth, camera_times.astype(np.float64))
    assert np.isnan(series["pupil_diameter_raw"].data[:]).sum() == 23

    # IBL's QC signal-to-noise ratio of smooth against raw, from the values read back: 6.624 as ibllib expects
    # (7.937 if the two columns were swapped).
    read_raw, read_smooth = series["pupil_diameter_raw"].data[:], series["pupil_diameter"].data[:]
    good = ~np.isnan(read_raw) & ~np.isnan(read_smooth)
    snr = np.var(read_smooth[good]) / np.var(read_smooth[good] - read_raw[good])
    assert round(float(snr), 3) == 6.624
