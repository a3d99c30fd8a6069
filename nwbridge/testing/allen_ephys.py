"""Neuropixels probes of a synthetic Allen Visual Behavior Neuropixels session.

Channels, units and LFP as AllenSDK writes them (see ``shared/SOURCES.md``): 384 channels per
Neuropixels 1.0 probe with Allen CCF coordinates (x = AP, y = DV, z = LR, µm) and structure
acronyms; units of every quality with their metrics, spike times, spike amplitudes (V) and
mean waveforms; LFP at ~1250 Hz on every n-th channel with explicit, slightly drifting
timestamps, and a current source density. Everything is drawn from the generator handed in,
vectorised, so that ~55 M spikes take seconds; the LFP is made chunk by chunk as it is
written, so that its size does not bound memory.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
from hdmf.data_utils import AbstractDataChunkIterator, DataChunk
from scipy import signal

__all__ = ["PROBE_NAMES", "N_CHANNELS", "ProbeLayout", "Spikes", "make_probe_layouts", "make_units",
           "lfp_channel_numbers", "LfpChunks", "make_csd", "add_probes", "units_table", "make_probe_nwbfile",
           "stimulus_drive"]

PROBE_NAMES = tuple(f"probe{letter}" for letter in "ABCDEF")
N_CHANNELS = 384
AP_RATE_HZ = 30000.0
LFP_RATE_HZ = 1250.0  # the rate of the data: the 2.5 kHz LF band subsampled by 2 ...
LFP_RATE_ATTRIBUTE_HZ = 2500.0  # ... while the electrode group's attribute keeps 2.5 kHz
WAVEFORM_SAMPLES = 82  # 2.7 ms at 30 kHz, the length of Allen mean waveforms
_WAVEFORM_TROUGH = 20  # sample of the trough
_HORIZONTAL_UM = np.array([43.0, 11.0, 59.0, 27.0])  # NP1 checkerboard, channel k -> k % 4
_ROW_PITCH_UM = 20.0
_REFERENCE_CHANNEL = 191  # the NP1 internal reference: never valid data

# Each probe aims at one visual area (the Allen insertion plan); entry points (AP, LR) in CCF µm.
_PROBE_TARGETS = {"probeA": "VISam", "probeB": "VISpm", "probeC": "VISp", "probeD": "VISl",
                  "probeE": "VISrl", "probeF": "VISal"}
_ENTRY_AP_LR = {"probeA": (7900.0, 6900.0), "probeB": (8800.0, 6800.0), "probeC": (9300.0, 7900.0),
                "probeD": (8900.0, 8800.0), "probeE": (8000.0, 8700.0), "probeF": (7900.0, 8900.0)}
# Region families in the order a vertical probe meets them, each matched on the acronym.
_FAMILIES = (
    ("cortex", re.compile(r"^VIS")),
    ("hippocampus", re.compile(r"^(CA\d|DG|ProS|SUB|POST|PRE|HPF)")),
    ("thalamus", re.compile(r"^(LG|LP|LD|PO|PoT|PIL|POL|TH|MG|SGN|Eth|IGL|IntG|RT|SPF|VP|ZI)")),
    ("midbrain", re.compile(r".")),
)
_HIPPOCAMPAL_ORDER = ("CA1", "CA2", "CA3", "ProS", "SUB", "POST", "PRE", "DG-mo", "DG-sg", "DG-po")

# Units: log-normal firing rates (mean ~8 Hz), the share of noise units, response gains.
_RATE_MEDIAN_HZ, _RATE_SIGMA = 4.6, 1.0
_NOISE_FRACTION = 0.2
_GAIN_LEVELS = np.array([0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
_SPIKE_CHUNK = 4_000_000  # spikes made at once: bounds the temporaries


@dataclass(frozen=True)
class ProbeLayout:
    """One probe's channels, as the electrodes table holds them, and its true anatomy."""

    name: str
    probe_id: int
    sampling_rate: float
    channel_ids: np.ndarray  # int64, the electrodes ids
    vertical_um: np.ndarray
    horizontal_um: np.ndarray
    ccf_um: np.ndarray  # (384, 3) AP, DV, LR as written: (0, 0, 0) when unregistered
    location: np.ndarray  # acronyms as written ("" when unregistered)
    true_location: np.ndarray  # acronyms whatever the registration (drives the signals)
    valid_data: np.ndarray
    registered: bool

    @property
    def family(self) -> np.ndarray:
        return _family_of(self.true_location)


