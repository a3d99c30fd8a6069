"""The examples run as documented."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_convert_ibl_session_example(tmp_path, capsys):
    from nwbridge.testing import make_ibl_session

    session = make_ibl_session(tmp_path / "src", n_trials=40, duration_s=600, seed=9, cameras=())
    example = runpy.run_path(str(EXAMPLES / "convert_ibl_session.py"))
    path = example["main"](session, tmp_path / "out")
    output = capsys.readouterr().out
    assert path.exists() and f"{path.name}: 40 trials" in output
    assert "correct" in output and "licks in the second after a reward" in output


def _shared_analysis():
    return runpy.run_path(str(EXAMPLES / "shared_analysis.py"))


def test_shared_analysis_runs_unchanged_on_both_sources(tmp_path, capsys):
    """The same functions run on an IBL and an Allen output; their answers equal the sources' own."""
    import h5py
    import numpy as np
    import pandas as pd
    from pynwb import NWBHDF5IO

    import nwbridge
    from nwbridge.testing import make_ibl_session, make_vbn_session

    ibl = make_ibl_session(tmp_path / "ibl", n_trials=60, duration_s=700, cameras=(), seed=11)
    allen = make_vbn_session(tmp_path / "allen", n_units_per_probe=12, duration_s=400, seed=11)
    (ibl_file,) = nwbridge.convert_ibl_session(ibl, tmp_path / "out", progress=False)
    (allen_file,) = nwbridge.convert_allen_session(allen.session_file, tmp_path / "out", probe_files=[],
                                                   progress=False)
    example = _shared_analysis()
    results = {}
    for name, path in (("ibl", ibl_file), ("allen", allen_file)):
        with NWBHDF5IO(path, mode="r") as io:
            nwbfile = io.read()
            results[name] = (example["firing_rate_by_region"](nwbfile),
                             example["licks_and_rewards_by_outcome"](nwbfile))

    # IBL outcomes and rewards, from the ALF trials table.
    trials = pd.read_parquet(ibl / "alf" / "_ibl_trials.table.pqt")
    outcome = np.where(trials["choice"] == 0, "no_go", np.where(trials["feedbackType"] == 1, "correct", "incorrect"))
    _, ibl_outcomes = results["ibl"]
    assert {key: value["trials"] for key, value in ibl_outcomes.items()} == dict(
        zip(*np.unique(outcome, return_counts=True)))
    assert ibl_outcomes["correct"]["reward_ul"] == trials["rewardVolume"][outcome == "correct"].sum()

    # Allen outcomes and rewards (mL in the source), from the session file.
    with h5py.File(allen.session_file, "r") as source:
        flags = {name: source[f"intervals/trials/{name}"][:].astype(bool)
                 for name in ("hit", "miss", "false_alarm", "correct_reject", "aborted", "auto_rewarded")}
        volume_ml = source["intervals/trials/reward_volume"][:]
        units = source["units"]
        good = ((units["quality"][:].astype(str) == "good") & (units["isi_violations"][:] < 0.5)
                & (units["amplitude_cutoff"][:] < 0.1) & (units["presence_ratio"][:] > 0.9))
        channel_ids = source["general/extracellular_ephys/electrodes/id"][:]
        locations = source["general/extracellular_ephys/electrodes/location"][:].astype(str)
        ccf = np.column_stack([source[f"general/extracellular_ephys/electrodes/{axis}"][:] for axis in "xyz"])
        peak_rows = np.searchsorted(channel_ids, units["peak_channel_id"][:]) if np.all(np.diff(channel_ids) > 0) \
            else np.array([np.flatnonzero(channel_ids == peak)[0] for peak in units["peak_channel_id"][:]])
    _, allen_outcomes = results["allen"]
    for name in ("hit", "miss", "false_alarm", "correct_reject", "aborted"):
        assert allen_outcomes.get(name, {"trials": 0})["trials"] == flags[name].sum()
    auto = flags["auto_rewarded"] & ~np.any([flags[n] for n in ("hit", "miss", "false_alarm", "correct_reject",
                                                                "aborted")], axis=0)
    assert allen_outcomes.get("auto_rewarded", {"trials": 0})["trials"] == auto.sum()
    assert sum(value["reward_ul"] for value in allen_outcomes.values()) == pytest.approx(
        np.nansum(volume_ml) * 1000)

    # Good units per region: the Allen rule and the peak channel's region, unknown where not registered.
    unregistered = np.all(ccf == 0, axis=1) | (locations == "")
    region = np.where(unregistered[peak_rows], "unknown", locations[peak_rows])
    expected = dict(zip(*np.unique(region[good], return_counts=True)))
    allen_rates, _ = results["allen"]
    assert {key: value["units"] for key, value in allen_rates.items()} == expected
    ibl_rates, _ = results["ibl"]
    assert sum(value["units"] for value in ibl_rates.values()) > 0
    for rates, _ in results.values():
        assert all(np.isfinite(value["response_hz"]) and value["response_hz"] >= 0 for value in rates.values())


def test_convert_release_example(tmp_path, capsys):
    """The release example's demo converts its four sessions, and a second run redoes nothing."""
    import sqlite3

    example = runpy.run_path(str(EXAMPLES / "convert_release.py"))
    release_csv, root = example["make_demo"](tmp_path)
    report = example["convert_ibl_release"](release_csv, root, tmp_path / "dandiset", workers=2)
    assert report.ok
    written = sorted((tmp_path / "dandiset").rglob("*.nwb"))
    assert len(written) == 4
    mtimes = [path.stat().st_mtime_ns for path in written]
    manifest = tmp_path / "dandiset" / ".nwbridge" / "manifest.sqlite"
    with sqlite3.connect(manifest) as connection:
        statuses = connection.execute("select status, count(*) from tasks group by status").fetchall()
    assert statuses == [("done", 4)]
    example["convert_ibl_release"](release_csv, root, tmp_path / "dandiset", workers=2)
    assert [path.stat().st_mtime_ns for path in written] == mtimes
    assert "4 sessions" in capsys.readouterr().out
