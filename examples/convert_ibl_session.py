"""Convert one IBL session and read a few things back: the path a scientist takes from Python.

Run: ``.venv/bin/python examples/convert_ibl_session.py [SESSION_PATH] [OUTPUT_DIR]``.
Without a session path, a realistic one is generated first (``nwbridge.testing``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from pynwb import NWBHDF5IO

import nwbridge


def main(session_path: Path | None = None, output_dir: Path | None = None) -> Path:
    if session_path is None:
        from nwbridge.testing import make_ibl_session

        session_path = make_ibl_session(Path(tempfile.mkdtemp()) / "ibl", n_trials=100, seed=0)
    output_dir = Path(output_dir or tempfile.mkdtemp())
    (path,) = nwbridge.convert_ibl_session(session_path, output_dir, overwrite=True)

    with NWBHDF5IO(path, mode="r") as io:
        nwbfile = io.read()
        trials = nwbfile.trials.to_dataframe()
        reaction = trials["first_movement_time"] - trials["stimulus_onset_time"]
        print(f"{path.name}: {len(trials)} trials")
        print(trials.groupby("outcome").size().to_string())
        print(f"median reaction time: {np.nanmedian(reaction):.3f} s")
        licks = nwbfile.get_events_table("licks")["timestamp"][:]
        rewards = nwbfile.get_events_table("rewards")["timestamp"][:]
        # Licks in the second after each reward: the same question runs on an Allen file.
        after = [np.count_nonzero((licks >= t) & (licks < t + 1.0)) for t in rewards]
        print(f"{len(licks)} licks, {len(rewards)} rewards, {np.mean(after):.1f} licks in the second after a reward")
    return path


if __name__ == "__main__":
    main(*(Path(argument) for argument in sys.argv[1:3]))
