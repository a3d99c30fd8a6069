"""The probe-to-session clock of raw recordings: a line where it fits, the IBL's interpolation otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl.raw_ephys import session_clock

PATH = Path("_spikeglx_ephysData_g0_t0.imec0.timestamps.npy")


def test_linear_drift_is_stored_as_starting_time_and_rate():
    samples = np.array([0.0, 900_000.0, 1_800_000.0, 2_700_000.0])
    seconds = 12.5 + samples / 30000.0 * (1 + 2e-5)
    clock = session_clock(np.column_stack([samples, seconds]), rate=30000.0, path=PATH)
    assert clock.linear
    assert clock.starting_time == pytest.approx(12.5, abs=1e-9)
    assert clock.rate == pytest.approx(30000.0 / (1 + 2e-5), rel=1e-12)
    np.testing.assert_allclose(clock.times(0, 2_700_001)[samples.astype(int)], seconds, atol=1e-9)
    assert "straight line through the 4 sync points" in clock.describe()


def test_a_clock_that_bends_keeps_the_ibl_interpolation_exactly():
    samples = np.array([0.0, 900_000.0, 1_800_000.0])
    seconds = np.array([0.0, 30.0, 60.01])  # 10 ms off a line: far beyond a tenth of a sample
    clock = session_clock(np.column_stack([samples, seconds]), rate=30000.0, path=PATH)
    assert not clock.linear
    assert clock.largest_deviation_s > 1e-3
    wanted = np.arange(0, 2_000_000, 997, dtype=np.float64)
    inside = wanted <= samples[-1]
    np.testing.assert_array_equal(clock.times(0, 2_000_000)[::997][inside], np.interp(wanted[inside], samples, seconds))
    # Past the last sync point the last segment's slope continues, as the IBL extrapolates.
    slope = (seconds[2] - seconds[1]) / (samples[2] - samples[1])
    np.testing.assert_allclose(clock.times(1_999_999, 2_000_000), seconds[2] + (1_999_999 - samples[2]) * slope)
    assert "explicit timestamps" in clock.describe()


def test_tolerance_is_a_fraction_of_a_sample():
    samples = np.array([0.0, 1000.0, 2000.0])
    off_by = 0.05 / 30000.0  # half the default tolerance of a tenth of a sample
    seconds = samples / 30000.0 + np.array([0.0, off_by, 0.0])
    assert session_clock(np.column_stack([samples, seconds]), rate=30000.0, path=PATH).linear
    assert not session_clock(np.column_stack([samples, seconds]), rate=30000.0, path=PATH,
                             tolerance_samples=0.01).linear


def test_bad_sync_points_name_the_file():
    with pytest.raises(SourceFileError, match="timestamps.npy: sync points are not increasing"):
        session_clock(np.array([[0.0, 0.0], [10.0, 1.0], [5.0, 2.0]]), rate=30000.0, path=PATH)
    with pytest.raises(SourceFileError, match=r"expected k x 2 sync points"):
        session_clock(np.zeros(3), rate=30000.0, path=PATH)
