"""``nwbridge dandi``: organize, validate and upload a dandiset folder."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["dandi"]

_DANDISET_DIR = click.argument("dandiset_dir", type=click.Path(file_okay=False, path_type=Path))
_JOBS_HELP = "Files read at once, each in its own process."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def dandi():
    """Put converted files on DANDI: organize, then validate, then upload (which validates again first).

    Each step is dandi-cli's own (names, validation, upload), with nwbridge's check added and
    re-runs made safe: an organized file is not touched again, an uploaded asset not sent again.
    """


def _fail(error: Exception) -> None:
    click.echo(f"Error: {error}", err=True)
    sys.exit(2)


@dandi.command("organize")
@_DANDISET_DIR
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--dandiset-id", metavar="ID", help="Write dandiset.yaml naming this dandiset (six digits) if absent.")
@click.option("--copy", is_flag=True, help="Copy SOURCES and their videos instead of moving them.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help=_JOBS_HELP)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def organize_command(dandiset_dir, sources, dandiset_id, copy, jobs, progress):
    """Give NWB files their DANDI names in DANDISET_DIR, with their videos beside them.

    SOURCES (NWB files or folders) are brought into DANDISET_DIR; without SOURCES the files already
    in it are organized in place. Files already organized are left untouched.
    """
    from .dandi_upload import DandiWorkflowError, organize_dandiset

    try:
        report = organize_dandiset(dandiset_dir, list(sources) or None, mode="copy" if copy else "move",
                                   dandiset_id=dandiset_id, jobs=jobs, progress=progress)
    except DandiWorkflowError as error:
        _fail(error)
    click.echo(report.format())
    if not report.ok:
        sys.exit(1)


@dandi.command("validate")
@_DANDISET_DIR
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help="Files validated at once.")
@click.option("--verbose", is_flag=True, help="List warnings too, not only errors.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def validate_command(dandiset_dir, jobs, verbose, progress):
    """Validate DANDISET_DIR with dandi-cli and nwbridge's check; exit 1 on any error."""
    from .dandi_upload import validate_dandiset

    if not dandiset_dir.is_dir():
        _fail(FileNotFoundError(f"{dandiset_dir}: no such folder"))
    validation = validate_dandiset(dandiset_dir, jobs=jobs, progress=progress)
    click.echo(validation.format(verbose=verbose))
    if not validation.ok:
        sys.exit(1)


@dandi.command("upload")
@_DANDISET_DIR
@click.option("--instance", default="dandi", show_default=True, metavar="NAME|URL",
              help="dandi, dandi-sandbox, or an instance's URL.")
@click.option("--existing", type=click.Choice(["skip", "refresh", "overwrite", "force", "error"]), default="skip",
              show_default=True, help="What to do with an asset the archive already has (dandi-cli's --existing).")
@click.option("--jobs", type=click.IntRange(min=1), help="Files uploaded at once (dandi-cli's default: 5).")
@click.option("--jobs-per-file", type=click.IntRange(min=1), help="Parts of one file uploaded at once.")
@click.option("--validation-jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Files validated at once before the upload.")
@click.option("--dry-run", is_flag=True, help="Validate and list assets, sizes and archive paths; send nothing.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def upload_command(dandiset_dir, instance, existing, jobs, jobs_per_file, validation_jobs, dry_run, progress):
    """Validate DANDISET_DIR, then upload it with dandi-cli; nothing is sent if validation finds errors.

    The API key comes from the environment variable dandi-cli reads (DANDI_API_KEY for dandi,
    DANDI_SANDBOX_API_KEY for dandi-sandbox).
    """
    from .dandi_upload import DandiWorkflowError, UploadRefusedError, upload_dandiset

    try:
        report = upload_dandiset(dandiset_dir, instance=instance, existing=existing, jobs=jobs,
                                 jobs_per_file=jobs_per_file, dry_run=dry_run, validation_jobs=validation_jobs,
                                 progress=progress)
    except UploadRefusedError as error:
        click.echo(error.validation.format(), err=True)
        click.echo(f"\nError: upload refused: validation found {len(error.validation.errors)} error(s); "
                   "nothing was uploaded.", err=True)
        sys.exit(1)
    except DandiWorkflowError as error:
        _fail(error)
    click.echo(report.text)
    if dry_run and not report.validation.ok:
        sys.exit(1)
