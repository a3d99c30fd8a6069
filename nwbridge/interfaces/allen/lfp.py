"""Allen LFP (one ``probe_<probe_id>.nwb`` per probe) streamed into the raw NWB file.

Per probe file: ``acquisition/probe_<id>_lfp`` (an ``LFP``) holds the ElectricalSeries
``probe_<id>_lfp_data`` (float32 volts, time x ~96 channels, explicit timestamps on the session
clock) whose ``electrodes`` region points into the probe file's own electrodes table (ids = Allen
channel ids). Each becomes ``acquisition/ElectricalSeriesLfp<Probe>`` (``ElectricalSeriesLfpProbeA``):
the values unchanged, the timestamps unchanged, and an ``electrodes`` region into the raw file's
``electrodes`` table, which :func:`~.electrodes.add_allen_probes` builds from the session file exactly
as in the processed file, so a channel has the same row in both.

The probe file is matched to its probe by the ``probe_id`` of its electrode group (or device), not by
its name. The rate is derived from the timestamps: the electrode group's ``lfp_sampling_rate``
attribute states the LF band's 2.5 kHz although the released LFP is sampled at half that (a quirk).

The data are never held whole (a probe's LFP is ~5 GB): they are read from the probe file in blocks
of a few seconds while the file is written (:class:`~nwbridge.parallel_writing.BlockSource`), and
compressed on every core by nwbridge's writer.

The probe files' current source density (``processing/current_source_density``, ``EcephysCSD``) has
no place in the shared representation and is not converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import FilePath

from ...errors import SourceFileError
from ...parallel_writing import BlockSource
from .base import AllenInterface
from .electrodes import AllenProbe, add_allen_probes, electrode_rows_of_channels, read_probes
from .source import AllenFile, open_allen_file

__all__ = ["AllenLfpInterface", "BLOCK_SECONDS", "LfpRecording", "find_lfp"]

# Seconds of LFP handed to the writer at a time: a few MB, so memory stays bounded.
BLOCK_SECONDS = 5.0
# Samples checked at a time when the timestamps are validated.
TIMESTAMP_BLOCK = 1_000_000


@dataclass
class LfpRecording:
    """The LFP of one probe file, validated before anything is written.

    Attributes
    ----------
    path : Path
        The probe file.
    probe : AllenProbe
        Its probe, as the session file describes it.
    series : pynwb.ecephys.ElectricalSeries
        The source series (data and timestamps are h5py datasets, read only in blocks).
    channel_ids : numpy.ndarray
        Allen channel id of each data column.
    rate : float
        Sampling rate derived from the timestamps (Hz).
    """

    path: Path
    probe: AllenProbe
    series: object
    channel_ids: np.ndarray
    rate: float

    @property
    def n_samples(self) -> int:
        return int(self.series.data.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.series.data.shape[1])

    def block_samples(self) -> int:
        """Samples per block: a few seconds, a whole number of the source's HDF5 chunks when it is
        chunked, so no source chunk is decompressed twice."""
        samples = max(1, int(round(BLOCK_SECONDS * self.rate)))
        chunks = getattr(self.series.data, "chunks", None)
        if chunks:
            samples = -(-samples // chunks[0]) * chunks[0]
        return samples

    def data_blocks(self):
        data, step = self.series.data, self.block_samples()
        for start in range(0, self.n_samples, step):
            yield data[start:start + step]

    def timestamp_blocks(self):
        timestamps, step = self.series.timestamps, self.block_samples()
        for start in range(0, self.n_samples, step):
            yield timestamps[start:start + step]


def _probe_id_of_file(probe_source: AllenFile) -> int:
    found = {probe.probe_id for probe in read_probes(probe_source)}
    if len(found) != 1:
        raise SourceFileError(probe_source.path, "a probe file must describe exactly one probe (an electrode group "
                                                 f"or device with a probe_id); found {sorted(found) or 'none'}")
    return found.pop()


def _check_timestamps(timestamps, *, n_samples: int, path: Path) -> float:
    """Refuse timestamps that are not one per sample or not increasing; return the derived rate (Hz)."""
    if len(timestamps) != n_samples:
        raise SourceFileError(path, f"the LFP has {n_samples} samples but {len(timestamps)} timestamps")
    if n_samples < 2:
        raise SourceFileError(path, "the LFP has fewer than two samples: no sampling rate can be derived")
    previous = -np.inf
    for start in range(0, n_samples, TIMESTAMP_BLOCK):
        block = np.asarray(timestamps[start:start + TIMESTAMP_BLOCK], dtype=np.float64)
        steps = np.diff(block, prepend=previous)
        bad = ~(steps > 0)  # also catches NaN
        if bad.any():
            index = start + int(np.flatnonzero(bad)[0])
            raise SourceFileError(path, f"LFP timestamps are not increasing at sample {index} "
                                        f"({float(timestamps[index])!r} s)")
        previous = block[-1]
    first, last = float(timestamps[0]), float(timestamps[n_samples - 1])
    return (n_samples - 1) / (last - first)


def find_lfp(probe_file, session: AllenFile) -> LfpRecording:
    """Open a probe file, match it to a probe of the session and validate its LFP.

    Raises
    ------
    MissingSourceFileError
        When the file does not exist.
    SourceFileError
        When its probe id is not a probe of the session, it has no LFP container or series, the
        series' shape, timestamps or electrodes are inconsistent, or a channel is not the probe's.
    """
    probe_source = open_allen_file(probe_file)
    path = probe_source.path
    probe_id = _probe_id_of_file(probe_source)
    probes = {probe.probe_id: probe for probe in read_probes(session)}
    if probe_id not in probes:
        raise SourceFileError(path, f"is the file of probe id {probe_id}, which is not a probe of the session "
                                    f"{session.path.name} (probe ids {sorted(probes)})")
    probe = probes[probe_id]
    container = probe_source.object(f"acquisition/probe_{probe_id}_lfp")
    if container is None:
        raise SourceFileError(path, f"has no LFP container acquisition/probe_{probe_id}_lfp")
    series_name = f"probe_{probe_id}_lfp_data"
    series = container.electrical_series.get(series_name)
    if series is None:
        raise SourceFileError(path, f"acquisition/probe_{probe_id}_lfp has no ElectricalSeries {series_name}")
    if series.data is None or len(series.data.shape) != 2:
        raise SourceFileError(path, f"{series_name} data must be time x channels")
    if series.timestamps is None:
        raise SourceFileError(path, f"{series_name} has no timestamps")
    rate = _check_timestamps(series.timestamps, n_samples=int(series.data.shape[0]), path=path)

    table = series.electrodes.table
    rows = np.asarray(series.electrodes.data[:], dtype=np.int64)
    if len(rows) != series.data.shape[1]:
        raise SourceFileError(path, f"{series_name} has {series.data.shape[1]} channels but its electrodes region "
                                    f"names {len(rows)}")
    table_ids = np.asarray(table.id.data[:], dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(table_ids)):
        raise SourceFileError(path, f"{series_name} electrodes point beyond the {len(table_ids)} rows of the probe "
                                    "file's electrodes table")
    return LfpRecording(path=path, probe=probe, series=series, channel_ids=table_ids[rows], rate=rate)


class AllenLfpInterface(AllenInterface):
    """LFP of every probe of an Allen session, for the raw NWB file.

    Parameters
    ----------
    session_nwb : Path
        The AllenSDK session file (for the probes and the electrodes table).
    probe_files : list of Path
        The probes' ``probe_<probe_id>.nwb`` files.
    verbose : bool, default: False
    """

    display_name = "Allen LFP"

    def __init__(self, session_nwb: FilePath, *, probe_files: list[FilePath], verbose: bool = False):
        super().__init__(session_nwb, verbose=verbose)
        self.source_data["probe_files"] = [str(path) for path in probe_files]
        self.probe_files = [Path(path) for path in probe_files]

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return any(probe.has_lfp_data for probe in read_probes(source))

    def recordings(self) -> list[LfpRecording]:
        """The LFP of every probe file, validated, sorted by probe name."""
        found: dict[str, LfpRecording] = {}
        for probe_file in self.probe_files:
            recording = find_lfp(probe_file, self.source)
            name = recording.probe.name
            if name in found:
                raise SourceFileError(recording.path, f"is a second LFP file of {name} (probe id "
                                                      f"{recording.probe.probe_id}), after {found[name].path.name}")
            found[name] = recording
        return [found[name] for name in sorted(found)]

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        from pynwb.ecephys import ElectricalSeries

        recordings = self.recordings()
        if not recordings:
            return
        add_allen_probes(nwbfile, self.source)
        names = np.asarray(nwbfile.electrodes["group_name"].data[:]).astype(str)
        for recording in recordings:
            probe = recording.probe.name
            rows = electrode_rows_of_channels(nwbfile, recording.channel_ids, path=recording.path,
                                              what=f"LFP channel id of {probe}")
            strangers = np.flatnonzero(names[rows] != probe)
            if strangers.size:
                first = int(strangers[0])
                raise SourceFileError(recording.path, f"LFP channel {int(recording.channel_ids[first])} (column "
                                                      f"{first}) belongs to {names[rows][first]}, not to {probe}")
            region = nwbfile.create_electrode_table_region(
                region=rows.tolist(), description=f"LFP channels of {probe}, in data column order.")
            series = recording.series
            stated = recording.probe.lfp_sampling_rate
            stated_text = (f"; the Allen electrode group's lfp_sampling_rate attribute says {stated:g} Hz, which is "
                           "not the rate of these data") if stated and abs(stated - recording.rate) > 1 else ""
            conversion = float(series.conversion) if series.conversion is not None else 1.0
            shape = (recording.n_samples, recording.n_channels)
            nwbfile.add_acquisition(ElectricalSeries(
                name=f"ElectricalSeriesLfp{probe[0].upper()}{probe[1:]}",
                description=(f"Local field potential of {probe} (Allen probe id {recording.probe.probe_id}), float32 "
                             f"volts as released in {recording.path.name} ({series.name}), {recording.n_channels} "
                             f"channels; sampled at {recording.rate:.6f} Hz, the rate derived from the timestamps "
                             f"(samples - 1 over their span){stated_text}. Timestamps are the Allen file's, on the "
                             "session clock."),
                data=BlockSource(recording.data_blocks, shape=shape, dtype=series.data.dtype),
                timestamps=BlockSource(recording.timestamp_blocks, shape=shape[:1],
                                       dtype=series.timestamps.dtype),
                electrodes=region,
                conversion=conversion,
                comments=f"Sampling rate derived from the timestamps: {recording.rate:.6f} Hz.",
            ))
