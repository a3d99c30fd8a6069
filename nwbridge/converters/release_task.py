"""One task of a release: converting one file kind of one session in a fresh process.

:func:`run_task` runs on a dask worker. It starts ``python -m nwbridge.converters.release_task``
for the conversion, so that the gigabytes a conversion allocates are returned to the system when
it ends, and so that a conversion that crashes or is killed (by the kernel when out of memory,
say) fails its task only, not the worker. It then computes the file's SHA-256 and returns a
small dictionary for the driver to record: tasks carry paths and ids, never arrays.

This module imports only the standard library at the top: a dask worker imports it to run a task
and needs none of the conversion's libraries.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

__all__ = ["EVENT_TOPIC", "LEFTOVER_SUFFIXES", "run_task", "sha256_file", "remove_leftovers", "main"]

# The topic workers publish "a task has started" on, for the driver's manifest.
EVENT_TOPIC = "nwbridge-release"
# What an interrupted write leaves beside its output: nwbridge.writing writes `<name>.partial`; the
# Allen converter stages complete files as `<name>.staged` (itself written as `.staged.partial`).
LEFTOVER_SUFFIXES = (".partial", ".staged", ".staged.partial")
_RESULT_MARK = "NWBRIDGE-TASK-RESULT "
_STDERR_TAIL = 2000
_PR_SET_PDEATHSIG = 1


def sha256_file(path: str | Path, *, block: int = 8 << 20) -> str:
    """SHA-256 of a file, hex, read in blocks (files can be tens of GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def remove_leftovers(output: str | Path) -> list[Path]:
    """Delete what an interrupted write of ``output`` left: temporary files beside it and in its video folder.

    Only call it for a task no process is writing (the driver holds the release's lock, and a
    conversion process dies with its worker).
    """
    output = Path(output)
    removed = []
    candidates = [output.with_name(output.name + suffix) for suffix in LEFTOVER_SUFFIXES]
    videos = output.with_suffix("")
    if videos.is_dir():
        candidates += list(videos.glob("*.partial"))
    for path in candidates:
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _announce_start(spec: dict) -> None:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # called outside a dask worker (tests, a plain loop)
        return
    worker.log_event(EVENT_TOPIC, {"event": "started", "task": spec["task"], "attempt": spec.get("attempt"),
                                   "run": spec.get("run")})


def _threads(spec: dict) -> int | None:
    if spec.get("threads"):
        return int(spec["threads"])
    # Share this machine's cores between the workers on it (cores allotted to the job, under SLURM).
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    import socket

    sharing = (spec.get("workers_per_host") or {}).get(socket.gethostname(), 1)
    return max(1, cores // max(1, sharing))


def run_task(spec: dict) -> dict:
    """Convert one file kind of one session in a fresh process; never raises for a failed conversion.

    Parameters
    ----------
    spec : dict
        ``task`` (an id for the driver), ``dataset`` (``ibl`` or ``allen``), ``kind``, ``source``
        (session folder or file), ``output_dir``, ``output`` (the file expected), ``session_id``,
        and optionally ``codec``, ``threads``, ``workers_per_host``, ``release``, ``run``.

    Returns
    -------
    dict
        ``task``, ``ok``, ``seconds``, and either ``output``, ``output_bytes``, ``checksum``,
        ``version``, or ``error``, ``error_file``, ``transient`` (a crash or lack of memory, worth
        another attempt, rather than bad input).
    """
    start = time.perf_counter()
    _announce_start(spec)
    remove_leftovers(spec["output"])
    child = {key: spec.get(key) for key in ("dataset", "kind", "source", "output_dir", "session_id", "codec",
                                              "release")}
    child["threads"] = _threads(spec)
    child["parent"] = os.getpid()
    completed = subprocess.run([sys.executable, "-m", "nwbridge.converters.release_task", json.dumps(child)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    result = None
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            result = json.loads(line[len(_RESULT_MARK):])
            break
    if result is None:
        code = completed.returncode
        cause = (f"killed by signal {signal.Signals(-code).name}" + (" (out of memory?)" if code == -9 else "")
                 if code < 0 else f"exited with code {code}")
        tail = completed.stderr.strip()[-_STDERR_TAIL:]
        result = {"ok": False, "error": f"the conversion process {cause}" + (f"\n{tail}" if tail else ""),
                  "error_file": None, "transient": True}
    if result["ok"]:
        output = Path(result["output"])
        result["output_bytes"] = output.stat().st_size
        result["checksum"] = sha256_file(output)
    else:
        remove_leftovers(spec["output"])
    result["task"] = spec["task"]
    result["seconds"] = time.perf_counter() - start
    return result


# --- the conversion process ---------------------------------------------------------------


def _die_with_parent(parent: int | None) -> None:
    """Have the kernel kill this process when the worker that started it dies (Linux)."""
    if parent is None:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the worker died before the request took effect
        os._exit(1)


def _convert(child: dict) -> Path:
    from .file_kinds import write_allen_file, write_ibl_file

    options = {"kind": child["kind"], "overwrite": True, "workers": child.get("threads"),
               "codec": child.get("codec") or "gzip"}
    # The driver only starts a task whose output is missing or not a verified file of this task, so
    # an existing file is replaced.
    if child["dataset"] == "ibl":
        return write_ibl_file(child["source"], child["output_dir"], eid=child["session_id"], **options)
    if child["dataset"] == "allen":
        return write_allen_file(child["source"], child["output_dir"], release=child.get("release"), **options)
    raise ValueError(f"unknown dataset {child['dataset']!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry of the conversion process: one JSON argument, one result line on stdout."""
    from .. import __version__
    from ..errors import NwbridgeError, SourceFileError

    child = json.loads((argv if argv is not None else sys.argv[1:])[0])
    _die_with_parent(child.get("parent"))
    try:
        path = _convert(child)
        result = {"ok": True, "output": str(path), "version": __version__}
    except NwbridgeError as error:
        result = {"ok": False, "error": str(error), "transient": False,
                  "error_file": str(error.path) if isinstance(error, SourceFileError) else None}
    except MemoryError:
        result = {"ok": False, "error": "MemoryError: the conversion ran out of memory", "error_file": None,
                  "transient": True}
    except Exception as error:  # any other failure is this session's, reported with its traceback
        result = {"ok": False, "error": f"{type(error).__name__}: {error}\n{traceback.format_exc()}",
                  "error_file": getattr(error, "filename", None), "transient": False}
    print(_RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
