"""``validate_dandiset`` and ``nwbridge dandi validate``: dandi-cli's validation and nwbridge's check, per file."""

from __future__ import annotations

import shutil

import h5py
import pytest
from click.testing import CliRunner
from support.dandi_files import allen_names, ibl_name

from nwbridge.cli import main
from nwbridge.dandi_upload import organize_dandiset, validate_dandiset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def organized(dandiset):
    report = organize_dandiset(dandiset, dandiset_id="000409")
    assert report.ok
    return dandiset


def test_organized_sessions_of_both_sources_validate(converted, organized):
    validation = validate_dandiset(organized)

    assert validation.ok, validation.format()
    processed, raw = allen_names(converted)
    videos = sorted(path.relative_to(organized).as_posix() for path in organized.rglob("*.mp4"))
    assert len(videos) == 3
    assert [item.path for item in validation.files] == sorted([ibl_name(), processed, raw, *videos])
    by_path = {item.path: item for item in validation.files}
    for name in (ibl_name(), processed, raw):
        assert by_path[name].check == "ok" and by_path[name].errors == []
        assert by_path[name].size == (organized / name).stat().st_size
    for video in videos:
        assert by_path[video].check == "-" and by_path[video].ok
    # dandi-cli's nwbinspector pass is there: the Allen raw file's LFP timestamps are regular (a warning).
    assert any(message.code == "NWBI.check_regular_timestamps" for message in by_path[raw].warnings)
    text = validation.format()
    assert text.splitlines()[0].split() == ["file", "size", "dandi", "validate", "nwbridge", "check", "result"]
    assert f"validate: 6 item(s), 6 ok, 0 with errors ({organized})" in text


def test_errors_of_both_validators_are_reported_per_file(converted, organized):
    processed, _ = allen_names(converted)
    # A file outside the DANDI layout (dandi-cli's error) ...
    misplaced = organized / "extras" / "notes.nwb"
    misplaced.parent.mkdir()
    shutil.copy(organized / processed, misplaced)
    # ... and a file in the layout that lacks the trials the representation requires (nwbridge's error).
    incomplete = organized / processed.replace("_ses-1044385384_", "_ses-1044385385_")
    shutil.copy(organized / processed, incomplete)
    with h5py.File(incomplete, "r+") as file:
        del file["intervals/trials"]

    validation = validate_dandiset(organized, jobs=2)

    assert not validation.ok
    by_path = {item.path: item for item in validation.files}
    assert {path for path, _ in validation.errors} == {"extras/notes.nwb", incomplete.relative_to(organized).as_posix()}
    assert {message.code for message in by_path["extras/notes.nwb"].errors} >= {"DANDI.NON_DANDI_FOLDERNAME",
                                                                                "DANDI.NON_DANDI_FILENAME"}
    bad = by_path[incomplete.relative_to(organized).as_posix()]
    assert bad.check.endswith("failed") and any("intervals/trials" in message.text for message in bad.check_messages)
    assert by_path[processed].ok and by_path[ibl_name()].ok
    text = validation.format()
    assert "ERRORS" in text and "DANDI.NON_DANDI_FOLDERNAME" in text and "with errors" in text


def test_a_folder_without_dandiset_yaml_is_an_error(dandiset):
    validation = validate_dandiset(dandiset, paths=[next(dandiset.rglob("*desc-raw*.nwb"))])
    assert not validation.ok
    first = validation.files[0]
    assert first.path == "dandiset.yaml" and first.errors[0].code == "DANDI.NO_DANDISET_FOUND"
    assert "--dandiset-id" in first.errors[0].text
    # Said once, not once per file.
    assert sum(message.code == "DANDI.NO_DANDISET_FOUND" for _, message in validation.errors) == 1


def test_cli_organize_then_validate(converted, dandiset):
    runner = CliRunner()
    organized = runner.invoke(main, ["dandi", "organize", str(dandiset), "--dandiset-id", "000409", "--no-progress"])
    assert organized.exit_code == 0, organized.output
    assert "organize: 2 file(s) organized, 1 already in place, 0 failed" in organized.output
    assert (dandiset / ibl_name()).is_file()

    valid = runner.invoke(main, ["dandi", "validate", str(dandiset), "--no-progress"])
    assert valid.exit_code == 0, valid.output
    assert "6 ok, 0 with errors" in valid.output

    broken = dandiset / "extras" / "notes.nwb"
    broken.parent.mkdir()
    shutil.copy(dandiset / allen_names(converted)[1], broken)
    invalid = runner.invoke(main, ["dandi", "validate", str(dandiset), "--no-progress"])
    assert invalid.exit_code == 1
    assert "extras/notes.nwb:" in invalid.output and "1 with errors" in invalid.output
