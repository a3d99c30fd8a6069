"""Allen eye tracking: pupil size, ellipse centres and shapes, likely blinks and eye-camera frame times,
checked value by value against the session file read with h5py."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.allen.eye_tracking import AllenEyeTrackingInterface
from nwbridge.interfaces.allen.source import open_allen_file
from nwbridge.provenance import ALLEN_DATASET, provenance_record
from nwbridge.schemas.checker import check_file
from nwbridge.writing import write_nwbfile_atomically
from support.allen_files import replace_dataset, trimmed_copy

EYE = "acquisition/EyeTracking"
SOURCE_PARTS = {"pupil": "pupil_tracking", "eye": "eye_tracking", "corneal_reflection": "corneal_reflection_tracking"}
PUPIL = f"{EYE}/pupil_tracking"


def eye_copy(vbn_session, tmp_path, edit=None, *, frames: int = 600):
    """A trimmed copy with only the eye tracking (and the extension defining its types), cut to its first frames.

    The edit tests need no more than a few hundred frames, and write ten times faster without the rest.
    """
    def cut_then_edit(file):
        long = []
        # Links are not visited: cutting a link's target cuts the series that link to it.
        file[EYE].visititems(lambda name, item: long.append(item.name) if isinstance(item, h5py.Dataset)
                             and item.ndim and item.shape[0] > frames else None)
        for location in long:
            replace_dataset(file, location, file[location][:frames])
        if edit is not None:
            edit(file)

    return trimmed_copy(vbn_session, tmp_path, [EYE], cut_then_edit, extensions=("ndx-ellipse-eye-tracking",))


@pytest.fixture(scope="module")
def converted(vbn_session, tmp_path_factory):
    """The eye tracking of the generated session, written with write_nwbfile_atomically and opened with h5py.

    Read with h5py rather than pynwb so that the test sees what is stored, links included.
    """
    nwbfile = NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc),
                      source_script=provenance_record(ALLEN_DATASET, native_ids={}, data_revision=None),
                      source_script_file_name="nwbridge")
    AllenEyeTrackingInterface(vbn_session.session_file).add_to_nwbfile(nwbfile)
    path = write_nwbfile_atomically(nwbfile, tmp_path_factory.mktemp("eye")
                                    / "sub-x_ses-y_desc-processed_behavior+ecephys.nwb")
    with h5py.File(path, "r") as file:
        yield file


def test_pupil_areas_round_trip_bit_for_bit(converted, vbn_raw):
    pupil = converted["processing/behavior/pupil"]
    assert set(pupil) == {"pupil_diameter", "pupil_diameter_raw", "pupil_area", "pupil_area_raw"}
    times = vbn_raw[f"{EYE}/eye_tracking/timestamps"][:]
    for name, field in (("pupil_area", "area"), ("pupil_area_raw", "area_raw")):
        source = vbn_raw[f"{PUPIL}/{field}"][:]
        np.testing.assert_array_equal(pupil[name]["data"][:], source)
        assert pupil[name]["data"].attrs["unit"] == "pixels^2"
    # Blinks leave NaN in the filtered area, not in the raw one: the two are not swapped.
    assert np.isnan(pupil["pupil_area"]["data"][:]).any() and not np.isnan(pupil["pupil_area_raw"]["data"][:]).any()
    for name in pupil:
        assert pupil[name]["timestamps"].dtype == times.dtype
        np.testing.assert_array_equal(pupil[name]["timestamps"][:], times)


def test_pupil_diameter_is_the_diameter_of_the_circle_of_the_area(converted, vbn_raw):
    pupil = converted["processing/behavior/pupil"]
    for name, field in (("pupil_diameter", "area"), ("pupil_diameter_raw", "area_raw")):
        area = vbn_raw[f"{PUPIL}/{field}"][:]
        diameter = pupil[name]["data"][:]
        np.testing.assert_array_equal(diameter, 2 * np.sqrt(area / np.pi))
        assert pupil[name]["data"].attrs["unit"] == "pixels"
        assert "2 sqrt(area / pi)" in pupil[name].attrs["description"]
    # AllenSDK's pupil area is that of the circle of the larger semi-axis: the diameter is twice that axis,
    # a value of the source the formula was not computed from.
    width, height = vbn_raw[f"{PUPIL}/width"][:], vbn_raw[f"{PUPIL}/height"][:]
    fitted = ~np.isnan(width)
    np.testing.assert_allclose(pupil["pupil_diameter"]["data"][:][fitted], 2 * np.maximum(width, height)[fitted],
                               rtol=1e-12)


def test_ellipse_centres_round_trip_bit_for_bit(converted, vbn_raw):
    tracking = converted["processing/behavior/eye_tracking"]
    assert tracking.attrs["neurodata_type"] == "EyeTracking"
    assert set(tracking) == {f"{part}_center" for part in SOURCE_PARTS}
    for part, source_name in SOURCE_PARTS.items():
        series = tracking[f"{part}_center"]
        assert series.attrs["neurodata_type"] == "SpatialSeries"
        np.testing.assert_array_equal(series["data"][:], vbn_raw[f"{EYE}/{source_name}/data"][:])
        np.testing.assert_array_equal(series["timestamps"][:], vbn_raw[f"{EYE}/{source_name}/timestamps"][:])


def test_ellipse_shapes_and_blinks_round_trip_bit_for_bit(converted, vbn_raw):
    ellipses = converted["processing/behavior/eye_ellipses"]
    expected = {"likely_blink"}
    for part, source_name in SOURCE_PARTS.items():
        fields = ("width", "height", "angle") + (() if part == "pupil" else ("area", "area_raw"))
        for field in fields:
            series = ellipses[f"{part}_{field}"]
            np.testing.assert_array_equal(series["data"][:], vbn_raw[f"{EYE}/{source_name}/{field}"][:])
            np.testing.assert_array_equal(series["timestamps"][:], vbn_raw[f"{EYE}/{source_name}/timestamps"][:])
            expected.add(f"{part}_{field}")
    assert set(ellipses) == expected
    blink = ellipses["likely_blink"]
    assert blink["data"].dtype == bool
    np.testing.assert_array_equal(blink["data"][:], vbn_raw[f"{EYE}/likely_blink/data"][:])
    assert blink["data"][:].any() and not blink["data"][:].all()
    np.testing.assert_array_equal(blink["timestamps"][:], vbn_raw[f"{EYE}/likely_blink/timestamps"][:])


def test_pixels_not_meters(converted, vbn_raw):
    """The source says "meters"; its values are pixels. Nothing is converted, and the output says pixels."""
    assert {vbn_raw[f"{EYE}/{name}/data"].attrs["unit"] for name in SOURCE_PARTS.values()} == {"meters"}
    # Pixel-sized values: an eye tens of pixels wide, not tens of metres.
    assert 10 < np.nanmedian(vbn_raw[f"{EYE}/eye_tracking/width"][:]) < 1000
    expected_units = {"center": "pixels", "width": "pixels", "height": "pixels", "area": "pixels^2",
                      "area_raw": "pixels^2", "diameter": "pixels", "diameter_raw": "pixels", "angle": "radians"}
    checked = 0
    for container in ("pupil", "eye_tracking", "eye_ellipses"):
        for name, series in converted[f"processing/behavior/{container}"].items():
            if name == "likely_blink":
                continue
            suffix = next(key for key in sorted(expected_units, key=len, reverse=True) if name.endswith(key))
            assert series["data"].attrs["unit"] == expected_units[suffix], name
            description = series.attrs["description"]
            assert '"meters"' in description and ("pixels" in description or suffix == "angle"), name
            checked += 1
    assert checked == 4 + 3 + 3 * 3 + 2 * 2


def test_eye_camera_frame_times_without_video(converted, vbn_raw):
    video = converted["acquisition/video_eye_camera"]
    assert video.attrs["neurodata_type"] == "ImageSeries"
    np.testing.assert_array_equal(video["timestamps"][:], vbn_raw[f"{EYE}/eye_tracking/timestamps"][:])
    assert video["format"][()].decode() == "external"
    assert len(video["external_file"]) == 0 and len(video["external_file"].attrs["starting_frame"]) == 0
    assert "no file is referenced" in video.attrs["description"]


def test_times_are_stored_once(converted):
    stored = []
    converted.visit(lambda name: stored.append(name) if name.endswith("/timestamps")
                    and isinstance(converted.get(name, getlink=True), h5py.HardLink) else None)
    assert stored == ["processing/behavior/pupil/pupil_diameter/timestamps"]


def test_checker_passes_the_eye_tracking(converted):
    report = check_file(converted.filename)
    assert report.source == "allen"
    for name in ("processing/behavior/pupil", "processing/behavior/eye_tracking", "processing/behavior/eye_ellipses",
                 "acquisition/video_eye_camera"):
        result = report.result(name)
        assert result.status == "pass" and not result.notes, (name, result.messages, result.notes)
    assert not report.extras


def new_nwbfile() -> NWBFile:
    return NWBFile(session_description="t", identifier="t", session_start_time=datetime.now(timezone.utc))


# The variations below are checked in memory: writing is the same as above.

def test_camera_frames_can_be_left_out(vbn_session, tmp_path):
    nwbfile = new_nwbfile()
    AllenEyeTrackingInterface(eye_copy(vbn_session, tmp_path)).add_to_nwbfile(nwbfile, camera_frames=False)
    assert not nwbfile.acquisition
    assert set(nwbfile.processing["behavior"].data_interfaces) == {"pupil", "eye_tracking", "eye_ellipses"}


def test_parts_with_times_of_their_own_keep_them(vbn_session, vbn_raw, tmp_path):
    times = vbn_raw[f"{EYE}/eye_tracking/timestamps"][:600] + 0.004
    path = eye_copy(vbn_session, tmp_path, lambda file: replace_dataset(file, f"{PUPIL}/timestamps", times))
    nwbfile = new_nwbfile()
    AllenEyeTrackingInterface(path).add_to_nwbfile(nwbfile)
    behavior = nwbfile.processing["behavior"]
    np.testing.assert_array_equal(behavior["pupil"]["pupil_diameter"].timestamps[:], times)
    np.testing.assert_array_equal(behavior["eye_tracking"]["pupil_center"].timestamps[:], times)
    np.testing.assert_array_equal(behavior["eye_tracking"]["eye_center"].timestamps[:],
                                  vbn_raw[f"{EYE}/eye_tracking/timestamps"][:600])


def _area_raw_optional(file) -> None:
    """Make ``area_raw`` optional in the file's cached extension, as in versions of it without that dataset."""
    location = "specifications/ndx-ellipse-eye-tracking/0.1.0/ndx-ellipse-eye-tracking.extensions"
    extension = json.loads(file[location][()])
    for group in extension["groups"]:
        for dataset in group.get("datasets", []):
            if dataset["name"] == "area_raw":
                dataset["quantity"] = "?"
    replace_dataset(file, location, json.dumps(extension))


