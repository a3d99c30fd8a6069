"""Wheel: position, velocity and movements round-trip; real IBL traces; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl import IblWheelInterface
from nwbridge.interfaces.ibl.wheel import wheel_velocity

WHEEL_RADIUS_CM = 3.1  # IBL rig wheel radius, to turn the fixture's cm into radians


def write_wheel(alf, timestamps, position, *, onsets=None, offsets=None, amplitudes=None):
    np.save(alf / "_ibl_wheel.timestamps.npy", timestamps)
    np.save(alf / "_ibl_wheel.position.npy", position)
    if onsets is not None:
        np.save(alf / "_ibl_wheelMoves.intervals.npy", np.column_stack([onsets, offsets]))
        np.save(alf / "_ibl_wheelMoves.peakAmplitude.npy", amplitudes)


def test_generated_wheel_round_trips(ibl_session, roundtrip):
    alf = ibl_session / "alf"
    behavior = roundtrip(IblWheelInterface(session_path=ibl_session)).processing["behavior"]
    position = behavior["wheel_position"]
    np.testing.assert_array_equal(position.data[:], np.load(alf / "_ibl_wheel.position.npy"))
    np.testing.assert_array_equal(position.timestamps[:], np.load(alf / "_ibl_wheel.timestamps.npy"))
    assert position.unit == "radians"
    moves = behavior["wheel_movements"].to_dataframe()
    intervals = np.load(alf / "_ibl_wheelMoves.intervals.npy")
    np.testing.assert_array_equal(moves["start_time"], intervals[:, 0])
    np.testing.assert_array_equal(moves["stop_time"], intervals[:, 1])
    np.testing.assert_array_equal(moves["peak_amplitude"], np.load(alf / "_ibl_wheelMoves.peakAmplitude.npy"))
    velocity = behavior["wheel_velocity"]
    assert velocity.rate == 1000.0 and velocity.unit == "radians/s"
    assert velocity.starting_time == position.timestamps[0]


@pytest.mark.parametrize("trace", ["fpga_x2_cm", "rigbox_x4_samples"])
def test_real_wheel_traces(trace, test_data, empty_session, roundtrip):
    """Two real IBL wheel traces (ibllib's fixture) with the movements IBL detected in them."""
    real = np.load(test_data / "ibl" / "brainbox" / "wheel_test.npz")
    # Positions are stored in cm (FPGA) or encoder samples (Rigbox X4: 4 x 1024 per turn); ALF is radians.
    scale = 1 / WHEEL_RADIUS_CM if trace.endswith("cm") else 2 * np.pi / (4 * 1024)
    timestamps, position = real[f"{trace}_t"], real[f"{trace}_pos"] * scale
    onsets, offsets = real[f"{trace}_move_onsets"], real[f"{trace}_move_offsets"]
    write_wheel(empty_session / "alf", timestamps, position, onsets=onsets, offsets=offsets,
                amplitudes=real[f"{trace}_move_amps"] * scale)

    behavior = roundtrip(IblWheelInterface(session_path=empty_session)).processing["behavior"]
    np.testing.assert_array_equal(behavior["wheel_position"].data[:], position)
    np.testing.assert_array_equal(behavior["wheel_position"].timestamps[:], timestamps)
    np.testing.assert_array_equal(behavior["wheel_movements"]["start_time"].data[:], onsets)

    # The velocity peaks where the IBL found the peak velocity of each movement.
    velocity = behavior["wheel_velocity"]
    speed = np.abs(velocity.data[:])
    times = velocity.starting_time + np.arange(len(speed)) / velocity.rate
    peak_times = real[f"{trace}_move_peak_vel"]
    errors = []
    for onset, offset, peak in zip(onsets, offsets, peak_times):
        inside = (times >= onset) & (times <= offset)
        errors.append(abs(times[inside][np.argmax(speed[inside])] - peak))
    assert np.median(errors) < 0.03
    # Integrating the velocity gives back the displacement.
    displacement = np.trapezoid(velocity.data[:], dx=1 / velocity.rate)
    assert displacement == pytest.approx(position[-1] - position[0], abs=0.02 * np.ptp(position))


def test_velocity_of_a_constant_turn_is_its_slope():
    timestamps = np.sort(np.random.default_rng(0).uniform(0, 10, 3000))
    velocity, start = wheel_velocity(timestamps, 2.5 * timestamps)
    assert start == timestamps[0]
    # Away from the filter's edge transients (~1 s at each end), the slope is recovered.
    np.testing.assert_allclose(velocity[1000:-1000], 2.5, rtol=1e-3)


def test_position_and_timestamps_of_different_lengths(empty_session, roundtrip):
    write_wheel(empty_session / "alf", np.arange(10.0), np.zeros(9))
    with pytest.raises(SourceFileError, match=r"_ibl_wheel\.(position|timestamps)\.npy: has (9|10) wheel rows"):
        roundtrip(IblWheelInterface(session_path=empty_session))
    assert not list(empty_session.parent.rglob("*.nwb*"))


def test_non_monotonic_timestamps(empty_session, roundtrip):
    timestamps = np.arange(10.0)
    timestamps[6] = 3.5
    write_wheel(empty_session / "alf", timestamps, np.zeros(10))
    with pytest.raises(SourceFileError, match=r"_ibl_wheel\.timestamps\.npy: timestamps are not increasing: "
                                              r"element 6 \(3\.5\) follows 5\.0"):
        roundtrip(IblWheelInterface(session_path=empty_session))


def test_truncated_npy(empty_session, roundtrip):
    alf = empty_session / "alf"
    write_wheel(alf, np.arange(1000.0), np.zeros(1000))
    path = alf / "_ibl_wheel.position.npy"
    path.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(SourceFileError, match=r"_ibl_wheel\.position\.npy: truncated: its header announces "
                                              r"shape \(1000,\)"):
        roundtrip(IblWheelInterface(session_path=empty_session))


def test_real_qc_wheel_snippet(test_data, empty_session, roundtrip):
    """A real wheel snippet from ibllib's QC fixtures: columns are time (s) and position (rad)."""
    real = np.load(test_data / "ibl" / "qc" / "wheel.npy")
    write_wheel(empty_session / "alf", real[:, 0], real[:, 1])
    position = roundtrip(IblWheelInterface(session_path=empty_session)).processing["behavior"]["wheel_position"]
    np.testing.assert_array_equal(position.timestamps[:], real[:, 0])
    np.testing.assert_array_equal(position.data[:], real[:, 1])
    # Encoder steps of one tick (2 pi / 1024 rad) survive exactly.
    steps = np.unique(np.round(np.abs(np.diff(position.data[:])) / (2 * np.pi / 1024), 6))
    assert set(steps) <= {0.0, 1.0, 2.0}
