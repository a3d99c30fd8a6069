"""Whole-release conversion on dask.distributed: release tables, tasks, manifest, failures, kill and resume."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pandas as pd
import pytest

import nwbridge
from nwbridge.converters.manifest import Manifest
from nwbridge.converters.release import release_client, run_release
from nwbridge.converters.release_plan import decide, plan_tasks, verify_output
from nwbridge.converters.release_sources import (input_bytes, locate_allen_session, locate_ibl_session,
                                                 read_ibl_release, read_vbn_sessions)
from nwbridge.converters.release_task import run_task
from nwbridge.errors import SourceFileError
from nwbridge.provenance import file_identifier
from nwbridge.schemas.checker import check_file
from nwbridge.testing import make_ibl_session, make_vbn_session

DATA = Path(__file__).parents[1] / "data"
VBN_TABLE = Path(nwbridge.__file__).parent / "testing" / "data" / "allen" / "vbn_ecephys_sessions.csv"
# Three BWM sessions: lab, subject, date (ids made up; layout and names as the ONE cache has them).
IBL_SESSIONS = [("cortexlab", "KS055", "2021-05-10"), ("churchlandlab", "CSHL049", "2020-01-08"),
                ("danlab", "DY_013", "2020-03-12"), ("hoferlab", "SWC_043", "2020-09-21"),
                ("mainenlab", "ZFM-01935", "2021-02-05")]
SMALL_IBL = dict(n_trials=40, duration_s=600, cameras=(), passive=False, probes=("probe00",), n_units=20,
                 birth_date="2019-06-01")
SMALL_ALLEN = dict(probes=("probeA", "probeB"), n_units_per_probe=10, duration_s=200, lfp_channels=8,
                   lfp_duration_s=20)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_ibl_release(root: Path, count: int, *, raw_for=(), seed=0) -> tuple[Path, list[str]]:
    """``count`` generated sessions in the ONE cache layout under ``root`` and their release list."""
    rows, eids = [], []
    for index, (lab, subject, date) in enumerate(IBL_SESSIONS[:count]):
        eid = f"{seed:08d}-0000-4000-8000-{index:012d}"
        make_ibl_session(root, lab=lab, subject=subject, date=date, number=1, eid=eid, seed=seed + index,
                         raw_ephys=index in raw_for, raw_duration_s=2 if index in raw_for else None, **SMALL_IBL)
        rows.append({"": index, "pid": f"{index:08d}-1111-4000-8000-000000000000", "eid": eid,
                     "probe_name": "probe00", "session_number": 1, "date": date, "subject": subject, "lab": lab})
        eids.append(eid)
    table = root / "release.csv"
    with open(table, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["", "pid", "eid", "probe_name", "session_number", "date", "subject",
                                                  "lab"])
        writer.writeheader()
        writer.writerows(rows)
    return table, eids


def ibl_sessions(table: Path, root: Path):
    return [locate_ibl_session(entry, root) for entry in read_ibl_release(table)]


def manifest_rows(output: Path) -> dict:
    with Manifest.in_folder(output, readonly=True) as manifest:
        return {(record.session, record.kind): record for record in manifest.records()}


def assert_done_and_recorded(record, *, session, kind, dataset):
    """A done task's row tells the truth about its file, and the file is a valid NWB file of the task."""
    output = Path(record.output)
    assert record.status == "done" and record.error is None
    assert record.output_bytes == output.stat().st_size
    assert record.checksum == sha256(output)
    assert record.nwbridge_version == nwbridge.__version__
    assert record.duration_s > 0 and record.started_at <= record.finished_at
    assert record.input_bytes == input_bytes(session, kind) > 0
    assert verify_output(output, file_identifier(dataset, session.session_id, kind)) is None
    report = check_file(output)
    assert report.ok, [(result.name, result.messages) for result in report.failures]
    assert report.file_kind == kind


def no_temporary_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.suffix in (".partial", ".staged")]


# --- release tables ------------------------------------------------------------------------------