def test_area_raw_of_the_eye_is_optional(vbn_session, tmp_path):
    def change(file):
        _area_raw_optional(file)
        del file[f"{EYE}/eye_tracking/area_raw"]

    nwbfile = new_nwbfile()
    AllenEyeTrackingInterface(eye_copy(vbn_session, tmp_path, change)).add_to_nwbfile(nwbfile)
    ellipses = nwbfile.processing["behavior"]["eye_ellipses"]
    assert "eye_area" in ellipses.time_series and "eye_area_raw" not in ellipses.time_series
    assert "corneal_reflection_area_raw" in ellipses.time_series


def _no_pupil_area_raw(file):
    _area_raw_optional(file)
    del file[f"{PUPIL}/area_raw"]


def _negative_area(file):
    area = file[f"{PUPIL}/area_raw"][:]
    area[10] = -area[10]
    replace_dataset(file, f"{PUPIL}/area_raw", area)


def _nan_blink(file):
    blinks = file[f"{EYE}/likely_blink/data"][:].astype(np.float64)
    blinks[3] = np.nan
    replace_dataset(file, f"{EYE}/likely_blink/data", blinks)


@pytest.mark.parametrize("change, problem", [
    (lambda file: replace_dataset(file, f"{PUPIL}/area", file[f"{PUPIL}/area"][:-1]), "pupil_tracking/area"),
    (lambda file: replace_dataset(file, f"{EYE}/eye_tracking/data", file[f"{EYE}/eye_tracking/data"][:, 0]),
     "x 2"),
    (_negative_area, "negative"),
    (lambda file: file[f"{EYE}/corneal_reflection_tracking/data"].attrs.__setitem__("unit", "cm"), "'cm'"),
    (_no_pupil_area_raw, "pupil_tracking has no area_raw"),
    (lambda file: file[f"{EYE}/eye_tracking/timestamps"].__setitem__(9, 0.0), "go backwards"),
    (_nan_blink, "likely_blink"),
], ids=["area-length", "centre-shape", "negative-area", "unit", "no-pupil-area-raw", "backwards", "nan-blink"])
def test_inconsistent_eye_tracking_names_the_file(vbn_session, tmp_path, change, problem):
    path = eye_copy(vbn_session, tmp_path, change)
    with pytest.raises(SourceFileError, match=problem) as error:
        AllenEyeTrackingInterface(path).add_to_nwbfile(new_nwbfile())
    assert error.value.path == path.resolve()


def test_availability(vbn_session, vbn_source, tmp_path):
    assert AllenEyeTrackingInterface.is_available(vbn_source)
    assert not AllenEyeTrackingInterface.is_available(
        open_allen_file(trimmed_copy(vbn_session, tmp_path, ["processing/running"])))
