"""Allen licks (``processing/licking/licks``) as the core ``EventsTable`` ``licks``.

The Allen lick sensor's detections are a TimeSeries whose timestamps are the lick times and
whose data are the behaviour (stimulus) frame of each lick. Both are kept: the times as the
table's ``timestamp`` column, bit for bit, the frames as the ``frame`` column.
"""

from __future__ import annotations

import numpy as np
from pynwb.event import EventsTable, TimestampVectorData

from ...errors import SourceFileError
from ..tables import Column, build_table
from .base import AllenInterface
from .running import series_arrays, source_note
from .source import AllenFile

__all__ = ["AllenLicksInterface"]

LICKS = "processing/licking/licks"


class AllenLicksInterface(AllenInterface):
    """Licks as the core ``EventsTable`` ``licks`` (in ``/events``), with their behaviour frames."""

    display_name = "Allen licks"

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return source.object(LICKS) is not None

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        source = self.source
        series, frames, times = series_arrays(source, LICKS)
        nwbfile.add_events_table(build_table(
            EventsTable,
            name="licks",
            description=("Licks detected by the Allen lick sensor (the spout's contact detector), one row per "
                         "lick: its time (s) and the behaviour frame it fell in." + source_note(series, LICKS)),
            source_description="Allen lick sensor on the reward spout",
            columns=[
                Column("timestamp", "Time of the lick (s).", times.astype(np.float64, copy=False),
                       vector_class=TimestampVectorData),
                Column("frame", "Behaviour (stimulus) frame in which the lick was detected: the data of the "
                                "Allen licks series.", frame_indices(frames, source=source)),
            ],
        ))


def frame_indices(values: np.ndarray, *, source: AllenFile) -> np.ndarray:
    """The lick frames as int64; floats are accepted only when they hold whole numbers."""
    if values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False)
    if values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        if whole.all():
            return values.astype(np.int64)
        position = int(np.flatnonzero(~whole)[0])
        raise SourceFileError(source.path, f"{LICKS}: data should be frame indices (whole numbers); element "
                                           f"{position} is {values[position]!r}")
    raise SourceFileError(source.path, f"{LICKS}: data should be frame indices, found dtype {values.dtype}")