def test_real_bwm_release_list_has_459_sessions_and_699_probes():
    entries = read_ibl_release(DATA / "ibl" / "release" / "2023_12_bwm_release.csv")
    assert len(entries) == 459
    assert sum(len(entry.probes) for entry in entries) == 699
    table = pd.read_csv(DATA / "ibl" / "release" / "2023_12_bwm_release.csv")
    first = table.iloc[0]
    entry = next(entry for entry in entries if entry.eid == first["eid"])
    assert (entry.subject, entry.lab, entry.date, entry.number) == (first["subject"], first["lab"], first["date"],
                                                                     first["session_number"])
    assert (first["pid"], first["probe_name"]) in entry.probes
    assert sorted(pid for entry in entries for pid, _ in entry.probes) == sorted(table["pid"])
    assert len({entry.subject for entry in entries}) == 139


def test_real_vbn_sessions_table_has_153_sessions():
    entries = read_vbn_sessions(VBN_TABLE)
    table = pd.read_csv(VBN_TABLE)
    assert len(entries) == 153
    assert [entry.ecephys_session_id for entry in entries] == [str(value) for value in table["ecephys_session_id"]]
    assert entries[0].mouse_id == str(table["mouse_id"][0]) and entries[0].probe_count == int(table["probe_count"][0])


def test_missing_columns_and_inconsistent_rows_name_the_file(tmp_path):
    table = pd.read_csv(DATA / "ibl" / "release" / "2023_12_bwm_release.csv")
    broken = tmp_path / "release.csv"
    table.drop(columns=["eid", "lab"]).to_csv(broken, index=False)
    with pytest.raises(SourceFileError, match=r"missing column\(s\) eid, lab") as error:
        read_ibl_release(broken)
    assert error.value.path == broken
    with pytest.raises(SourceFileError, match="missing column") as error:
        read_vbn_sessions(broken)
    assert error.value.path == broken
    # Rows 0 and 1 are two sessions of one mouse: one eid given two dates makes the list inconsistent.
    table.loc[1, "eid"] = table.loc[0, "eid"]
    table.to_csv(broken, index=False)
    with pytest.raises(SourceFileError, match=f"eid {table.loc[0, 'eid']} has two different date \\(data row 2: "
                                              f"date='{table.loc[1, 'date']}', before '{table.loc[0, 'date']}'"):
        read_ibl_release(broken)
    with pytest.raises(SourceFileError, match="does not exist"):
        read_ibl_release(tmp_path / "absent.csv")


def test_sessions_are_found_in_the_download_layouts(tmp_path):
    table, (eid,) = write_ibl_release(tmp_path / "ibl", 1)
    (session,) = ibl_sessions(table, tmp_path / "ibl")
    assert session.found and session.session_id == eid and session.subject == "KS055"
    assert session.source == tmp_path / "ibl" / "cortexlab" / "Subjects" / "KS055" / "2021-05-10" / "001"
    (missing,) = ibl_sessions(table, tmp_path / "elsewhere")
    assert not missing.found and missing.source == tmp_path / "elsewhere" / "cortexlab/Subjects/KS055/2021-05-10/001"

    entry = read_vbn_sessions(VBN_TABLE)[1]
    folder = tmp_path / "cache" / "behavior_ecephys_sessions" / entry.ecephys_session_id
    written = make_vbn_session(folder, ecephys_session_id=int(entry.ecephys_session_id), **SMALL_ALLEN)
    (folder / "probe_notes.nwb").write_bytes(b"")  # not a probe file: no probe id in its name
    allen = locate_allen_session(entry, tmp_path / "cache")
    assert allen.found and allen.source == written.session_file and allen.subject == entry.mouse_id
    assert allen.probe_files == tuple(sorted(written.probe_files.values()))
    assert input_bytes(allen, "processed") == written.session_file.stat().st_size
    assert input_bytes(allen, "raw") == sum(path.stat().st_size for path in written.probe_files.values())
    assert input_bytes(session, "raw") == 0 and input_bytes(session, "processed") == sum(
        path.stat().st_size for path in session.source.rglob("*") if path.is_file())


# --- planning and decisions (no cluster) ---------------------------------------------------------


