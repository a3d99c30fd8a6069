"""Writing large datasets into NWB files with compression on every core.

HDF5 runs its filters (shuffle, deflate) on the calling thread, so a dataset written through
h5py compresses on one core. Here a large dataset is instead declared empty when pynwb writes
the file (chunked, with the standard shuffle and deflate filters), then filled chunk by chunk:
each chunk is shuffled and deflated in a thread pool and stored with h5py's
``write_direct_chunk``. The file is an ordinary HDF5 file that any reader decompresses with the
built-in filters.

Deflate uses ISA-L (the ``isal`` package) when installed: it writes the same zlib stream as
zlib, at level 1 about ten times faster than zlib level 4 with nearly the same ratio on
Neuropixels data (see SOURCES.md, "Performance facts"). That is why nwbridge compresses its own
chunks rather than letting HDF5 do it.

An interface marks a dataset for this path by giving its data as a :class:`BlockSource`. Any
other writer (neuroconv's, a user's ``NWBHDF5IO.write``) still writes it correctly: a
BlockSource is an ordinary hdmf data-chunk iterator.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from hdmf.backends.hdf5 import H5DataIO
from hdmf.container import Data
from hdmf.data_utils import AbstractDataChunkIterator, DataChunk

try:
    from isal import isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the slower fallback
    isal_zlib = None

__all__ = ["BlockSource", "CODECS", "SharedBlocks", "DeferredDataset", "compress_chunk", "defer_block_sources", "fill_deferred",
           "default_workers"]

# About 2 MB per chunk: large enough for a good ratio, small enough that reading one unit's
# spikes or one second of voltage decompresses little more than it needs.
CHUNK_BYTES = 2 * 1024 * 1024

# Plain arrays from this size on are compressed like block sources, on every core.
LARGE_ARRAY_BYTES = 4 * 1024 * 1024


def default_workers() -> int:
    """Threads to compress with: every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class SharedBlocks:
    """One source of blocks feeding several datasets, read once when nwbridge writes them.

    Parameters
    ----------
    blocks : callable
        Returns a new iterator of blocks (numpy arrays along axis 0) each time it is called.
    uses_executor : bool, default: False
        ``blocks`` takes the writer's thread pool (or None) as its argument, so that the work of
        producing the blocks shares the writer's ``workers`` threads instead of adding its own.
    """

    def __init__(self, blocks: Callable[..., Iterator[np.ndarray]], *, uses_executor: bool = False):
        self.blocks = blocks
        self.uses_executor = uses_executor

    def iterate(self, executor=None) -> Iterator[np.ndarray]:
        """The blocks; a source that ``uses_executor`` does its own work (decompression) on ``executor``."""
        return self.blocks(executor) if self.uses_executor else self.blocks()


