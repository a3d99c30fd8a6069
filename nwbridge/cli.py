"""The ``nwbridge`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import NwbridgeError

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nwbridge")
def main():
    """Convert IBL and Allen Neuropixels sessions into one NWB representation, ready for DANDI."""


@main.group()
def convert():
    """Convert sessions of one source."""


@convert.command("ibl")
@click.argument("session_paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output-dir", required=True, type=click.Path(path_type=Path),
              help="Dandiset folder to write into (sub-<subject>/... is created).")
@click.option("--metadata", "metadata_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML or JSON metadata completing the session's (sections NWBFile, Subject).")
@click.option("--revision", help="ALF revision to convert (default: the newest of every dataset).")
@click.option("--raw", is_flag=True,
              help="Also write the raw file (AP and LF voltage of every probe, streamed from the .cbin files).")
@click.option("--workers", type=click.IntRange(min=1), help="Threads for (de)compression (default: every core).")
@click.option("--codec", type=click.Choice(["gzip", "zstd"]), default="gzip", show_default=True,
              help="Compression of large datasets. zstd is faster, but readers need the HDF5 Zstandard filter "
                   "(pip install hdf5plugin; import hdf5plugin before opening the file).")
@click.option("--overwrite", is_flag=True, help="Replace files that already exist (default: skip them).")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@click.option("--debug", is_flag=True, help="Show the full traceback of unexpected errors.")
def convert_ibl(session_paths, output_dir, metadata_file, revision, raw, workers, codec, overwrite, progress, debug):
    """Convert IBL session folders (SESSION_PATHS, as the ONE API downloads them)."""
    from .converters.ibl_session import convert_ibl_session
    from .summary import RunSummary, describe_nwbfile

    summary = RunSummary()
    for session_path in session_paths:
        try:
            written = convert_ibl_session(session_path, output_dir, metadata=metadata_file, overwrite=overwrite,
                                          revision=revision, raw=raw, workers=workers, codec=codec,
                                          progress=progress)
        except FileExistsError as error:
            summary.skipped.append((str(session_path), str(error)))
            continue
        except NwbridgeError as error:
            summary.failed.append((str(session_path), str(error)))
            click.echo(f"FAILED {session_path}\n{error}", err=True)
            continue
        except Exception as error:  # an unexpected failure of one session must not stop the others
            if debug:
                raise
            summary.failed.append((str(session_path), f"{type(error).__name__}: {error} (rerun with --debug)"))
            click.echo(f"FAILED {session_path}: {type(error).__name__}: {error}", err=True)
            continue
        summary.written.extend(written)
        for path in written:
            click.echo(describe_nwbfile(path))
    click.echo(summary.format())
    sys.exit(1 if summary.failed else 0)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(files):
    """Check NWB FILES against the shared representation and nwbinspector's DANDI configuration."""
    from .schemas.checker import check_files

    text, ok = check_files(list(files))
    click.echo(text)
    sys.exit(0 if ok else 1)


@main.group()
def generate():
    """Generate realistic example sessions (for trying nwbridge out, tests and benchmarks)."""


@generate.command("ibl")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--subject", default="KS055", show_default=True)
@click.option("--date", default="2021-05-10", show_default=True)
@click.option("--n-trials", default=400, show_default=True, type=int)
@click.option("--duration", "duration_s", type=float, help="Session length in seconds (default: from the trials).")
@click.option("--videos/--no-videos", default=True, show_default=True, help="Write placeholder mp4 files.")
@click.option("--seed", default=0, show_default=True, type=int)
def generate_ibl(root, subject, date, n_trials, duration_s, videos, seed):
    """Write a realistic IBL session (ALF files, ONE cache layout) under ROOT and print its path."""
    from .testing import make_ibl_session

    session_path = make_ibl_session(root, subject=subject, date=date, n_trials=n_trials, duration_s=duration_s,
                                    videos=videos, seed=seed)
    click.echo(session_path)


@main.command()
@click.option("-o", "--output", "output", default="demo_output", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the generated sources and the converted dandiset.")
def demo(output):
    """Generate an example session, convert it, check it, and print what was written."""
    from .demo import run_demo

    sys.exit(0 if run_demo(output) else 1)


if __name__ == "__main__":
    main()