def test_decisions_follow_the_manifest_and_the_files(tmp_path):
    table, eids = write_ibl_release(tmp_path / "ibl", 1)
    (session,) = ibl_sessions(table, tmp_path / "ibl")
    tasks = plan_tasks([session], tmp_path / "out", raw=True)
    assert [task.kind for task in tasks] == ["processed", "raw"]
    processed = tasks[0]
    assert processed.output.name == f"sub-KS055_ses-{eids[0]}_desc-processed_behavior+ecephys.nwb"
    assert processed.memory_gb > 0.5 and tasks[1].memory_gb == 1.5

    with Manifest.in_folder(tmp_path / "out") as manifest:
        record = manifest.register(processed.key, source=session.source, output=processed.output,
                                   input_bytes=processed.input_bytes)
        assert decide(processed, None, retry_failed=False).action == "convert"
        assert decide(processed, record, retry_failed=False).action == "convert"
        # Recorded done, but the file is gone or changed: converted again.
        processed.output.parent.mkdir(parents=True)
        processed.output.write_bytes(b"x" * 10)
        manifest.start(processed.key)
        manifest.finish(processed.key, output=processed.output, output_bytes=10, checksum=sha256(processed.output),
                        nwbridge_version="0", duration_s=1.0)
        done = manifest.get(processed.key)
        assert decide(processed, done, retry_failed=False).action == "done"
        processed.output.write_bytes(b"y" * 10)  # same size, other content: only --verify sees it
        assert decide(processed, done, retry_failed=False).action == "done"
        assert decide(processed, done, retry_failed=False, verify=True).action == "convert"
        processed.output.write_bytes(b"x" * 11)
        assert "changed size" in decide(processed, done, retry_failed=False).reason
        # A file in place that the manifest does not record as done is checked before being trusted.
        manifest.fail(processed.key, error="boom")
        failed = manifest.get(processed.key)
        assert decide(processed, failed, retry_failed=False).action == "failed"
        assert decide(processed, failed, retry_failed=True).action == "check"
    assert "not a readable NWB file" in verify_output(processed.output, processed.identifier)


def test_a_crashed_conversion_process_is_a_transient_failure_of_its_task(tmp_path, monkeypatch):
    """The conversion runs in its own process: when it is killed, the task reports it, nothing partial stays."""
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\nkill -9 $$\n")
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IEXEC)
    output = tmp_path / "out" / "sub-X" / "sub-X_ses-1_desc-processed_behavior+ecephys.nwb"
    output.parent.mkdir(parents=True)
    leftover = output.with_name(output.name + ".partial")
    leftover.write_bytes(b"half a file")
    monkeypatch.setattr(sys, "executable", str(fake_python))
    result = run_task({"task": "1 processed", "dataset": "ibl", "kind": "processed", "source": str(tmp_path),
                       "output_dir": str(tmp_path / "out"), "output": str(output), "session_id": "1"})
    assert not result["ok"] and result["transient"]
    assert "killed by signal SIGKILL (out of memory?)" in result["error"]
    assert not leftover.exists() and not output.exists()


# --- whole releases on a two-worker LocalCluster --------------------------------------------------