@dataclass(frozen=True)
class Spikes:
    """Units of every probe, in file order."""

    columns: dict[str, np.ndarray]  # the metric columns, in the Allen column order
    unit_ids: np.ndarray
    times: np.ndarray  # flat, float64 s, ascending within each unit
    amplitudes: np.ndarray  # flat, V
    ends: np.ndarray  # end offset of each unit in times / amplitudes
    waveforms: np.ndarray | None  # (n_units * 82, 384) float32 V
    probe_of_unit: np.ndarray


def _family_of(acronyms) -> np.ndarray:
    families = np.full(len(acronyms), "outside", dtype=object)
    for index, acronym in enumerate(acronyms):
        if acronym == "root":
            continue
        families[index] = next(name for name, pattern in _FAMILIES if pattern.match(acronym))
    return families


def _region_plan(rng, name: str, acronyms: list[str]) -> list[tuple[str, float]]:
    """Regions a probe crosses from the brain surface down, with their thickness in µm."""
    by_family = {family: [a for a in acronyms if a != "root" and _family_of([a])[0] == family]
                 for family, _ in _FAMILIES}
    target = _PROBE_TARGETS[name]
    cortex = target if target in by_family["cortex"] else (
        by_family["cortex"][0] if by_family["cortex"] else target)
    plan = [(cortex, rng.uniform(850.0, 1100.0))]
    hippocampal = [a for a in _HIPPOCAMPAL_ORDER if a in by_family["hippocampus"]] or ["CA1"]
    picks = sorted(rng.choice(len(hippocampal), size=min(3, len(hippocampal)), replace=False))
    plan += [(hippocampal[i], rng.uniform(150.0, 400.0)) for i in picks]
    thalamic = by_family["thalamus"] or ["LP"]
    plan += [(thalamic[i], rng.uniform(300.0, 800.0))
             for i in rng.choice(len(thalamic), size=min(2, len(thalamic)), replace=False)]
    midbrain = by_family["midbrain"] or ["MB"]
    plan.append((midbrain[rng.integers(len(midbrain))], 5000.0))  # whatever depth is left
    return plan


