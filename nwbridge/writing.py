"""Writing NWB files so that an interrupted or failed conversion leaves nothing in place."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from neuroconv.tools.nwb_helpers import configure_and_write_nwbfile
from pynwb import NWBFile

__all__ = ["partial_path", "write_nwbfile_atomically"]


def partial_path(path: Path) -> Path:
    """Where a file is written before it is complete: beside it, with a suffix no NWB tool picks up."""
    return path.with_name(path.name + ".partial")


def write_nwbfile_atomically(nwbfile: NWBFile, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``nwbfile`` to ``path`` under a temporary name and rename it when complete.

    The rename is atomic on one file system, so ``path`` holds either the previous file (or
    nothing) or the complete new one, never a half-written file, whatever interrupts the write.

    Parameters
    ----------
    nwbfile : NWBFile
        The in-memory file.
    path : str or Path
        Final location.
    overwrite : bool, default: False
        Replace an existing file; otherwise an existing file is an error.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    try:
        with warnings.catch_warnings():
            # The temporary name deliberately does not end in .nwb, so no tool takes it for a finished file.
            warnings.filterwarnings("ignore", message="The file path provided.*does not end in '.nwb'")
            # neuroconv's default HDF5 configuration: chunked, gzip-compressed datasets.
            configure_and_write_nwbfile(nwbfile, nwbfile_path=temporary, backend="hdf5")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
