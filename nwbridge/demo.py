"""``make demo``: an example session of each source, generated, converted, checked and described."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

__all__ = ["run_demo"]


def run_demo(output: str | Path) -> bool:
    """Generate, convert and check an example IBL session under ``output``.

    Returns
    -------
    bool
        Whether every written file passed ``nwbridge check``.
    """
    from .converters.ibl_session import convert_ibl_session
    from .schemas.checker import check_files
    from .summary import RunSummary, describe_nwbfile
    from .testing import make_ibl_session

    output = Path(output)
    sources = output / "sources"
    dandiset = output / "dandiset"
    # The demo is reproducible: start from an empty folder every time.
    shutil.rmtree(output, ignore_errors=True)

    click.echo("1/3 Generating a realistic IBL session (ALF files, ONE cache layout) ...")
    session_path = make_ibl_session(sources / "ibl", n_trials=400, videos=True, seed=0)
    files = sorted(p for p in session_path.rglob("*") if p.is_file())
    click.echo(f"    {session_path} ({len(files)} files)")

    click.echo("2/3 Converting it ...")
    summary = RunSummary()
    summary.written.extend(convert_ibl_session(session_path, dandiset, overwrite=True))
    for path in summary.written:
        click.echo(describe_nwbfile(path))

    click.echo("3/3 Checking the output (shared representation + nwbinspector, DANDI configuration) ...")
    text, ok = check_files(summary.written)
    click.echo(text)
    click.echo(summary.format())
    click.echo("\nDemo " + ("passed" if ok else "FAILED") + f": output in {dandiset}")
    return ok
