"""``organize_dandiset`` on converted IBL (with videos) and Allen sessions: names, videos, re-runs, bad input."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from pynwb import NWBHDF5IO
from support.dandi_files import IBL_EID, allen_names, ibl_name, moved

from nwbridge.converters.manifest import Manifest
from nwbridge.dandi_upload import DandiWorkflowError, organize_dandiset, read_dandiset_id
from nwbridge.dandi_upload.organize import nwbridge_file_kind

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CAMERAS = ("left", "right", "body")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_videos(path: Path) -> dict:
    """camera -> (object_id, external_file list, timestamps) of the file's video series."""
    with NWBHDF5IO(path, "r") as io:
        nwbfile = io.read()
        return {camera: (nwbfile.acquisition[f"video_{camera}_camera"].object_id,
                         list(nwbfile.acquisition[f"video_{camera}_camera"].external_file),
                         nwbfile.acquisition[f"video_{camera}_camera"].timestamps[:])
                for camera in CAMERAS}


def test_files_get_dandi_names_and_videos_move_beside_them(converted, dandiset):
    before = read_videos(moved(converted, converted.ibl_processed, dandiset))
    with NWBHDF5IO(moved(converted, converted.ibl_processed, dandiset), "r") as io:
        spike_times_before = io.read().units["spike_times"].data[:]
    raw_sha = sha256(moved(converted, converted.allen_raw, dandiset))

    report = organize_dandiset(dandiset, dandiset_id="000409")

    assert report.ok
    assert read_dandiset_id(dandiset) == "000409"
    processed_name, raw_name = allen_names(converted)
    nwb_files = sorted(path.relative_to(dandiset).as_posix() for path in dandiset.rglob("*.nwb"))
    assert nwb_files == sorted([ibl_name(), processed_name, raw_name])
    # The raw file's name was already dandi-cli's and it references no video: left untouched.
    assert report.unchanged == [dandiset / raw_name]
    assert sha256(dandiset / raw_name) == raw_sha

    ibl = dandiset / ibl_name()
    after = read_videos(ibl)
    folder = ibl.with_suffix("")
    for camera in CAMERAS:
        object_id, external, timestamps = after[camera]
        assert object_id == before[camera][0]
        # dandi-cli's layout: <file name>/<ImageSeries object_id>_external_file_0.mp4, relative to the file.
        assert external == [f"{folder.name}/{object_id}_external_file_0.mp4"]
        video = ibl.parent / external[0]
        assert video.read_bytes() == converted.videos[camera].read_bytes()
        np.testing.assert_array_equal(timestamps, before[camera][2])
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        f"{after[camera][0]}_external_file_0.mp4" for camera in CAMERAS)
    # The converter's video folder is gone; nothing temporary is left.
    assert not moved(converted, converted.ibl_processed, dandiset).with_suffix("").exists()
    assert not list(dandiset.rglob("*.organizing"))
    with NWBHDF5IO(ibl, "r") as io:
        np.testing.assert_array_equal(io.read().units["spike_times"].data[:], spike_times_before)

    moves = {(item.source.relative_to(dandiset).as_posix(), item.target.relative_to(dandiset).as_posix())
             for item in report.organized}
    assert moves == {(moved(converted, converted.ibl_processed, dandiset).relative_to(dandiset).as_posix(), ibl_name()),
                     (moved(converted, converted.allen_processed, dandiset).relative_to(dandiset).as_posix(),
                      processed_name)}
    assert "organize: 2 file(s) organized, 1 already in place, 0 failed" in report.format()


def test_organizing_again_changes_nothing(dandiset):
    organize_dandiset(dandiset, dandiset_id="000409")
    state = {path: (path.stat().st_mtime_ns, sha256(path)) for path in dandiset.rglob("*") if path.is_file()}

    again = organize_dandiset(dandiset, jobs=2)

    assert again.organized == [] and again.failed == [] and len(again.unchanged) == 3
    assert {path: (path.stat().st_mtime_ns, sha256(path)) for path in dandiset.rglob("*") if path.is_file()} == state


def test_copy_from_outside_leaves_the_sources_as_they_were(converted, tmp_path):
    target = tmp_path / "000409"
    before = {path: sha256(path) for path in converted.folder.rglob("*") if path.is_file()}

    report = organize_dandiset(target, [converted.folder], mode="copy", dandiset_id="000409")

    assert report.ok and len(report.organized) == 3
    assert {path: sha256(path) for path in converted.folder.rglob("*") if path.is_file()} == before
    ibl = target / ibl_name()
    for camera, (_, external, _) in read_videos(ibl).items():
        assert (ibl.parent / external[0]).read_bytes() == converted.videos[camera].read_bytes()
    # Copied, not renamed in place: the raw file is byte for byte the converter's.
    assert sha256(target / allen_names(converted)[1]) == sha256(converted.allen_raw)