def make_probe_layouts(rng, probes, *, probe_ids: dict[str, int], channel_id_base: int,
                       acronyms: list[str], unregistered: set[str]) -> list[ProbeLayout]:
    """Channels of every probe: geometry, CCF coordinates, regions, validity."""
    channel = np.arange(N_CHANNELS)
    vertical = _ROW_PITCH_UM * (1 + channel // 2)
    horizontal = _HORIZONTAL_UM[channel % 4]
    layouts = []
    for index, name in enumerate(probes):
        # 280-350 channels in the brain (2.8-3.5 mm deep), the rest above the surface in `root`.
        n_brain = int(rng.integers(280, 351))
        depth = vertical[n_brain - 1] - vertical  # µm below the surface, negative above it
        location = np.full(N_CHANNELS, "root", dtype=object)
        top = 0.0
        for acronym, thickness in _region_plan(rng, name, acronyms):
            location[(depth >= top) & (depth < top + thickness)] = acronym
            top += thickness
        location[depth < 0] = "root"
        ap, lr = _ENTRY_AP_LR[name]
        surface = np.array([ap + rng.uniform(-150, 150), rng.uniform(1100.0, 1400.0), lr + rng.uniform(-150, 150)])
        # Mostly ventral, tilted medially (LR decreases) and a little along AP.
        direction = np.array([rng.uniform(-0.15, 0.15), 1.0, -rng.uniform(0.1, 0.3)])
        ccf = surface + depth[:, None] * (direction / np.linalg.norm(direction))
        valid = np.ones(N_CHANNELS, dtype=bool)
        valid[_REFERENCE_CHANNEL] = False
        valid[rng.choice(N_CHANNELS, size=3, replace=False)] = False
        registered = name not in unregistered
        layouts.append(ProbeLayout(
            name=name, probe_id=probe_ids[name],
            sampling_rate=float(np.round(AP_RATE_HZ * (1 + rng.normal(0.0, 2e-6)), 6)),
            channel_ids=channel_id_base + index * 1000 + channel,  # unique across probes
            vertical_um=vertical.astype(np.float64), horizontal_um=horizontal.copy(),
            # Unregistered probes: CCF exactly (0, 0, 0) and no acronym, as the Allen files have them.
            ccf_um=np.round(ccf, 1) if registered else np.zeros((N_CHANNELS, 3)),
            location=location if registered else np.full(N_CHANNELS, "", dtype=object),
            true_location=location, valid_data=valid, registered=registered))
    return layouts


def lfp_channel_numbers(n_channels: int) -> np.ndarray:
    """Every k-th channel (k = 4 for the real 96), from channel 0 up."""
    stride = N_CHANNELS // n_channels
    return np.arange(n_channels) * stride


def stimulus_drive(onsets: np.ndarray, weights: np.ndarray, duration: float, dt: float = 2e-3):
    """Flash-evoked drive of visual neurons on a 2 ms grid (responses last tens of ms), and its integral.

    Returns the grid (s), the drive (a sum of response kernels, ~1 at the peak of one flash's
    response) and its running integral (the drive's cumulative sum times ``dt``).
    """
    grid = np.arange(0.0, duration + dt, dt)
    impulses = np.zeros(grid.size)
    np.add.at(impulses, np.clip(np.rint(onsets / dt).astype(np.int64), 0, grid.size - 1), weights)
    lag = np.arange(0.0, 0.4, dt)
    kernel = np.exp(-((lag - 0.06) / 0.02) ** 2) + 0.3 * np.exp(-((lag - 0.15) / 0.05) ** 2)
    drive = np.maximum(signal.fftconvolve(impulses, kernel)[:grid.size], 0.0)
    cumulative = np.r_[0.0, np.cumsum(drive[:-1]) * dt]
    return grid, drive, cumulative


# --- units ------------------------------------------------------------------------------------

def make_units(rng, layouts: list[ProbeLayout], n_units_per_probe: int, *, duration: float,
               drive_grid: np.ndarray, drive_cumulative: np.ndarray, unit_id_base: int,
               column_order: list[str], waveforms: bool) -> Spikes:
    """Units of every probe with their metrics, spikes and waveforms.

    Spikes follow an inhomogeneous Poisson process whose rate is ``rate * (1 + gain * drive(t))``,
    ``drive`` being the stimulus drive sampled on ``drive_grid`` (its running integral in
    ``drive_cumulative``), so that units respond to flashes; they are made by time rescaling,
    one gain level at a time, without any sort.
    """
    n_probes = len(layouts)
    n = n_units_per_probe * n_probes
    probe_of_unit = np.repeat(np.arange(n_probes), n_units_per_probe)
    peak_index = np.empty(n, dtype=np.int64)  # channel number on its probe
    for p, layout in enumerate(layouts):
        family = layout.family
        weight = np.select([family == "cortex", family == "thalamus", family == "outside"], [1.3, 1.2, 0.03], 1.0)
        weight = weight * layout.valid_data
        peak_index[probe_of_unit == p] = rng.choice(N_CHANNELS, size=n_units_per_probe, p=weight / weight.sum())
    family = np.concatenate([layouts[p].family[peak_index[probe_of_unit == p]] for p in range(n_probes)])
    true_location = np.concatenate([layouts[p].true_location[peak_index[probe_of_unit == p]] for p in range(n_probes)])
    noise = rng.random(n) < np.where(family == "outside", 0.8, _NOISE_FRACTION)
    quality = np.where(noise, "noise", "good").astype(object)

    rate = np.clip(rng.lognormal(np.log(_RATE_MEDIAN_HZ), _RATE_SIGMA, n), 0.02, 80.0)
    # Visual areas respond to flashes most, the visual thalamus next, the rest barely.
    region_gain = np.where(np.char.startswith(true_location.astype(str), "VIS"), 1.0,
                           np.where(np.isin(true_location, ["LGd", "LGd-co", "LGd-sh", "LGd-ip", "LP", "LGv"]),
                                    0.8, 0.15))
    gain_wanted = np.where(noise, 0.0, region_gain * rng.lognormal(0.0, 0.6, n))
    level = np.abs(gain_wanted[:, None] - _GAIN_LEVELS[None, :]).argmin(axis=1)
    gain = _GAIN_LEVELS[level]
    total_intensity = duration + gain * drive_cumulative[-1]  # integral of (1 + gain * drive)
    counts = rng.poisson(rate * total_intensity)
    ends = np.cumsum(counts).astype(np.int64)
    times = np.empty(int(ends[-1]), dtype=np.float64)
    starts = ends - counts
    for g, level_gain in enumerate(_GAIN_LEVELS):
        units = np.flatnonzero(level == g)
        # Operational time u = t + gain * D(t) is increasing in t: invert it by interpolation.
        operational_grid = drive_grid + level_gain * drive_cumulative if level_gain > 0 else None
        for chunk in _chunks_by_count(units, counts, _SPIKE_CHUNK):
            spikes = _ordered_uniforms(rng, counts[chunk], total_intensity[chunk])
            if operational_grid is not None:
                spikes = np.interp(spikes, operational_grid, drive_grid)
            times[_flat_ranges(starts[chunk], counts[chunk])] = np.clip(spikes, 0.0, duration)

    metrics = _unit_metrics(rng, n, counts=counts, duration=duration, noise=noise)
    amplitude_v = metrics["amplitude"] * 1e-6
    amplitudes = np.repeat(amplitude_v, counts) * rng.lognormal(0.0, 0.12, times.size)

    local_index = np.concatenate([np.arange(n_units_per_probe)] * n_probes)
    cluster_id = np.concatenate([np.sort(rng.choice(int(1.4 * n_units_per_probe) + 2, n_units_per_probe, replace=False))
                                 for _ in range(n_probes)])
    peak_channel_id = np.array([layouts[p].channel_ids[c] for p, c in zip(probe_of_unit, peak_index)], dtype=np.int64)
    unit_ids = unit_id_base + np.cumsum(rng.integers(1, 4, n))  # increasing, with gaps, like Allen ids
    columns = {"local_index": local_index.astype(np.int64), "cluster_id": cluster_id.astype(np.int64),
               "peak_channel_id": peak_channel_id, "quality": quality, **metrics}
    missing = set(column_order) - set(columns)
    if missing:
        raise RuntimeError(f"the generator does not make units columns {sorted(missing)}")
    wave = _waveforms(rng, layouts, probe_of_unit, peak_index, amplitude_v, metrics) if waveforms else None
    return Spikes(columns={name: columns[name] for name in column_order}, unit_ids=unit_ids.astype(np.int64),
                  times=times, amplitudes=amplitudes, ends=ends, waveforms=wave, probe_of_unit=probe_of_unit)


def _chunks_by_count(units: np.ndarray, counts: np.ndarray, limit: int):
    """Split ``units`` into consecutive groups of about ``limit`` spikes (at least one unit each)."""
    if units.size == 0:
        return
    group = np.cumsum(counts[units]) // limit
    yield from np.split(units, np.flatnonzero(np.diff(group)) + 1)


def _flat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for every (s, c)."""
    total = int(counts.sum())
    offsets = np.repeat(starts - np.cumsum(np.r_[0, counts[:-1]]), counts)
    return np.arange(total) + offsets


def _ordered_uniforms(rng, counts: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Sorted uniform draws on ``[0, span)``, ``counts[i]`` for unit i, flat, without sorting.

    The normalised partial sums of c + 1 exponential gaps are the order statistics of c
    uniforms; one cumulative sum serves every unit.
    """
    gaps = rng.exponential(1.0, int(counts.sum()) + counts.size)
    running = np.cumsum(gaps)
    segment_end = np.cumsum(counts + 1) - 1  # index of each unit's last (closing) gap
    base = np.r_[0.0, running[segment_end[:-1]]]
    total = running[segment_end] - base
    keep = np.ones(running.size, dtype=bool)
    keep[segment_end] = False
    unit = np.repeat(np.arange(counts.size), counts)
    return (running[keep] - base[unit]) / total[unit] * spans[unit]


def _unit_metrics(rng, n: int, *, counts, duration, noise) -> dict[str, np.ndarray]:
    """Quality metrics with the distributions and the NaN patterns of Allen units."""
    fast = rng.random(n) < 0.2  # fast-spiking: short, symmetric waveforms
    amplitude = np.clip(rng.lognormal(np.log(np.where(noise, 60.0, 120.0)), 0.45), 20.0, 800.0)
    metrics = {
        "PT_ratio": np.clip(np.where(fast, rng.normal(0.6, 0.15, n), rng.normal(0.35, 0.1, n)), 0.05, 2.0),
        "amplitude": amplitude,
        "amplitude_cutoff": np.where(rng.random(n) < 0.05, 0.5, np.clip(rng.beta(0.6, 6.0, n), 0.0, 0.5)),
        "cumulative_drift": np.round(rng.lognormal(np.log(150.0), 0.6, n), 2),
        "d_prime": np.clip(rng.normal(4.0, 1.5, n), 0.5, 12.0),
        "firing_rate": counts / duration,
        "isi_violations": rng.exponential(np.where(noise, 1.0, 0.15)),
        "isolation_distance": rng.lognormal(np.log(40.0), 0.6, n),
        "l_ratio": rng.lognormal(np.log(0.01), 1.5, n),
        "max_drift": np.round(rng.lognormal(np.log(25.0), 0.5, n), 2),
        "nn_hit_rate": rng.beta(5.0, 1.5, n),
        "nn_miss_rate": rng.beta(1.0, 40.0, n),
        "presence_ratio": np.clip(np.round(1.0 - rng.beta(0.6, 8.0, n), 2), 0.3, 0.99),
        "recovery_slope": -np.abs(rng.normal(0.08, 0.04, n)),
        "repolarization_slope": np.abs(rng.normal(0.6, 0.25, n)) * amplitude / 100.0,
        "silhouette_score": rng.normal(0.1, 0.06, n),
        "snr": amplitude / 25.0 * rng.uniform(0.8, 1.2, n),
        "spread": np.round(np.clip(rng.normal(80.0, 30.0, n), 10.0, 250.0), -1),
        "velocity_above": rng.normal(0.2, 0.6, n),
        "velocity_below": rng.normal(-0.2, 0.6, n),
        "waveform_duration": np.clip(np.where(fast, rng.normal(0.3, 0.05, n), rng.normal(0.7, 0.12, n)), 0.1, 1.5),
    }
    # The PCA metrics need spikes; velocities and silhouettes are often undefined.
    few = counts < 20
    for name in ("isolation_distance", "l_ratio", "d_prime", "nn_hit_rate", "nn_miss_rate"):
        metrics[name][few] = np.nan
    metrics["silhouette_score"][rng.random(n) < 0.05] = np.nan
    metrics["velocity_above"][rng.random(n) < 0.25] = np.nan
    metrics["velocity_below"][rng.random(n) < 0.15] = np.nan
    return metrics


def _waveforms(rng, layouts, probe_of_unit, peak_index, amplitude_v, metrics) -> np.ndarray:
    """Mean waveforms, (units x 82 samples) x 384 channels, volts, decaying away from the peak channel."""
    n = probe_of_unit.size
    t_ms = (np.arange(WAVEFORM_SAMPLES) - _WAVEFORM_TROUGH) / (AP_RATE_HZ / 1000.0)
    duration = metrics["waveform_duration"][:, None]
    trough = -np.exp(-(t_ms[None, :] / 0.12) ** 2)
    peak = metrics["PT_ratio"][:, None] * np.exp(-((t_ms[None, :] - duration) / (0.5 * duration)) ** 2)
    temporal = (trough + peak) * amplitude_v[:, None]  # (units, samples)
    out = np.empty((n * WAVEFORM_SAMPLES, N_CHANNELS), dtype=np.float32)
    sigma = (metrics["spread"] / 2.0)[:, None]
    for p, layout in enumerate(layouts):
        units = np.flatnonzero(probe_of_unit == p)
        peak_ch = peak_index[units]
        dx = layout.horizontal_um[None, :] - layout.horizontal_um[peak_ch][:, None]
        dy = layout.vertical_um[None, :] - layout.vertical_um[peak_ch][:, None]
        spatial = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma[units] ** 2))  # (units, channels)
        block = temporal[units][:, :, None] * spatial[:, None, :]
        block += rng.normal(0.0, 1.5e-6, block.shape)  # residual noise of the average
        rows = (units[:, None] * WAVEFORM_SAMPLES + np.arange(WAVEFORM_SAMPLES)[None, :]).ravel()
        out[rows] = block.reshape(-1, N_CHANNELS)
    return out


