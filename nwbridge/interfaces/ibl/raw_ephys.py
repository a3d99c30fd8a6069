"""IBL raw electrophysiology (SpikeGLX ``.cbin``/``.bin`` + ``.meta``) streamed into NWB.

Per probe and band (AP 30 kHz, LF 2.5 kHz), from ``raw_ephys_data/<probe>/``:

- ``ElectricalSeries<Band><Probe>`` (``ElectricalSeriesApProbe00``): the voltage channels as recorded,
  int16, with ``conversion`` (or ``channel_conversion`` where channels differ) from the meta's gains
  as ibl-neuropixel computes them; its ``electrodes`` region points at the probe's rows of the
  same ``electrodes`` table as the processed file (built by :func:`.electrodes.add_probes`).
- ``Sync<Band><Probe>`` (``SyncApProbe00``): the sync channel (a digital word), kept as its own
  series rather than mixed into the voltages.

The ``.cbin`` is never decompressed to disk: its mtscomp chunks are read and decompressed in a
thread pool (see :class:`_ChunkDecoder`) and fed, in order, to the parallel HDF5 writer (:mod:`nwbridge.parallel_writing`), which compresses HDF5
chunks spanning every channel on every core. Memory is a few mtscomp chunks per thread, whatever
the length of the recording.

Session clock: ``*.timestamps.npy`` maps probe samples to session seconds at sync points (the IBL
interpolates linearly between them). When one straight line fits every sync point to within
``clock_tolerance`` sample periods (default 0.1), the series has ``starting_time`` and ``rate``
from that line; otherwise it carries explicit timestamps, the IBL's interpolation of every sample.
The series' ``comments`` say which was used and the largest deviation.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from pynwb.base import TimeSeries
from pynwb.ecephys import ElectricalSeries

from ...errors import MissingSourceFileError, SourceFileError
from ...parallel_writing import BlockSource, SharedBlocks
from .alf import load_npy
from .base import IblInterface
from .electrodes import add_probes, electrode_rows
from .probes import IblProbe, find_probes

__all__ = ["IblRawEphysInterface", "RawRecording", "session_clock", "CLOCK_TOLERANCE_SAMPLES"]

CLOCK_TOLERANCE_SAMPLES = 0.1
BANDS = ("ap", "lf")

# Rows per block when a decompressed chunk is turned sample-major (fits the cache).
_TRANSPOSE_ROWS = 1024

# Samples handed to the writer at a time for a plain .bin (about one second of AP).
BIN_BLOCK_SAMPLES = 30_000


@dataclass(frozen=True)
class SessionClock:
    """How a recording's samples map to session seconds."""

    linear: bool
    starting_time: float
    rate: float
    largest_deviation_s: float
    sync_points: int
    tolerance_samples: float = CLOCK_TOLERANCE_SAMPLES
    samples: np.ndarray | None = None  # the sync points, when not linear
    seconds: np.ndarray | None = None

    def times(self, start: int, stop: int) -> np.ndarray:
        """Session times of samples ``start`` .. ``stop - 1`` (the IBL's linear interpolation)."""
        samples = np.arange(start, stop, dtype=np.float64)
        if self.linear:
            return self.starting_time + samples / self.rate
        return _interpolate(samples, self.samples, self.seconds)

    def describe(self) -> str:
        if self.linear:
            return (f"Session clock: a straight line through the {self.sync_points} sync points of the probe's "
                    f"timestamps.npy (largest deviation {self.largest_deviation_s * 1e6:.3g} µs, within the "
                    f"tolerance of {self.tolerance_samples:g} sample period), stored as starting_time and rate.")
        return (f"Session clock: the probe's timestamps.npy interpolated linearly between its {self.sync_points} "
                f"sync points, as the IBL does, stored as explicit timestamps (a single straight line would "
                f"deviate by up to {self.largest_deviation_s * 1e6:.3g} µs).")


def _interpolate(samples, sync_samples, sync_seconds) -> np.ndarray:
    """np.interp inside the sync points, extended by the end segments' slopes outside (as the IBL does)."""
    times = np.interp(samples, sync_samples, sync_seconds)
    if len(sync_samples) > 1:
        for mask, (first, second) in (((samples < sync_samples[0]), (0, 1)), ((samples > sync_samples[-1]), (-2, -1))):
            if mask.any():
                slope = (sync_seconds[second] - sync_seconds[first]) / (sync_samples[second] - sync_samples[first])
                anchor = first if first == 0 else second
                times[mask] = sync_seconds[anchor] + (samples[mask] - sync_samples[anchor]) * slope
    return times