def test_kind_of_a_file_is_told_by_its_name_or_its_content(converted, dandiset, tmp_path):
    assert nwbridge_file_kind(converted.ibl_processed) == "processed"
    assert nwbridge_file_kind(converted.allen_raw) == "raw"
    renamed = tmp_path / "sub-1_ses-2_ecephys.nwb"
    shutil.copy(converted.allen_raw, renamed)
    assert nwbridge_file_kind(renamed) == "raw"
    shutil.copy(converted.allen_processed, renamed)
    assert nwbridge_file_kind(renamed) == "processed"


def test_bad_files_are_reported_and_the_others_are_organized(converted, dandiset):
    truncated = dandiset / "sub-KS055" / "sub-KS055_ses-broken_desc-processed_behavior.nwb"
    truncated.write_bytes(moved(converted, converted.allen_processed, dandiset).read_bytes()[:4096])
    # The IBL file's left camera video is lost: the file cannot be organized with its videos.
    ibl_source = moved(converted, converted.ibl_processed, dandiset)
    lost = ibl_source.with_suffix("") / "video_left_camera.mp4"
    lost.unlink()

    report = organize_dandiset(dandiset, dandiset_id="000409")

    failed = {path: problem for path, problem in report.failed}
    assert set(failed) == {truncated, ibl_source}
    assert "not readable as NWB" in failed[truncated]
    assert f"references the video {lost}, which does not exist" == failed[ibl_source]
    # The failing files are left as they were; the Allen files are organized.
    assert truncated.is_file() and ibl_source.is_file()
    assert sorted(video.name for video in ibl_source.with_suffix("").iterdir()) == [
        "video_body_camera.mp4", "video_right_camera.mp4"]
    processed_name, raw_name = allen_names(converted)
    assert (dandiset / processed_name).is_file() and (dandiset / raw_name).is_file()
    assert not list(dandiset.rglob("*.organizing"))
    assert "FAILED" in report.format() and not report.ok


def test_a_failure_while_rewriting_puts_everything_back(converted, dandiset, monkeypatch):
    import dandi.pynwb_utils

    source = moved(converted, converted.ibl_processed, dandiset)
    state = {path: sha256(path) for path in dandiset.rglob("*") if path.is_file()}

    def broken(*arguments, **options):
        raise OSError("disk full")

    monkeypatch.setattr(dandi.pynwb_utils, "rename_nwb_external_files", broken)
    report = organize_dandiset(dandiset, [source])

    assert report.failed == [(source, "OSError: disk full")]
    assert {path: sha256(path) for path in dandiset.rglob("*") if path.is_file()} == state
    assert not (dandiset / ibl_name()).exists() and not list(dandiset.rglob("*.organizing"))


def test_names_dandi_cannot_make_unique_are_an_error(converted, tmp_path):
    first, second = tmp_path / "a" / "one.nwb", tmp_path / "b" / "two.nwb"
    for path in (first, second):
        path.parent.mkdir()
        shutil.copy(converted.allen_raw, path)
    # Same subject, session, kind and modalities, same object ids: dandi-cli refuses, and says why.
    with pytest.raises(DandiWorkflowError, match="unique names"):
        organize_dandiset(tmp_path / "dandiset", [first, second], mode="copy")
    with pytest.raises(DandiWorkflowError, match="no such file or folder"):
        organize_dandiset(tmp_path / "dandiset", [tmp_path / "missing"])
    with pytest.raises(DandiWorkflowError, match="not a dandiset identifier"):
        organize_dandiset(tmp_path / "dandiset", [first], dandiset_id="409")


def test_the_release_manifest_follows_the_files(converted, dandiset):
    source = moved(converted, converted.ibl_processed, dandiset)
    raw = moved(converted, converted.allen_raw, dandiset)
    with Manifest.in_folder(dandiset) as manifest:
        for key, path in ((("ibl", IBL_EID, "processed"), source), (("allen", "1044385384", "raw"), raw)):
            manifest.register(key, source="somewhere", output=path, input_bytes=1)
            manifest.finish(key, output=path, output_bytes=path.stat().st_size, checksum=sha256(path),
                            nwbridge_version="test", duration_s=1.0)

    organize_dandiset(dandiset, dandiset_id="000409")

    with Manifest.in_folder(dandiset, readonly=True) as manifest:
        ibl = manifest.get(("ibl", IBL_EID, "processed"))
        allen = manifest.get(("allen", "1044385384", "raw"))
    target = dandiset / ibl_name()
    assert Path(ibl.output) == target
    assert ibl.output_bytes == target.stat().st_size and ibl.checksum == sha256(target)
    assert Path(allen.output) == raw and allen.checksum == sha256(raw)


def test_organize_waits_for_no_release(converted, dandiset):
    from nwbridge.converters.release import release_lock

    with Manifest.in_folder(dandiset):
        pass
    with release_lock(dandiset):
        with pytest.raises(DandiWorkflowError, match="cannot organize now: another release is writing"):
            organize_dandiset(dandiset)
    assert moved(converted, converted.ibl_processed, dandiset).is_file()  # nothing moved
    assert organize_dandiset(dandiset).ok
