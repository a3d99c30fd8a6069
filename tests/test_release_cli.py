"""``nwbridge release``: dry runs, status, the summary, and bad input (no conversion needs a cluster here)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import nwbridge
from nwbridge.converters.manifest import Manifest
from nwbridge.converters.release import release_lock
from nwbridge.converters.release_plan import plan_tasks
from nwbridge.converters.release_sources import locate_ibl_session, read_ibl_release
from nwbridge.release_cli import release
from nwbridge.summary import human_size
from nwbridge.testing import make_ibl_session, make_vbn_session

VBN_TABLE = Path(nwbridge.__file__).parent / "testing" / "data" / "allen" / "vbn_ecephys_sessions.csv"
EIDS = ["11111111-0000-4000-8000-000000000001", "11111111-0000-4000-8000-000000000002",
        "11111111-0000-4000-8000-000000000003"]


@pytest.fixture(scope="module")
def ibl_release(tmp_path_factory):
    """Two generated sessions (the first with raw data) and a third the list names but the cache lacks."""
    root = tmp_path_factory.mktemp("one_cache")
    make_ibl_session(root, lab="cortexlab", subject="KS055", date="2021-05-10", eid=EIDS[0], n_trials=20,
                     duration_s=300, cameras=(), passive=False, probes=("probe00",), n_units=10, raw_ephys=True,
                     raw_duration_s=1, seed=1)
    make_ibl_session(root, lab="danlab", subject="DY_013", date="2020-03-12", eid=EIDS[1], n_trials=20,
                     duration_s=300, cameras=(), passive=False, probes=("probe00",), n_units=10, seed=2)
    table = root / "release.csv"
    with open(table, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["", "pid", "eid", "probe_name", "session_number", "date", "subject", "lab"])
        writer.writerow([0, "p0", EIDS[0], "probe00", 1, "2021-05-10", "KS055", "cortexlab"])
        writer.writerow([1, "p1", EIDS[1], "probe00", 1, "2020-03-12", "DY_013", "danlab"])
        writer.writerow([2, "p2", EIDS[2], "probe01", 2, "2020-03-12", "DY_013", "danlab"])
    return table, root


def invoke(*arguments):
    return CliRunner().invoke(release, [str(argument) for argument in arguments])


def task_line(output: str, eid: str, kind: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(eid) and f" {kind} " in line)


def test_dry_run_lists_every_task_with_its_input_size_and_writes_nothing(ibl_release, tmp_path):
    table, root = ibl_release
    result = invoke("ibl", "--sessions", table, "--source", root, "-o", tmp_path / "out", "--raw", "--dry-run")
    assert result.exit_code == 0, result.output
    tasks = plan_tasks([locate_ibl_session(entry, root) for entry in read_ibl_release(table)], tmp_path / "out",
                       raw=True)
    assert len(tasks) == 6
    for task in tasks:
        line = task_line(result.output, task.session.session_id, task.kind)
        assert human_size(task.input_bytes) in line
        assert ("not found" in line) == (task.session.session_id == EIDS[2])
        assert task.session.label in line
    assert f"{root}/danlab/Subjects/DY_013/2020-03-12/002" in task_line(result.output, EIDS[2], "processed")
    runnable = [task for task in tasks if task.session.found]
    assert (f"Would convert {len(runnable)} task(s) of 2 session(s): "
            f"{human_size(sum(task.input_bytes for task in runnable))} of input") in result.output
    assert "Not found (would be recorded as failed): 2" in result.output
    assert not (tmp_path / "out").exists()

    only = invoke("ibl", "--sessions", table, "--source", root, "-o", tmp_path / "out", "--only", EIDS[1],
                  "--dry-run")
    assert only.exit_code == 0 and EIDS[1] in only.output and EIDS[0] not in only.output


def test_dry_run_reads_the_manifest_of_earlier_runs(ibl_release, tmp_path):
    table, root = ibl_release
    output = tmp_path / "out"
    sessions = [locate_ibl_session(entry, root) for entry in read_ibl_release(table)]
    done, failed = plan_tasks(sessions[:2], output, raw=False)
    done.output.parent.mkdir(parents=True)
    done.output.write_bytes(b"0123456789")
    with Manifest.in_folder(output) as manifest:
        for task in (done, failed):
            manifest.register(task.key, source=task.session.source, output=task.output, input_bytes=task.input_bytes)
            manifest.start(task.key)
        manifest.finish(done.key, output=done.output, output_bytes=10, checksum="x", nwbridge_version="1",
                        duration_s=1.0)
        manifest.fail(failed.key, error="bad trials", error_file="/x")
    result = invoke("ibl", "--sessions", table, "--source", root, "-o", output, "--dry-run")
    assert task_line(result.output, EIDS[0], "processed").endswith("done")
    assert "failed earlier" in task_line(result.output, EIDS[1], "processed")
    assert "Already done: 1. Failed earlier (retried only with --retry-failed): 1." in result.output
    retry = invoke("ibl", "--sessions", table, "--source", root, "-o", output, "--dry-run", "--retry-failed")
    assert "convert (retrying)" in task_line(retry.output, EIDS[1], "processed")
    # A file recorded done that changed is converted again.
    done.output.write_bytes(b"012345678")
    changed = invoke("ibl", "--sessions", table, "--source", root, "-o", output, "--dry-run")
    assert "changed size" in task_line(changed.output, EIDS[0], "processed")


def test_status_prints_counts_and_failures(tmp_path):
    with Manifest.in_folder(tmp_path) as manifest:
        manifest.set_about("sessions_table", "/tables/release.csv")
        for index, status in enumerate(["done", "done", "failed", "running", "pending"]):
            key = ("allen", f"10000000{index}", "processed")
            manifest.register(key, source=f"/cache/{index}", output=f"/out/{index}.nwb", input_bytes=10)
            if status != "pending":
                manifest.start(key)
            if status == "done":
                manifest.finish(key, output=f"/out/{index}.nwb", output_bytes=2048, checksum="c",
                                nwbridge_version="1", duration_s=1.0)
            if status == "failed":
                manifest.fail(key, error="/cache/2/ecephys_session_2.nwb: truncated HDF5 file\ndetails",
                              error_file="/cache/2/ecephys_session_2.nwb")
    result = invoke("status", tmp_path)
    assert result.exit_code == 0, result.output
    row = next(line.split() for line in result.output.splitlines() if line.strip().startswith("allen"))
    assert row == ["allen", "processed", "1", "1", "2", "1", "4.0", "KB"]
    assert "100000002 processed (attempts 1): /cache/2/ecephys_session_2.nwb: truncated HDF5 file" in result.output
    assert "details" not in result.output
    assert "1 task(s) were running when a release stopped" in result.output
    assert "sessions: 2 of 5 complete" in result.output
    missing = invoke("status", tmp_path / "sub")
    assert missing.exit_code != 0


def test_release_of_missing_sessions_ends_with_the_summary_and_fails(ibl_release, tmp_path):
    table, _ = ibl_release
    empty = tmp_path / "empty_cache"
    empty.mkdir()
    result = invoke("ibl", "--sessions", table, "--source", empty, "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == 1
    assert "Release summary" in result.output
    row = next(line.split() for line in result.output.splitlines() if line.strip().startswith("processed"))
    assert row[:4] == ["processed", "0", "0", "3"]
    assert f"session not found at {empty}/cortexlab/Subjects/KS055/2021-05-10/001" in result.output
    with Manifest.in_folder(tmp_path / "out", readonly=True) as manifest:
        assert {record.status for record in manifest.records()} == {"failed"}
    status = invoke("status", tmp_path / "out")
    assert "sessions: 0 of 3 complete" in status.output


def test_bad_tables_options_and_a_busy_output_folder_are_clear_errors(ibl_release, tmp_path):
    table, root = ibl_release
    broken = tmp_path / "release.csv"
    pd.read_csv(table).drop(columns=["subject"]).to_csv(broken, index=False)
    result = invoke("ibl", "--sessions", broken, "--source", root, "-o", tmp_path / "out", "--dry-run")
    assert result.exit_code == 1 and f"{broken}: missing column(s) subject: the IBL release list needs pid, eid" in result.output
    unknown = invoke("ibl", "--sessions", table, "--source", root, "-o", tmp_path / "out", "--only", "nope",
                     "--dry-run")
    assert unknown.exit_code == 2 and "not in" in unknown.output and "nope" in unknown.output
    with release_lock(tmp_path / "busy"):
        busy = invoke("ibl", "--sessions", table, "--source", root, "-o", tmp_path / "busy", "--no-progress")
    assert busy.exit_code == 1 and "another release is writing into" in busy.output


def test_allen_dry_run_finds_sessions_and_lfp_files_in_the_cache_layout(tmp_path):
    table = pd.read_csv(VBN_TABLE).iloc[:2]
    table.to_csv(tmp_path / "ecephys_sessions.csv", index=False)
    with_lfp, without = (str(value) for value in table["ecephys_session_id"])
    cache = tmp_path / "cache"
    session = make_vbn_session(cache / "behavior_ecephys_sessions" / with_lfp, ecephys_session_id=int(with_lfp),
                               probes=("probeA",), n_units_per_probe=5, duration_s=100, lfp_channels=4,
                               lfp_duration_s=5)
    result = invoke("allen", "--sessions", tmp_path / "ecephys_sessions.csv", "--source", cache, "-o",
                    tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert human_size(session.session_file.stat().st_size) in task_line(result.output, with_lfp, "processed")
    assert human_size(sum(p.stat().st_size for p in session.probe_files.values())) in task_line(result.output,
                                                                                                with_lfp, "raw")
    expected = cache / "behavior_ecephys_sessions" / without / f"ecephys_session_{without}.nwb"
    assert f"not found (session not found at {expected})" in task_line(result.output, without, "processed")
    no_lfp = invoke("allen", "--sessions", tmp_path / "ecephys_sessions.csv", "--source", cache, "-o",
                    tmp_path / "out", "--dry-run", "--no-lfp")
    assert " raw " not in no_lfp.output
