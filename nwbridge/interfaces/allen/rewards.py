"""Allen water rewards (``processing/rewards``) as the core ``EventsTable`` ``rewards``.

AllenSDK writes two TimeSeries with the same times, one value per reward delivered:
``volume`` (mL) and ``autorewarded`` (whether the reward was free, given without a lick).
Two quirks:

* the volumes are in millilitres, where the representation (and the IBL) use microlitres:
  ``volume_ul`` is the source value x 1000;
* ``autorewarded`` says its unit is "mL" but holds booleans (AllenSDK copies the unit of the
  volume series): it is written as the boolean column ``auto_rewarded``, without a unit.
"""

from __future__ import annotations

import numpy as np
from pynwb.event import EventsTable, TimestampVectorData

from ...errors import SourceFileError
from ..tables import Column, build_table
from .base import AllenInterface
from .running import series_arrays
from .source import AllenFile, nullable_booleans

__all__ = ["AllenRewardsInterface", "MICROLITRES_PER_MILLILITRE"]

VOLUME = "processing/rewards/volume"
AUTOREWARDED = "processing/rewards/autorewarded"
MICROLITRES_PER_MILLILITRE = 1000.0
# Spellings of millilitres the volume series may carry; any other unit is refused, not guessed.
_MILLILITRES = ("mL", "ml", "milliliters", "millilitres")


class AllenRewardsInterface(AllenInterface):
    """Rewards as the core ``EventsTable`` ``rewards`` (in ``/events``): time, volume (µL), free or earned."""

    display_name = "Allen rewards"

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return source.object(VOLUME) is not None

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        source = self.source
        volume, millilitres, times = series_arrays(source, VOLUME)
        if volume.unit not in _MILLILITRES:
            raise SourceFileError(source.path, f"{VOLUME}: unit is {volume.unit!r}; Allen reward volumes are in "
                                               "mL and no other unit is converted")
        if millilitres.dtype.kind not in "fiu":
            raise SourceFileError(source.path, f"{VOLUME}: volumes are not numbers (dtype {millilitres.dtype})")
        if source.object(AUTOREWARDED) is None:
            raise SourceFileError(source.path, f"has {VOLUME} but no {AUTOREWARDED}")
        _, flags, flag_times = series_arrays(source, AUTOREWARDED)
        if not np.array_equal(flag_times, times):
            raise SourceFileError(source.path, f"{AUTOREWARDED} and {VOLUME} should have the same timestamps "
                                               f"(one value of each per reward); they differ ({len(flag_times)} "
                                               f"and {len(times)} times)")
        auto_rewarded, missing = nullable_booleans(flags, name=AUTOREWARDED, path=source.path)
        if missing.any():
            raise SourceFileError(source.path, f"{AUTOREWARDED}: {int(missing.sum())} rewards have no value; "
                                               "every reward is either free or earned")
        nwbfile.add_events_table(build_table(
            EventsTable,
            name="rewards",
            description=("Water rewards delivered at the spout, one row per reward: its time (s), volume (µL) and "
                         f"whether it was free. From the Allen session file {VOLUME} (in mL, converted to µL) and "
                         f"{AUTOREWARDED} (booleans, although the source labels them \"mL\")."),
            source_description="Allen reward valve (behaviour control software)",
            columns=[
                Column("timestamp", "Time the reward was delivered (s).", times.astype(np.float64, copy=False),
                       vector_class=TimestampVectorData),
                Column("volume_ul", "Volume of water delivered (µL): the Allen volume (mL) x 1000.",
                       millilitres.astype(np.float64) * MICROLITRES_PER_MILLILITRE),
                Column("auto_rewarded", "Whether the reward was given without a correct response (Allen "
                                        "'autorewarded': free rewards, e.g. at the start of the session).",
                       np.asarray(auto_rewarded, dtype=bool)),
            ],
        ))