# --- LFP --------------------------------------------------------------------------------------

def _loadings(layout: ProbeLayout, channels: np.ndarray) -> dict[str, np.ndarray]:
    """How strongly each LFP channel carries each shared source (V per unit source)."""
    family = layout.family
    inside = family != "outside"
    below_surface = layout.vertical_um[inside].max() - layout.vertical_um  # µm, negative above the brain
    cortex = family == "cortex"
    # Flash-evoked potential: negative in superficial cortex, reversing in deep layers.
    cortical_depth = below_surface / max(float(below_surface[cortex].max()), 1.0) if cortex.any() else below_surface
    loadings = {
        "slow": np.where(inside, 80e-6 + 40e-6 * below_surface / max(float(below_surface.max()), 1.0), 10e-6),
        "theta": np.where(family == "hippocampus", 60e-6, np.where(inside, 10e-6, 2e-6)),
        "gamma": np.where(cortex, 12e-6, np.where(inside, 4e-6, 1e-6)),
        "evoked": np.where(cortex, -40e-6 * np.cos(np.pi * cortical_depth),
                           np.where(family == "thalamus", -15e-6, 0.0)),
        "local": np.where(inside, 12e-6, 4e-6),
    }
    return {name: values[channels] for name, values in loadings.items()}


def _unit_variance_scale(b, a) -> float:
    """1 / the standard deviation of the filter's output for unit white noise."""
    impulse = np.zeros(8192)
    impulse[0] = 1.0
    return 1.0 / float(np.sqrt(np.sum(signal.lfilter(b, a, impulse) ** 2)))


