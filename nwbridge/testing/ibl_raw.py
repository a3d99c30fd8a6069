"""Raw electrophysiology of the synthetic IBL sessions written by `make_ibl_session`.

For every probe insertion folder written by `nwbridge.testing.ibl_ephys`, and for every band
whose SpikeGLX ``.meta`` it wrote there (AP, and LF: NP1 probes record it, and for NP2 probes
the IBL's NP2 converter extracts it from the full-band AP file, so their folders hold an LF
meta too), this writes the int16 SpikeGLX data ``_spikeglx_ephysData_g0_t0.imec<N>.<band>.bin``
or its mtscomp-compressed ``.cbin`` + ``.ch`` (see ``shared/SOURCES.md``, "Raw
electrophysiology"), and rewrites ``fileSizeBytes``, ``fileTimeSecs`` and ``fileSHA1`` (the
hash of the uncompressed data, as SpikeGLX writes it) of the meta to match.

Content, in ADC units of each channel (the gains come from the meta through ibl-neuropixel):

- white Gaussian noise of ~10 µV rms on every channel (drawn through a quantile table), on a
  constant ADC offset per channel (normal, 100 ADC units sd), as real recordings have;
- the sorted spikes: each spike of ``spikes.samples`` is its cluster's template
  (``clusters.waveforms``, V, on ``clusters.waveformsChannels``), scaled to the spike's own
  amplitude (``spikes.amps / clusters.amps``), with the template's trough at the spike sample;
  AP band only (the LF band's 500 Hz low-pass leaves little of them);
- LFP-like low-frequency content: a 1/f^1.5 background and a theta rhythm, as a few latent
  signals (sums of sinusoids with random amplitudes and phases, so any sample of them can be
  computed on its own) spread over neighbouring channels by smooth depth profiles. It goes
  into the LF band and, for NP2 probes, whose AP file is full band, into the AP band too
  (NP1 probes high-pass their AP band in hardware at 300 Hz);
- the sync channel (the last saved channel): the imec sync word with a 1 Hz square wave of
  50 % duty cycle on bit 6 (as IBL probes record it): rising edges at every whole second of
  the session clock, falling edges half a second later, placed on the probe's samples through
  the ``.timestamps.npy`` mapping (an edge at fractional sample ``p`` is first seen at sample
  ``ceil(p)``). LF sample ``j`` is AP sample ``12 j`` (hardware NP1 and the NP2 converter
  alike), for the sync word and for the LFP.

Data are made one ~1 s chunk at a time (the mtscomp chunks), each from its own random
stream keyed by the chunk's index, on a pool of threads: memory stays bounded, and the
files do not depend on the number of threads. Compression writes the mtscomp format with
mtscomp's own writer (chunk bounds, offsets, ``.ch`` header, SHA-1s), straight from the
generated chunks (no temporary ``.bin``), but deflates with ISA-L instead of Python's zlib:
mtscomp 1.0.2 always calls ``zlib.compress`` at the default level 6, which runs at ~10 MB/s
on this data, against ~400 MB/s for ISA-L at level 1 for a 6 % larger file. The stream is
standard zlib, which mtscomp's and ibl-neuropixel's readers decompress as usual; the ``.ch``
records the level used.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path

import mtscomp
import numpy as np
import spikeglx
from isal import isal_zlib
from scipy.special import ndtri

from .ibl_ephys import _RAW_STEM, _TROUGH_SAMPLE

__all__ = ["RAW_FORMATS", "RawOptions", "check_raw_arguments", "check_raw_duration", "sync_edges",
           "write_raw_ephys"]

RAW_FORMATS = ("cbin", "bin")
SYNC_BIT = 6  # bit of the imec sync word carrying the sync square wave
SYNC_PERIOD_S = 1.0  # session seconds between rising edges
SYNC_HIGH_S = 0.5  # session seconds from a rising to the next falling edge
LF_DECIMATION = 12  # AP samples per LF sample
CHUNK_DURATION_S = 1.0  # as the IBL compresses (mtscomp's default)
COMPRESSION_LEVEL = 1  # ISA-L level: 0..3

_NOISE_RMS_V = 10e-6
_OFFSET_SD_UNITS = 100.0  # spread of the per-channel ADC offsets, in ADC units
_OFFSET_STREAM = 1 << 40  # a child seed no chunk index reaches
_LUT_BITS = 16  # noise quantile table of 65536 entries: tails cut at 4.3 sd
_MAX_THREADS = 4  # each thread holds two or three chunks' worth (~23 MB each for AP) at a time
_BLOCK_ROWS = 2048  # samples made at once inside a chunk
_SPIKE_GROUP = 1000  # spikes added at once
_MATMUL_ROWS = 64  # 64 x 8 x 384 multiply-adds: under OpenBLAS's threshold for using its threads
_LFP_BANDS = {"lf"}  # bands with LFP content besides the AP band of full-band (NP2) probes

# LFP model: 1/f^1.5 background between these frequencies, theta around 7.5 Hz; rms in V.
_BACKGROUND_HZ = (0.5, 200.0)
_N_BACKGROUND = 96
_N_THETA = 7
_GLOBAL_RMS_V = 25e-6  # the component every channel shares
_N_BUMPS = 6  # components spread over a few hundred µm of the probe each
_BUMP_RMS_V = 35e-6
_THETA_RMS_V = 40e-6


# --- arguments ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RawOptions:
    duration_s: float | None  # seconds of data per probe from its first sample; None: all of it
    file_format: str
    n_threads: int


def check_raw_arguments(raw_ephys, raw_duration_s, raw_format) -> RawOptions | None:
    """Validate the raw-data arguments of `make_ibl_session`; None when no raw data is asked."""
    if not isinstance(raw_ephys, (bool, np.bool_)):
        raise ValueError(f"raw_ephys must be True or False, got {raw_ephys!r}")
    if raw_format not in RAW_FORMATS:
        raise ValueError(f"raw_format must be one of {list(RAW_FORMATS)}, got {raw_format!r}")
    if raw_duration_s is not None:
        if isinstance(raw_duration_s, (bool, np.bool_)):
            raise ValueError(f"raw_duration_s must be a number of seconds, got {raw_duration_s!r}")
        try:
            raw_duration_s = float(raw_duration_s)
        except (TypeError, ValueError):
            raise ValueError(f"raw_duration_s must be a number of seconds, got {raw_duration_s!r}") from None
        if not (math.isfinite(raw_duration_s) and raw_duration_s > 0):
            raise ValueError(f"raw_duration_s must be positive, got {raw_duration_s!r}")
    if not raw_ephys:
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return RawOptions(duration_s=raw_duration_s, file_format=raw_format,
                      n_threads=max(1, min(cores, _MAX_THREADS)))


def check_raw_duration(options: RawOptions | None, duration: float) -> None:
    """Raw data cannot outlast the recording, which lasts the session plus a second or two."""
    if options is not None and options.duration_s is not None and options.duration_s > duration:
        raise ValueError(f"raw_duration_s ({options.duration_s:g} s) exceeds the session "
                         f"({duration:g} s)")


# --- session level ----------------------------------------------------------------------------

def write_raw_ephys(rng, session_path: Path, folders, sorter: str, options: RawOptions) -> None:
    """Write the raw data of every insertion folder (``probe00``, ``probe00a``...).

    Each folder draws from its own stream, keyed by its probe number and shank letter, so that
    dropping a probe leaves the others' data unchanged.
    """
    parent = rng.bit_generator.seed_seq
    for folder in folders:
        number = int(folder[5:7])
        shank = ord(folder[7]) - ord("a") + 1 if len(folder) > 7 else 0
        folder_seq = _child(parent, number, shank)
        raw = session_path / "raw_ephys_data" / folder
        sorting = session_path / "alf" / folder / sorter if sorter else session_path / "alf" / folder
        stem = f"{_RAW_STEM}.imec{number}"
        ap_meta_path = raw / f"{stem}.ap.meta"
        ap_meta = spikeglx.read_meta_data(ap_meta_path)
        fs_ap = float(spikeglx._get_fs_from_meta(ap_meta))
        timestamps = np.load(raw / f"{stem}.timestamps.npy")
        n_ap = int(timestamps[-1, 0]) if options.duration_s is None else max(1, round(options.duration_s * fs_ap))
        probe = _Probe.load(np.random.default_rng(_child(folder_seq, 0)), sorting, ap_meta, fs_ap,
                            timestamps, n_ap)
        bands = [("ap", 1, ap_meta_path, ap_meta)]
        lf_meta_path = raw / f"{stem}.lf.meta"
        if lf_meta_path.exists():
            bands.append(("lf", LF_DECIMATION, lf_meta_path, spikeglx.read_meta_data(lf_meta_path)))
        for key, (band, decimation, meta_path, meta) in enumerate(bands, start=1):
            n_samples = -(-n_ap // decimation)
            source = _BandSource(probe, band, meta, decimation, n_samples, _child(folder_seq, key),
                                 _child(folder_seq, _OFFSET_STREAM))
            data_path = meta_path.with_suffix(f".{options.file_format}")
            write = _write_bin if options.file_format == "bin" else _write_cbin
            sha1 = write(source, data_path, options.n_threads)
            _update_meta(meta_path, n_samples * source.n_channels * 2, n_samples / source.fs, sha1)


def _child(seed_seq: np.random.SeedSequence, *keys: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, *keys))


def sync_edges(timestamps: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """AP samples of the rising and falling edges of the sync square wave, inside ``[0, n)``.

    Rising edges are at the whole seconds of the session clock, falling edges half a second
    later; a session time maps to the fractional probe sample ``p`` through the k x 2
    ``timestamps`` (probe sample, session seconds) by linear interpolation, and the edge is
    first seen at sample ``ceil(p)``.
    """
    toggles = _sync_toggles(timestamps, n_samples)
    rising, falling = toggles[0::2], toggles[1::2]
    return (rising[(rising >= 0) & (rising < n_samples)], falling[(falling >= 0) & (falling < n_samples)])


def _sync_toggles(timestamps: np.ndarray, n_samples: int) -> np.ndarray:
    """Samples of every edge from one rising edge before the data to one after, in order.

    Edges before the first sample are put at -1, after the last one at ``n_samples``: the
    sync bit at sample ``i`` is the parity of the number of edges at or before ``i``.
    """
    start, stop = np.interp([0.0, float(n_samples)], timestamps[:, 0], timestamps[:, 1])
    rising = np.arange(np.floor(start / SYNC_PERIOD_S) - 1, np.ceil(stop / SYNC_PERIOD_S) + 1) * SYNC_PERIOD_S
    times = np.column_stack([rising, rising + SYNC_HIGH_S]).ravel()
    samples = np.ceil(np.interp(times, timestamps[:, 1], timestamps[:, 0], left=-1.0,
                                right=float(n_samples)))
    return np.clip(samples, -1, n_samples).astype(np.int64)


# --- one probe ------------------------------------------------------------------------------------

@dataclass
class _Probe:
    """What every band of one insertion folder shares: spikes, templates, LFP, sync."""
    fs_ap: float
    n_ap: int
    spike_samples: np.ndarray  # sorted AP samples of the spikes inside the data (int64)
    spike_clusters: np.ndarray
    spike_scale: np.ndarray  # spike amplitude / template amplitude (float32)
    templates: np.ndarray  # n_clusters x 82 x 32, V (float32)
    template_columns: np.ndarray  # n_clusters x 32: data column of each template channel
    depth_of_column: np.ndarray  # µm from the tip, per data column
    lfp_hz: np.ndarray  # M frequencies
    lfp_cos: np.ndarray  # M x K: latent k = sum_j cos(2 pi f_j t) C_jk - sin(2 pi f_j t) S_jk
    lfp_sin: np.ndarray
    lfp_weights_v: np.ndarray  # K x n_data_columns, V per unit of latent
    sync_toggles: np.ndarray  # AP samples where the sync bit changes, the first one rising

    @classmethod
    def load(cls, rng, sorting: Path, ap_meta, fs_ap: float, timestamps: np.ndarray, n_ap: int) -> _Probe:
        n_data = int(spikeglx._get_nchannels_from_meta(ap_meta)) - len(
            spikeglx._get_sync_trace_indices_from_meta(ap_meta))
        raw_index = np.load(sorting / "channels.rawInd.npy")
        coordinates = np.load(sorting / "channels.localCoordinates.npy")
        if raw_index.max() >= n_data:
            raise RuntimeError(f"{sorting}: channels.rawInd goes beyond the {n_data} saved channels")
        depth = np.full(n_data, np.nan)
        depth[raw_index] = coordinates[:, 1]
        depth[np.isnan(depth)] = np.nanmean(depth)

        # The spikes inside the data, with the templates they need.
        templates = np.load(sorting / "clusters.waveforms.npy").astype(np.float32)
        columns = raw_index[np.load(sorting / "clusters.waveformsChannels.npy")]
        samples = np.load(sorting / "spikes.samples.npy", mmap_mode="r")
        reach = templates.shape[1] - _TROUGH_SAMPLE
        last = int(np.searchsorted(samples, n_ap + _TROUGH_SAMPLE, side="left"))
        spike_samples = np.array(samples[:last], dtype=np.int64)
        first = int(np.searchsorted(spike_samples, -reach, side="right"))
        spike_samples = spike_samples[first:]
        clusters = np.array(np.load(sorting / "spikes.clusters.npy", mmap_mode="r")[first:last], np.int64)
        amps = np.array(np.load(sorting / "spikes.amps.npy", mmap_mode="r")[first:last], np.float64)
        template_amps = np.load(sorting / "clusters.amps.npy").astype(np.float64)
        scale = (amps / template_amps[clusters]).astype(np.float32)

        # LFP: latent sums of sinusoids (shared frequencies, own amplitudes and phases) with
        # unit rms each, spread over the channels by depth profiles.
        background = np.geomspace(*_BACKGROUND_HZ, _N_BACKGROUND) * np.exp(rng.uniform(-0.02, 0.02, _N_BACKGROUND))
        theta = rng.uniform(6.5, 8.5) + np.linspace(-0.6, 0.6, _N_THETA) + rng.uniform(-0.05, 0.05, _N_THETA)
        frequencies = np.r_[background, theta]
        n_latents = 1 + _N_BUMPS + 1  # global, bumps, theta
        amplitude = np.zeros((len(frequencies), n_latents))
        # Log-spaced components of equal power make a 1/f spectrum; f^-0.25 more makes it 1/f^1.5.
        amplitude[:_N_BACKGROUND, :-1] = (background[:, None] ** -0.25
                                          * rng.rayleigh(1.0, (_N_BACKGROUND, n_latents - 1)))
        amplitude[_N_BACKGROUND:, -1] = rng.rayleigh(1.0, _N_THETA)
        amplitude /= np.sqrt((amplitude ** 2).sum(axis=0) / 2)  # unit rms
        phase = rng.uniform(0, 2 * np.pi, amplitude.shape)
        top, bottom = np.nanmax(depth), np.nanmin(depth)
        centres = rng.uniform(bottom, top, _N_BUMPS + 1)
        widths = np.r_[rng.uniform(150.0, 600.0, _N_BUMPS), 400.0]
        profiles = np.exp(-0.5 * ((depth[None, :] - centres[:, None]) / widths[:, None]) ** 2)
        weights = np.vstack([np.full((1, n_data), _GLOBAL_RMS_V), _BUMP_RMS_V * profiles[:-1],
                             _THETA_RMS_V * profiles[-1:]])

        return cls(fs_ap=fs_ap, n_ap=n_ap, spike_samples=spike_samples, spike_clusters=clusters,
                   spike_scale=scale, templates=templates, template_columns=columns,
                   depth_of_column=depth, lfp_hz=frequencies,
                   lfp_cos=amplitude * np.cos(phase), lfp_sin=amplitude * np.sin(phase),
                   lfp_weights_v=weights, sync_toggles=_sync_toggles(timestamps, n_ap))

    def latents(self, ap_samples: np.ndarray) -> np.ndarray:
        """The LFP latents (T x K) at these AP samples (float64)."""
        cycles = np.multiply.outer(ap_samples / self.fs_ap, self.lfp_hz)
        cycles -= np.floor(cycles)  # small angles: cos and sin of large ones are slow
        cycles *= 2 * np.pi
        return _matmul(np.cos(cycles), self.lfp_cos) - _matmul(np.sin(cycles), self.lfp_sin)

    def sync_bit(self, ap_samples: np.ndarray) -> np.ndarray:
        """The sync bit (0 or 1) at these sorted AP samples."""
        return np.searchsorted(self.sync_toggles, ap_samples, side="right") & 1


class _BandSource:
    """Generates the chunks of one band of one probe (int16, samples x channels, C order)."""

    def __init__(self, probe: _Probe, band: str, meta, decimation: int, n_samples: int,
                 seed_seq: np.random.SeedSequence, offset_seq: np.random.SeedSequence):
        self.probe, self.band, self.decimation = probe, band, decimation
        self.seed_seq = seed_seq
        self.fs = float(spikeglx._get_fs_from_meta(meta))
        self.n_samples = n_samples
        self.n_channels = int(spikeglx._get_nchannels_from_meta(meta))
        self.sync_column = spikeglx._get_sync_trace_indices_from_meta(meta)[0]
        self.n_data = self.sync_column
        if self.n_data != len(probe.depth_of_column):
            raise RuntimeError(f"the {band} meta saves {self.n_data} neural channels, the AP meta "
                               f"{len(probe.depth_of_column)}")
        volts = spikeglx._conversion_sample2v_from_meta(meta)[band][: self.n_data].astype(np.float64)
        chunk = int(round(CHUNK_DURATION_S * self.fs))  # mtscomp's rule for its chunk bounds
        self.chunk_bounds = list(range(0, n_samples, chunk)) + [n_samples]
        # Noise: a quantile table of the normal law in ADC units, indexed by random 16-bit words.
        quantiles = ndtri((np.arange(1 << _LUT_BITS) + 0.5) / (1 << _LUT_BITS))
        self.noise_table = np.rint(quantiles * (_NOISE_RMS_V / np.median(volts))).astype(np.int16)
        # Real recordings carry a constant ADC offset per channel: it shapes how the data compress
        # (with shuffle, the high bytes of a channel become nearly constant).
        # Drawn per probe, not per band: both bands see the same ADC (NP2's LF is taken from its AP).
        offset_rng = np.random.default_rng(offset_seq)
        self.offsets = np.rint(offset_rng.normal(0.0, _OFFSET_SD_UNITS, self.n_data)).astype(np.int16)
        self.with_lfp = band in _LFP_BANDS or "NP2" in str(meta.get("neuropixelVersion", ""))
        self.lfp_weights = (probe.lfp_weights_v / volts[None, :]).astype(np.float32)
        self.with_spikes = band == "ap"
        if self.with_spikes:
            self.templates = (probe.templates / volts[probe.template_columns][:, None, :]).astype(np.float32)

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_bounds) - 1

    def chunk(self, index: int) -> np.ndarray:
        """Chunk ``index`` of the band, made from its own random stream (the same on any thread)."""
        start, stop = self.chunk_bounds[index], self.chunk_bounds[index + 1]
        bits = np.random.default_rng(_child(self.seed_seq, index)).bit_generator
        ap_samples = np.arange(start, stop, dtype=np.int64) * self.decimation
        data = np.empty((stop - start, self.n_channels), np.int16)
        latents = self._latents(ap_samples) if self.with_lfp else None
        # Row blocks keep the temporaries small (and in cache).
        for first in range(0, stop - start, _BLOCK_ROWS):
            rows = slice(first, min(first + _BLOCK_ROWS, stop - start))
            n_words = (rows.stop - rows.start) * self.n_data
            words = bits.random_raw(-(-n_words // 4)).view(np.uint16)[:n_words]
            noise = self.noise_table[words.reshape(-1, self.n_data)]
            if latents is None:
                data[rows, : self.n_data] = noise
            else:
                signal = _matmul(latents[rows], self.lfp_weights)
                signal += noise
                data[rows, : self.n_data] = np.rint(signal, out=signal)
        data[:, : self.n_data] += self.offsets
        data[:, self.sync_column] = self.probe.sync_bit(ap_samples).astype(np.int16) << SYNC_BIT
        data[:, self.sync_column + 1:] = 0
        if self.with_spikes:
            self._add_spikes(data, start, stop)
        return data

    def _latents(self, ap_samples: np.ndarray) -> np.ndarray:
        """LFP latents of the chunk (T x K, float32), computed on the LF grid."""
        if self.decimation == LF_DECIMATION:
            latents = self.probe.latents(ap_samples)
        else:  # AP band: latents on the LF grid around the chunk, linearly interpolated
            grid = np.arange(ap_samples[0] // LF_DECIMATION, ap_samples[-1] // LF_DECIMATION + 2) * LF_DECIMATION
            coarse = self.probe.latents(grid)
            latents = np.column_stack([np.interp(ap_samples, grid, coarse[:, k]) for k in range(coarse.shape[1])])
        return latents.astype(np.float32)

    def _add_spikes(self, data: np.ndarray, start: int, stop: int) -> None:
        """Add the templates of the spikes overlapping the chunk (their parts inside it)."""
        probe = self.probe
        length = self.templates.shape[1]
        first = np.searchsorted(probe.spike_samples, start - (length - _TROUGH_SAMPLE) + 1, side="left")
        last = np.searchsorted(probe.spike_samples, stop + _TROUGH_SAMPLE, side="left")
        flat = data.reshape(-1)
        for group in range(first, last, _SPIKE_GROUP):  # ~20 MB of indices at a time
            spikes = slice(group, min(group + _SPIKE_GROUP, last))
            clusters = probe.spike_clusters[spikes]
            rows = (probe.spike_samples[spikes, None] - _TROUGH_SAMPLE - start) + np.arange(length)[None, :]
            values = self.templates[clusters] * probe.spike_scale[spikes, None, None]
            index = rows[:, :, None] * data.shape[1] + probe.template_columns[clusters][:, None, :]
            inside = np.broadcast_to(((rows >= 0) & (rows < stop - start))[:, :, None], index.shape)
            np.add.at(flat, index[inside], np.rint(values[inside]).astype(np.int16))


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for a tall ``a`` and a small ``b``, in slices of rows small enough that
    OpenBLAS computes them on the calling thread: no BLAS threads inside the chunk threads
    (oversubscribed, they spin and wait), and faster here than one call or einsum."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    for first in range(0, a.shape[0], _MATMUL_ROWS):
        np.matmul(a[first:first + _MATMUL_ROWS], b, out=out[first:first + _MATMUL_ROWS])
    return out


# --- writers ------------------------------------------------------------------------------------

class _GeneratedWriter(mtscomp.Writer):
    """mtscomp's writer, fed with generated chunks instead of a memory-mapped ``.bin``.

    Deflates with ISA-L (standard zlib streams) and lays out the time difference channel by
    channel itself (as mtscomp does: ``do_time_diff``, ``chunk_order="F"``); everything else
    (batches of one chunk per thread, chunk offsets, SHA-1s, the ``.ch`` header) is mtscomp's
    own.
    """

    def open_source(self, source: _BandSource) -> None:
        self.source = source
        self.data_path = None
        self.dtype = np.dtype(np.int16)
        self.sample_rate = source.fs
        self.n_samples, self.n_channels = source.n_samples, source.n_channels
        self.shape = (self.n_samples, self.n_channels)
        self.file_size = self.n_samples * self.n_channels * self.dtype.itemsize
        self._compute_chunk_bounds()
        if self.chunk_bounds != source.chunk_bounds:
            raise RuntimeError("mtscomp chunks and generated chunks differ")
        self.sha1_compressed = hashlib.sha1()
        self.sha1_uncompressed = hashlib.sha1()

    def get_chunk(self, chunk_idx):
        return self.source.chunk(chunk_idx)

    def _compress_chunk(self, chunk_idx):
        chunk = self.get_chunk(chunk_idx)
        # Channel by channel (mtscomp's chunk_order "F"): transpose, then take the time
        # difference in place, a few channels at a time.
        channels = np.ascontiguousarray(chunk.T)
        for first in range(0, channels.shape[0], 16):
            block = channels[first:first + 16]
            previous = block[:, :-1].copy()
            block[:, 1:] -= previous
        return chunk_idx, (chunk, isal_zlib.compress(channels, self.comp_level))


def _write_cbin(source: _BandSource, path: Path, n_threads: int) -> str:
    """Write ``path`` (``.cbin``) and its ``.ch``; return the SHA-1 of the uncompressed data."""
    writer = _GeneratedWriter(quiet=True, algorithm="zlib", comp_level=COMPRESSION_LEVEL,
                              chunk_duration=CHUNK_DURATION_S, chunk_order="F", do_time_diff=True,
                              do_spatial_diff=False, check_after_compress=False, n_threads=n_threads)
    writer.open_source(source)
    writer.write(path, path.with_suffix(".ch"))
    return writer.sha1_uncompressed.hexdigest()


def _write_bin(source: _BandSource, path: Path, n_threads: int) -> str:
    """Write ``path`` (``.bin``), one chunk per thread at a time; return its SHA-1."""
    sha1 = hashlib.sha1()
    with ThreadPool(n_threads) as pool, open(path, "wb") as handle:
        for first in range(0, source.n_chunks, n_threads):
            for chunk in pool.map(source.chunk, range(first, min(first + n_threads, source.n_chunks))):
                sha1.update(chunk)
                handle.write(chunk)
    return sha1.hexdigest()


def _update_meta(path: Path, size_bytes: int, seconds: float, sha1: str) -> None:
    """Describe the data written: ``fileSizeBytes``, ``fileTimeSecs`` and ``fileSHA1``.

    ``fileSHA1`` is SpikeGLX's hash of the (uncompressed) ``.bin``, which ibl-neuropixel
    checks a ``.bin`` against; a meta without it gets none. Every other line stays as it was.
    """
    with open(path, encoding="utf-8", newline="") as handle:  # keep the line endings
        text = handle.read()
    seconds_text = str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))
    for key, value, required in (("fileSizeBytes", str(int(size_bytes)), True),
                                 ("fileTimeSecs", seconds_text, True), ("fileSHA1", sha1.upper(), False)):
        text, count = re.subn(rf"(?m)^(~?{key}=)[^\r\n]*", lambda m, v=value: m.group(1) + v, text)
        if count > 1 or (required and count == 0):
            raise RuntimeError(f"{path}: expected one {key} line, found {count}")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