def test_ibl_release_on_two_workers_broken_session_rerun_and_retry(tmp_path):
    """3 sessions converted, a broken one fails naming its file; a rerun redoes nothing; fixed, it is retried."""
    table, eids = write_ibl_release(tmp_path / "ibl", 4, raw_for=(0,))
    trials = tmp_path / "ibl" / "danlab/Subjects/DY_013/2020-03-12/001/alf/_ibl_trials.table.pqt"
    intact = trials.read_bytes()
    trials.write_bytes(intact[: len(intact) // 2])
    sessions = ibl_sessions(table, tmp_path / "ibl")
    output = tmp_path / "dandiset"
    broken_eid = eids[2]

    with release_client(workers=2, memory_per_worker=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        first = run_release(sessions, output, raw=False, client=client, progress=False)
        rows = manifest_rows(output)
        assert {(task.session.session_id, task.kind) for task, _ in first.converted} == {
            (eid, "processed") for eid in eids if eid != broken_eid}
        for session in sessions:
            record = rows[(session.session_id, "processed")]
            assert record.attempts == 1 and record.source == str(session.source)
            if session.session_id == broken_eid:
                assert record.status == "failed" and record.output_bytes is None
                assert record.error.startswith(f"{trials}: not a readable .pqt table")
                assert record.error_file == str(trials)
            else:
                assert_done_and_recorded(record, session=session, kind="processed", dataset="ibl-brainwide-map")
        assert not (output / "sub-DY-013").exists() or not any((output / "sub-DY-013").iterdir())
        assert not first.ok and "_ibl_trials.table.pqt" in first.format()
        assert no_temporary_files(output) == []

        # Rerun without changes: nothing is converted, no file is touched, the failure is reported again.
        times = {path: path.stat().st_mtime_ns for path in output.rglob("*.nwb")}
        second = run_release(sessions, output, raw=False, client=client, progress=False)
        assert second.converted == [] and len(second.skipped) == 3
        assert [(task.session.session_id, earlier) for task, _, _, earlier in second.failed] == [(broken_eid, True)]
        assert {path: path.stat().st_mtime_ns for path in output.rglob("*.nwb")} == times
        assert {key: (row.attempts, row.finished_at) for key, row in manifest_rows(output).items()} == {
            key: (row.attempts, row.finished_at) for key, row in rows.items()}
        assert "--retry-failed" in second.format()

        # Fixed and retried: done, on its second attempt; the others untouched.
        trials.write_bytes(intact)
        third = run_release(sessions, output, raw=False, client=client, retry_failed=True, progress=False)
        assert [(task.session.session_id, task.kind) for task, _ in third.converted] == [(broken_eid, "processed")]
        assert third.ok
        fixed = manifest_rows(output)[(broken_eid, "processed")]
        assert fixed.attempts == 2
        assert_done_and_recorded(fixed, session=sessions[2], kind="processed", dataset="ibl-brainwide-map")
        assert {path: path.stat().st_mtime_ns for path in times} == times

        # Raw files asked for later, for one session: only its raw task runs.
        fourth = run_release(sessions[:1], output, raw=True, client=client, progress=False)
        assert [(task.session.session_id, task.kind) for task, _ in fourth.converted] == [(eids[0], "raw")]
    raw = manifest_rows(output)[(eids[0], "raw")]
    assert_done_and_recorded(raw, session=sessions[0], kind="raw", dataset="ibl-brainwide-map")
    # The raw task's file is the one the session converter writes (all but the creation date).
    (_, reference) = nwbridge.convert_ibl_session(sessions[0].source, tmp_path / "reference", raw=True,
                                                  progress=False)
    assert hdf5_content(Path(raw.output)) == hdf5_content(reference)


def hdf5_content(path: Path) -> dict:
    content = {}
    with h5py.File(path, "r") as file:
        def visit(name, item):
            if isinstance(item, h5py.Dataset) and name != "file_create_date":
                value = item[()]
                content[name] = (item.shape, str(item.dtype), value.tobytes() if item.dtype.kind != "O" else str(value))
        file.visititems(visit)
    return content


def test_allen_release_on_two_workers_crash_retry_and_interrupted_tasks(tmp_path):
    """3 VBN sessions (one with LFP): a conversion process killed once is retried; interrupted tasks resume."""
    entries = read_vbn_sessions(VBN_TABLE)[:3]
    cache = tmp_path / "cache"
    for index, entry in enumerate(entries):
        make_vbn_session(cache / "behavior_ecephys_sessions" / entry.ecephys_session_id,
                         ecephys_session_id=int(entry.ecephys_session_id), lfp=index == 0, seed=index, **SMALL_ALLEN)
    sessions = [locate_allen_session(entry, cache) for entry in entries]
    output = tmp_path / "dandiset"
    # The first conversion process started on the cluster is killed (as the kernel does when memory runs
    # out): the runner must retry that task, and only that one.
    marker = tmp_path / "crashed-once"
    python = tmp_path / "python-crashing-once"
    python.write_text(f'#!/bin/sh\nif mkdir "{marker}" 2>/dev/null; then kill -9 $$; fi\nexec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)

    def use_crashing_python(path=str(python)):
        sys.executable = path

    with release_client(workers=2, memory_per_worker=2) as client:
        client.run(use_crashing_python)
        report = run_release(sessions, output, raw=True, client=client, progress=False, release="test-release")
        assert report.ok and marker.is_dir()
        rows = manifest_rows(output)
        assert sorted(rows) == sorted([(entry.ecephys_session_id, "processed") for entry in entries]
                                      + [(entries[0].ecephys_session_id, "raw")])
        assert sorted(record.attempts for record in rows.values()) == [1, 1, 1, 2]
        for (session_id, kind), record in rows.items():
            session = next(session for session in sessions if session.session_id == session_id)
            assert_done_and_recorded(record, session=session, kind=kind, dataset="allen-visual-behavior-neuropixels")
            assert Path(record.output).parent.name == f"sub-{session.subject}"

        # The driver was killed after a file was renamed into place but before it was recorded: the file
        # is recorded as done without being converted again. A task whose file never appeared is redone.
        kept_key, redone_key = (entries[0].ecephys_session_id, "raw"), (entries[1].ecephys_session_id, "processed")
        kept, redone = Path(rows[kept_key].output), Path(rows[redone_key].output)
        kept_time = kept.stat().st_mtime_ns
        redone.unlink()
        redone.with_name(redone.name + ".partial").write_bytes(b"interrupted write")
        with sqlite3.connect(output / ".nwbridge" / "manifest.sqlite") as connection:
            connection.execute("UPDATE tasks SET status = 'running', checksum = NULL WHERE session = ? AND kind = ?",
                               kept_key)
            connection.execute("UPDATE tasks SET status = 'running' WHERE session = ? AND kind = ?", redone_key)
        resumed = run_release(sessions, output, raw=True, client=client, progress=False, release="test-release")
    assert [(task.session.session_id, task.kind) for task, _ in resumed.converted] == [redone_key]
    assert "complete file found in place (an interrupted run), recorded" in [reason for _, reason in resumed.skipped]
    rows_after = manifest_rows(output)
    assert kept.stat().st_mtime_ns == kept_time
    assert rows_after[kept_key].status == "done" and rows_after[kept_key].checksum == sha256(kept)
    assert rows_after[kept_key].attempts == rows[kept_key].attempts
    assert rows_after[redone_key].attempts == rows[redone_key].attempts + 1
    assert_done_and_recorded(rows_after[redone_key], session=sessions[1], kind="processed",
                             dataset="allen-visual-behavior-neuropixels")
    assert no_temporary_files(output) == []


def test_sigkill_of_the_whole_release_then_rerun_finishes_without_redoing(tmp_path):
    """Kill driver, workers and conversions mid-release: no corrupt NWB file; a rerun finishes the rest only."""
    table, eids = write_ibl_release(tmp_path / "ibl", 5, seed=30)
    output = tmp_path / "dandiset"
    command = [sys.executable, "-m", "nwbridge.release_cli", "ibl", "--sessions", str(table), "--source",
               str(tmp_path / "ibl"), "-o", str(output), "--workers", "2", "--memory-per-worker", "2", "--no-progress"]
    manifest = output / ".nwbridge" / "manifest.sqlite"
    log = tmp_path / "first-run.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(command, start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        done = 0
        while done == 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no task finished in time"
            time.sleep(0.2)
            if manifest.is_file():
                try:
                    with sqlite3.connect(f"{manifest.as_uri()}?mode=ro", uri=True, timeout=5) as connection:
                        done = connection.execute("SELECT COUNT(*) FROM tasks WHERE status = 'done'").fetchone()[0]
                except sqlite3.OperationalError:  # the driver is creating the manifest
                    continue
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    before = manifest_rows(output)
    finished = {key: record for key, record in before.items() if record.status == "done"}
    assert 1 <= len(finished) < len(eids)
    for path in output.rglob("*.nwb"):
        # Every NWB file in place is complete and is the file of its task.
        eid = next(eid for eid in eids if eid in path.name)
        assert verify_output(path, file_identifier("ibl-brainwide-map", eid, "processed")) is None
    mtimes = {key: Path(record.output).stat().st_mtime_ns for key, record in finished.items()}

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "Release summary" in rerun.stdout and "skipped" in rerun.stdout
    after = manifest_rows(output)
    assert {key for key, record in after.items() if record.status == "done"} == {(eid, "processed") for eid in eids}
    for key, record in finished.items():
        assert after[key].attempts == 1
        assert after[key].checksum == record.checksum == sha256(Path(record.output))
        assert Path(record.output).stat().st_mtime_ns == mtimes[key]
    for record in after.values():
        assert record.checksum == sha256(Path(record.output))
        assert check_file(record.output).ok
    assert no_temporary_files(output) == []
    # The summary's row: converted now + skipped (finished before the kill, or found complete) = every session.
    _, converted, skipped, failed, *_ = next(line for line in rerun.stdout.splitlines()
                                             if line.strip().startswith("processed")).split()
    assert int(converted) + int(skipped) == len(eids) and int(skipped) >= len(finished) and int(failed) == 0