class LfpChunks(AbstractDataChunkIterator):
    """LFP of one probe, made chunk by chunk as it is written (float32 V, time x channels).

    1/f-like background shared along the probe, hippocampal theta, cortical gamma and
    flash-evoked potentials, plus independent (amplifier) noise on each channel; the filters'
    states carry across chunks, so the signal does not depend on the chunking.
    """

    def __init__(self, rng, layout: ProbeLayout, channels: np.ndarray, timestamps: np.ndarray,
                 drive_grid: np.ndarray, drive: np.ndarray, chunk_samples: int = 12_500):
        self._rng = rng
        self._timestamps = timestamps
        self._drive_grid, self._drive = drive_grid, drive
        self._chunk = int(chunk_samples)
        self._position = 0
        loadings = _loadings(layout, channels)
        self._sources = ("slow", "theta", "gamma")
        self._mixing = np.array([loadings[name] for name in (*self._sources, "evoked")], dtype=np.float32)
        # Uniform noise of unit variance: a quarter of the cost of Gaussian draws, for the bulk of the values.
        self._local = (loadings["local"] * np.sqrt(12.0)).astype(np.float32)
        self._n_channels = channels.size
        fs = LFP_RATE_HZ
        self._filters = {"slow": signal.butter(2, 4.0, fs=fs), "theta": signal.iirpeak(7.5, 2.0, fs=fs),
                         "gamma": signal.iirpeak(40.0, 3.0, fs=fs)}
        self._states = {name: np.zeros(max(len(b), len(a)) - 1) for name, (b, a) in self._filters.items()}
        self._scale = {name: _unit_variance_scale(*ba) for name, ba in self._filters.items()}

    def __iter__(self):
        return self

    def __next__(self) -> DataChunk:
        n_total = self._timestamps.size
        if self._position >= n_total:
            raise StopIteration
        start, stop = self._position, min(self._position + self._chunk, n_total)
        n = stop - start
        sources = np.empty((n, len(self._sources) + 1), dtype=np.float32)
        for k, name in enumerate(self._sources):
            b, a = self._filters[name]
            sources[:, k], self._states[name] = signal.lfilter(b, a, self._rng.standard_normal(n),
                                                               zi=self._states[name])
            sources[:, k] *= self._scale[name]
        sources[:, -1] = np.interp(self._timestamps[start:stop], self._drive_grid, self._drive)
        out = self._rng.random((n, self._n_channels), dtype=np.float32)
        out -= np.float32(0.5)
        out *= self._local
        out += sources @ self._mixing
        self._position = stop
        return DataChunk(data=out, selection=np.s_[start:stop, :])

    next = __next__

    def recommended_chunk_shape(self):
        return (min(self._chunk, self._timestamps.size), self._n_channels)

    def recommended_data_shape(self):
        return self.maxshape

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def maxshape(self):
        return (self._timestamps.size, self._n_channels)


