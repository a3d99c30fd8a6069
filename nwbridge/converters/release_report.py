"""What a release run prints: the final table, a dry run's listing, and the manifest's status."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..summary import human_size
from .manifest import MANIFEST_PATH, TaskRecord
from .release_plan import Decision

__all__ = ["ReleaseReport", "format_plan", "format_status"]

_GB = 1024**3


@dataclass
class ReleaseReport:
    """What a release run did.

    Attributes
    ----------
    dataset : str
    output_dir : Path
    converted : list of (ReleaseTask, dict)
        Tasks converted in this run, with their result (``output_bytes``, ``seconds``, ...).
    skipped : list of (ReleaseTask, str)
        Tasks not converted because their file is done (or was found complete in place).
    failed : list of (ReleaseTask, str, str or None, bool)
        Task, error, the file the error names, and whether it failed in an earlier run (not retried).
    seconds : float
    interrupted : bool
    """

    dataset: str
    output_dir: Path
    converted: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def format(self) -> str:
        """The final table: converted, skipped and failed by file kind, and why each failure."""
        kinds = sorted({item[0].kind for group in (self.converted, self.skipped, self.failed) for item in group},
                       key=("processed", "raw").index)
        lines = ["", f"Release summary ({self.dataset} -> {self.output_dir})",
                 f"  {'kind':<10} {'converted':>9} {'skipped':>8} {'failed':>7} {'input':>10} {'output':>10}"]
        for kind in kinds + ["total"]:
            def chosen(group):
                return [item for item in group if kind == "total" or item[0].kind == kind]

            converted = chosen(self.converted)
            read = sum(task.input_bytes for task, _ in converted)
            written = sum(result["output_bytes"] for _, result in converted)
            lines.append(f"  {kind:<10} {len(converted):>9} {len(chosen(self.skipped)):>8} "
                         f"{len(chosen(self.failed)):>7} {human_size(read):>10} {human_size(written):>10}")
        if self.converted and self.seconds > 0:
            sessions = len({task.session.session_id for task, _ in self.converted})
            read = sum(task.input_bytes for task, _ in self.converted)
            minutes = self.seconds / 60
            lines.append(f"  {sessions} session(s), {human_size(read)} of sources in {self.seconds:.0f} s: "
                         f"{sessions / minutes:.1f} sessions/min, {read / _GB / minutes:.2f} GB/min")
        reasons: dict[str, int] = {}
        for _, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in reasons.items():
            lines.append(f"  skipped {count}: {reason}")
        if self.failed:
            lines.append("  failed:")
            for task, error, error_file, earlier in self.failed:
                first = error.strip().splitlines()[0] if error.strip() else "unknown error"
                lines.append(f"    {task.session.session_id} ({task.session.label}) {task.kind}: {first}"
                             + (" [earlier run]" if earlier else ""))
                if error_file and error_file not in first:
                    lines.append(f"      file: {error_file}")
            if any(earlier for *_, earlier in self.failed):
                lines.append("  To retry failed tasks (after fixing their sources), run the same command with "
                             "--retry-failed.")
            else:
                lines.append("  Fix the sources named above, then rerun the same command with --retry-failed: "
                             "finished tasks are not redone.")
        if self.interrupted:
            lines.append("  Interrupted: rerun the same command to finish; finished tasks are not redone.")
        lines.append(f"  manifest: {self.output_dir / MANIFEST_PATH} (nwbridge release status {self.output_dir})")
        return "\n".join(lines)


def format_plan(decisions: list[Decision]) -> str:
    """A dry run's listing: every task, its input size and what a run would do with it."""
    state = {"convert": "convert", "done": "done", "failed": "failed earlier", "missing": "not found",
             "check": "check file in place"}
    lines = [f"{'session':<38} {'label':<26} {'kind':<10} {'input':>10}  state"]
    for decision in decisions:
        task = decision.task
        detail = "" if decision.action == "done" else f" ({decision.reason})"
        lines.append(f"{task.session.session_id:<38} {task.session.label:<26} {task.kind:<10} "
                     f"{human_size(task.input_bytes):>10}  {state[decision.action]}{detail}")
    to_run = [d for d in decisions if d.action in ("convert", "check")]
    count = {action: sum(d.action == action for d in decisions) for action in state}
    sessions = len({d.task.session.session_id for d in to_run})
    lines += ["", f"Would convert {len(to_run)} task(s) of {sessions} session(s): "
                  f"{human_size(sum(d.task.input_bytes for d in to_run))} of input "
                  f"({sum(d.task.input_bytes for d in to_run) / _GB:.3f} GB).",
              f"Already done: {count['done']}. Failed earlier (retried only with --retry-failed): {count['failed']}. "
              f"Not found (would be recorded as failed): {count['missing']}.",
              f"Total input of the listed tasks: {human_size(sum(d.task.input_bytes for d in decisions))}."]
    return "\n".join(lines)


