"""Writing NWB files so that an interrupted or failed conversion leaves nothing in place."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from neuroconv.tools.nwb_helpers import configure_backend, get_default_backend_configuration
from pynwb import NWBHDF5IO, NWBFile
from tqdm.auto import tqdm

from .parallel_writing import defer_block_sources, fill_deferred

__all__ = ["partial_path", "write_nwbfile_atomically"]


def partial_path(path: Path) -> Path:
    """Where a file is written before it is complete: beside it, with a suffix no NWB tool picks up."""
    return path.with_name(path.name + ".partial")


def write_nwbfile_atomically(nwbfile: NWBFile, path: str | Path, *, overwrite: bool = False,
                             workers: int | None = None, codec: str = "gzip", progress: bool = False) -> Path:
    """Write ``nwbfile`` to ``path`` under a temporary name and rename it when complete.

    The rename is atomic on one file system, so ``path`` holds either the previous file (or
    nothing) or the complete new one, never a half-written file, whatever interrupts the write.
    Datasets given as :class:`~nwbridge.parallel_writing.BlockSource` are compressed on every
    core; every other dataset gets neuroconv's default configuration (chunked, gzip).

    Parameters
    ----------
    nwbfile : NWBFile
        The in-memory file.
    path : str or Path
        Final location.
    overwrite : bool, default: False
        Replace an existing file; otherwise an existing file is an error.
    workers : int, optional
        Compression threads for the large datasets; default every core.
    codec : {"gzip", "zstd"}, default: "gzip"
        Compression of the large datasets. gzip is HDF5's built-in deflate, readable by any HDF5
        reader. zstd is faster; reading it needs the HDF5 Zstandard filter (``pip install
        hdf5plugin``, then ``import hdf5plugin`` before opening the file).
    progress : bool, default: False
        Show a progress bar (MB/s) while the large datasets are written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    try:
        deferred = defer_block_sources(nwbfile, codec=codec)
        configure_backend(nwbfile=nwbfile,
                          backend_configuration=get_default_backend_configuration(nwbfile, backend="hdf5"))
        with warnings.catch_warnings():
            # The temporary name deliberately does not end in .nwb, so no tool takes it for a finished file.
            warnings.filterwarnings("ignore", message="The file path provided.*does not end in '.nwb'")
            with NWBHDF5IO(temporary, mode="w") as io:
                io.write(nwbfile)
                total = sum(item.source.dtype.itemsize * int(np.prod(item.source.shape)) for item in deferred)
                with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, leave=False,
                          disable=not (progress and deferred)) as bar:
                    fill_deferred(deferred, workers=workers, codec=codec, progress=bar.update)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