def make_csd(layout: ProbeLayout, channels: np.ndarray) -> dict[str, np.ndarray]:
    """Flash-triggered current source density on 384 virtual electrodes spaced 10 µm apart."""
    times = np.arange(-0.1, 0.25, 1.0 / LFP_RATE_HZ)
    virtual_y = np.arange(N_CHANNELS, dtype=np.float32) * 10.0
    evoked = np.interp(virtual_y, layout.vertical_um[channels], _loadings(layout, channels)["evoked"])
    # CSD = -d2(potential)/dz2 (V/cm^2 with z in cm).
    spatial = -np.gradient(np.gradient(evoked, 1e-3), 1e-3)
    kernel = np.exp(-((times - 0.06) / 0.02) ** 2) - 0.4 * np.exp(-((times - 0.12) / 0.04) ** 2)
    return {"data": (kernel[:, None] * spatial[None, :]).astype(np.float32), "timestamps": times,
            "x": np.full(N_CHANNELS, 24.0, dtype=np.float32), "y": virtual_y}


# --- NWB objects ------------------------------------------------------------------------------

_ELECTRODE_COLUMNS = {  # AllenSDK's descriptions of its own electrodes columns
    "probe_vertical_position": "Length-wise position of electrode/channel on device (microns)",
    "probe_horizontal_position": "Width-wise position of electrode/channel on device (microns)",
    "probe_id": "The unique id of this electrode's/channel's device",
    "probe_channel_number": "The local index of electrode/channel on device",
    "valid_data": "Whether data from this electrode/channel is usable",
}
_FILTERING = "AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass"


