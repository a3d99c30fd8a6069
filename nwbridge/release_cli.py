"""``nwbridge release``: converting a whole data release, resumably, on a laptop or a cluster."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

__all__ = ["release"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def release():
    """Convert a whole release (every session of a release table) on dask.distributed.

    A manifest in the output folder (.nwbridge/manifest.sqlite) records every file: rerun the same
    command after a crash or a kill and only what is not finished is done.
    """


def _run_options(command):
    """The options ``release ibl`` and ``release allen`` share: output, cluster, selection, reruns."""
    options = [
        click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Dandiset folder to write into (the manifest goes to .nwbridge/ in it)."),
        click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
                     help="Worker processes of the local cluster (one task at a time each)."),
        click.option("--memory-per-worker", type=click.FloatRange(min=0.1), metavar="GB",
                     help="Memory each local worker offers to tasks (default: the machine's, shared); a task "
                          "asks for its estimate, so big tasks run fewer at a time."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="Use a running dask cluster (e.g. made with dask-jobqueue) instead of a local one. Its "
                          "workers need --resources memory=GB and the same paths."),
        click.option("--only", "only", multiple=True, metavar="ID",
                     help="Convert only this session (IBL eid, Allen ecephys_session_id); repeatable."),
        click.option("--retry-failed", is_flag=True, help="Convert again the tasks that failed in earlier runs."),
        click.option("--verify", is_flag=True,
                     help="Recompute the checksum of every finished file instead of trusting its size."),
        click.option("--dry-run", is_flag=True, help="List what would be converted, and the input size; do nothing."),
        click.option("--codec", type=click.Choice(["gzip", "zstd"]), default="gzip", show_default=True,
                     help="Compression of large datasets (zstd: readers need hdf5plugin)."),
        click.option("--threads-per-task", type=click.IntRange(min=1),
                     help="Compression threads per conversion (default: the machine's cores shared between its "
                          "workers)."),
        click.option("--max-attempts", default=2, show_default=True, type=click.IntRange(min=1),
                     help="Attempts within one run of a task whose conversion crashed or ran out of memory."),
        click.option("--progress/--no-progress", default=True, help="Show progress bars."),
        click.option("--upload", "upload_to", metavar="DANDISET_ID",
                     help="After converting, organize the folder, validate every file and upload it to this "
                          "dandiset (recorded in the manifest: a rerun sends nothing twice). The API key is "
                          "checked before any conversion starts."),
        click.option("--dandi-instance", default="dandi", show_default=True, metavar="NAME|URL",
                     help="Where --upload sends the files: dandi, dandi-sandbox or an instance's URL."),
        click.option("--upload-jobs", default=2, show_default=True, type=click.IntRange(min=1),
                     help="Files uploaded at once by --upload, whatever the number of workers."),
        click.option("--upload-existing", type=click.Choice(["skip", "refresh", "overwrite", "force", "error"]),
                     default="skip", show_default=True,
                     help="What --upload does with an asset the archive already has (dandi-cli's --existing)."),
    ]
    return functools.reduce(lambda decorated, option: option(decorated), reversed(options), command)


@release.command("ibl")
@click.option("--sessions", "sessions_table", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The release list (e.g. 2023_12_bwm_release.csv: one row per probe insertion).")
@click.option("--source", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="ONE cache root: sessions are <ROOT>/<lab>/Subjects/<subject>/<date>/<NNN>.")
@click.option("--raw", is_flag=True, help="Also write every session's raw file (AP and LF voltage).")
@_run_options
def release_ibl(sessions_table, source, raw, **options):
    """Convert every session of an IBL Brain Wide Map release list."""
    from .converters.release_sources import locate_ibl_session, read_ibl_release

    def sessions(root):
        return [locate_ibl_session(entry, root) for entry in read_ibl_release(sessions_table)]

    _run("ibl", sessions, sessions_table=sessions_table, source=source, raw=raw, release_name=None, **options)


@release.command("allen")
@click.option("--sessions", "sessions_table", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The VBN sessions table (ecephys_sessions.csv).")
@click.option("--source", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="AllenSDK cache folder: sessions are <CACHE>/behavior_ecephys_sessions/<id>/ecephys_session_<id>.nwb.")
@click.option("--no-lfp", is_flag=True, help="Write the processed files only, not the raw files with the LFP.")
@click.option("--release", "release_name", help="The data release the files come from, recorded in the provenance.")
@_run_options
def release_allen(sessions_table, source, no_lfp, release_name, **options):
    """Convert every session of the Allen Visual Behavior Neuropixels sessions table."""
    from .converters.release_sources import locate_allen_session, read_vbn_sessions

    def sessions(root):
        return [locate_allen_session(entry, root) for entry in read_vbn_sessions(sessions_table)]

    _run("allen", sessions, sessions_table=sessions_table, source=source, raw=not no_lfp, release_name=release_name,
         **options)


def _run(dataset, sessions, *, sessions_table, source, raw, release_name, output_dir, workers, memory_per_worker,
         scheduler, only, retry_failed, verify, dry_run, codec, threads_per_task, max_attempts, progress,
         upload_to, dandi_instance, upload_jobs, upload_existing) -> None:
    from .converters.manifest import Manifest
    from .converters.release import run_release
    from .converters.release_plan import decide, plan_tasks
    from .converters.release_report import format_plan
    from .errors import NwbridgeError

    # Workers of a cluster do not share the driver's working directory: every path is made absolute.
    output_dir, source = output_dir.absolute(), source.absolute()
    try:
        found = sessions(source)
    except NwbridgeError as error:
        raise click.ClickException(str(error)) from None
    if only:
        wanted = set(only)
        unknown = wanted - {session.session_id for session in found}
        if unknown:
            raise click.BadParameter(f"not in {sessions_table}: {', '.join(sorted(unknown))}", param_hint="--only")
        found = [session for session in found if session.session_id in wanted]

    if upload_to is not None:
        from .converters.release_upload import check_upload_target

        try:
            # Hours of conversion must not end in a refusal that could have been seen now.
            check_upload_target(upload_to, dandi_instance)
        except NwbridgeError as error:
            raise click.ClickException(str(error)) from None

    if dry_run:
        tasks = plan_tasks(found, output_dir, raw=raw)
        try:
            manifest = Manifest.in_folder(output_dir, readonly=True)
        except FileNotFoundError:
            manifest = None
        records = {record.key: record for record in manifest.records()} if manifest else {}
        if manifest:
            manifest.close()
        decisions = [decide(task, records.get(task.key), retry_failed=retry_failed, verify=verify) for task in tasks]
        click.echo(f"Dry run: {dataset} release {sessions_table} ({len(found)} session(s)), sources {source}, "
                   f"output {output_dir}")
        click.echo(format_plan(decisions))
        if upload_to is not None:
            click.echo(f"Then: organize {output_dir}, validate every file and upload to dandiset {upload_to} on "
                       f"{dandi_instance}, {upload_jobs} file(s) at a time.")
        return

    try:
        report = run_release(found, output_dir, raw=raw, scheduler=scheduler, workers=workers,
                             memory_per_worker=memory_per_worker, retry_failed=retry_failed, verify=verify,
                             codec=codec, threads_per_task=threads_per_task, max_attempts=max_attempts,
                             release=release_name, progress=progress,
                             about={"sessions_table": Path(sessions_table).resolve(), "source": Path(source).resolve()})
    except RuntimeError as error:  # another release holds the output folder
        raise click.ClickException(str(error)) from None
    click.echo(report.format())
    uploaded_ok = True
    if upload_to is not None and not report.interrupted:
        from .converters.release_upload import upload_release

        try:
            stage = upload_release(output_dir, upload_to, instance=dandi_instance, jobs=upload_jobs,
                                   existing=upload_existing, progress=progress)
        except NwbridgeError as error:
            raise click.ClickException(str(error)) from None
        click.echo(stage.format())
        uploaded_ok = stage.ok
    sys.exit(130 if report.interrupted else (0 if report.ok and uploaded_ok else 1))


@release.command("status")
@click.argument("output_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def release_status(output_dir):
    """Print what the manifest of the release in OUTPUT_DIR says: counts by status, and every failure."""
    from .converters.release import release_status

    try:
        click.echo(release_status(output_dir))
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from None


if __name__ == "__main__":
    release()
