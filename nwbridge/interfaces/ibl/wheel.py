"""The IBL wheel: angle, velocity and detected movements (``_ibl_wheel.*``, ``_ibl_wheelMoves.*``)."""

from __future__ import annotations

import numpy as np
from neuroconv.tools.nwb_helpers import get_module
from pynwb.behavior import SpatialSeries
from pynwb.base import TimeSeries
from pynwb.epoch import TimeIntervals
from scipy import signal

from ...errors import MissingSourceFileError, SourceFileError
from ..tables import Column, build_table
from .alf import column_name, require_increasing
from .base import IblInterface

__all__ = ["IblWheelInterface", "wheel_velocity"]

VELOCITY_RATE_HZ = 1000.0
VELOCITY_CORNER_HZ = 20.0


def wheel_velocity(timestamps: np.ndarray, position: np.ndarray, *, rate: float = VELOCITY_RATE_HZ,
                   corner_frequency: float = VELOCITY_CORNER_HZ) -> tuple[np.ndarray, float]:
    """Wheel velocity on a regular grid, as the IBL computes it.

    The irregular encoder samples are linearly interpolated onto a grid at ``rate`` Hz starting
    at the first sample, low-pass filtered (8th-order Butterworth, zero phase) so that the
    encoder's quantisation steps do not become velocity spikes, and differentiated.

    Returns
    -------
    velocity : numpy.ndarray
        rad/s, one value per grid point.
    starting_time : float
        Time of the first grid point (s).
    """
    starting_time = float(timestamps[0])
    count = int(np.floor((timestamps[-1] - starting_time) * rate)) + 1
    grid = starting_time + np.arange(count) / rate
    resampled = np.interp(grid, timestamps, position)
    # sosfiltfilt needs a few times the filter order of samples; shorter traces are left unfiltered.
    if count > 60:
        sos = signal.butter(8, corner_frequency, fs=rate, output="sos")
        resampled = signal.sosfiltfilt(sos, resampled)
    velocity = np.gradient(resampled) * rate if count > 1 else np.zeros(count)
    return velocity, starting_time


class IblWheelInterface(IblInterface):
    """Wheel angle (``wheel_position``), velocity (``wheel_velocity``) and movements (``wheel_movements``)."""

    display_name = "IBL wheel"

    @classmethod
    def is_available(cls, session) -> bool:
        return session.has("wheel", "position")

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        attributes, files = self.session.load_object("wheel")
        for attribute in ("position", "timestamps"):
            if attribute not in attributes:
                expected = self.session.session_path / "alf" / f"_ibl_wheel.{attribute}.npy"
                raise MissingSourceFileError(expected, "required wheel dataset not found")
        position = np.asarray(attributes["position"], dtype=np.float64)
        timestamps = np.asarray(attributes["timestamps"], dtype=np.float64)
        for attribute, values in (("position", position), ("timestamps", timestamps)):
            if values.ndim != 1:
                raise SourceFileError(files[attribute], f"expected a 1-D vector, found shape {values.shape}")
        require_increasing(timestamps, files["timestamps"])
        if not np.isfinite(position).all():
            raise SourceFileError(files["position"], "wheel position contains NaN or infinite values")

        behavior = get_module(nwbfile, "behavior", "Behavioural data: wheel, licks, video-derived measures.")
        behavior.add(SpatialSeries(
            name="wheel_position",
            description="Wheel angle, unwrapped, from the rotary encoder, sampled when the encoder "
                        "moved (irregular times).",
            data=position,
            timestamps=timestamps,
            unit="radians",
            reference_frame="Angle relative to the wheel's position at the start of the recording; IBL sign "
                            "convention (ALF _ibl_wheel.position).",
        ))
        if len(timestamps) > 1:
            velocity, starting_time = wheel_velocity(timestamps, position)
            behavior.add(TimeSeries(
                name="wheel_velocity",
                description=(f"Wheel angular velocity: wheel_position linearly interpolated at "
                             f"{VELOCITY_RATE_HZ:g} Hz, low-pass filtered (8th-order Butterworth, "
                             f"{VELOCITY_CORNER_HZ:g} Hz, zero phase) and differentiated."),
                data=velocity,
                unit="radians/s",
                starting_time=starting_time,
                rate=VELOCITY_RATE_HZ,
            ))
        if self.session.has("wheelMoves"):
            behavior.add(self._movements())

    def _movements(self) -> TimeIntervals:
        attributes, files = self.session.load_object("wheelMoves")
        if "intervals" not in attributes:
            expected = self.session.session_path / "alf" / "_ibl_wheelMoves.intervals.npy"
            raise MissingSourceFileError(expected, "wheel movements without their intervals")
        intervals = np.asarray(attributes.pop("intervals"), dtype=np.float64)
        if intervals.ndim != 2 or intervals.shape[1] != 2:
            raise SourceFileError(files["intervals"], f"movement intervals must be m x 2, found {intervals.shape}")
        require_increasing(intervals[:, 0], files["intervals"])
        columns = [
            Column("start_time", "Movement onset (s).", intervals[:, 0]),
            Column("stop_time", "Movement offset (s).", intervals[:, 1]),
        ]
        for attribute, values in attributes.items():
            if attribute == "peakAmplitude":
                columns.append(Column("peak_amplitude", "Largest signed displacement of the wheel from its "
                                      "position at onset during the movement (radians).", np.asarray(values)))
            else:
                columns.append(Column(column_name(attribute), f"IBL wheelMoves attribute '{attribute}' (ALF).",
                                      np.asarray(values)))
        return build_table(TimeIntervals, name="wheel_movements",
                           description="Wheel movements detected by the IBL extraction (ALF _ibl_wheelMoves).",
                           columns=columns)
