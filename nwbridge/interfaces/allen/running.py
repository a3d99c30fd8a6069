"""Allen running speed on the disc (``processing/running``) and the encoder it comes from.

The mouse runs on a disc read by a rotary encoder once per stimulus frame (~60 Hz). AllenSDK
writes:

* ``processing/running/speed``: running speed (cm/s), computed from the encoder voltage,
  wrap artefacts clipped, outliers removed and low-pass filtered;
* ``processing/running/speed_unfiltered``: the same before the low-pass filter;
* ``processing/running/dx``: the angular change of the disc per frame that the stimulus
  software computed during the session (AllenSDK recomputes it from the voltages instead);
* ``acquisition/v_sig``, ``acquisition/v_in``: the encoder's output voltage and its supply
  voltage (the voltage at which the output wraps back to 0 V).

The representation names the two speeds ``running_speed`` and ``running_speed_unfiltered``.
It has no name for the raw encoder series; so that no source value is dropped they are kept
with the Allen prefix as ``allen_running_<Allen name>`` ("running" added because the shared
``behavior`` module would not say what a bare ``dx`` is): ``processing/behavior/allen_running_dx``,
and, raw acquisitions as in the source, ``acquisition/allen_running_v_sig`` and
``acquisition/allen_running_v_in``.

Quirk: ``dx`` says its unit is "cm", but it is an angle (AllenSDK describes it as the "running
wheel angular change"; the stimulus software's encoder reports degrees): it is written in
degrees, unconverted, and its description says so.

Every series keeps the source's values and times bit for bit. A series whose times equal those
of a series already written links to its timestamps rather than storing them again.

The helpers :func:`series_arrays` and :class:`SharedTimestamps` are shared with the other
Allen behaviour interfaces of this package (licks, rewards, eye tracking).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from neuroconv.tools.nwb_helpers import get_module
from pynwb.base import TimeSeries

from ...errors import SourceFileError
from .base import AllenInterface
from .source import AllenFile

__all__ = ["AllenRunningInterface", "BEHAVIOR_MODULE_DESCRIPTION", "SharedTimestamps", "check_times",
           "series_arrays", "source_note"]

# The same text in every Allen interface that writes to the module, so whichever creates it first agrees.
BEHAVIOR_MODULE_DESCRIPTION = "Behavioural data: running speed on the disc, eye tracking."


# --- helpers shared by the Allen behaviour interfaces ------------------------------------------

def check_times(times: np.ndarray, *, path: Path, location: str) -> None:
    """Refuse times that are not a finite, non-decreasing 1-D vector.

    Parameters
    ----------
    times : numpy.ndarray
        Seconds on the session clock.
    path : Path
        The source file, named in the error.
    location : str
        The series the times belong to, named in the error.
    """
    if times.ndim != 1:
        raise SourceFileError(path, f"{location}: timestamps should be a 1-D vector, found shape {times.shape}")
    if times.dtype.kind not in "fiu":
        raise SourceFileError(path, f"{location}: timestamps are not numbers (dtype {times.dtype})")
    finite = np.isfinite(times)
    if not finite.all():
        position = int(np.flatnonzero(~finite)[0])
        raise SourceFileError(path, f"{location}: timestamp {position} is {times[position]!r}; every time must be "
                                    "a finite number of seconds")
    backwards = np.flatnonzero(np.diff(times) < 0)
    if len(backwards):
        position = int(backwards[0]) + 1
        raise SourceFileError(path, f"{location}: timestamps go backwards at element {position} "
                                    f"({times[position]!r} after {times[position - 1]!r})")


def series_arrays(source: AllenFile, location: str, *,
                  dimensions: int = 1) -> tuple[TimeSeries, np.ndarray, np.ndarray]:
    """A source TimeSeries with its data and timestamps read whole, checked for consistency.

    Parameters
    ----------
    source : AllenFile
    location : str
        Where the series is (``processing/running/speed``).
    dimensions : int, default: 1
        Number of dimensions the data must have.

    Returns
    -------
    series : TimeSeries
        The source series as pynwb read it (for its unit and description).
    data, timestamps : numpy.ndarray
        The values and times exactly as stored.

    Raises
    ------
    SourceFileError
        The series has no timestamps, its times are not finite and non-decreasing, or its data
        do not have one row per time.
    """
    series = source.require(location)
    if series.timestamps is None:
        # AllenSDK always writes explicit times; a rate would need a start the files do not keep.
        raise SourceFileError(source.path, f"{location} has no timestamps")
    timestamps = np.asarray(series.timestamps[:])
    check_times(timestamps, path=source.path, location=location)
    data = np.asarray(series.data[:])
    if data.ndim != dimensions:
        raise SourceFileError(source.path, f"{location}: data should have {dimensions} dimension(s), found "
                                           f"shape {data.shape}")
    if len(data) != len(timestamps):
        raise SourceFileError(source.path, f"{location}: {len(data)} data values for {len(timestamps)} timestamps")
    return series, data, timestamps


class SharedTimestamps:
    """Stores each distinct vector of times once in the output file.

    The first series made with some times keeps them; a later series with the same times (same
    values, same dtype) links to that series' timestamps instead of copying them.
    """

    def __init__(self):
        self._owners: list[tuple[np.ndarray, TimeSeries]] = []

    def make(self, series_class: type[TimeSeries], times: np.ndarray, **fields) -> TimeSeries:
        """``series_class(timestamps=..., **fields)``, with the times stored or linked."""
        for owned, owner in self._owners:
            if owned.dtype == times.dtype and owned.shape == times.shape and np.array_equal(owned, times):
                return series_class(timestamps=owner, **fields)
        series = series_class(timestamps=times, **fields)
        self._owners.append((times, series))
        return series


def source_note(series: TimeSeries, location: str) -> str:
    """A sentence naming the source series, with the source's own description when it has one."""
    description = (series.description or "").strip()
    if description and description.lower() != "no description":
        return f" Allen session file {location}, described there as: \"{description}\"."
    return f" Allen session file {location}."


