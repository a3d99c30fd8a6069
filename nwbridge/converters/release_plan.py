"""Planning a release: its tasks (one per session and file kind), and what a run does with each.

Deciding needs only the manifest's record of a task and a look at its output file, so a dry run
can list a whole release in a second; nothing here starts a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..provenance import ALLEN_DATASET, IBL_DATASET, file_identifier, output_path
from .manifest import TaskRecord
from .release_sources import ReleaseSession, input_bytes
from .release_task import sha256_file

__all__ = ["DATASETS", "RAW_TASK_GB", "PROCESSED_BASE_GB", "PROCESSED_GB_PER_INPUT_GB", "ReleaseTask", "Decision",
           "plan_tasks", "decide", "verify_output", "file_version"]

DATASETS = {"ibl": IBL_DATASET, "allen": ALLEN_DATASET}
_MODALITIES = {"processed": "behavior+ecephys", "raw": "ecephys"}
# Memory a task asks for, in GB. Raw files stream their voltage in blocks whatever its size; the
# processed file holds the spike and behaviour arrays in memory, a few times their size on disk.
RAW_TASK_GB = 1.5
PROCESSED_BASE_GB = 0.5
PROCESSED_GB_PER_INPUT_GB = 3.0
_GB = 1024**3


@dataclass(frozen=True)
class ReleaseTask:
    """One file kind of one session: what a worker converts.

    Attributes
    ----------
    session : ReleaseSession
    kind : {"processed", "raw"}
    output : Path
        The file the task writes (deterministic: named from the release table's ids).
    input_bytes : int
        Bytes of the sources the file is made from.
    """

    session: ReleaseSession
    kind: str
    output: Path
    input_bytes: int

    @property
    def key(self) -> tuple[str, str, str]:
        """``(dataset, session_id, kind)``: the task's row in the manifest."""
        return self.session.dataset, self.session.session_id, self.kind

    @property
    def name(self) -> str:
        return f"{self.session.session_id} {self.kind}"

    @property
    def identifier(self) -> str:
        """The NWB identifier the output must carry."""
        return file_identifier(DATASETS[self.session.dataset], self.session.session_id, self.kind)

    @property
    def memory_gb(self) -> float:
        """Memory the conversion is expected to need."""
        if self.kind == "raw":
            return RAW_TASK_GB
        return PROCESSED_BASE_GB + PROCESSED_GB_PER_INPUT_GB * self.input_bytes / _GB


def plan_tasks(sessions: list[ReleaseSession], output_dir: str | Path, *, raw: bool) -> list[ReleaseTask]:
    """The tasks of ``sessions``: every session's processed file, and its raw file when asked for.

    Parameters
    ----------
    sessions : list of ReleaseSession
    output_dir : str or Path
        The dandiset folder.
    raw : bool
        IBL: write the raw files (``--raw``). Allen: write the raw (LFP) file of every session that
        has probe files (unless ``--no-lfp``).
    """
    tasks = []
    for session in sessions:
        kinds = ["processed"]
        if raw and (session.dataset == "ibl" or session.probe_files):
            kinds.append("raw")
        for kind in kinds:
            destination = output_path(output_dir, subject=session.subject, session=session.session_id,
                                      description=kind, modalities=_MODALITIES[kind])
            tasks.append(ReleaseTask(session=session, kind=kind, output=destination,
                                     input_bytes=input_bytes(session, kind)))
    return tasks


@dataclass(frozen=True)
class Decision:
    """What a run does with a task, and why.

    ``action`` is ``convert``; ``done`` (finished and verified: skipped); ``failed`` (failed in an
    earlier run and not retried); ``missing`` (its source is not where the release says: recorded as
    failed); or ``check`` (its output is in place but not recorded as done, e.g. the driver was
    killed before recording it: kept and recorded if it is a complete file of this task, else
    converted again).
    """

    task: ReleaseTask
    action: str
    reason: str
    record: TaskRecord | None = None


def decide(task: ReleaseTask, record: TaskRecord | None, *, retry_failed: bool, verify: bool = False) -> Decision:
    """What to do with ``task`` given its manifest record (None: never seen)."""
    if record is not None and record.status == "done":
        output = Path(record.output or task.output)
        if not output.is_file():
            problem = f"recorded done, but {output} is gone"
        elif output.stat().st_size != record.output_bytes:
            problem = f"recorded done, but {output} changed size ({record.output_bytes} -> {output.stat().st_size})"
        elif verify and sha256_file(output) != record.checksum:
            problem = f"recorded done, but the checksum of {output} differs from the manifest's"
        else:
            return Decision(task, "done", "already done and verified", record)
        if not task.session.found:
            return Decision(task, "missing", f"{problem}; session not found at {task.session.source}", record)
        return Decision(task, "convert", problem, record)
    if record is not None and record.status == "failed" and not retry_failed:
        return Decision(task, "failed", "failed in an earlier run (rerun with --retry-failed)", record)
    if not task.session.found:
        return Decision(task, "missing", f"session not found at {task.session.source}", record)
    if task.output.is_file():
        return Decision(task, "check", f"{task.output.name} is in place but not recorded as done", record)
    reason = {None: "new", "pending": "not started", "running": "interrupted", "failed": "retrying"}
    return Decision(task, "convert", reason[None if record is None else record.status], record)


def verify_output(path: str | Path, identifier: str) -> str | None:
    """None if ``path`` is a complete NWB file with ``identifier``, else what is wrong with it."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            found = file["identifier"][()]
    except (OSError, KeyError) as error:
        return f"not a readable NWB file ({error})"
    found = found.decode() if isinstance(found, bytes) else str(found)
    if found != identifier:
        return f"its identifier is {found}, not this task's {identifier}"
    return None


def file_version(path: Path) -> str:
    """The nwbridge version a file says wrote it (in its provenance), or ``unknown``."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            text = file["general/source_script"][()]
        text = text.decode() if isinstance(text, bytes) else str(text)
        return str(json.loads(text).get("converter_version") or "unknown")
    except (OSError, KeyError, ValueError):
        return "unknown"
