"""Allen units (the session file's ``units`` table) as the shared NWB units table, built column-first.

Tens of millions of spikes are never handled unit by unit: ``spike_times`` and ``spike_amplitudes``
are read as whole flat datasets with their index and handed to the writer as arrays (nwbridge's
writer compresses them on every core); every per-unit column is read whole, one column at a time.

The Allen units table links to the electrodes only through ``peak_channel_id`` (an Allen channel
id): it gives each unit its probe, its ``electrodes`` row, ``peak_channel``, ``depth_um`` and
``location``. Units are ordered probe by probe (probe names sorted, as the electrodes table), and in
the source's order within a probe; the units ``id`` is that running number (as on the IBL side),
``source_unit_id`` the Allen unit id as text and ``source_cluster_id`` the Allen ``cluster_id``.

Quirks handled:

* ``spike_amplitudes`` are volts although the Allen column description says "(s)": written as
  ``spike_amplitudes_uv`` = volts x 1e6, and their median per unit as ``amplitude_median_uv``;
* missing metrics (NaN, or AllenSDK's "N/A" text) fail every threshold of ``is_good``, the Allen
  recommended rule ``quality == 'good' and isi_violations < 0.5 and amplitude_cutoff < 0.1 and
  presence_ratio > 0.9``;
* ``waveform_mean`` is ragged in the Allen file (each unit's rows one after another); it is written as
  the (units, samples, channels) array NWB defines, values unchanged (volts).

Every other Allen units column is kept as ``allen_<name>``, values unchanged (text metrics with
"N/A" become floats with NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hdmf.common import DynamicTableRegion, VectorData, VectorIndex

from ...errors import SourceFileError
from .base import AllenInterface
from .electrodes import add_allen_probes, electrode_rows_of_channels, read_probes
from .source import AllenFile, MISSING_TEXT, float_values, text_values

__all__ = ["AllenUnitsInterface", "DEFAULT_SAMPLING_RATE", "is_good_units"]

# Nominal Neuropixels spike-band rate, for Units.resolution when no probe states its own.
DEFAULT_SAMPLING_RATE = 30000.0

# Spikes checked at a time for time order (bounds the temporaries).
BLOCK_SPIKES = 4_000_000

# Columns the shared table needs from the Allen units table.
REQUIRED = ("peak_channel_id", "cluster_id", "quality", "isi_violations", "amplitude_cutoff", "presence_ratio",
            "firing_rate", "spike_times")
# Ragged columns with their own shared form.
RAGGED_SHARED = ("spike_times", "spike_amplitudes", "waveform_mean")
# Allen columns written under the same (or a shared) name with the same values: not repeated as allen_<name>.
SHARED_UNCHANGED = {"firing_rate": "firing_rate", "presence_ratio": "presence_ratio", "cluster_id": "source_cluster_id"}

DESCRIPTIONS = {
    "probe": "Name of the probe the unit was recorded on.",
    "peak_channel": "Probe channel with the largest amplitude (Allen peak_channel_id -> electrodes "
                    "probe_channel_number).",
    "depth_um": "Depth of the unit along the probe, from the tip (µm; Allen probe_vertical_position of the peak "
                "channel).",
    "location": "Allen CCF acronym of the peak channel's brain region (from the electrodes table).",
    "firing_rate": "Mean firing rate (Hz; Allen firing_rate).",
    "presence_ratio": "Fraction of the recording in which the unit fired (Allen presence_ratio).",
    "amplitude_median_uv": "Median spike amplitude (µV; median of the unit's Allen spike_amplitudes, which are in "
                           "volts, x 1e6).",
    "is_good": "Allen recommended units: quality == 'good' and isi_violations < 0.5 and amplitude_cutoff < 0.1 and "
               "presence_ratio > 0.9; a missing metric (NaN) fails its test.",
    "source_unit_id": "Allen unit id (the id of the Allen units table), as text.",
    "source_cluster_id": "Index of the cluster within its probe's spike sorting (Allen cluster_id).",
}


def is_good_units(quality: np.ndarray, isi_violations: np.ndarray, amplitude_cutoff: np.ndarray,
                  presence_ratio: np.ndarray) -> np.ndarray:
    """The Allen recommended unit filter; NaN metrics compare False, so such units are not good."""
    with np.errstate(invalid="ignore"):
        return ((np.asarray(quality).astype(str) == "good") & (isi_violations < 0.5) & (amplitude_cutoff < 0.1)
                & (presence_ratio > 0.9))


@dataclass
class _Ragged:
    """A ragged Allen column read whole: the flat values and the end offset of each unit."""

    values: np.ndarray
    ends: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], self.ends[:-1]]).astype(np.int64)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(np.concatenate([[0], self.ends])).astype(np.int64)


def _read_ragged(column, *, name: str, n_units: int, path: Path) -> _Ragged:
    """Flat values and index of an indexed column, checked for consistency."""
    ends = np.asarray(column.data[:], dtype=np.int64)
    values = np.asarray(column.target.data[:])
    if len(ends) != n_units:
        raise SourceFileError(path, f"units column {name!r} has {len(ends)} rows (its index) but the units table has "
                                    f"{n_units} ids")
    if len(ends) and ((np.diff(ends) < 0).any() or ends[0] < 0):
        raise SourceFileError(path, f"the index of units column {name!r} decreases")
    if (ends[-1] if len(ends) else 0) != len(values):
        raise SourceFileError(path, f"the index of units column {name!r} ends at {int(ends[-1]) if len(ends) else 0} "
                                    f"but the column holds {len(values)} values")
    return _Ragged(values=values, ends=ends)


def _check_spike_times(times: _Ragged, unit_ids: np.ndarray, path: Path) -> None:
    """Refuse NaN spike times and spike times that go backwards within a unit, in blocks."""
    values = times.values
    starts = times.starts
    boundary = np.zeros(0, dtype=np.int64)
    for first in range(0, len(values), BLOCK_SPIKES):
        block = values[first:first + BLOCK_SPIKES + 1]  # one past, to compare across the block edge
        if np.isnan(block).any():
            index = first + int(np.flatnonzero(np.isnan(block))[0])
            unit = int(np.searchsorted(times.ends, index, side="right"))
            raise SourceFileError(path, f"spike time {index} (unit {int(unit_ids[unit])}) is NaN")
        descending = np.flatnonzero(np.diff(block) < 0) + first + 1
        if descending.size:
            # A unit's first spike may be earlier than the previous unit's last one.
            boundary = starts[(starts >= first) & (starts <= first + len(block))]
            descending = descending[~np.isin(descending, boundary)]
        if descending.size:
            index = int(descending[0])
            unit = int(np.searchsorted(times.ends, index, side="right"))
            raise SourceFileError(path, f"spike times of unit {int(unit_ids[unit])} are not ascending: spike {index} "
                                        f"({float(values[index])!r} s) comes after {float(values[index - 1])!r} s")


def _unit_runs(order: np.ndarray) -> list[tuple[int, int]]:
    """``order`` as runs of consecutive source units (first, last + 1): usually one per probe."""
    if not len(order):
        return []
    breaks = np.flatnonzero(np.diff(order) != 1) + 1
    firsts = np.concatenate([[0], breaks])
    lasts = np.concatenate([breaks, [len(order)]])
    return [(int(order[a]), int(order[b - 1]) + 1) for a, b in zip(firsts, lasts)]


def _reorder_ragged(ragged: _Ragged, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat values and ends of the ragged column with units in ``order``, copying whole runs of units."""
    counts = ragged.counts[order]
    runs = _unit_runs(order)
    if len(runs) == 1 and runs[0] == (0, len(ragged.ends)):
        return ragged.values, ragged.ends.astype(np.uint64)
    starts = ragged.starts
    pieces = [ragged.values[starts[first]:ragged.ends[last - 1]] for first, last in runs]
    values = np.concatenate(pieces) if pieces else ragged.values[:0]
    return values, np.cumsum(counts).astype(np.uint64)


