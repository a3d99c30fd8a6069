"""Probes and spike sorting of the synthetic IBL sessions written by `make_ibl_session`.

Per probe insertion this writes what a released Brain Wide Map session holds (see
``shared/SOURCES.md``, "Spike sorting" and "Raw electrophysiology"):

- ``alf/<probe>/[<sorter>/]``: ``spikes.*``, ``clusters.*`` (with ``clusters.metrics.pqt``)
  and ``channels.*``; ``alf/<probe>/electrodeSites.*``;
- ``raw_ephys_data/<probe>/``: the SpikeGLX ``.ap.meta`` / ``.lf.meta`` of a real probe of the
  chosen generation (shipped in ``nwbridge/testing/data/spikeglx/``) and the
  ``.timestamps.npy`` mapping the probe's samples to the session clock.

Channel geometry comes from the real metadata through ibl-neuropixel, brain regions are real
Allen CCF 2017 ids along a straight, tilted track, and the cluster metrics are computed from
the spikes the way the IBL's ``quick_unit_metrics`` computes them. Spikes are drawn for tens of
millions at once: the merged spike train of a probe is a Poisson process (cumulative
exponential intervals, conditioned on the spike count so that no sort is needed) whose spikes
are dealt to the clusters in proportion to their firing rates, which makes every cluster an
independent Poisson train. Nothing loops over spikes in Python.
"""

from __future__ import annotations

import copy
import functools
import re
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import spikeglx
from iblatlas.regions import BrainRegions

__all__ = ["PROBE_TYPES", "SORTERS", "EphysOptions", "check_ephys_arguments", "write_probes"]

# probe type -> (AP meta, LF meta or None: IBL's NP2 converter derives the LF one from the AP one)
PROBE_TYPES = {
    "3A": ("sample3A_g0_t0.imec.ap.meta", "sample3A_g0_t0.imec.lf.meta"),
    "3B": ("sample3B_g0_t0.imec1.ap.meta", "sample3B_g0_t0.imec1.lf.meta"),
    "NP2.1": ("sampleNP2.1_g0_t0.imec.ap.meta", None),
    "NP2.4": ("sampleNP2.4_4shanks_g0_t0.imec.ap.meta", None),
    "NP2.4-1shank": ("sampleNP2.4_1shank_g0_t0.imec.ap.meta", None),
}
SORTERS = ("iblsorter", "pykilosort", "")
_META_PACKAGE = "nwbridge.testing"
_RAW_STEM = "_spikeglx_ephysData_g0_t0"

_DEFAULT_UNITS = 60
_WAVEFORM_SAMPLES, _WAVEFORM_CHANNELS, _TROUGH_SAMPLE = 82, 32, 41
_SHANK_PITCH_UM = 250.0  # NP2.4 shank spacing
_PRESENCE_WINDOW_S = 10.0  # as the IBL's quick_unit_metrics
_NC_THRESHOLD = 5.0  # noise cutoff below this passes
_MEDIAN_AMP_THRESHOLD_V = 50e-6  # median amplitude above this passes
_CHUNK = 1 << 22  # spikes handled at once when a temporary array per spike is needed

# Tracks from the brain surface down: (acronym, thickness in um), and the entry point
# (ML, AP, DV of the brain surface in um from bregma), tilt from vertical and its azimuth (deg).
# The first is the IBL's repeated site; deeper than the list reaches, the last region continues.
_TRACKS = (
    {"entry": (-2243.0, -2000.0, -300.0), "theta": 15.0, "phi": 180.0,
     "regions": (("VISa1", 100), ("VISa2/3", 220), ("VISa4", 80), ("VISa5", 200), ("VISa6a", 240),
                 ("VISa6b", 50), ("alv", 60), ("CA1", 300), ("DG-mo", 130), ("DG-sg", 70),
                 ("DG-po", 150), ("LP", 700), ("PO", 2000))},
    {"entry": (1300.0, 1200.0, -200.0), "theta": 12.0, "phi": 0.0,
     "regions": (("MOs1", 100), ("MOs2/3", 250), ("MOs5", 350), ("MOs6a", 450), ("MOs6b", 50),
                 ("ccb", 150), ("CP", 1900), ("SI", 2000))},
    {"entry": (-2000.0, -3800.0, -450.0), "theta": 18.0, "phi": 0.0,
     "regions": (("VISp1", 100), ("VISp2/3", 250), ("VISp4", 100), ("VISp5", 220), ("VISp6a", 220),
                 ("VISp6b", 50), ("alv", 60), ("CA1", 250), ("DG-mo", 120), ("DG-sg", 60),
                 ("DG-po", 120), ("SCzo", 30), ("SCsg", 150), ("SCop", 150), ("SCig", 300),
                 ("SCiw", 250), ("SCdg", 150), ("MRN", 2000))},
)
_VOID = 0  # Allen id of everything outside the brain

