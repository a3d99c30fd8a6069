"""The SQLite manifest of a release: task lifecycle, durability, read-only access."""

from __future__ import annotations

import sqlite3

import pytest

from nwbridge.converters.manifest import MANIFEST_PATH, Manifest

KEY = ("ibl", "4ecb5d24-f5cc-402c-be28-9d0f7cb14b3a", "processed")
RAW = ("ibl", "4ecb5d24-f5cc-402c-be28-9d0f7cb14b3a", "raw")


def test_a_task_is_planned_started_failed_retried_and_done(tmp_path):
    with Manifest.in_folder(tmp_path) as manifest:
        assert manifest.path == tmp_path / MANIFEST_PATH
        planned = manifest.register(KEY, source="/data/session", output="/out/a.nwb", input_bytes=1234)
        assert (planned.status, planned.attempts, planned.input_bytes, planned.output) == ("pending", 0, 1234,
                                                                                          "/out/a.nwb")
        manifest.start(KEY, started_at="2024-01-01T00:00:00+00:00")
        manifest.fail(KEY, error="/data/session/alf/x.npy: truncated\nmore", error_file="/data/session/alf/x.npy",
                      duration_s=2.5)
        failed = manifest.get(KEY)
        assert (failed.status, failed.attempts, failed.error_file, failed.duration_s) == (
            "failed", 1, "/data/session/alf/x.npy", 2.5)
        assert failed.error.splitlines()[0] == "/data/session/alf/x.npy: truncated"
        manifest.start(KEY)
        running = manifest.get(KEY)
        # A new attempt forgets the previous error.
        assert (running.status, running.attempts, running.error, running.finished_at) == ("running", 2, None, None)
        manifest.finish(KEY, output="/out/a.nwb", output_bytes=99, checksum="ab" * 32, nwbridge_version="1.2.3",
                        duration_s=4.0)
    with Manifest.in_folder(tmp_path, readonly=True) as reopened:
        done = reopened.get(KEY)
    assert (done.status, done.attempts, done.output_bytes, done.checksum, done.nwbridge_version, done.duration_s) == (
        "done", 2, 99, "ab" * 32, "1.2.3", 4.0)
    assert done.started_at <= done.finished_at and done.source == "/data/session"


def test_registering_again_keeps_the_status_and_a_done_tasks_file(tmp_path):
    with Manifest.in_folder(tmp_path) as manifest:
        manifest.register(KEY, source="/old", output="/out/a.nwb", input_bytes=1)
        manifest.start(KEY)
        manifest.finish(KEY, output="/out/renamed.nwb", output_bytes=5, checksum="c", nwbridge_version="1",
                        duration_s=1.0)
        again = manifest.register(KEY, source="/new", output="/out/a.nwb", input_bytes=2)
        assert (again.status, again.attempts, again.output, again.source, again.input_bytes) == (
            "done", 1, "/out/renamed.nwb", "/new", 2)
        manifest.register(RAW, source="/new", output="/out/raw.nwb", input_bytes=3)
        manifest.start(RAW)
        manifest.fail(RAW, error="boom")
        moved = manifest.register(RAW, source="/new", output="/out/raw2.nwb", input_bytes=3)
        assert (moved.status, moved.output) == ("failed", "/out/raw2.nwb")
        assert manifest.counts() == {("ibl", "processed", "done"): 1, ("ibl", "raw", "failed"): 1}
        assert [record.kind for record in manifest.records(status="failed")] == ["raw"]
        assert [record.kind for record in manifest.records()] == ["processed", "raw"]


def test_every_change_is_committed_when_made(tmp_path):
    """A driver killed right after a change leaves it in the file: another connection sees it at once."""
    manifest = Manifest.in_folder(tmp_path)
    manifest.register(KEY, source="/s", output="/o.nwb", input_bytes=1)
    manifest.start(KEY)
    with sqlite3.connect(tmp_path / MANIFEST_PATH) as other:
        assert other.execute("SELECT status, attempts FROM tasks").fetchall() == [("running", 1)]
    manifest.close()


def test_read_only_access_never_writes(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest"):
        Manifest.in_folder(tmp_path, readonly=True)
    assert not (tmp_path / MANIFEST_PATH).exists()
    Manifest.in_folder(tmp_path).close()
    with Manifest.in_folder(tmp_path, readonly=True) as manifest:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            manifest.register(KEY, source="/s", output="/o.nwb", input_bytes=1)


def test_about_and_schema_version(tmp_path):
    with Manifest.in_folder(tmp_path) as manifest:
        manifest.set_about("sessions_table", "/tables/release.csv")
        assert manifest.about() == {"schema_version": "1", "sessions_table": "/tables/release.csv"}
    with sqlite3.connect(tmp_path / MANIFEST_PATH) as connection:
        connection.execute("UPDATE about SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="schema version 99"):
        Manifest.in_folder(tmp_path)


def test_status_is_checked_by_the_database(tmp_path):
    with Manifest.in_folder(tmp_path) as manifest:
        manifest.register(KEY, source="/s", output="/o.nwb", input_bytes=1)
    with sqlite3.connect(tmp_path / MANIFEST_PATH) as connection:
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute("UPDATE tasks SET status = 'finished'")
