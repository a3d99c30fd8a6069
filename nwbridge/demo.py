"""``make demo``: an example session of each source, generated, converted, checked and described."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

__all__ = ["run_demo"]


def run_demo(output: str | Path) -> bool:
    """Generate, convert and check an example session of each source (IBL and Allen) under ``output``.

    Returns
    -------
    bool
        Whether every written file passed ``nwbridge check``.
    """
    from .converters.allen_session import convert_allen_session
    from .converters.ibl_session import convert_ibl_session
    from .schemas.checker import check_files
    from .summary import RunSummary, describe_nwbfile
    from .testing import make_ibl_session, make_vbn_session

    output = Path(output)
    sources = output / "sources"
    dandiset = output / "dandiset"
    # The demo is reproducible: start from an empty folder every time.
    shutil.rmtree(output, ignore_errors=True)

    click.echo("1/3 Generating a realistic session of each source ...")
    session_path = make_ibl_session(sources / "ibl", n_trials=400, videos=True, seed=0)
    files = sorted(p for p in session_path.rglob("*") if p.is_file())
    click.echo(f"    IBL (ALF files, ONE cache layout): {session_path} ({len(files)} files)")
    vbn = make_vbn_session(sources / "allen", probes=("probeA", "probeB", "probeC"), n_units_per_probe=60,
                           duration_s=900.0, seed=0)
    click.echo(f"    Allen (AllenSDK NWB files): {vbn.session_file} and {len(vbn.probe_files)} probe LFP files")

    click.echo("2/3 Converting them ...")
    summary = RunSummary()
    summary.written.extend(convert_ibl_session(session_path, dandiset, overwrite=True))
    summary.written.extend(convert_allen_session(vbn.session_file, dandiset, overwrite=True))
    for path in summary.written:
        click.echo(describe_nwbfile(path))

    click.echo("3/3 Checking the output (shared representation + nwbinspector, DANDI configuration) ...")
    text, ok = check_files(summary.written)
    click.echo(text)
    click.echo(summary.format())
    click.echo("\nDemo " + ("passed" if ok else "FAILED") + f": output in {dandiset}")
    if ok:
        click.echo(f"Next, to put it on DANDI: nwbridge dandi organize {dandiset} --dandiset-id <ID>; "
                   f"nwbridge dandi validate {dandiset}; nwbridge dandi upload {dandiset} --dry-run")
    return ok