_METRIC_COLUMNS = ("cluster_id", "amp_max", "amp_min", "amp_median", "amp_std_dB", "contamination",
                   "contamination_alt", "drift", "missed_spikes_est", "noise_cutoff", "presence_ratio",
                   "presence_ratio_std", "slidingRP_viol", "spike_count", "firing_rate", "label")


# --- arguments ------------------------------------------------------------------------------

@dataclass(frozen=True)
class EphysOptions:
    probes: tuple[str, ...]
    probe_type: str
    n_units: int
    n_spikes: int | None
    sorter: str
    cluster_dtype: np.dtype | None


def check_ephys_arguments(probes, probe_type, n_units, n_spikes, sorter, cluster_dtype) -> EphysOptions:
    """Validate the probe arguments of `make_ibl_session` (before anything is written)."""
    probes = (probes,) if isinstance(probes, str) else tuple(probes)
    if len(set(probes)) != len(probes) or not all(
            isinstance(p, str) and re.fullmatch(r"probe\d{2}", p) for p in probes):
        raise ValueError(f"probes must be distinct names 'probe00' .. 'probe99', got {probes}")
    if probe_type not in PROBE_TYPES:
        raise ValueError(f"probe_type must be one of {list(PROBE_TYPES)}, got {probe_type!r}")
    n_units = _DEFAULT_UNITS if n_units is None else n_units
    if isinstance(n_units, bool) or not isinstance(n_units, (int, np.integer)) or n_units < 1:
        raise ValueError(f"n_units must be a positive integer, got {n_units!r}")
    if n_spikes is not None and (isinstance(n_spikes, bool) or not isinstance(n_spikes, (int, np.integer))
                                 or n_spikes < 2):
        raise ValueError(f"n_spikes must be an integer of at least 2, got {n_spikes!r}")
    if sorter not in SORTERS:
        raise ValueError(f"sorter must be one of {list(SORTERS)}, got {sorter!r}")
    if cluster_dtype is not None:
        try:
            cluster_dtype = np.dtype(cluster_dtype)
        except TypeError:
            raise ValueError(f"cluster_dtype must be np.uint16 or np.uint32, got {cluster_dtype!r}") from None
        if cluster_dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
            raise ValueError(f"cluster_dtype must be np.uint16 or np.uint32, got {cluster_dtype}")
        if cluster_dtype == np.uint16 and n_units > 65536:
            raise ValueError(f"{n_units} clusters do not fit in uint16")
    return EphysOptions(probes=probes, probe_type=probe_type, n_units=int(n_units),
                        n_spikes=None if n_spikes is None else int(n_spikes), sorter=sorter,
                        cluster_dtype=cluster_dtype)


# --- session level ----------------------------------------------------------------------------