def session_clock(timestamps: np.ndarray, *, rate: float, path: Path,
                  tolerance_samples: float = CLOCK_TOLERANCE_SAMPLES) -> SessionClock:
    """The mapping of a probe's samples to session seconds, from its ``timestamps.npy`` (k x 2).

    Parameters
    ----------
    timestamps : numpy.ndarray
        Sync points: sample index (in this band's samples), session seconds.
    rate : float
        The band's nominal sample rate (for the tolerance, and when there is one sync point).
    path : Path
        The timestamps file, named in errors.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if timestamps.ndim != 2 or timestamps.shape[1] != 2 or len(timestamps) == 0:
        raise SourceFileError(path, f"expected k x 2 sync points (sample, seconds), found shape {timestamps.shape}")
    samples, seconds = timestamps[:, 0], timestamps[:, 1]
    if (np.diff(samples) <= 0).any() or (np.diff(seconds) <= 0).any():
        raise SourceFileError(path, "sync points are not increasing")
    if len(samples) == 1:
        return SessionClock(True, float(seconds[0] - samples[0] / rate), rate, 0.0, 1, tolerance_samples)
    slope, intercept = np.polyfit(samples, seconds, 1)
    deviation = float(np.abs(intercept + slope * samples - seconds).max())
    linear = deviation <= tolerance_samples / rate
    return SessionClock(linear, float(intercept), float(1.0 / slope), deviation, len(samples), tolerance_samples,
                        None if linear else samples, None if linear else seconds)


@dataclass
class RawRecording:
    """One band of one probe: its files, shape, gains and clock, validated before anything is written."""

    probe: IblProbe
    band: str
    data_path: Path
    meta_path: Path
    ch_path: Path | None = None
    meta: dict = field(default_factory=dict)

    @classmethod
    def find(cls, session, probe: IblProbe, band: str) -> "RawRecording | None":
        data = probe.raw_file(session, band=band, extension="cbin") or probe.raw_file(session, band=band,
                                                                                      extension="bin")
        if data is None:
            return None
        meta = probe.raw_file(session, band=band, extension="meta")
        if meta is None:
            raise MissingSourceFileError(data.with_suffix(".meta"),
                                         f"the SpikeGLX metadata of {data.name} is missing: without it the sample "
                                         "rate, channels and gains are unknown")
        ch = probe.raw_file(session, band=band, extension="ch") if data.suffix == ".cbin" else None
        if data.suffix == ".cbin" and ch is None:
            raise MissingSourceFileError(data.with_suffix(".ch"), f"the mtscomp index of {data.name} is missing")
        recording = cls(probe=probe, band=band, data_path=data, meta_path=meta, ch_path=ch)
        recording.validate()
        return recording

    def validate(self) -> None:
        import spikeglx

        try:
            self.meta = spikeglx.read_meta_data(self.meta_path)
        except Exception as error:
            raise SourceFileError(self.meta_path, f"not a readable SpikeGLX .meta file ({error})") from error
        for key in ("imSampRate", "nSavedChans"):
            if key not in self.meta:
                raise SourceFileError(self.meta_path, f"has no {key}")
        if self.data_path.suffix == ".cbin":
            try:
                index = json.loads(self.ch_path.read_text())
                offsets, bounds = index["chunk_offsets"], index["chunk_bounds"]
                shape = index["shape"]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise SourceFileError(self.ch_path, f"not a valid mtscomp .ch file ({error})") from error
            size = self.data_path.stat().st_size
            if size < offsets[-1]:
                raise SourceFileError(self.data_path, f"truncated: {self.ch_path.name} indexes {offsets[-1]} bytes of "
                                                      f"compressed data but the file has {size}")
            if size > offsets[-1]:
                raise SourceFileError(self.ch_path, f"does not match {self.data_path.name}: it indexes {offsets[-1]} "
                                                    f"bytes but the file has {size}")
            if shape[1] != self.n_channels or bounds[-1] != shape[0]:
                raise SourceFileError(self.ch_path, f"describes {shape[0]} samples x {shape[1]} channels, but "
                                                    f"{self.meta_path.name} says {self.n_channels} channels")
            self._n_samples = int(shape[0])
        else:
            size = self.data_path.stat().st_size
            if size % (2 * self.n_channels):
                raise SourceFileError(self.data_path, f"truncated: {size} bytes is not a whole number of "
                                                      f"{self.n_channels}-channel int16 samples")
            self._n_samples = size // (2 * self.n_channels)
        if self.sync_channels.size and self.sync_channels.max() >= self.n_channels:
            raise SourceFileError(self.meta_path, "sync channel beyond the saved channels")

    @property
    def n_channels(self) -> int:
        return int(self.meta["nSavedChans"])

    @property
    def n_samples(self) -> int:
        return self._n_samples

    @property
    def rate(self) -> float:
        return float(self.meta["imSampRate"])

    @cached_property
    def sync_channels(self) -> np.ndarray:
        import spikeglx

        return np.asarray(spikeglx._get_sync_trace_indices_from_meta(self.meta), dtype=np.int64)

    @cached_property
    def voltage_channels(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_channels), self.sync_channels)

    @cached_property
    def volts_per_bit(self) -> np.ndarray:
        """Volts per ADC unit of each voltage channel, from ibl-neuropixel's reading of the gains.

        ibl-neuropixel returns float32 factors; the gains are whole numbers, so each factor is
        recomputed in float64 as ADC range / max int / gain, with the gain recovered from it.
        """
        import spikeglx

        conversion = np.asarray(spikeglx._conversion_sample2v_from_meta(self.meta)[self.band], dtype=np.float64)
        int_to_volts = float(self.meta["imAiRangeMax"]) / float(spikeglx._get_max_int_from_meta(self.meta))
        gains = np.round(int_to_volts / conversion[self.voltage_channels])
        return int_to_volts / gains

    def blocks(self, executor=None):
        """The recording, (samples x saved channels) int16, in order.

        Parameters
        ----------
        executor : concurrent.futures.Executor, optional
            Decompress mtscomp chunks on it, a few ahead of the one handed out (the writer passes
            the pool it compresses on, so ``workers`` threads do both); without it, in this thread.
        """
        if self.data_path.suffix == ".bin":
            data = np.memmap(self.data_path, dtype=np.int16, mode="r", shape=(self.n_samples, self.n_channels))
            for start in range(0, self.n_samples, BIN_BLOCK_SAMPLES):
                yield np.array(data[start:start + BIN_BLOCK_SAMPLES])
            return
        decoder = _ChunkDecoder(self.data_path, self.ch_path)
        try:
            if executor is None:
                for chunk in range(decoder.n_chunks):
                    yield decoder.decode(chunk)
                return
            ahead = getattr(executor, "_max_workers", 1)
            pending: deque = deque()
            for chunk in range(decoder.n_chunks):
                pending.append(executor.submit(decoder.decode, chunk))
                # Decompress ahead by a few chunks only: memory stays bounded.
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            decoder.close()


class _ChunkDecoder:
    """Decompresses the chunks of a ``.cbin``, whose layout mtscomp's Reader reads from the ``.ch``.

    The decoding itself is nwbridge's, not ``mtscomp.Reader.read_chunk``: inflating with ISA-L, then
    undoing the time differences and making the chunk sample-major in one cache-blocked pass
    (compiled with numba) measured 2.4x mtscomp's speed per core (mtscomp: 168 MB/s; ISA-L inflate
    ~500 MB/s, the fused pass ~2 GB/s against ~690 MB/s for numpy's cumsum then a blocked copy), and
    the process grew by 40 MB instead of 340 MB over 30 s of AP (allocator churn of mtscomp's extra
    copies). The result is identical (tested against mtscomp).
    """

    def __init__(self, data_path: Path, ch_path: Path):
        import mtscomp

        reader = mtscomp.Reader()
        reader.open(data_path, ch_path)
        try:
            self.path = data_path
            self.offsets = np.asarray(reader.chunk_offsets, dtype=np.int64)
            self.bounds = np.asarray(reader.chunk_bounds, dtype=np.int64)
            self.n_channels = int(reader.n_channels)
            self.dtype = np.dtype(reader.dtype)
            self.order = reader.chunk_order
            self.time_difference = bool(reader.cmeta.do_time_diff)
            self.spatial_difference = bool(reader.cmeta.do_spatial_diff)
        finally:
            reader.close()
        self.n_chunks = len(self.offsets) - 1
        self.descriptor = os.open(data_path, os.O_RDONLY)

    def decode(self, chunk: int) -> np.ndarray:
        # pread: one atomic read at an offset, safe from several threads on one descriptor.
        compressed = os.pread(self.descriptor, int(self.offsets[chunk + 1] - self.offsets[chunk]),
                              int(self.offsets[chunk]))
        try:
            buffer = _inflate(compressed)
        except Exception as error:
            raise SourceFileError(self.path, f"chunk {chunk} could not be decompressed ({error})") from error
        n_samples = int(self.bounds[chunk + 1] - self.bounds[chunk])
        if len(buffer) != n_samples * self.n_channels * self.dtype.itemsize:
            raise SourceFileError(self.path, f"chunk {chunk} holds {len(buffer)} bytes, expected "
                                             f"{n_samples} samples x {self.n_channels} channels")
        values = np.frombuffer(buffer, self.dtype).reshape((n_samples, self.n_channels), order=self.order)
        if (self.time_difference and not self.spatial_difference and _undo_time_difference is not None
                and self.dtype.kind == "i"):
            return _undo_time_difference(values, np.empty((n_samples, self.n_channels), dtype=self.dtype),
                                         _TIME_DIFFERENCE_ROWS)
        if self.spatial_difference:
            values = np.cumsum(values, axis=1, dtype=self.dtype)
        if self.time_difference:
            # Summed in the chunk's own (channel-major) order, where it is contiguous ...
            values = np.cumsum(values, axis=0, dtype=self.dtype)
        # ... then turned sample-major in blocks of rows that fit in cache: 2.2x faster than one copy.
        out = np.empty((n_samples, self.n_channels), dtype=self.dtype)
        for start in range(0, n_samples, _TRANSPOSE_ROWS):
            out[start:start + _TRANSPOSE_ROWS] = values[start:start + _TRANSPOSE_ROWS]
        return out

    def close(self) -> None:
        os.close(self.descriptor)


# Rows per pass of the fused kernel: 256 rows x 385 channels of int16 (200 kB) stay in cache.
_TIME_DIFFERENCE_ROWS = 256


def _make_undo_time_difference():
    try:
        import numba  # a dependency of iblutil, which ONE-api requires
    except ImportError:  # pragma: no cover
        return None

    @numba.njit(cache=True, nogil=True)
    def undo_time_difference(differences, out, rows):
        """Cumulative sum over time of a channel-major chunk, written sample-major into ``out``.

        Integer addition wraps as numpy's int16 cumsum does, so values are bit-identical to mtscomp's.
        """
        n_samples, n_channels = differences.shape
        running = np.zeros(n_channels, dtype=np.int64)
        for first in range(0, n_samples, rows):
            last = min(first + rows, n_samples)
            for channel in range(n_channels):
                total = running[channel]
                for sample in range(first, last):
                    total += differences[sample, channel]
                    out[sample, channel] = total
                running[channel] = total
        return out

    return undo_time_difference


_undo_time_difference = _make_undo_time_difference()


def _inflate(data: bytes) -> bytes:
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a dependency
        return zlib.decompress(data)
    return isal_zlib.decompress(data)


class IblRawEphysInterface(IblInterface):
    """Raw voltage of every probe of an IBL session, AP and LF bands, for the raw NWB file.

    Parameters
    ----------
    session_path : Path
    revision : str, optional
    bands : sequence of str, default: ("ap", "lf")
    workers : int, optional
        Decompression threads (the writer compresses on its own threads); default every core.
    clock_tolerance : float, default: 0.1
        Largest deviation, in sample periods, of the sync points from a straight line for the series
        to be stored with starting_time and rate rather than explicit timestamps.
    """

    display_name = "IBL raw electrophysiology"

    def __init__(self, session_path, *, revision: str | None = None, bands: tuple[str, ...] = BANDS,
                 workers: int | None = None, clock_tolerance: float = CLOCK_TOLERANCE_SAMPLES,
                 verbose: bool = False):
        super().__init__(session_path, revision=revision, verbose=verbose)
        unknown = set(bands) - set(BANDS)
        if unknown:
            raise ValueError(f"unknown bands {sorted(unknown)}; choose from {BANDS}")
        self.source_data.update(bands=list(bands), workers=workers, clock_tolerance=clock_tolerance)
        self.bands = tuple(bands)
        self.workers = workers
        self.clock_tolerance = clock_tolerance

    @classmethod
    def is_available(cls, session) -> bool:
        return any(probe.raw_file(session, band=band, extension=extension) is not None
                   for probe in find_probes(session) for band in BANDS for extension in ("cbin", "bin"))

    def recordings(self) -> list[RawRecording]:
        """Every band of every probe that has raw data, validated."""
        found = []
        for probe in find_probes(self.session):
            for band in self.bands:
                recording = RawRecording.find(self.session, probe, band)
                if recording is not None:
                    found.append(recording)
        return found

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        recordings = self.recordings()
        if not recordings:
            return
        if nwbfile.electrodes is None or len(nwbfile.electrodes) == 0:
            add_probes(nwbfile, session=self.session)
        rates = {}
        for recording in recordings:
            rates.setdefault(recording.probe.name, {})[recording.band] = recording.rate
        for recording in recordings:
            self._add_recording(nwbfile, recording, ap_rate=rates[recording.probe.name].get("ap"))

    def _clock(self, recording: RawRecording, *, ap_rate: float | None) -> SessionClock:
        stem = recording.meta_path.name.split(f".{recording.band}.")[0]
        path = recording.meta_path.with_name(f"{stem}.timestamps.npy")
        if not path.exists():
            raise MissingSourceFileError(path, f"the probe-to-session clock of {recording.data_path.name} is missing")
        sync = np.array(load_npy(path), dtype=np.float64)
        if recording.band != "ap" and sync.ndim == 2:
            # The sync points count AP samples; the LF band samples the same clock more slowly.
            sync[:, 0] *= recording.rate / (ap_rate or recording.rate * 12)
        return session_clock(sync, rate=recording.rate, path=path, tolerance_samples=self.clock_tolerance)

    def _add_recording(self, nwbfile, recording: RawRecording, *, ap_rate: float | None) -> None:
        probe = recording.probe.name
        suffix = f"{recording.band.capitalize()}{probe[0].upper()}{probe[1:]}"
        rows = electrode_rows(nwbfile, probe)
        # IBL saves every channel: data column j is probe channel j.
        columns = np.arange(len(recording.voltage_channels))
        if len(columns) > len(rows) or (rows[columns] < 0).any():
            raise SourceFileError(recording.meta_path, f"{len(columns)} voltage channels but the electrodes table has "
                                                       f"{int((rows >= 0).sum())} channels of {probe}")
        region = nwbfile.create_electrode_table_region(region=rows[columns].tolist(),
                                                       description=f"Channels of {probe}, in data column order.")
        clock = self._clock(recording, ap_rate=ap_rate)
        shared = SharedBlocks(recording.blocks, uses_executor=True)
        voltage_channels, sync_channels = recording.voltage_channels, recording.sync_channels
        n_samples = recording.n_samples
        # A slice, not an index list, when the voltage channels are contiguous (they are in IBL files):
        # a view costs nothing on the thread that hands the blocks out; the copy happens in the workers.
        contiguous = bool(np.array_equal(voltage_channels, np.arange(voltage_channels[0], voltage_channels[-1] + 1)))
        columns_of_voltage = slice(int(voltage_channels[0]), int(voltage_channels[-1]) + 1) if contiguous \
            else voltage_channels
        voltage = BlockSource(shape=(n_samples, len(voltage_channels)), dtype=np.int16, shared=shared,
                              select=lambda block: block[:, columns_of_voltage])
        conversions = recording.volts_per_bit
        uniform = bool(np.all(conversions == conversions[0]))
        timing = (dict(starting_time=clock.starting_time, rate=clock.rate) if clock.linear else
                  dict(timestamps=BlockSource(lambda: (clock.times(start, min(start + BIN_BLOCK_SAMPLES, n_samples))
                                                       for start in range(0, n_samples, BIN_BLOCK_SAMPLES)),
                                              shape=(n_samples,), dtype=np.float64)))
        band_name = {"ap": "action-potential band (AP, ~30 kHz)", "lf": "local field potential band (LF, ~2.5 kHz)"}
        nwbfile.add_acquisition(ElectricalSeries(
            name=f"ElectricalSeries{suffix}",
            description=(f"Raw voltage of {probe}, {band_name[recording.band]}, as recorded by SpikeGLX "
                         f"({recording.data_path.name}), int16 ADC units; volts = data x conversion"
                         + ("" if uniform else " x channel_conversion") + "."),
            data=voltage,
            electrodes=region,
            conversion=float(conversions[0]) if uniform else 1.0,
            channel_conversion=None if uniform else conversions,
            comments=clock.describe(),
            **timing,
        ))
        for index, channel in enumerate(sync_channels):
            sync = BlockSource(shape=(n_samples,), dtype=np.int16, shared=shared,
                               select=lambda block, channel=channel: block[:, channel])
            name = f"Sync{suffix}" if len(sync_channels) == 1 else f"Sync{suffix}{index}"
            nwbfile.add_acquisition(TimeSeries(
                name=name,
                description=(f"Sync channel {channel} of {recording.data_path.name}: the SpikeGLX digital word "
                             "(each bit a TTL line; the IBL's sync pulses are on bit 6), as recorded."),
                data=sync, unit="n.a.", comments=clock.describe(),
                **(dict(starting_time=clock.starting_time, rate=clock.rate) if clock.linear
                   else dict(timestamps=nwbfile.acquisition[f"ElectricalSeries{suffix}"]))))