def _medians(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Median of each unit's slice of ``values`` (NaN for a unit without spikes).

    One np.median per unit on an in-memory slice: a partition costs time proportional to the slice,
    so the whole is linear in the number of spikes; sorting all spikes by unit would cost more.
    """
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    out = np.full(len(ends), np.nan)
    for unit, (start, end) in enumerate(zip(starts, ends.astype(np.int64))):
        if end > start:
            out[unit] = np.median(values[start:end])
    return out


def _waveform_array(ragged: _Ragged, *, channels_per_unit: np.ndarray, path: Path) -> np.ndarray:
    """The ragged Allen waveforms as (units, samples, channels), the layout NWB fixes for waveform_mean.

    Each unit's block of rows is (samples, channels) or (channels, samples); the axis whose length
    is the number of channels of the unit's probe is the channel axis. Units with fewer rows than
    the others are padded with NaN.
    """
    values, counts = ragged.values, ragged.counts
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise SourceFileError(path, f"units waveform_mean has {values.ndim} dimensions; expected a flat list of "
                                    "rows")
    n_units, width = len(counts), values.shape[1]
    rows = int(counts.max()) if n_units else 0
    transposed = bool(n_units) and width != channels_per_unit[0] and rows == channels_per_unit[0] and (
        counts == rows).all() and width > 1
    if n_units and (counts == rows).all():
        blocks = values.reshape(n_units, rows, width)
    else:
        blocks = np.full((n_units, rows, width), np.nan, dtype=np.result_type(values.dtype, np.float32))
        for unit, (start, count) in enumerate(zip(ragged.starts, counts)):
            blocks[unit, :count] = values[start:start + count]
    if transposed:
        blocks = blocks.transpose(0, 2, 1)
    return blocks[:, :, 0] if width == 1 else blocks


def _allen_values(column, *, name: str) -> np.ndarray:
    """A plain Allen column as written: numbers unchanged; text with "N/A" as float with NaN when numeric."""
    raw = np.asarray(column.data[:])
    if raw.dtype.kind in "biuf":
        return raw
    texts = text_values(raw)
    present = ~np.isin(texts, MISSING_TEXT)
    if present.any():
        try:
            numbers = np.array([float(text) for text in texts[present]])
        except ValueError:
            return texts.astype(str).astype(object)
        out = np.full(len(texts), np.nan)
        out[present] = numbers
        return out
    return texts.astype(str).astype(object)


class AllenUnitsInterface(AllenInterface):
    """Units of every probe of an Allen session, in one ``units`` table (noise units included).

    Adds the probes and the electrodes table first (:func:`~.electrodes.add_allen_probes`), unless the
    file has them.

    Parameters
    ----------
    session_nwb : Path
        The AllenSDK session file, ``ecephys_session_<id>.nwb``.
    spike_amplitudes : bool, default: True
        Also write every spike's amplitude (µV) as the ragged ``spike_amplitudes_uv``.
    waveform_mean : bool, default: True
        Also write each unit's mean waveform.
    verbose : bool, default: False
    """

    display_name = "Allen units"

    def __init__(self, session_nwb, *, spike_amplitudes: bool = True, waveform_mean: bool = True,
                 verbose: bool = False):
        super().__init__(session_nwb, verbose=verbose)
        self.source_data.update(spike_amplitudes=spike_amplitudes, waveform_mean=waveform_mean)
        self.spike_amplitudes = spike_amplitudes
        self.waveform_mean = waveform_mean

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return source.nwbfile.units is not None and len(source.nwbfile.units) > 0

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        from pynwb.misc import Units

        source = self.source
        path = source.path
        units = source.nwbfile.units
        if units is None:
            raise SourceFileError(path, "has no units table")
        add_allen_probes(nwbfile, source)
        colnames = list(units.colnames)
        missing = [name for name in REQUIRED if name not in colnames]
        if missing:
            raise SourceFileError(path, f"the units table lacks the column(s) {', '.join(missing)}")
        unit_ids = np.asarray(units.id.data[:], dtype=np.int64)
        n = len(unit_ids)
        if len(np.unique(unit_ids)) != n:
            raise SourceFileError(path, "units ids repeat")

        ragged, plain = {}, {}
        for name in colnames:
            column = units[name]
            if isinstance(column, VectorIndex):
                if not isinstance(column.target, DynamicTableRegion):
                    ragged[name] = column
            elif isinstance(column, DynamicTableRegion):
                continue  # AllenSDK writes none; the electrodes are derived from peak_channel_id
            else:
                plain[name] = column
        if "spike_times" not in ragged:
            raise SourceFileError(path, "units spike_times has no index (spike_times_index): spikes cannot be "
                                        "assigned to units")
        lengths = {name: len(column.data) for name, column in plain.items() if len(column.data) != n}
        if lengths:
            raise SourceFileError(path, f"units columns differ in length from its {n} ids: "
                                        + ", ".join(f"{name} has {length}" for name, length in lengths.items()))

        # Place every unit before reading any spike: a unit pointing nowhere stops the conversion early.
        peak_channel_id = np.asarray(plain["peak_channel_id"].data[:], dtype=np.int64)
        rows = electrode_rows_of_channels(nwbfile, peak_channel_id, path=path, what="units peak_channel_id")
        electrodes = nwbfile.electrodes
        group_names = np.asarray(electrodes["group_name"].data[:]).astype(str)
        probe_names = sorted(set(group_names))
        probe_of_unit = group_names[rows]
        order = np.argsort(np.searchsorted(probe_names, probe_of_unit), kind="stable")
        in_source_order = bool(np.array_equal(order, np.arange(n)))
        rows = rows[order]

        times = _read_ragged(ragged["spike_times"], name="spike_times", n_units=n, path=path)
        _check_spike_times(times, unit_ids, path)
        spike_times, ends = _reorder_ragged(times, order)
        source_ends = times.ends
        del times

        columns = {
            "probe": probe_of_unit[order].astype(object),
            "peak_channel": np.asarray(electrodes["probe_channel"].data[:], dtype=np.int64)[rows],
            "depth_um": np.asarray(electrodes["rel_y"].data[:], dtype=np.float64)[rows],
            "location": np.asarray(electrodes["location"].data[:], dtype=object)[rows],
            "firing_rate": float_values(plain["firing_rate"].data)[order],
            "presence_ratio": float_values(plain["presence_ratio"].data)[order],
        }
        amplitudes = None
        if "spike_amplitudes" in ragged:
            source_amplitudes = _read_ragged(ragged["spike_amplitudes"], name="spike_amplitudes", n_units=n, path=path)
            if not np.array_equal(source_amplitudes.ends, source_ends):
                unit = int(np.flatnonzero(source_amplitudes.ends != source_ends)[0])
                raise SourceFileError(path, f"unit {int(unit_ids[unit])} has a different number of spike_amplitudes "
                                            "than spike_times")
            amplitudes, _ = _reorder_ragged(source_amplitudes, order)
            del source_amplitudes
            if amplitudes.dtype.kind != "f":
                amplitudes = amplitudes.astype(np.float64)
            # The median in volts, then scaled, as the representation defines it.
            columns["amplitude_median_uv"] = _medians(amplitudes, ends) * 1e6
            # The Allen description says "(s)", but the values are volts. Scaled in place: the array
            # was read for this conversion alone, and a copy would double the largest allocation.
            amplitudes *= amplitudes.dtype.type(1e6)
        else:
            columns["amplitude_median_uv"] = np.full(n, np.nan)
        quality = text_values(plain["quality"].data)[order]
        columns["is_good"] = is_good_units(quality, float_values(plain["isi_violations"].data)[order],
                                           float_values(plain["amplitude_cutoff"].data)[order],
                                           columns["presence_ratio"])
        columns["source_unit_id"] = unit_ids[order].astype(str).astype(object)
        columns["source_cluster_id"] = np.asarray(plain["cluster_id"].data[:], dtype=np.int64)[order]

        vectors = []
        times_vector = VectorData(name="spike_times", description="Spike times of each unit (s, session clock), "
                                  "ascending within a unit (Allen spike_times, unchanged).", data=spike_times)
        # Each index before its column, as the IBL units (hdmf's table check needs that order for iterators).
        vectors += [VectorIndex(name="spike_times_index", data=ends, target=times_vector), times_vector]
        region = DynamicTableRegion(name="electrodes", description="The unit's peak channel (Allen peak_channel_id).",
                                    data=rows, table=electrodes)
        vectors += [region, VectorIndex(name="electrodes_index", data=np.arange(1, n + 1), target=region)]
        vectors.append(VectorData(name="electrode_group", description="Electrode group (probe) of the unit.",
                                  data=[nwbfile.electrode_groups[name] for name in columns["probe"]]))
        for name, values in columns.items():
            vectors.append(VectorData(name=name, description=DESCRIPTIONS[name], data=values))
        for name, column in plain.items():
            if name in SHARED_UNCHANGED:
                continue
            values = _allen_values(column, name=name)
            vectors.append(VectorData(name=f"allen_{name}", description=_allen_description(name, column),
                                      data=values[order]))
        for name, column in ragged.items():
            if name in RAGGED_SHARED:
                continue
            other = _read_ragged(column, name=name, n_units=n, path=path)
            values, other_ends = _reorder_ragged(other, order)
            data = VectorData(name=f"allen_{name}", description=_allen_description(name, column.target), data=values)
            vectors += [VectorIndex(name=f"allen_{name}_index", data=other_ends, target=data), data]
        if amplitudes is not None and self.spike_amplitudes:
            data = VectorData(name="spike_amplitudes_uv", description="Amplitude of each spike (µV; Allen "
                              "spike_amplitudes, which are volts although the Allen description says seconds, x 1e6).",
                              data=amplitudes)
            vectors += [VectorIndex(name="spike_amplitudes_uv_index", data=ends, target=data), data]
        if self.waveform_mean and "waveform_mean" in ragged:
            waveforms = _read_ragged(ragged["waveform_mean"], name="waveform_mean", n_units=n, path=path)
            channels_per_probe = {name: int((group_names == name).sum()) for name in probe_names}
            mean = _waveform_array(waveforms, channels_per_unit=np.array([channels_per_probe[name]
                                                                          for name in probe_of_unit]), path=path)
            vectors.append(VectorData(name="waveform_mean", description="Mean waveform of the unit (V; Allen "
                                      "waveform_mean, values unchanged), as (units, samples, channels); the channel "
                                      "axis is the Allen file's (every channel of the unit's probe).",
                                      data=mean if in_source_order else mean[order]))

        rates = [probe.sampling_rate for probe in read_probes(source)
                 if probe.sampling_rate and probe.name in set(columns["probe"])]
        nwbfile.units = Units(
            name="units",
            description="Units of every probe, from the Allen units table (noise units included); is_good selects "
                        "the Allen recommended units. Ordered probe by probe, in the Allen order within a probe.",
            columns=vectors,
            electrode_table=electrodes,
            resolution=1.0 / max(rates or [DEFAULT_SAMPLING_RATE]),
            id=np.arange(n),
        )


def _allen_description(name: str, column) -> str:
    own = getattr(column, "description", None)
    own = own.decode() if isinstance(own, bytes) else own
    return f"Allen units column {name!r}, as released" + (f": {own}" if own and own != "no description" else ".")