def write_probes(rng, session_path: Path, options: EphysOptions, *, duration: float, eid: str,
                 revision: str | None) -> list[dict]:
    """Write every probe insertion of the session; return their Alyx insertion records.

    Each acquisition probe draws from its own stream (keyed by its number), so that dropping a
    probe leaves the others as they are; NP2.4 shanks draw from sub-streams of their probe.
    """
    parent = rng.bit_generator.seed_seq
    insertions = []
    for name in options.probes:
        number = int(name[-2:])
        probe_seq = _child(parent, number)
        track_rng = np.random.default_rng(_child(probe_seq, 0))
        track = _draw_track(track_rng, number)
        clock = _draw_clock(track_rng, duration)
        for folder, shank, meta_path in _write_raw_metas(session_path, name, number, options.probe_type):
            meta = spikeglx.read_meta_data(meta_path)
            timestamps = _sync_points(clock, spikeglx._get_fs_from_meta(meta))
            _save_npy(meta_path.parent / f"{_RAW_STEM}.imec{number}.timestamps.npy", timestamps)
            folder_rng = np.random.default_rng(_child(probe_seq, 1 + shank))
            _write_insertion(folder_rng, session_path, folder, meta, shank, track, clock, timestamps,
                             options, revision=revision)
            insertions.append({
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"nwbridge-testing/{eid}/{folder}")),
                "name": folder, "model": meta["neuropixelVersion"], "serial": str(meta["serial"]),
            })
    return insertions


def _child(seed_seq: np.random.SeedSequence, *keys: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, *keys))


def _write_raw_metas(session_path: Path, name: str, number: int, probe_type: str):
    """Write the SpikeGLX metadata; yield ``(folder, shank, ap_meta_path)`` per insertion folder.

    NP1 metas (AP and LF) are copied unchanged. For NP2 the IBL's NP2 converter derives an LF meta
    from the AP one, and splits an NP2.4 into one folder per shank (``probe00a``, ``probe00b``...)
    with rewritten metas: both are reproduced here with its exact key changes.
    """
    ap_name, lf_name = PROBE_TYPES[probe_type]
    source = resources.files(_META_PACKAGE).joinpath("data", "spikeglx")
    ap_text = source.joinpath(ap_name).read_text(encoding="utf-8")
    ap_file, lf_file = f"{_RAW_STEM}.imec{number}.ap.meta", f"{_RAW_STEM}.imec{number}.lf.meta"
    if lf_name is not None:
        raw = session_path / "raw_ephys_data" / name
        raw.mkdir(parents=True, exist_ok=True)
        (raw / ap_file).write_text(ap_text, encoding="utf-8")
        (raw / lf_file).write_text(source.joinpath(lf_name).read_text(encoding="utf-8"), encoding="utf-8")
        yield name, 0, raw / ap_file
        return

    with resources.as_file(source.joinpath(ap_name)) as path:
        original = spikeglx.read_meta_data(path)
    version = original["neuropixelVersion"]
    fs_ap = spikeglx._get_fs_from_meta(original)
    n_samples = round(float(original["fileTimeSecs"]) * fs_ap)
    sync = list(spikeglx._get_sync_trace_indices_from_meta(original))
    if version != "NP2.4":  # NP2.1: the AP meta as recorded, an LF meta next to it
        raw = session_path / "raw_ephys_data" / name
        raw.mkdir(parents=True, exist_ok=True)
        (raw / ap_file).write_text(ap_text, encoding="utf-8")
        n_channels = int(original["nSavedChans"])
        _write_lf_meta(original, raw / lf_file, n_channels, n_samples * n_channels * 2, version, 0,
                       split=False)
        yield name, 0, raw / ap_file
        return

    shanks = spikeglx._map_channels_from_meta(original)["shank"]
    for shank in np.unique(shanks).astype(int):
        folder = f"{name}{chr(ord('a') + shank)}"
        raw = session_path / "raw_ephys_data" / folder
        raw.mkdir(parents=True, exist_ok=True)
        channels = np.r_[np.flatnonzero(shanks == shank), sync]
        n_channels = len(channels)
        meta = copy.deepcopy(original)
        meta["acqApLfSy"][0] = n_channels - 1
        meta["snsApLfSy"][0] = n_channels - 1
        meta["nSavedChans"] = n_channels
        meta["fileSizeBytes"] = n_samples * n_channels * 2
        meta["snsSaveChanSubset_orig"] = spikeglx._get_savedChans_subset(channels)
        meta["snsSaveChanSubset"] = f"0:{n_channels - 1}"
        meta["original_meta"] = False
        meta[f"{version}_shank"] = int(shank)
        spikeglx.write_meta_data(meta, raw / ap_file)
        _write_lf_meta(original, raw / lf_file, n_channels, n_samples * n_channels * 2, version,
                       int(shank), split=True, channels=channels)
        yield folder, int(shank), raw / ap_file