# --- the interface -----------------------------------------------------------------------------

SPEED = "processing/running/speed"
SPEED_UNFILTERED = "processing/running/speed_unfiltered"
DX = "processing/running/dx"
V_SIG = "acquisition/v_sig"
V_IN = "acquisition/v_in"

# Spellings of the source units that say what each series is documented to hold.
_SPEED_UNITS = ("cm/s", "centimeters/s", "centimeters per second")
_VOLT_UNITS = ("V", "volts", "volt")


class AllenRunningInterface(AllenInterface):
    """Running speed (``running_speed``, ``running_speed_unfiltered``) and the raw encoder series."""

    display_name = "Allen running speed"

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return source.object(SPEED) is not None

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None, *, encoder: bool = True) -> None:
        """Add the running speeds to ``processing/behavior`` and, optionally, the encoder series.

        Parameters
        ----------
        nwbfile : NWBFile
        metadata : dict, optional
            Unused; accepted for the neuroconv interface protocol.
        encoder : bool, default: True
            Also write the Allen encoder series (``allen_running_dx`` in ``processing/behavior``,
            ``allen_running_v_sig`` and ``allen_running_v_in`` in ``acquisition``) when the source has them.
        """
        source = self.source
        shared = SharedTimestamps()
        behavior = get_module(nwbfile, "behavior", BEHAVIOR_MODULE_DESCRIPTION)

        speed, values, times = series_arrays(source, SPEED)
        self._require_unit(speed, SPEED, _SPEED_UNITS)
        behavior.add(shared.make(
            TimeSeries, times, name="running_speed", data=values, unit="cm/s",
            description=("Running speed of the mouse on the disc (cm/s), from the rotary encoder read once per "
                         "stimulus frame: computed by AllenSDK from the encoder voltage, wrap artefacts clipped, "
                         "outliers removed and low-pass filtered." + source_note(speed, SPEED)),
        ))

        if source.object(SPEED_UNFILTERED) is not None:
            unfiltered, values, times = series_arrays(source, SPEED_UNFILTERED)
            self._require_unit(unfiltered, SPEED_UNFILTERED, _SPEED_UNITS)
            behavior.add(shared.make(
                TimeSeries, times, name="running_speed_unfiltered", data=values, unit="cm/s",
                description=("Running speed of the mouse on the disc (cm/s) before the low-pass filter of "
                             "running_speed (wrap artefacts clipped, outliers removed)."
                             + source_note(unfiltered, SPEED_UNFILTERED)),
            ))

        if not encoder:
            return
        if source.object(DX) is not None:
            dx, values, times = series_arrays(source, DX)
            behavior.add(shared.make(
                TimeSeries, times, name="allen_running_dx", data=values, unit="degrees",
                description=("Angular change of the running disc per stimulus frame, as the stimulus software "
                             "computed it during the session (Allen 'dx'; AllenSDK recomputes the speed from the "
                             f"encoder voltages instead). The source labels it with the unit {dx.unit!r}, but it "
                             "is an angle, which the stimulus software's encoder reports in degrees."
                             + source_note(dx, DX)),
            ))
        for location, name, text in (
            (V_SIG, "allen_running_v_sig", "Output voltage of the running disc's rotary encoder (volts); it rises "
                                           "with the disc's angle and wraps back to 0 V once per turn."),
            (V_IN, "allen_running_v_in", "Supply voltage of the running disc's rotary encoder (volts): in theory "
                                         "the voltage at which allen_running_v_sig wraps back to 0 V."),
        ):
            if source.object(location) is None:
                continue
            voltage, values, times = series_arrays(source, location)
            self._require_unit(voltage, location, _VOLT_UNITS)
            nwbfile.add_acquisition(shared.make(
                TimeSeries, times, name=name, data=values, unit="volts",
                description=text + source_note(voltage, location),
            ))

    def _require_unit(self, series: TimeSeries, location: str, accepted: tuple[str, ...]) -> None:
        # The values are copied unconverted: a source in another unit would be mislabelled.
        if series.unit not in accepted:
            raise SourceFileError(self.source.path, f"{location}: unit is {series.unit!r}, expected one of "
                                                    f"{', '.join(repr(unit) for unit in accepted)}")