def add_probes(nwbfile, layouts, classes, *, has_lfp: bool, channels: np.ndarray | None = None) -> None:
    """Devices, electrode groups and the electrodes table (every channel, or only ``channels``)."""
    from hdmf.common import VectorData
    from pynwb.ecephys import ElectrodesTable

    rows = np.arange(N_CHANNELS) if channels is None else np.asarray(channels)
    groups, parts = [], []
    for layout in layouts:
        with warnings.catch_warnings():  # pynwb 4 deprecates `manufacturer`, which the Allen devices set
            warnings.filterwarnings("ignore", message="The 'manufacturer' field is deprecated",
                                    category=DeprecationWarning)
            device = classes["EcephysProbe"](name=layout.name, description="Neuropixels 1.0 Probe", manufacturer="imec",
                                             probe_id=int(layout.probe_id), sampling_rate=layout.sampling_rate)
        nwbfile.add_device(device)
        group = classes["EcephysElectrodeGroup"](
            name=layout.name, description="Ecephys Electrode Group", location="See electrode locations",
            device=device, probe_id=int(layout.probe_id), has_lfp_data=bool(has_lfp),
            # The LF band's 2.5 kHz, whereas the LFP written is subsampled to 1.25 kHz.
            lfp_sampling_rate=LFP_RATE_ATTRIBUTE_HZ if has_lfp else np.nan)
        nwbfile.add_electrode_group(group)
        groups += [group] * rows.size
        parts.append(layout)

    def gather(attribute):
        return np.concatenate([getattr(layout, attribute)[rows] for layout in parts])

    ccf = np.concatenate([layout.ccf_um[rows] for layout in parts])
    n = ccf.shape[0]
    columns = [VectorData(name=axis, description=f"{label} CCF coordinate (µm)", data=ccf[:, k])
               for k, (axis, label) in enumerate((("x", "anterior-posterior"), ("y", "dorsal-ventral"),
                                                  ("z", "left-right")))]
    columns += [
        VectorData(name="imp", description="Impedance of the channel, in ohms.", data=np.full(n, np.nan)),
        VectorData(name="location", description="Location of the electrode (channel).", data=gather("location")),
        VectorData(name="filtering", description="Description of hardware filtering.",
                   data=np.full(n, _FILTERING, dtype=object)),
        VectorData(name="group", description="Reference to the ElectrodeGroup.", data=groups),
        VectorData(name="group_name", description="Name of the ElectrodeGroup.",
                   data=np.array([g.name for g in groups], dtype=object)),
        VectorData(name="probe_vertical_position", description=_ELECTRODE_COLUMNS["probe_vertical_position"],
                   data=gather("vertical_um")),
        VectorData(name="probe_horizontal_position", description=_ELECTRODE_COLUMNS["probe_horizontal_position"],
                   data=gather("horizontal_um")),
        VectorData(name="probe_id", description=_ELECTRODE_COLUMNS["probe_id"],
                   data=np.repeat([layout.probe_id for layout in parts], rows.size).astype(np.int64)),
        VectorData(name="probe_channel_number", description=_ELECTRODE_COLUMNS["probe_channel_number"],
                   data=np.tile(rows, len(parts)).astype(np.int64)),
        VectorData(name="valid_data", description=_ELECTRODE_COLUMNS["valid_data"], data=gather("valid_data")),
    ]
    nwbfile.electrodes = ElectrodesTable(columns=columns, id=gather("channel_ids"))