def _write_lf_meta(original, path: Path, n_channels: int, ap_bytes: int, version: str, shank: int,
                   *, split: bool, channels=None) -> None:
    """The LF meta the IBL's NP2 converter writes next to the 2.5 kHz file it extracts."""
    meta = copy.deepcopy(original)
    meta["acqApLfSy"][0], meta["acqApLfSy"][1] = 0, n_channels - 1
    meta["snsApLfSy"][0], meta["snsApLfSy"][1] = 0, n_channels - 1
    meta["fileSizeBytes"] = ap_bytes // 12  # 30 kHz -> 2.5 kHz
    meta["imSampRate"] = 2500
    if split:
        meta["snsSaveChanSubset_orig"] = spikeglx._get_savedChans_subset(channels)
        meta["snsSaveChanSubset"] = f"0:{n_channels - 1}"
        meta["nSavedChans"] = n_channels
    meta["original_meta"] = False
    meta[f"{version}_shank"] = shank
    spikeglx.write_meta_data(meta, path)


# --- probe placement and clock -------------------------------------------------------------------

@dataclass(frozen=True)
class _Track:
    entry: np.ndarray  # ML, AP, DV of the entry point on the brain surface, um
    direction: np.ndarray  # unit vector from the entry towards the tip
    across: np.ndarray  # horizontal unit vector across the probe (lateral positions, shanks)
    depth: float  # um from the entry point to the tip, along the track
    bounds: np.ndarray  # lower bound of each region, um along the track from the surface
    ids: np.ndarray  # Allen id of each region


def _draw_track(rng, number: int) -> _Track:
    template = _TRACKS[number % len(_TRACKS)]
    ml, ap, dv = template["entry"]
    # The same site again (probe03 after probe00...) goes to the other hemisphere.
    if (number // len(_TRACKS)) % 2:
        ml = -ml
    entry = np.array([ml, ap, dv]) + np.r_[rng.uniform(-150, 150, 2), rng.uniform(-50, 50)]
    theta = np.deg2rad(template["theta"] + rng.uniform(-1.5, 1.5))
    phi = np.deg2rad(template["phi"] + rng.uniform(-5, 5))
    direction = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), -np.cos(theta)])
    across = np.array([-np.sin(phi), np.cos(phi), 0.0])
    acronyms, thickness = zip(*template["regions"])
    thickness = np.asarray(thickness, float) * rng.uniform(0.9, 1.1, len(thickness))
    return _Track(entry=entry, direction=direction, across=across, depth=float(rng.uniform(3200, 3750)),
                  bounds=np.cumsum(thickness), ids=_allen_ids(acronyms))


