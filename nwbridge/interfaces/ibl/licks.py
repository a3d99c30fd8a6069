"""Lick times detected from the IBL cameras (``licks.times``)."""

from __future__ import annotations

import numpy as np
from pynwb.event import EventsTable, TimestampVectorData

from ...errors import SourceFileError
from ..tables import Column, build_table
from .alf import load_npy, require_increasing
from .base import IblInterface

__all__ = ["IblLicksInterface"]


class IblLicksInterface(IblInterface):
    """Licks as the core ``EventsTable`` ``licks`` (in ``/events``)."""

    display_name = "IBL licks"

    @classmethod
    def is_available(cls, session) -> bool:
        return session.has("licks", "times")

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        path = self.session.path("licks", "times")
        times = load_npy(path)
        if times.ndim != 1:
            raise SourceFileError(path, f"expected a 1-D vector of lick times, found shape {times.shape}")
        require_increasing(times, path)
        nwbfile.add_events_table(build_table(
            EventsTable,
            name="licks",
            description="Lick times (s), detected by the IBL from the tongue in the side cameras' pose "
                        "estimation (ALF licks.times).",
            source_description="IBL lick detection from video (DeepLabCut tongue keypoints)",
            columns=[Column("timestamp", "Time of the lick (s).", np.asarray(times, dtype=np.float64),
                            vector_class=TimestampVectorData)],
        ))
