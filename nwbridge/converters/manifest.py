"""The manifest of a release conversion: one SQLite row per session and file kind.

The manifest lives in the output folder (``<dandiset>/.nwbridge/manifest.sqlite``), so the
record of what was converted travels with the files. Only the process driving a release writes
it (workers send their results back to that process); every change is committed at once, so a
driver killed at any moment leaves a manifest that says what was finished. SQLite's default
rollback journal is kept rather than WAL because WAL does not work on the network file systems
clusters use for output folders.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["MANIFEST_PATH", "STATUSES", "TaskRecord", "UploadRecord", "Manifest", "now"]

MANIFEST_PATH = Path(".nwbridge") / "manifest.sqlite"
STATUSES = ("pending", "running", "done", "failed")
_SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    dataset TEXT NOT NULL,
    session TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_file TEXT,
    duration_s REAL,
    input_bytes INTEGER,
    output_bytes INTEGER,
    checksum TEXT,
    nwbridge_version TEXT,
    output TEXT,
    source TEXT,
    started_at TEXT,
    finished_at TEXT,
    PRIMARY KEY (dataset, session, kind)
);
CREATE TABLE IF NOT EXISTS about (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS uploads (
    instance TEXT NOT NULL,
    dandiset TEXT NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('uploaded', 'failed', 'refused')),
    attempts INTEGER NOT NULL DEFAULT 0,
    size INTEGER,
    mtime_ns INTEGER,
    error TEXT,
    finished_at TEXT,
    PRIMARY KEY (instance, dandiset, path)
);
"""