def _allen_ids(acronyms) -> np.ndarray:
    regions = _brain_regions()
    ids = []
    for acronym in acronyms:
        found = np.atleast_1d(regions.acronym2id(acronym))
        if found.size != 1:
            raise RuntimeError(f"{acronym!r} is not one Allen structure in iblatlas")
        ids.append(int(found[0]))
    return np.array(ids, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def _brain_regions() -> BrainRegions:
    return BrainRegions()  # offline: the structure tree ships with iblatlas


@dataclass(frozen=True)
class _Clock:
    t0: float  # session time of probe sample 0, s
    rate: float  # session seconds per probe second (a drift of a few ppm)
    stop: float  # session time the recording stops, s
    n_points: int
    jitter: np.ndarray  # session-time jitter of the interior sync points, s
    spikes: tuple[float, float]  # the window spike sorting covers, session clock


def _draw_clock(rng, duration: float) -> _Clock:
    """The probe starts before the session clock's zero and stops after its end."""
    n_points = 2 + int(duration // 600)
    return _Clock(t0=-float(rng.uniform(0.5, 3.0)), rate=1.0 + float(rng.uniform(-2e-5, 2e-5)),
                  stop=duration + float(rng.uniform(0.5, 3.0)), n_points=n_points,
                  jitter=rng.uniform(-5e-6, 5e-6, n_points),
                  spikes=(float(rng.uniform(0.05, 0.5)), duration - float(rng.uniform(0.05, 0.5))))


def _sync_points(clock: _Clock, fs: float) -> np.ndarray:
    """``k x 2`` (probe sample, session seconds): a linear drift, sampled at a few sync pulses."""
    n_samples = int(np.ceil((clock.stop - clock.t0) / clock.rate * fs))
    samples = np.rint(np.linspace(0, n_samples, clock.n_points))
    seconds = clock.t0 + samples / fs * clock.rate
    seconds[1:-1] += clock.jitter[1:-1]
    return np.column_stack([samples, seconds])


# --- one insertion ------------------------------------------------------------------------------

def _write_insertion(rng, session_path: Path, folder: str, meta, shank: int, track: _Track, clock: _Clock,
                     timestamps: np.ndarray, options: EphysOptions, *, revision: str | None) -> None:
    geometry = spikeglx.geometry_from_meta(meta)
    x, y = np.asarray(geometry["x"], float), np.asarray(geometry["y"], float)
    local = np.column_stack([x, y])
    raw_index = np.asarray(geometry["ind"], dtype=np.int64)
    along = track.depth - y  # um along the track below the brain surface
    lateral = x - x.mean() + _SHANK_PITCH_UM * shank
    mlapdv = track.entry + along[:, None] * track.direction + lateral[:, None] * track.across
    region = np.searchsorted(track.bounds, along, side="right")
    region_ids = np.where(along < 0, _VOID, track.ids[np.minimum(region, len(track.ids) - 1)]).astype(np.int64)

    probe_alf = session_path / "alf" / folder
    sorting = probe_alf / options.sorter if options.sorter else probe_alf
    sorting.mkdir(parents=True, exist_ok=True)
    for collection, obj in ((probe_alf, "electrodeSites"), (sorting, "channels")):
        _save_npy(collection / f"{obj}.localCoordinates.npy", local)
        _save_npy(collection / f"{obj}.mlapdv.npy", mlapdv)
        _save_npy(collection / f"{obj}.brainLocationIds_ccf_2017.npy", region_ids)
    _save_npy(sorting / "channels.rawInd.npy", raw_index)

    n_units = options.n_units
    dtype = options.cluster_dtype or np.dtype(np.uint16 if n_units < 65536 else np.uint32)
    units = _draw_units(rng, n_units, y, region_ids)

    # Spike times: N sorted uniform points of the window, as normalised cumulative exponential
    # intervals, then put on the probe's sample grid (as real times come from samples).
    start, stop = clock.spikes
    n_spikes = options.n_spikes
    if n_spikes is None:
        n_spikes = max(2, int(rng.poisson(units.rates.sum() * (stop - start))))
    times = rng.standard_exponential(n_spikes + 1)
    np.cumsum(times, out=times)
    times *= (stop - start) / times[-1]
    times += start
    times = times[:n_spikes]
    samples = np.interp(times, timestamps[:, 1], timestamps[:, 0])
    del times
    np.rint(samples, out=samples)
    samples = samples.astype(np.int64)
    times = np.interp(samples, timestamps[:, 0], timestamps[:, 1])
    _save_npy(sorting / "spikes.samples.npy", samples)
    del samples
    _save_npy(sorting / "spikes.times.npy", times)

    clusters, amps, depths = _deal_spikes(rng, n_spikes, units, dtype)
    _save_npy(sorting / "spikes.clusters.npy", clusters)
    _save_npy(sorting / "spikes.amps.npy", amps)
    _save_npy(sorting / "spikes.depths.npy", depths)

    metrics = _cluster_metrics(rng, times, clusters, amps, depths, n_units)
    del times, clusters, amps, depths
    _save_npy(sorting / "clusters.channels.npy", units.channels)
    _save_npy(sorting / "clusters.depths.npy", units.depths)
    _save_npy(sorting / "clusters.amps.npy", units.amps)
    _save_npy(sorting / "clusters.peakToTrough.npy", units.peak_to_trough)
    waveforms, waveform_channels = _waveforms(units, local)
    _save_npy(sorting / "clusters.waveforms.npy", waveforms)
    _save_npy(sorting / "clusters.waveformsChannels.npy", waveform_channels)
    cluster_uuids = [str(uuid.UUID(bytes=bytes(b), version=4))
                     for b in np.frombuffer(rng.bytes(16 * n_units), np.uint8).reshape(n_units, 16)]
    pd.DataFrame({"uuids": cluster_uuids}).to_csv(sorting / "clusters.uuids.csv", index=False)
    _save_table(sorting / "clusters.metrics.pqt", metrics)

    if revision is not None:
        revised = sorting / f"#{revision}#"
        revised.mkdir(parents=True, exist_ok=True)
        _save_table(revised / "clusters.metrics.pqt", {**metrics, "label": _relabel(rng, metrics["label"])})


@dataclass(frozen=True)
class _Units:
    channels: np.ndarray  # peak channel, index into channels.*
    depths: np.ndarray  # um from the tip
    amps: np.ndarray  # template amplitude, V
    spread: np.ndarray  # sd of the log of the spikes' amplitudes
    peak_to_trough: np.ndarray  # ms
    rates: np.ndarray  # Hz; 0 for the clusters left without spikes


def _draw_units(rng, n: int, y: np.ndarray, region_ids: np.ndarray) -> _Units:
    inside = np.flatnonzero(region_ids != _VOID)
    channels = rng.choice(inside if inside.size else np.arange(len(y)), n).astype(np.int64)
    depths = y[channels] + rng.uniform(-10.0, 10.0, n)
    amps = np.clip(rng.lognormal(np.log(90e-6), 0.55, n), 30e-6, 400e-6)
    spread = rng.uniform(0.15, 0.35, n)
    narrow = rng.random(n) < 0.25
    peak_to_trough = np.where(narrow, rng.uniform(0.2, 0.4, n), rng.uniform(0.5, 1.1, n))
    rates = np.clip(rng.lognormal(np.log(2.0), 1.1, n), 0.01, 80.0)
    # The real quirk: a cluster or two (merged or split away in curation) has no spike at all.
    n_empty = min(1 if n < 20 else 2, n - 1)
    rates[rng.choice(n, n_empty, replace=False)] = 0.0
    return _Units(channels=channels, depths=depths, amps=amps, spread=spread,
                  peak_to_trough=peak_to_trough, rates=rates)


def _deal_spikes(rng, n_spikes: int, units: _Units, dtype):
    """Cluster, amplitude (V) and depth (um) of every spike, in chunks to bound the temporaries."""
    cdf = np.cumsum(units.rates)
    cdf /= cdf[-1]  # exactly 1 at the end, and flat over the clusters without spikes
    amp32 = units.amps.astype(np.float32)
    spread32 = units.spread.astype(np.float32)
    depth32 = units.depths.astype(np.float32)
    clusters = np.empty(n_spikes, dtype)
    amps = np.empty(n_spikes, np.float32)
    depths = np.empty(n_spikes, np.float32)
    for first in range(0, n_spikes, _CHUNK):
        part = slice(first, min(first + _CHUNK, n_spikes))
        size = part.stop - part.start
        c = np.searchsorted(cdf, rng.random(size), side="right")
        clusters[part] = c
        z = rng.standard_normal(size, dtype=np.float32)
        z *= spread32[c]
        np.exp(z, out=z)
        z *= amp32[c]
        amps[part] = z
        z = rng.standard_normal(size, dtype=np.float32)
        z *= 6.0
        z += depth32[c]
        depths[part] = z
    return clusters, amps, depths


def _cluster_metrics(rng, times, clusters, amps, depths, n: int) -> dict[str, np.ndarray]:
    """``clusters.metrics`` as the IBL's ``quick_unit_metrics`` computes it from the spikes.

    Counts, rates, presence, amplitudes and drift come from the spikes; the metrics that need
    the refractory-period and amplitude-distribution fits (contamination, sliding RP, noise
    cutoff, missed spikes) are drawn; ``label`` is the fraction of the three IBL checks passed.
    Clusters without spikes get NaN where a metric is undefined, 0 for counts and presence.
    """
    counts = np.bincount(clusters, minlength=n).astype(np.int64)
    has = counts > 0
    tmin, tmax = float(times[0]), float(times[-1])

    # Presence: spikes per 10 s bin from the first to the last spike of the probe.
    n_bins = len(np.arange(tmin, tmax + _PRESENCE_WINDOW_S / 2, _PRESENCE_WINDOW_S))
    per_bin = np.zeros(n * n_bins, np.int64)
    for first in range(0, len(times), _CHUNK):
        part = slice(first, first + _CHUNK)
        index = np.floor((times[part] - tmin) / _PRESENCE_WINDOW_S).astype(np.int64)
        index += clusters[part].astype(np.int64) * n_bins
        per_bin += np.bincount(index, minlength=n * n_bins)
    per_bin = per_bin.reshape(n, n_bins)

    # Amplitude extremes and median: sort (cluster, amplitude) pairs packed in one uint64
    # (the bits of a positive float32 sort like the float).
    key = clusters.astype(np.uint64)
    key <<= np.uint64(32)
    key |= amps.view(np.uint32)
    key.sort()
    starts = np.cumsum(counts) - counts
    low_mask = np.uint64(0xFFFFFFFF)

    def amp_at(index):
        return (key[index] & low_mask).astype(np.uint32).view(np.float32).astype(np.float64)

    s, c = starts[has], counts[has]
    amp_min, amp_max, amp_median = (np.full(n, np.nan) for _ in range(3))
    amp_min[has] = amp_at(s)
    amp_max[has] = amp_at(s + c - 1)
    # The IBL's median is geometric: of 20 log10(amps), averaging the two middle values.
    middle = 20 * np.log10(np.column_stack([amp_at(s + (c - 1) // 2), amp_at(s + c // 2)]))
    amp_median[has] = 10 ** (middle.mean(axis=1) / 20)
    del key

    # Spread of the amplitudes in dB (pandas' std, ddof 1), in two passes for precision.
    log_sum = np.zeros(n)
    for first in range(0, len(amps), _CHUNK):
        part = slice(first, first + _CHUNK)
        log_sum += np.bincount(clusters[part], 20 * np.log10(amps[part].astype(np.float64)), minlength=n)
    log_mean = np.divide(log_sum, counts, out=np.zeros(n), where=has)
    squares = np.zeros(n)
    for first in range(0, len(amps), _CHUNK):
        part = slice(first, first + _CHUNK)
        deviation = 20 * np.log10(amps[part].astype(np.float64)) - log_mean[clusters[part]]
        squares += np.bincount(clusters[part], deviation * deviation, minlength=n)
    amp_std = np.full(n, np.nan)
    several = counts > 1
    amp_std[several] = np.sqrt(squares[several] / (counts[several] - 1))

    # Drift: summed depth changes between a cluster's consecutive spikes, in um per hour.
    # (a stable sort of 16-bit integers is a radix sort: fast)
    order = np.argsort(clusters.astype(np.uint16, copy=False) if n <= 65536 else clusters, kind="stable")
    steps = np.empty(len(order), np.float32)
    ordered = depths[order]
    del order
    np.subtract(ordered[1:], ordered[:-1], out=steps[:-1])
    np.abs(steps, out=steps)
    del ordered
    steps[(s + c - 1)] = 0.0  # the step from a cluster's last spike into the next cluster
    drift = np.full(n, np.nan)
    drift[has] = np.add.reduceat(steps, s, dtype=np.float64) / (tmax - tmin) * 3600
    del steps

    sliding_rp = np.where(rng.random(n) < 0.6, 1.0, 0.0)
    noise_cutoff = rng.gamma(2.0, 1.8, n)
    contamination = rng.beta(0.6, 6.0, n)
    contamination_alt = contamination * rng.uniform(0.8, 1.2, n)
    missed = rng.beta(1.0, 8.0, n)
    for values in (sliding_rp, contamination, contamination_alt, missed):
        values[~has] = np.nan
    noise_cutoff[~several] = np.nan
    with np.errstate(invalid="ignore"):
        passed = np.column_stack([sliding_rp, noise_cutoff < _NC_THRESHOLD,
                                  amp_median > _MEDIAN_AMP_THRESHOLD_V])
    label = passed.mean(axis=1)

    columns = {
        "cluster_id": np.arange(n, dtype=np.int64), "amp_max": amp_max, "amp_min": amp_min,
        "amp_median": amp_median, "amp_std_dB": amp_std, "contamination": contamination,
        "contamination_alt": contamination_alt, "drift": drift, "missed_spikes_est": missed,
        "noise_cutoff": noise_cutoff, "presence_ratio": (per_bin > 0).sum(axis=1) / n_bins,
        "presence_ratio_std": per_bin.std(axis=1), "slidingRP_viol": sliding_rp,
        "spike_count": counts.astype(np.float64),  # float in IBL tables too
        "firing_rate": counts / (tmax - tmin), "label": label,
    }
    return {name: columns[name] for name in _METRIC_COLUMNS}


def _relabel(rng, label: np.ndarray) -> np.ndarray:
    """A revised curation: about a fifth of the labelled clusters (at least one) change label."""
    revised = label.copy()
    labelled = np.flatnonzero(np.isfinite(label))
    if labelled.size == 0:
        return revised
    pick = labelled[rng.random(labelled.size) < 0.2]
    if pick.size == 0:
        pick = labelled[[rng.integers(labelled.size)]]
    shift = rng.integers(1, 4, pick.size)  # a different value of 0, 1/3, 2/3, 1
    revised[pick] = ((np.rint(label[pick] * 3).astype(int) + shift) % 4) / 3
    return revised


def _waveforms(units: _Units, local: np.ndarray):
    """A spike template per cluster on its 32 nearest channels (the peak channel first), V."""
    distance = np.hypot(*(local[:, None, :] - local[None, :, :]).transpose(2, 0, 1))
    n_near = min(_WAVEFORM_CHANNELS, len(local))
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :n_near]
    channels = nearest[units.channels].astype(np.int64)
    spatial = np.exp(-np.take_along_axis(distance[units.channels], channels, axis=1) / 40.0)
    t = np.arange(_WAVEFORM_SAMPLES, dtype=float)[None, :]
    width = (1.5 + 2.0 * units.peak_to_trough)[:, None]  # samples
    peak_at = _TROUGH_SAMPLE + units.peak_to_trough[:, None] * 30.0  # 30 samples per ms
    shape = (-np.exp(-0.5 * ((t - _TROUGH_SAMPLE) / width) ** 2)
             + 0.35 * np.exp(-0.5 * ((t - peak_at) / (2.5 * width)) ** 2))
    shape /= np.ptp(shape, axis=1, keepdims=True)
    waveforms = (units.amps[:, None, None] * shape[:, :, None] * spatial[:, None, :]).astype(np.float32)
    return waveforms, channels


# --- writers ------------------------------------------------------------------------------------

def _save_npy(path: Path, values: np.ndarray) -> None:
    np.save(path, np.asarray(values), allow_pickle=False)


def _save_table(path: Path, columns: dict[str, np.ndarray]) -> None:
    # Via pandas for its schema metadata: ONE's parquet loader fails on a table without any.
    table = pa.Table.from_pandas(pd.DataFrame(columns, copy=False), preserve_index=False)
    pq.write_table(table, path, use_dictionary=False, compression="none")
