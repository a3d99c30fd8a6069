"""The ``nwbridge`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import NwbridgeError
from .dandi_cli import dandi
from .release_cli import release

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

    _convert_each(session_paths, debug, lambda session_path: convert_ibl_session(
        session_path, output_dir, metadata=metadata_file, overwrite=overwrite, revision=revision, raw=raw,
        workers=workers, codec=codec, progress=progress))


@convert.command("allen")
@click.argument("session_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output-dir", required=True, type=click.Path(path_type=Path),
              help="Dandiset folder to write into (sub-<mouse>/... is created).")
@click.option("--probe-file", "probe_files", multiple=True, type=click.Path(path_type=Path),
              help="A probe's LFP file (probe_<id>.nwb); repeat for each probe. Default: those beside the "
                   "session file.")
@click.option("--no-lfp", is_flag=True, help="Write the processed file only, not the raw file with the LFP.")
@click.option("--metadata", "metadata_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML or JSON metadata completing the session's (sections NWBFile, Subject).")
@click.option("--release", help="The data release the files come from, recorded in the provenance.")
@click.option("--workers", type=click.IntRange(min=1), help="Compression threads (default: every core).")
@click.option("--codec", type=click.Choice(["gzip", "zstd"]), default="gzip", show_default=True,
              help="Compression of large datasets (zstd: readers need hdf5plugin).")
@click.option("--overwrite", is_flag=True, help="Replace files that already exist (default: skip them).")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@click.option("--debug", is_flag=True, help="Show the full traceback of unexpected errors.")
def convert_allen(session_files, output_dir, probe_files, no_lfp, metadata_file, release, workers, codec, overwrite,
                  progress, debug):
    """Convert Allen Visual Behavior Neuropixels session files (SESSION_FILES: ecephys_session_<id>.nwb)."""
    from .converters.allen_session import convert_allen_session

    if probe_files and len(session_files) > 1:
        raise click.UsageError("--probe-file belongs to one session: give a single SESSION_FILE with it")
    if probe_files and no_lfp:
        raise click.UsageError("--no-lfp writes no LFP: it cannot be given with --probe-file")
    chosen = [] if no_lfp else (list(probe_files) or None)
    _convert_each(session_files, debug, lambda session_file: convert_allen_session(
        session_file, output_dir, probe_files=chosen, metadata=metadata_file, overwrite=overwrite, release=release,
        workers=workers, codec=codec, progress=progress))


def _convert_each(sources, debug: bool, convert_one) -> None:
    """Convert every source, going on after a failure, and end with what was written, skipped and failed."""
    from .summary import RunSummary, describe_nwbfile

    summary = RunSummary()
    for source in sources:
        try:
            written = convert_one(source)
        except FileExistsError as error:
            summary.skipped.append((str(source), str(error)))
            continue
        except NwbridgeError as error:
            summary.failed.append((str(source), str(error)))
            click.echo(f"FAILED {source}\n{error}", err=True)
            continue
        except Exception as error:  # an unexpected failure of one session must not stop the others
            if debug:
                raise
            summary.failed.append((str(source), f"{type(error).__name__}: {error} (rerun with --debug)"))
            click.echo(f"FAILED {source}: {type(error).__name__}: {error}", err=True)
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


@generate.command("allen")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--session-id", "ecephys_session_id", default=1044385384, show_default=True, type=int)
@click.option("--probes", default="probeA,probeB,probeC", show_default=True,
              help="Comma-separated probe names (probeA .. probeF).")
@click.option("--units-per-probe", default=60, show_default=True, type=int)
@click.option("--duration", "duration_s", default=600.0, show_default=True, type=float, help="Seconds.")
@click.option("--seed", default=0, show_default=True, type=int)
def generate_allen(folder, ecephys_session_id, probes, units_per_probe, duration_s, seed):
    """Write a realistic VBN session (AllenSDK NWB session file + one LFP file per probe) into FOLDER."""
    from .testing import make_vbn_session

    session = make_vbn_session(folder, ecephys_session_id=ecephys_session_id,
                               probes=tuple(name.strip() for name in probes.split(",") if name.strip()),
                               n_units_per_probe=units_per_probe, duration_s=duration_s, seed=seed)
    click.echo(session.session_file)
    for path in session.probe_files.values():
        click.echo(path)


@main.command()
@click.option("-o", "--output", "output", default="demo_output", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the generated sources and the converted dandiset.")
def demo(output):
    """Generate an example session of each source (IBL and Allen), convert them, check them, print what was written."""
    from .demo import run_demo

    sys.exit(0 if run_demo(output) else 1)


main.add_command(release)
main.add_command(dandi)


if __name__ == "__main__":
    main()