def format_status(records: list[TaskRecord], *, about: dict, manifest_path: Path, running: str | None,
                  uploads: list | None = None) -> str:
    """The text of ``nwbridge release status``: counts by status, sizes, and every failed task with its error.

    Parameters
    ----------
    records : list of TaskRecord
        The manifest's rows.
    about : dict
        The manifest's facts about the release (dataset, sessions table, source).
    manifest_path : Path
    running : str or None
        Who runs a release into the folder now (the lock's holder), or None.
    uploads : list of UploadRecord, optional
        The manifest's upload records (``--upload``).
    """
    lines = [f"Manifest {manifest_path}"]
    if about.get("sessions_table"):
        lines.append(f"  release: {about.get('dataset', '?')} {about['sessions_table']} (sources {about.get('source')})")
    lines.append(f"  a release is running now ({running})" if running else "  no release is running now")
    lines.append(f"  {'dataset':<8} {'kind':<10} {'pending':>8} {'running':>8} {'done':>6} {'failed':>7} "
                 f"{'output':>10}")
    groups = sorted({(record.dataset, record.kind) for record in records})
    for dataset, kind in groups + [("total", "")]:
        chosen = [r for r in records if dataset == "total" or (r.dataset, r.kind) == (dataset, kind)]
        counts = {status: sum(r.status == status for r in chosen) for status in ("pending", "running", "done", "failed")}
        written = sum(r.output_bytes or 0 for r in chosen if r.status == "done")
        lines.append(f"  {dataset:<8} {kind:<10} {counts['pending']:>8} {counts['running']:>8} {counts['done']:>6} "
                     f"{counts['failed']:>7} {human_size(written):>10}")
    sessions = {r.session for r in records}
    complete = sessions - {r.session for r in records if r.status != "done"}
    lines.append(f"  sessions: {len(complete)} of {len(sessions)} complete")
    failed = [r for r in records if r.status == "failed"]
    if failed:
        lines.append("  failed:")
        for record in failed:
            first = (record.error or "unknown error").strip().splitlines()[0]
            lines.append(f"    {record.dataset} {record.session} {record.kind} (attempts {record.attempts}): {first}")
            if record.error_file and record.error_file not in first:
                lines.append(f"      file: {record.error_file}")
        lines.append("  Retry them (after fixing their sources) by rerunning the release with --retry-failed.")
    interrupted = [r for r in records if r.status == "running"]
    if interrupted and not running:
        lines.append(f"  {len(interrupted)} task(s) were running when a release stopped: rerun it to finish them.")
    for (instance, dandiset) in sorted({(record.instance, record.dandiset) for record in uploads or []}):
        chosen = [record for record in uploads if (record.instance, record.dandiset) == (instance, dandiset)]
        counts = {status: sum(record.status == status for record in chosen)
                  for status in ("uploaded", "refused", "failed")}
        lines.append(f"  uploads to dandiset {dandiset} ({instance}): {counts['uploaded']} uploaded, "
                     f"{counts['refused']} refused by validation, {counts['failed']} failed")
        for record in chosen:
            if record.status != "uploaded":
                first = (record.error or "no reason recorded").strip().splitlines()[0]
                lines.append(f"    {record.status} {record.path}: {first}")
    return "\n".join(lines)