def now() -> str:
    """The current time, UTC, ISO 8601 to the second: how the manifest stores times."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class TaskRecord:
    """One row of the manifest: what happened to one file kind of one session.

    Attributes
    ----------
    dataset : str
        ``ibl`` or ``allen``.
    session : str
        IBL eid or Allen ecephys_session_id.
    kind : str
        ``processed`` or ``raw``.
    status : str
        ``pending`` (planned), ``running`` (started and not finished: the driver may have been
        killed), ``done`` or ``failed``.
    attempts : int
        How many times the conversion was started.
    error, error_file : str or None
        Why the last attempt failed, and the source file the error names.
    duration_s : float or None
        Seconds the last attempt took.
    input_bytes, output_bytes : int or None
        Size of the sources and of the NWB file written.
    checksum : str or None
        SHA-256 of the NWB file, hex.
    nwbridge_version : str or None
        Version of nwbridge that wrote the file.
    output, source : str or None
        The NWB file, and the session folder or file it was made from.
    started_at, finished_at : str or None
        UTC, ISO 8601.
    """

    dataset: str
    session: str
    kind: str
    status: str
    attempts: int = 0
    error: str | None = None
    error_file: str | None = None
    duration_s: float | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    checksum: str | None = None
    nwbridge_version: str | None = None
    output: str | None = None
    source: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.dataset, self.session, self.kind


_COLUMNS = tuple(item.name for item in fields(TaskRecord))


@dataclass(frozen=True)
class UploadRecord:
    """One row of the manifest's ``uploads`` table: what happened to one asset sent to DANDI.

    Attributes
    ----------
    instance : str
        The DANDI instance's API URL.
    dandiset : str
        The dandiset identifier.
    path : str
        The asset path in the dandiset.
    status : str
        ``uploaded``, ``failed`` (dandi-cli's upload failed) or ``refused`` (validation found errors).
    attempts : int
    size, mtime_ns : int or None
        The local file when it was uploaded: a file changed since is uploaded again.
    error : str or None
    finished_at : str or None
    """

    instance: str
    dandiset: str
    path: str
    status: str
    attempts: int = 0
    size: int | None = None
    mtime_ns: int | None = None
    error: str | None = None
    finished_at: str | None = None

    def matches(self, path: str | Path) -> bool:
        """Whether this record is of an upload of the file as it is now (same size and modification time)."""
        stat = Path(path).stat()
        return self.status == "uploaded" and self.size == stat.st_size and self.mtime_ns == stat.st_mtime_ns


_UPLOAD_COLUMNS = tuple(item.name for item in fields(UploadRecord))


class Manifest:
    """A release's manifest (an SQLite file), opened for reading and writing or read-only.

    Parameters
    ----------
    path : str or Path
        The SQLite file; created (with its folder) unless ``readonly``.
    readonly : bool, default: False
        Open an existing manifest without changing it (for ``release status`` and dry runs, which
        may run while a release is writing).

    Examples
    --------
    >>> with Manifest.in_folder(dandiset) as manifest:          # doctest: +SKIP
    ...     manifest.start(("ibl", eid, "processed"))
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: no manifest (no release was run into this folder)")
            self._connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self.path, timeout=30)
            with self._connection:
                self._connection.executescript(_SCHEMA)
                found = self._connection.execute("SELECT value FROM about WHERE key = 'schema_version'").fetchone()
                if found is None:
                    self._connection.execute("INSERT INTO about VALUES ('schema_version', ?)", (_SCHEMA_VERSION,))
                elif found[0] != _SCHEMA_VERSION:
                    raise RuntimeError(f"{self.path}: manifest schema version {found[0]}, this nwbridge reads "
                                       f"{_SCHEMA_VERSION}")

    @classmethod
    def in_folder(cls, output_dir: str | Path, *, readonly: bool = False) -> "Manifest":
        """The manifest of the release written into ``output_dir``."""
        return cls(Path(output_dir) / MANIFEST_PATH, readonly=readonly)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exception) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------

    def get(self, key: tuple[str, str, str]) -> TaskRecord | None:
        """The record of ``(dataset, session, kind)``, or None."""
        row = self._connection.execute(f"SELECT {', '.join(_COLUMNS)} FROM tasks "
                                       "WHERE dataset = ? AND session = ? AND kind = ?", key).fetchone()
        return TaskRecord(*row) if row else None

    def records(self, *, status: str | None = None) -> list[TaskRecord]:
        """Every record (or those of one status), by dataset, session, kind."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM tasks"
        arguments: tuple = ()
        if status is not None:
            query += " WHERE status = ?"
            arguments = (status,)
        rows = self._connection.execute(query + " ORDER BY dataset, session, kind", arguments).fetchall()
        return [TaskRecord(*row) for row in rows]

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Number of records by ``(dataset, kind, status)``."""
        rows = self._connection.execute("SELECT dataset, kind, status, COUNT(*) FROM tasks "
                                        "GROUP BY dataset, kind, status").fetchall()
        return {(dataset, kind, status): count for dataset, kind, status, count in rows}

    # --- writing: every change is its own committed transaction -----------------------------

    def register(self, key: tuple[str, str, str], *, source: str | Path, output: str | Path,
                 input_bytes: int) -> TaskRecord:
        """Add a task as ``pending``, or refresh where its source and output are (its status is kept)."""
        with self._connection:
            self._connection.execute(
                "INSERT INTO tasks (dataset, session, kind, status, source, output, input_bytes) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?) "
                "ON CONFLICT (dataset, session, kind) DO UPDATE SET source = excluded.source, "
                "input_bytes = excluded.input_bytes, "
                # A done task keeps the file it recorded; any other gets the file it will write.
                "output = CASE WHEN tasks.status = 'done' THEN tasks.output ELSE excluded.output END",
                (*key, str(source), str(output), int(input_bytes)))
        return self.get(key)

    def start(self, key: tuple[str, str, str], *, started_at: str | None = None) -> None:
        """The task's conversion has started: ``running``, one more attempt."""
        with self._connection:
            self._connection.execute(
                "UPDATE tasks SET status = 'running', attempts = attempts + 1, started_at = ?, finished_at = NULL, "
                "error = NULL, error_file = NULL WHERE dataset = ? AND session = ? AND kind = ?",
                (started_at or now(), *key))

    def finish(self, key: tuple[str, str, str], *, output: str | Path, output_bytes: int, checksum: str,
               nwbridge_version: str, duration_s: float | None) -> None:
        """The task's file is complete and in place: ``done``."""
        with self._connection:
            self._connection.execute(
                "UPDATE tasks SET status = 'done', output = ?, output_bytes = ?, checksum = ?, nwbridge_version = ?, "
                "duration_s = COALESCE(?, duration_s), finished_at = ?, error = NULL, error_file = NULL "
                "WHERE dataset = ? AND session = ? AND kind = ?",
                (str(output), int(output_bytes), checksum, nwbridge_version, duration_s, now(), *key))

    def fail(self, key: tuple[str, str, str], *, error: str, error_file: str | Path | None = None,
             duration_s: float | None = None) -> None:
        """The task failed: ``failed``, with the error and the source file it names."""
        with self._connection:
            self._connection.execute(
                "UPDATE tasks SET status = 'failed', error = ?, error_file = ?, duration_s = ?, finished_at = ? "
                "WHERE dataset = ? AND session = ? AND kind = ?",
                (error, None if error_file is None else str(error_file), duration_s, now(), *key))

    def relocate(self, old: str | Path, new: str | Path, *, output_bytes: int, checksum: str | None) -> int:
        """A done file was moved (``nwbridge dandi organize``): its record follows it.

        Parameters
        ----------
        old, new : str or Path
            Where the file was and where it is now.
        output_bytes : int
            Its size now.
        checksum : str or None
            Its SHA-256 now, when moving changed its content; None keeps the recorded one.

        Returns
        -------
        int
            How many records pointed at ``old``.
        """
        with self._connection:
            cursor = self._connection.execute(
                "UPDATE tasks SET output = ?, output_bytes = ?, checksum = COALESCE(?, checksum) "
                "WHERE output = ? AND status = 'done'",
                (str(Path(new).absolute()), int(output_bytes), checksum, str(Path(old).absolute())))
        return cursor.rowcount

    def count_attempt(self, key: tuple[str, str, str]) -> None:
        """One more attempt without a start (a check that failed before any conversion began)."""
        with self._connection:
            self._connection.execute("UPDATE tasks SET attempts = attempts + 1 "
                                     "WHERE dataset = ? AND session = ? AND kind = ?", key)

    def upload_record(self, instance: str, dandiset: str, path: str) -> UploadRecord | None:
        """The record of one asset's upload to one dandiset, or None."""
        row = self._connection.execute(f"SELECT {', '.join(_UPLOAD_COLUMNS)} FROM uploads "
                                       "WHERE instance = ? AND dandiset = ? AND path = ?",
                                       (instance, dandiset, path)).fetchone()
        return UploadRecord(*row) if row else None

    def upload_records(self) -> list[UploadRecord]:
        """Every upload record, by instance, dandiset, path."""
        try:
            rows = self._connection.execute(f"SELECT {', '.join(_UPLOAD_COLUMNS)} FROM uploads "
                                            "ORDER BY instance, dandiset, path").fetchall()
        except sqlite3.OperationalError:  # a manifest written before uploads were recorded, opened read-only
            return []
        return [UploadRecord(*row) for row in rows]

    def record_upload(self, instance: str, dandiset: str, path: str, *, status: str, filepath: str | Path,
                      error: str | None = None) -> None:
        """One more attempt at uploading an asset, and how it ended (``uploaded``, ``failed``, ``refused``)."""
        stat = Path(filepath).stat()
        with self._connection:
            self._connection.execute(
                "INSERT INTO uploads (instance, dandiset, path, status, attempts, size, mtime_ns, error, finished_at) "
                "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?) ON CONFLICT (instance, dandiset, path) DO UPDATE SET "
                "status = excluded.status, attempts = uploads.attempts + 1, size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, error = excluded.error, finished_at = excluded.finished_at",
                (instance, dandiset, path, status, stat.st_size, stat.st_mtime_ns, error, now()))

    def set_about(self, key: str, value: str) -> None:
        """Remember a fact about the release (the table it came from, the source root)."""
        with self._connection:
            self._connection.execute("INSERT OR REPLACE INTO about VALUES (?, ?)", (key, value))

    def about(self) -> dict[str, str]:
        return dict(self._connection.execute("SELECT key, value FROM about").fetchall())
