"""The release's upload stage: organize, validate per file, send a few at a time, record, never send twice."""

from __future__ import annotations

import csv
import os
import threading
import time

import pytest
from click.testing import CliRunner
from support.dandi_files import allen_names, ibl_name

import nwbridge.dandi_upload as dandi_upload
from nwbridge.cli import main
from nwbridge.converters.manifest import Manifest
from nwbridge.converters.release import release_status
from nwbridge.converters.release_upload import upload_release
from nwbridge.dandi_upload import DandiWorkflowError, plan_upload

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
API = "https://api.sandbox.dandiarchive.org/api"


@pytest.fixture
def sender(monkeypatch):
    """Stand in for dandi-cli's transfer (tested up to the network in tests/dandi_upload): record what is sent."""
    sent, failing, lock = [], set(), threading.Lock()
    state = {"running": 0, "most": 0}

    def upload_assets(filepaths, *, instance, existing, jobs, jobs_per_file):
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        time.sleep(0.05)
        with lock:
            state["running"] -= 1
        (path,) = filepaths
        if path.name in failing:
            raise DandiWorkflowError(f"upload to {instance.name} ({instance.api}) failed: HTTPError: 503")
        with lock:
            sent.append((path, instance.api, existing))

    monkeypatch.setattr(dandi_upload, "upload_assets", upload_assets)
    monkeypatch.setenv("DANDI_SANDBOX_API_KEY", "0123456789abcdef")
    return sent, failing, state


def uploads(folder):
    with Manifest.in_folder(folder, readonly=True) as manifest:
        return {record.path: record for record in manifest.upload_records()}


def test_stage_uploads_each_file_once_and_records_it(converted, dandiset, sender):
    sent, failing, state = sender
    failing.add(next(path.name for path in dandiset.rglob("*desc-raw*.nwb")))
    # A file cut short: organize cannot read it (it stays where it is) and validation refuses it.
    truncated = dandiset / "sub-524761" / "sub-524761_ses-9_desc-processed_behavior.nwb"
    truncated.write_bytes(converted.allen_raw.read_bytes()[:4096])
    broken = truncated.relative_to(dandiset).as_posix()

    report = upload_release(dandiset, "000409", instance="dandi-sandbox", jobs=2, progress=False)

    processed, raw = allen_names(converted)
    assets = [asset.path for asset in plan_upload(dandiset)]
    assert (dandiset / ibl_name()).is_file() and len(assets) == 7  # organized first
    assert [path for path, _ in report.refused] == [broken] and "validation error" in report.refused[0][1]
    failed = dict(report.failed)
    assert set(failed) == {raw, str(truncated)}
    assert "503" in failed[raw] and failed[str(truncated)].startswith("not organized: not readable as NWB")
    assert sorted(report.uploaded) == sorted(set(assets) - {broken, raw})
    assert sorted(path.relative_to(dandiset).as_posix() for path, _, _ in sent) == sorted(report.uploaded)
    assert {(api, existing) for _, api, existing in sent} == {(API, "skip")}
    assert state["most"] == 2  # throttled to jobs, and used them
    records = uploads(dandiset)
    assert {path: record.status for path, record in records.items()} == {
        **{path: "uploaded" for path in report.uploaded}, broken: "refused", raw: "failed"}
    assert records[processed].size == (dandiset / processed).stat().st_size
    assert all(record.attempts == 1 and record.dandiset == "000409" for record in records.values())
    assert not report.ok and "refused by validation: 1, failed: 2" in report.format()

    # A rerun sends only what failed; the refused file is refused again; nothing is sent twice.
    failing.clear()
    sent.clear()
    again = upload_release(dandiset, "000409", instance="dandi-sandbox", progress=False)
    assert [path.relative_to(dandiset).as_posix() for path, _, _ in sent] == [raw]
    assert sorted(again.already) == sorted(report.uploaded) and again.uploaded == [raw]
    assert uploads(dandiset)[raw].status == "uploaded" and uploads(dandiset)[raw].attempts == 2

    # A file changed since its upload (converted again) is sent again.
    (dandiset / processed).touch()
    os.utime(dandiset / processed, ns=(0, (dandiset / processed).stat().st_mtime_ns + 10**9))
    sent.clear()
    upload_release(dandiset, "000409", instance="dandi-sandbox", progress=False)
    assert [path.relative_to(dandiset).as_posix() for path, _, _ in sent] == [processed]

    status = release_status(dandiset)
    assert f"uploads to dandiset 000409 ({API}): 6 uploaded, 1 refused by validation, 0 failed" in status
    assert f"refused {broken}:" in status


def test_stage_checks_the_target_first(dandiset, monkeypatch):
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    with pytest.raises(DandiWorkflowError, match="DANDI_API_KEY"):
        upload_release(dandiset, "000409", progress=False)
    with pytest.raises(DandiWorkflowError, match="not a dandiset identifier"):
        upload_release(dandiset, "draft", progress=False)
    # Nothing was organized: the checks come first.
    assert not (dandiset / ibl_name()).exists() and not (dandiset / "dandiset.yaml").exists()


def write_release(root, *, eid):
    from nwbridge.testing import make_ibl_session

    make_ibl_session(root, lab="cortexlab", subject="KS055", date="2021-05-10", number=1, eid=eid, n_trials=40,
                     duration_s=600, cameras=(), passive=False, probes=("probe00",), n_units=20, seed=5)
    table = root / "release.csv"
    with open(table, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["", "pid", "eid", "probe_name", "session_number", "date", "subject", "lab"])
        writer.writerow([0, "00000000-1111-4000-8000-000000000000", eid, "probe00", 1, "2021-05-10", "KS055",
                         "cortexlab"])
    return table


def test_release_with_upload_converts_organizes_and_uploads(tmp_path, sender):
    sent, _, _ = sender
    eid = "00000000-0000-4000-8000-00000000aaaa"
    table = write_release(tmp_path / "ibl", eid=eid)
    output = tmp_path / "dandiset"
    arguments = ["release", "ibl", "--sessions", str(table), "--source", str(tmp_path / "ibl"), "-o", str(output),
                 "--workers", "1", "--no-progress", "--upload", "000409", "--dandi-instance", "dandi-sandbox"]

    result = CliRunner().invoke(main, arguments)

    assert result.exit_code == 0, result.output
    name = f"sub-KS055/sub-KS055_ses-{eid}_desc-processed_behavior+ecephys.nwb"
    assert (output / name).is_file()
    assert [path.relative_to(output).as_posix() for path, _, _ in sent] == [name]
    assert "uploaded: 1, already uploaded: 0, refused by validation: 0, failed: 0" in result.output
    with Manifest.in_folder(output, readonly=True) as manifest:
        (record,) = manifest.records()
    assert record.status == "done" and record.output == str(output / name)

    # Rerun: nothing converted, nothing sent.
    sent.clear()
    again = CliRunner().invoke(main, arguments)
    assert again.exit_code == 0, again.output
    assert sent == [] and "uploaded: 0, already uploaded: 1" in again.output


def test_release_with_upload_stops_before_converting_without_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    table = write_release(tmp_path / "ibl", eid="00000000-0000-4000-8000-00000000bbbb")
    output = tmp_path / "dandiset"
    result = CliRunner().invoke(main, ["release", "ibl", "--sessions", str(table), "--source", str(tmp_path / "ibl"),
                                       "-o", str(output), "--upload", "000409", "--no-progress"])
    assert result.exit_code == 1
    assert "DANDI_API_KEY" in result.output
    assert not output.exists()
