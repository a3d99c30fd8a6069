"""Converting a whole release on dask.distributed, resumably, with a manifest of every file.

A release is planned as one task per session and file kind (``processed``, ``raw``; see
:mod:`nwbridge.converters.release_plan`). Each task runs on a dask worker, which converts in a
fresh process (:mod:`nwbridge.converters.release_task`) and reports back to the driver, the one
process that writes the manifest (:mod:`nwbridge.converters.manifest`). Tasks ask the workers for
a ``memory`` resource sized from their input, so a worker only runs what fits in its memory.

Rerunning a release skips what is done and still verified (output present, same size; with
``verify``, the same checksum), finishes what an interrupted run left (a task recorded as
running whose complete file is in place is recorded done, not redone), and retries failed
tasks when asked (``retry_failed``). Every output is written under a temporary name and renamed
when complete, so a killed run never leaves a partial NWB file where a finished one belongs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from .manifest import Manifest, now
from .release_plan import ReleaseTask, decide, file_version, plan_tasks, verify_output
from .release_report import ReleaseReport, format_status
from .release_sources import ReleaseSession
from .release_task import EVENT_TOPIC, remove_leftovers, run_task, sha256_file

__all__ = ["release_lock", "lock_holder", "release_client", "run_release", "release_status"]

_GB = 1024**3
_LOCK_FILE = Path(".nwbridge") / "lock"
# Resubmissions of tasks lost while queued on a worker that died (they did not run), beyond max_attempts.
_EXTRA_SUBMISSIONS = 3


@contextlib.contextmanager
def release_lock(output_dir: str | Path):
    """Hold the release's lock: two drivers writing one dandiset would redo each other's tasks.

    The lock is an ``flock`` on ``<output_dir>/.nwbridge/lock``; the kernel releases it when the
    driver exits, however it exits (SIGKILL included).
    """
    path = Path(output_dir) / _LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one driver per dandiset is then up to the user
        yield
        return
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RuntimeError(f"another release is writing into {output_dir} ({holder}); "
                               "wait for it to end or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {now()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_holder(output_dir: Path) -> str | None:
    """Who holds the release's lock, or None if no release is running."""
    path = output_dir / _LOCK_FILE
    if not path.is_file():
        return None
    try:
        import fcntl
    except ImportError:
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def release_client(*, scheduler: str | None = None, workers: int = 2, memory_per_worker: float | None = None):
    """A dask client: connected to ``scheduler``, or to a new LocalCluster of ``workers`` processes.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``), e.g. one started by dask-jobqueue.
        Its workers must offer a ``memory`` resource (``dask worker ... --resources memory=8``)
        for tasks to be bounded by memory; without it, each worker thread takes one task.
    workers : int, default: 2
        Worker processes of the local cluster (one thread each).
    memory_per_worker : float, optional
        GB each local worker offers to tasks; by default the machine's memory shared between them.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    if memory_per_worker is None:
        import psutil

        memory_per_worker = 0.9 * psutil.virtual_memory().total / _GB / workers
    # A worker that dies in a task fails that task at once: the runner retries it, counting attempts.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               resources={"memory": float(memory_per_worker)},
                               # Conversions run in child processes the nanny does not measure: memory is
                               # bounded by the resource instead.
                               memory_limit=0, dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def release_status(output_dir: str | Path) -> str:
    """``nwbridge release status``: the manifest's counts by status, sizes, and every failed task.

    Raises
    ------
    FileNotFoundError
        When no release was run into ``output_dir``.
    """
    output_dir = Path(output_dir)
    with Manifest.in_folder(output_dir, readonly=True) as manifest:
        records, about, uploads = manifest.records(), manifest.about(), manifest.upload_records()
    return format_status(records, about=about, manifest_path=manifest.path, running=lock_holder(output_dir),
                         uploads=uploads)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else "unknown error"


def run_release(sessions: list[ReleaseSession], output_dir: str | Path, *, raw: bool, client=None,
                scheduler: str | None = None, workers: int = 2, memory_per_worker: float | None = None,
                retry_failed: bool = False, verify: bool = False, codec: str = "gzip",
                threads_per_task: int | None = None, max_attempts: int = 2, release: str | None = None,
                about: dict | None = None, progress: bool = True, echo=None) -> ReleaseReport:
    """Convert every task of ``sessions`` not already done, on a dask cluster, recording each in the manifest.

    Parameters
    ----------
    sessions : list of ReleaseSession
        The release's sessions (found or not), all of one dataset.
    output_dir : str or Path
        The dandiset folder; the manifest goes to ``.nwbridge/manifest.sqlite`` in it.
    raw : bool
        Also write raw files (see :func:`plan_tasks`).
    client : distributed.Client, optional
        Use this client; otherwise one is made from ``scheduler``, ``workers`` and
        ``memory_per_worker`` (see :func:`release_client`).
    retry_failed : bool, default: False
        Convert again the tasks that failed in earlier runs (otherwise they are reported, not retried).
    verify : bool, default: False
        Recompute the checksum of every done file rather than trusting its size.
    codec : {"gzip", "zstd"}
    threads_per_task : int, optional
        Compression threads of each conversion; default the cores of its machine shared between
        the workers on it.
    max_attempts : int, default: 2
        Attempts within this run of a task whose conversion process crashed or ran out of memory
        (each retry asks for twice the memory). Bad input is not retried within a run.
    release : str, optional
        Allen: the data release, recorded in the files' provenance.
    about : dict, optional
        Facts recorded in the manifest (the sessions table, the source root).
    progress : bool, default: True
    echo : callable, optional
        Where messages during the run go (default: stderr, above the progress bars).

    Returns
    -------
    ReleaseReport
    """
    from tqdm.auto import tqdm

    output_dir = Path(output_dir).absolute()
    datasets = {session.dataset for session in sessions}
    if len(datasets) > 1:
        raise ValueError(f"one dataset per release run, got {sorted(datasets)}")
    dataset = datasets.pop() if datasets else "ibl"
    echo = echo or (lambda text: tqdm.write(text, file=sys.stderr))
    report = ReleaseReport(dataset=dataset, output_dir=output_dir)
    started = time.perf_counter()
    tasks = plan_tasks(sessions, output_dir, raw=raw)
    with release_lock(output_dir), Manifest.in_folder(output_dir) as manifest:
        for key, value in {"dataset": dataset, **(about or {})}.items():
            manifest.set_about(key, str(value))
        decisions = [decide(task, manifest.get(task.key), retry_failed=retry_failed, verify=verify) for task in tasks]
        to_convert = []
        for decision in decisions:
            task = decision.task
            manifest.register(task.key, source=task.session.source, output=task.output, input_bytes=task.input_bytes)
            if decision.action == "done":
                report.skipped.append((task, decision.reason))
            elif decision.action == "failed":
                record = decision.record
                report.failed.append((task, record.error or "unknown error", record.error_file, True))
            elif decision.action == "missing":
                manifest.count_attempt(task.key)
                manifest.fail(task.key, error=decision.reason, error_file=task.session.source)
                report.failed.append((task, decision.reason, str(task.session.source), False))
            elif decision.action == "check":
                problem = verify_output(task.output, task.identifier)
                if problem is None:
                    # Finished by a run that was killed before recording it: recorded now, not redone.
                    remove_leftovers(task.output)
                    manifest.finish(task.key, output=task.output, output_bytes=task.output.stat().st_size,
                                    checksum=sha256_file(task.output), nwbridge_version=file_version(task.output),
                                    duration_s=None)
                    report.skipped.append((task, "complete file found in place (an interrupted run), recorded"))
                else:
                    echo(f"{task.output}: {problem}; converting again")
                    to_convert.append(task)
            else:
                to_convert.append(task)
        if to_convert:
            with contextlib.ExitStack() as stack:
                if client is None:
                    client = stack.enter_context(release_client(scheduler=scheduler, workers=workers,
                                                                memory_per_worker=memory_per_worker))
                _execute(client, to_convert, manifest, report, options={
                    "codec": codec, "threads": threads_per_task, "release": release, "output_dir": str(output_dir)},
                    max_attempts=max_attempts, progress=progress, echo=echo)
        # Leftovers of interrupted writes of tasks now finished (no task of this release is running now).
        for task in tasks:
            record = manifest.get(task.key)
            if record is not None and record.status in ("done", "failed"):
                remove_leftovers(task.output)
    report.seconds = time.perf_counter() - started
    return report


def _worker_memory(client) -> float | None:
    """The largest ``memory`` resource a worker offers, or None when none offers it."""
    offered = [info.get("resources", {}).get("memory") for info in client.scheduler_info()["workers"].values()]
    offered = [float(value) for value in offered if value]
    return max(offered) if offered else None


def _workers_per_host(client) -> dict[str, int]:
    import socket

    counts: dict[str, int] = {}
    for host in client.run(socket.gethostname).values():
        counts[host] = counts.get(host, 0) + 1
    return counts


def _execute(client, tasks: list[ReleaseTask], manifest: Manifest, report: ReleaseReport, *, options: dict,
             max_attempts: int, progress: bool, echo) -> None:
    """Run ``tasks`` on ``client``'s cluster, recording starts and results as they come."""
    from tqdm.auto import tqdm

    client.wait_for_workers(1)
    offered = _worker_memory(client)
    if offered is None:
        echo("The cluster's workers offer no 'memory' resource: each worker thread takes one task, whatever its "
             "size. Start workers with --resources memory=GB to bound tasks by memory.")
    per_host = _workers_per_host(client)
    run_id = uuid.uuid4().hex[:8]
    events: queue.Queue = queue.Queue()
    by_name = {task.name: task for task in tasks}
    attempts = {task.name: 0 for task in tasks}  # submissions
    runs = {task.name: 0 for task in tasks}  # submissions that started on a worker
    started_attempt: dict[str, int] = {}
    memory = {task.name: task.memory_gb for task in tasks}
    in_flight: dict[str, object] = {}

    def submit(task: ReleaseTask) -> None:
        attempts[task.name] += 1
        spec = {"task": task.name, "attempt": attempts[task.name], "run": run_id, "dataset": task.session.dataset,
                "kind": task.kind, "source": str(task.session.source), "output": str(task.output),
                "session_id": task.session.session_id, "workers_per_host": per_host, **options}
        resources = None
        if offered is not None:
            # More than any worker offers would wait forever: such a task runs alone on the largest worker.
            resources = {"memory": min(memory[task.name], offered)}
        future = client.submit(run_task, spec, pure=False, resources=resources,
                               key=f"nwbridge-{task.kind}-{task.session.session_id}-{uuid.uuid4().hex[:8]}")
        future.add_done_callback(lambda done, name=task.name, attempt=attempts[task.name]:
                                 events.put(("finished", name, attempt, done)))
        in_flight[task.name] = future

    def record_start(name: str, attempt: int, at: str | None = None) -> None:
        if started_attempt.get(name, 0) < attempt:
            started_attempt[name] = attempt
            runs[name] += 1
            manifest.start(by_name[name].key, started_at=at)

    def on_event(event) -> None:
        timestamp, message = event
        if isinstance(message, dict) and message.get("run") == run_id and message.get("event") == "started":
            events.put(("started", message["task"], message.get("attempt"), timestamp))

    sessions_left = {}
    for task in tasks:
        sessions_left.setdefault(task.session.session_id, set()).add(task.name)
    total_bytes = sum(task.input_bytes for task in tasks)
    session_bar = tqdm(total=len(sessions_left), desc="sessions", unit="session", disable=not progress,
                       file=sys.stderr, position=0)
    bytes_bar = tqdm(total=total_bytes, desc="input", unit="B", unit_scale=True, unit_divisor=1024,
                     disable=not progress, file=sys.stderr, position=1)
    client.subscribe_topic(EVENT_TOPIC, on_event)
    try:
        for task in tasks:
            submit(task)
        while in_flight:
            try:
                kind, name, attempt, payload = events.get(timeout=1.0)
            except queue.Empty:
                continue
            if kind == "started":
                # The worker's event carries the attempt the spec gave it.
                if name in in_flight and (attempt or attempts[name]) == attempts[name]:
                    record_start(name, attempts[name],
                                 datetime.fromtimestamp(payload, timezone.utc).replace(microsecond=0).isoformat())
                continue
            if attempt != attempts[name] or name not in in_flight:
                continue
            del in_flight[name]
            task = by_name[name]
            try:
                result = payload.result()
            except Exception as error:  # the worker died, or the cluster lost the task
                result = {"ok": False, "error": f"the worker running the task was lost ({type(error).__name__}: "
                                                f"{error})", "error_file": None, "transient": True, "seconds": None}
                # A task merely queued on a worker that died never started: that costs it no attempt.
                ran = started_attempt.get(name, 0) == attempt
            else:
                record_start(name, attempt)  # it ran, whether or not its start event arrived
                ran = True
            if result["ok"]:
                manifest.finish(task.key, output=result["output"], output_bytes=result["output_bytes"],
                                checksum=result["checksum"], nwbridge_version=result.get("version") or "unknown",
                                duration_s=result["seconds"])
                report.converted.append((task, result))
            elif result.get("transient") and (not ran or runs[name] < max_attempts) and \
                    attempts[name] < max_attempts + _EXTRA_SUBMISSIONS:
                if ran:
                    echo(f"retrying {task.name} ({task.session.label}): {_first_line(result['error'])}")
                    manifest.fail(task.key, error=result["error"], error_file=result.get("error_file"),
                                  duration_s=result.get("seconds"))
                    memory[name] = memory[name] * 2
                submit(task)
                continue
            else:
                if not ran:
                    record_start(name, attempt)
                manifest.fail(task.key, error=result["error"], error_file=result.get("error_file"),
                              duration_s=result.get("seconds"))
                report.failed.append((task, result["error"], result.get("error_file"), False))
                echo(f"FAILED {task.name} ({task.session.label}): {_first_line(result['error'])}")
            bytes_bar.update(task.input_bytes)
            left = sessions_left[task.session.session_id]
            left.discard(name)
            if not left:
                session_bar.update()
            bytes_bar.set_postfix_str(f"{len(report.converted)} converted, {len(report.failed)} failed")
    except KeyboardInterrupt:
        report.interrupted = True
        for future in in_flight.values():
            future.cancel()
    finally:
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(EVENT_TOPIC)
        bytes_bar.close()
        session_bar.close()
