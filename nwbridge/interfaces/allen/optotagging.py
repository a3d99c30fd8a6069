"""Allen optotagging (``processing/optotagging/optogenetic_stimulation``) as ``intervals/optogenetic_stimulation``.

At the end of a VBN session, light pulses and ramps through the probes' fibre identify the
neurons expressing ChR2 in the mouse's Cre line. AllenSDK keeps one row per stimulation with its
waveform (``condition``, ``stimulus_name``), the command voltage of the light source (``level``,
V) and ``duration`` (s); the ``optotagging`` TimeSeries beside it repeats the onsets and
durations and is not copied.
"""

from __future__ import annotations

import numpy as np
from pynwb.epoch import TimeIntervals

from ...errors import SourceFileError
from ..tables import Column, build_table
from .base import AllenInterface
from .source import AllenFile
from .stimuli import OPTOTAGGING_LOCATION, extra_column, float_column, read_columns, text_column

__all__ = ["AllenOptotaggingInterface"]

COLUMNS = {
    # Allen column -> (dtype, description), in the representation's order.
    "condition": ("text", "The source's description of the light waveform (no unit)."),
    "level": ("float", "Command voltage of the light source (volts)."),
    "duration": ("float", "Duration of the stimulation (s)."),
    "stimulus_name": ("text", "The source's name of the stimulus waveform (pulse, raised_cosine, ...) (no unit)."),
}
REQUIRED = ("start_time", "stop_time", "condition", "level", "duration")


class AllenOptotaggingInterface(AllenInterface):
    """Optogenetic stimulation of an Allen VBN session (optotagging).

    Writes ``intervals/optogenetic_stimulation``: ``start_time``, ``stop_time``, ``condition``,
    ``level`` (V), ``duration`` (s), ``stimulus_name``, then every other Allen column under its
    Allen name; rows in time order.
    """

    display_name = "Allen optotagging"

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return source.object(OPTOTAGGING_LOCATION) is not None

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        source = self.source
        path = source.path
        location = OPTOTAGGING_LOCATION
        columns, skipped = read_columns(source.require(location), path=path, location=location)
        missing = [name for name in REQUIRED if name not in columns]
        if missing:
            raise SourceFileError(path, f"{location} lacks the columns {missing}")
        start = float_column(columns.pop("start_time"), path=path, location=location)
        if np.isnan(start).any():
            raise SourceFileError(path, f"{location}: row {int(np.flatnonzero(np.isnan(start))[0])} has no start_time")
        order = np.argsort(start, kind="stable")
        reordered = bool(np.any(order != np.arange(len(order))))
        if reordered:
            columns = {name: column.take(order) for name, column in columns.items()}
            start = start[order]
        stop = float_column(columns.pop("stop_time"), path=path, location=location)
        if np.any(stop < start):
            raise SourceFileError(path, f"{location}: row {int(np.flatnonzero(stop < start)[0])} stops before it "
                                  "starts")
        out = [Column("start_time", "Onset of the stimulation (s, session clock).", start),
               Column("stop_time", "Offset of the stimulation (s, session clock).", stop)]
        for name, (dtype, description) in COLUMNS.items():
            if name not in columns:
                continue
            column = columns.pop(name)
            values = (float_column(column, path=path, location=location) if dtype == "float"
                      else text_column(column))
            out.append(Column(name, description, values))
        for column in columns.values():
            out.append(extra_column(column, path=path, location=location))
        notes = " Rows sorted by start_time (the source's were not)." if reordered else ""
        if skipped:
            notes += (f" The source's {', '.join(skipped)} column (references into the optotagging TimeSeries, which "
                      "repeats the onsets and durations) is not copied.")
        nwbfile.add_time_intervals(build_table(
            TimeIntervals,
            name="optogenetic_stimulation",
            description=("Allen optotagging: light pulses and ramps delivered to identify ChR2-expressing neurons of "
                         f"the mouse's Cre line, one row per stimulation, from {location} of the Allen session file."
                         + notes),
            columns=out,
        ))