def units_table(spikes: Spikes):
    """The units table, column by column (big columns uncompressed: ~55 M spikes write in seconds)."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units

    columns = [VectorData(name=name, description="no description", data=values)
               for name, values in spikes.columns.items()]
    ragged = [("spike_times", "times (s) of detected spiking events", spikes.times, spikes.ends),
              # The Allen description says "(s)", but the amplitudes are in volts.
              ("spike_amplitudes", "amplitude (s) of detected spiking events", spikes.amplitudes, spikes.ends)]
    if spikes.waveforms is not None:
        ragged.append(("waveform_mean", "mean waveforms on peak channels (over samples)", spikes.waveforms,
                       WAVEFORM_SAMPLES * np.arange(1, spikes.unit_ids.size + 1)))
    for name, description, data, ends in ragged:
        vector = VectorData(name=name, description=description, data=data)
        columns += [vector, VectorIndex(name=f"{name}_index", data=np.asarray(ends, dtype=np.uint64), target=vector)]
    return Units(name="units", description="data on spiking units", id=spikes.unit_ids, columns=columns)


def make_probe_nwbfile(rng, layout: ProbeLayout, classes, *, channels, end_s, csd, drive_grid, drive,
                     session_start_time, subject):
    """The probe's LFP NWB file, in memory (its LFP is made chunk by chunk while it is written)."""
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb import NWBFile, ProcessingModule, TimeSeries
    from pynwb.ecephys import LFP

    nwbfile = NWBFile(session_description="LFP data and associated info for one probe",
                      identifier=str(layout.probe_id), session_start_time=session_start_time,
                      # AllenSDK formats the session file's session_id, which is None: the string "None".
                      session_id="None", institution="Allen Institute for Brain Science",
                      file_create_date=session_start_time)
    nwbfile.subject = subject
    add_probes(nwbfile, [layout], classes, has_lfp=True, channels=channels)
    # The probe's own clock, aligned to the session's: ~1250 Hz with a drift of a few ppm.
    rate = LFP_RATE_HZ * (1.0 + rng.uniform(-2e-5, 2e-5))
    first = rng.uniform(0.0, 0.05)
    timestamps = first + np.arange(int((end_s - first) * rate)) / rate
    data = LfpChunks(rng, layout, channels, timestamps, drive_grid, drive)
    lfp = LFP(name=f"probe_{layout.probe_id}_lfp")
    nwbfile.add_acquisition(lfp)
    region = nwbfile.create_electrode_table_region(region=list(range(channels.size)), name="electrodes",
                                                   description=f"lfp channels on probe {layout.probe_id}")
    # Uncompressed, as the released LFP files are.
    lfp.create_electrical_series(name=f"probe_{layout.probe_id}_lfp_data", electrodes=region,
                                 data=H5DataIO(data, chunks=data.recommended_chunk_shape()), timestamps=timestamps)
    if csd:
        values = make_csd(layout, channels)
        series = TimeSeries(name="current_source_density", data=values["data"], timestamps=values["timestamps"],
                            unit="V/cm^2", description="Current source density, time x virtual electrodes")
        module = ProcessingModule(name="current_source_density", description="Precalculated current source density")
        module.add(classes["EcephysCSD"](
            name="ecephys_csd", time_series=series, virtual_electrode_x_positions=values["x"],
            virtual_electrode_x_positions__unit="um", virtual_electrode_y_positions=values["y"],
            virtual_electrode_y_positions__unit="um"))
        nwbfile.add_processing_module(module)
    return nwbfile