class BlockSource(AbstractDataChunkIterator):
    """A large array produced in consecutive blocks along its first axis.

    Parameters
    ----------
    blocks : callable, optional
        Returns a new iterator of numpy arrays each time it is called; concatenated along axis 0
        they form the whole array. Called once per write, so the data are never all in memory.
    shape : tuple of int
        Shape of the whole array.
    dtype : numpy.dtype
    chunk_rows : int, optional
        Rows per HDF5 chunk (chunks span every other axis); by default about 2 MB per chunk.
    shared, select : SharedBlocks and callable, optional
        Instead of ``blocks``: this dataset is ``select(block)`` of every block of ``shared``.
    """

    def __init__(self, blocks: Callable[[], Iterator[np.ndarray]] | None = None, *, shape: tuple[int, ...], dtype,
                 chunk_rows: int | None = None, shared: SharedBlocks | None = None,
                 select: Callable[[np.ndarray], np.ndarray] | None = None):
        if (blocks is None) == (shared is None):
            raise ValueError("give either blocks, or shared blocks with a select function")
        self.shared = shared
        self.select = select
        self.blocks = blocks if blocks is not None else (lambda: (select(block) for block in shared.iterate()))
        self.shape = tuple(int(n) for n in shape)
        self._dtype = np.dtype(dtype)
        row_bytes = self._dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        rows = chunk_rows or max(1, CHUNK_BYTES // max(row_bytes, 1))
        self.chunk_shape = (int(max(1, min(rows, self.shape[0] or 1))), *self.shape[1:])
        self._iterator = None
        self._position = 0

    def __len__(self) -> int:
        return self.shape[0]

    # hdmf's iterator protocol, used when a writer other than nwbridge's writes this dataset.
    def __iter__(self):
        self._iterator = iter(self.blocks())
        self._position = 0
        return self

    def __next__(self) -> DataChunk:
        if self._iterator is None:
            iter(self)
        block = np.asarray(next(self._iterator), dtype=self._dtype)
        start = self._position
        self._position += len(block)
        selection = (slice(start, self._position), *(slice(0, n) for n in self.shape[1:]))
        return DataChunk(data=block, selection=selection)

    def recommended_chunk_shape(self) -> tuple[int, ...]:
        return self.chunk_shape

    def recommended_data_shape(self) -> tuple[int, ...]:
        return self.shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def maxshape(self) -> tuple[int, ...]:
        return self.shape


# "gzip": HDF5's built-in deflate, readable everywhere. "zstd": faster, but readers need the
# filter (``pip install hdf5plugin`` and ``import hdf5plugin`` before opening the file).
CODECS = ("gzip", "zstd")
ZSTD_FILTER_ID = 32015  # the HDF5 Zstandard filter registered by hdf5plugin


def compress_chunk(chunk: np.ndarray, *, level: int = 1, codec: str = "gzip") -> bytes:
    """One HDF5 chunk through the shuffle and compression filters, as HDF5 would store it.

    Parameters
    ----------
    chunk : numpy.ndarray
        A full chunk (edge chunks padded to the chunk shape, as HDF5 stores them).
    level : int, default: 1
        Compression level (deflate: ISA-L levels 0-3, zlib 1-9 when ISA-L is missing; zstd: 1-22).
    codec : {"gzip", "zstd"}
    """
    data = np.ascontiguousarray(chunk)
    itemsize = data.dtype.itemsize
    if itemsize > 1:
        # HDF5's shuffle filter: byte k of every element together, for k = 0 .. itemsize - 1.
        data = np.ascontiguousarray(data.reshape(-1).view(np.uint8).reshape(-1, itemsize).T)
    if codec == "zstd":
        import zstandard

        # One frame per chunk, with its content size: what the HDF5 Zstandard filter reads.
        return zstandard.ZstdCompressor(level=level).compress(data)
    if isal_zlib is not None:
        return isal_zlib.compress(data, min(level, 3))
    return zlib.compress(data, level)


def _declaration(source: "BlockSource", *, level: int, codec: str) -> H5DataIO:
    """An empty, chunked dataset with the shuffle and ``codec`` filters, for ``source``."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose from {CODECS}")
    if codec == "zstd":
        import hdf5plugin  # noqa: F401  (registers the Zstandard filter with HDF5)

        compression = dict(compression=ZSTD_FILTER_ID, compression_opts=(level,), allow_plugin_filters=True)
    else:
        compression = dict(compression="gzip", compression_opts=level)
    with warnings.catch_warnings():
        # hdmf warns that plugin filters are not portable; the user chose zstd, and the docs say so.
        warnings.filterwarnings("ignore", message=".*compression may not be available on all installations.*")
        return H5DataIO(shape=source.shape, dtype=source.dtype, chunks=source.chunk_shape, shuffle=True,
                        **compression)


@dataclass
class DeferredDataset:
    """A dataset pynwb declares empty, to be filled by :func:`fill_deferred` while the file is open."""

    source: BlockSource
    data_io: H5DataIO


def _datasets(nwbfile):
    """Every (container, field name, data) of the file; the field name is None for table columns."""
    for container in nwbfile.objects.values():
        # Table columns are Data objects; series keep their datasets as fields of the container.
        if isinstance(container, Data):
            yield container, None, container.data
        else:
            for name, data in dict(getattr(container, "fields", {})).items():
                yield container, name, data


def _replace_data(container, name, data_io: H5DataIO) -> None:
    # hdmf only offers to wrap the existing data; the empty declaration ignores it.
    if name is None:
        container.set_data_io(lambda data, **kwargs: data_io, {})
    else:
        container.set_data_io(name, lambda data, **kwargs: data_io, {})


def defer_block_sources(nwbfile, *, level: int = 1, codec: str = "gzip",
                        min_bytes: int = LARGE_ARRAY_BYTES) -> list[DeferredDataset]:
    """Replace every large dataset of ``nwbfile`` by an empty, chunked, compressed dataset declaration.

    Large means a :class:`BlockSource`, or a numeric numpy array of at least ``min_bytes`` (pose
    tracks, waveforms, ...), which is compressed the same way. Call before ``NWBHDF5IO.write``;
    after the write, and before the file is closed, fill the datasets with :func:`fill_deferred`.
    """
    deferred = []
    for container, name, data in list(_datasets(nwbfile)):
        source = data.data if isinstance(data, H5DataIO) else data
        if (isinstance(source, np.ndarray) and not isinstance(data, H5DataIO) and source.ndim >= 1
                and source.dtype.kind in "biuf" and source.nbytes >= min_bytes):
            source = BlockSource(lambda array=source: iter([array]), shape=source.shape, dtype=source.dtype)
        if not isinstance(source, BlockSource):
            continue
        data_io = _declaration(source, level=level, codec=codec)
        _replace_data(container, name, data_io)
        deferred.append(DeferredDataset(source=source, data_io=data_io))
    return deferred


# glibc's malloc: mallopt parameters and their defaults.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_DEFAULT_TRIM_THRESHOLD = _DEFAULT_MMAP_THRESHOLD = 128 * 1024


@contextlib.contextmanager
def reused_large_allocations():
    """While filling, keep freed blocks of memory in the process for the next ones (glibc only).

    Every decoded second of voltage (23 MB) and every inflated chunk is above glibc's mmap threshold,
    so each allocation maps fresh pages from the kernel and each free unmaps them: over 6.6 GB of AP
    band that is several seconds of page faults and page zeroing, serialised on the process's memory
    map across threads. Keeping freed blocks for reuse measured 20.6 s -> 18.5 s on 300 s of AP with 2
    workers (kernel time 7.0 s -> 4.1 s), for about 170 MB more peak memory. The defaults are restored
    and the kept memory returned to the system afterwards.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        changed = (libc.mallopt(_M_MMAP_THRESHOLD, 512 * 1024 * 1024) == 1
                   and libc.mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        libc, changed = None, False
    try:
        yield
    finally:
        if changed:
            libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)


def fill_deferred(deferred: list[DeferredDataset], *, workers: int | None = None, level: int = 1,
                  codec: str = "gzip", progress: Callable[[int], None] | None = None) -> None:
    """Compress and store every chunk of the deferred datasets, compressing on ``workers`` threads.

    Datasets cut from one :class:`SharedBlocks` (the voltage and sync channels of a recording) are
    filled together, in one pass over their source.

    Parameters
    ----------
    deferred : list of DeferredDataset
        From :func:`defer_block_sources`, after the file was written (and while it is open).
    workers : int, optional
        Compression threads; default every core.
    level : int, default: 1
        Compression level.
    codec : {"gzip", "zstd"}
        As the datasets were declared with (:func:`defer_block_sources`).
    progress : callable, optional
        Called with the number of bytes (uncompressed) of every chunk stored.
    """
    workers = workers or default_workers()
    if any(item.data_io.dataset is None for item in deferred):
        raise RuntimeError("fill_deferred called before the file was written")
    groups: dict[int, list[DeferredDataset]] = {}
    for item in deferred:
        key = id(item.source.shared) if item.source.shared is not None else id(item)
        groups.setdefault(key, []).append(item)
    with reused_large_allocations(), ThreadPoolExecutor(max_workers=workers) as pool:
        for members in groups.values():
            shared = members[0].source.shared
            chunkers = [_Chunker(item.source) for item in members]
            # Bounded number of chunks in flight, so memory stays a few chunks per thread.
            pending: deque = deque()
            blocks = shared.iterate(pool) if shared is not None else members[0].source.blocks()
            for block in blocks:
                for item, chunker in zip(members, chunkers):
                    part = item.source.select(block) if shared is not None else block
                    for offset, chunk in chunker.push(part):
                        pending.append((item.data_io.dataset, offset, chunk.nbytes,
                                        pool.submit(compress_chunk, chunk, level=level, codec=codec)))
                while len(pending) > 2 * workers:
                    _store(pending.popleft(), progress)
            for item, chunker in zip(members, chunkers):
                for offset, chunk in chunker.finish():
                    pending.append((item.data_io.dataset, offset, chunk.nbytes,
                                    pool.submit(compress_chunk, chunk, level=level, codec=codec)))
            while pending:
                _store(pending.popleft(), progress)


def _store(item, progress) -> None:
    dataset, offset, size, future = item
    dataset.id.write_direct_chunk(offset, future.result(), filter_mask=0)
    if progress is not None:
        progress(size)


class _Chunker:
    """Cuts the blocks of one dataset, whatever their sizes, into full HDF5 chunks with their offsets."""

    def __init__(self, source: BlockSource):
        self.source = source
        self.rows = source.chunk_shape[0]
        self.zeros = (0,) * (len(source.shape) - 1)
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.start = 0

    def push(self, block) -> list[tuple[tuple[int, ...], np.ndarray]]:
        block = np.asarray(block, dtype=self.source.dtype)
        chunks = []
        while len(block):
            take = min(self.rows - self.buffered, len(block))
            if self.buffered == 0 and take == self.rows:
                # A whole chunk inside the block: handed on as a view, no copy.
                chunks.append(((self.start, *self.zeros), block[:take]))
                self.start += self.rows
                block = block[take:]
                continue
            # A piece waiting for the rest of its chunk is copied: a view would keep its whole
            # block (a second of 385 channels for one sync column) alive until the chunk is full.
            self.buffer.append(np.array(block[:take]))
            self.buffered += take
            block = block[take:]
            if self.buffered == self.rows:
                chunks.append(((self.start, *self.zeros), _join(self.buffer)))
                self.start += self.rows
                self.buffer, self.buffered = [], 0
        return chunks

    def finish(self) -> list[tuple[tuple[int, ...], np.ndarray]]:
        total = self.start + self.buffered
        if total != self.source.shape[0]:
            raise ValueError(f"the blocks gave {total} rows, the dataset declared {self.source.shape[0]}")
        if not self.buffered:
            return []
        # HDF5 stores an edge chunk at full size; the rows past the end are never read.
        chunk = np.zeros(self.source.chunk_shape, dtype=self.source.dtype)
        chunk[:self.buffered] = _join(self.buffer)
        return [((self.start, *self.zeros), chunk)]


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
