"""One analysis, two datasets: the same functions run unchanged on an IBL and an Allen conversion.

The functions below use only the names the shared representation fixes (``units.spike_times``,
``units.location``, ``units.is_good``, ``trials.stimulus_onset_time``, ``trials.outcome``, the
``licks`` and ``rewards`` events tables), so they do not know which lab recorded the file.

Run: ``.venv/bin/python examples/shared_analysis.py FILE.nwb [FILE.nwb ...]`` on processed files
(``*_desc-processed_behavior+ecephys.nwb``). Without files, one session of each source is generated
and converted first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from pynwb import NWBHDF5IO


def firing_rate_by_region(nwbfile, *, window: tuple[float, float] = (0.0, 0.25),
                          baseline: tuple[float, float] = (-0.25, 0.0), good_only: bool = True) -> dict[str, dict]:
    """Mean firing rate of the units of each brain region before and after stimulus onset.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
        A processed file of the shared representation, open for reading.
    window, baseline : tuple of float
        Seconds relative to each trial's ``stimulus_onset_time`` (trials without an onset are skipped).
    good_only : bool, default: True
        Keep the units the source recommends (``is_good``).

    Returns
    -------
    dict
        ``{region acronym: {"units": n, "baseline_hz": rate, "response_hz": rate}}``.
    """
    onsets = np.asarray(nwbfile.trials["stimulus_onset_time"][:], dtype=float)
    onsets = onsets[np.isfinite(onsets)]
    units = nwbfile.units
    locations = np.asarray(units["location"][:])
    keep = np.asarray(units["is_good"][:], dtype=bool) if good_only else np.ones(len(locations), dtype=bool)
    spike_times = units["spike_times"]
    per_region: dict[str, list] = {}
    for row in np.flatnonzero(keep):
        times = np.asarray(spike_times[row])
        rates = []
        for start, stop in (baseline, window):
            counts = np.searchsorted(times, onsets + stop) - np.searchsorted(times, onsets + start)
            rates.append(counts.sum() / (len(onsets) * (stop - start)) if len(onsets) else np.nan)
        per_region.setdefault(str(locations[row]), []).append(rates)
    return {region: {"units": len(rates), "baseline_hz": float(np.mean([r[0] for r in rates])),
                     "response_hz": float(np.mean([r[1] for r in rates]))}
            for region, rates in sorted(per_region.items())}


def licks_and_rewards_by_outcome(nwbfile) -> dict[str, dict]:
    """Trials, licks and reward volume for each trial outcome.

    Returns
    -------
    dict
        ``{outcome: {"trials": n, "licks": licks during those trials, "reward_ul": total µL,
        "rewarded_trials": n}}``.
    """
    trials = nwbfile.trials
    starts = np.asarray(trials["start_time"][:])
    stops = np.asarray(trials["stop_time"][:])
    outcomes = np.asarray(trials["outcome"][:]).astype(str)
    volumes = np.asarray(trials["reward_volume_ul"][:], dtype=float)
    rewarded = np.asarray(trials["is_rewarded"][:], dtype=bool)
    licks = np.sort(np.asarray(nwbfile.get_events_table("licks")["timestamp"][:]))
    licks_per_trial = np.searchsorted(licks, stops) - np.searchsorted(licks, starts)
    summary = {}
    for outcome in sorted(set(outcomes)):
        chosen = outcomes == outcome
        summary[outcome] = {"trials": int(chosen.sum()), "licks": int(licks_per_trial[chosen].sum()),
                            "reward_ul": float(np.nansum(volumes[chosen])),
                            "rewarded_trials": int(rewarded[chosen].sum())}
    return summary


def report(path: Path) -> tuple[dict, dict]:
    """Print both analyses of one processed file and return them."""
    with NWBHDF5IO(path, mode="r") as io:
        nwbfile = io.read()
        rates = firing_rate_by_region(nwbfile)
        outcomes = licks_and_rewards_by_outcome(nwbfile)
    print(f"{path.name}")
    print("  region         units  baseline (Hz)  response (Hz)")
    for region, values in rates.items():
        print(f"  {region:<14} {values['units']:>5}  {values['baseline_hz']:>13.2f}  {values['response_hz']:>13.2f}")
    print("  outcome          trials  licks  reward (µL)")
    for outcome, values in outcomes.items():
        print(f"  {outcome:<16} {values['trials']:>6}  {values['licks']:>5}  {values['reward_ul']:>11.1f}")
    return rates, outcomes


def main(paths: list[Path] | None = None) -> list[Path]:
    if not paths:
        import nwbridge
        from nwbridge.testing import make_ibl_session, make_vbn_session

        work = Path(tempfile.mkdtemp())
        ibl = make_ibl_session(work / "ibl", n_trials=100, cameras=(), seed=0)
        allen = make_vbn_session(work / "allen", seed=0)
        paths = [nwbridge.convert_ibl_session(ibl, work / "dandiset", progress=False)[0],
                 nwbridge.convert_allen_session(allen.session_file, work / "dandiset", probe_files=[],
                                                progress=False)[0]]
    for path in paths:
        report(Path(path))
    return list(paths)


if __name__ == "__main__":
    main([Path(argument) for argument in sys.argv[1:]])
