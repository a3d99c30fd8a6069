"""Benchmark: whole-release throughput on dask.distributed, with 1 and with 2 workers.

One command::

    .venv/bin/python benchmarks/bench_release.py [--sessions 8] [--size small|medium]

generates ``--sessions`` sessions, half IBL (ONE cache layout, with a release list) and half Allen
VBN (S3 cache layout with LFP files, with a sessions table), then converts both releases
(``nwbridge.converters.release.run_release``: IBL processed files; Allen processed and raw (LFP)
files) into a fresh dandiset folder with a LocalCluster of 1 worker, then of 2 workers. Each
measurement is a fresh process timing everything a user waits for: starting the cluster, planning,
the conversions (each in its own process on a worker), checksums and the manifest. It prints the
time, sessions/min, GB of sources/min, the driver's peak resident memory (Linux VmHWM; conversions
run in other processes), and the speed-up of 2 workers over 1 with its parallel efficiency.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

from harness import argument_parser, measure, peak_rss

# (IBL session options, Allen session options) per size.
SIZES = {
    "small": (dict(n_trials=100, duration_s=900, cameras=(), probes=("probe00",), n_units=60),
              dict(probes=("probeA", "probeB"), n_units_per_probe=30, duration_s=600, lfp_channels=24,
                   lfp_duration_s=60)),
    "medium": (dict(n_trials=400, duration_s=3000, cameras=("left",), probes=("probe00", "probe01"), n_units=200),
               dict(probes=("probeA", "probeB", "probeC"), n_units_per_probe=100, duration_s=1800, lfp_channels=48,
                    lfp_duration_s=300)),
}
_LABS = ("cortexlab", "churchlandlab", "danlab", "hoferlab", "mainenlab", "angelakilab", "wittenlab", "zadorlab")


def generate(workdir: Path, sessions: int, size: str) -> None:
    """``sessions`` sessions, alternately IBL and Allen, with their release tables, under ``workdir``."""
    import pandas as pd

    from nwbridge.testing import make_ibl_session, make_vbn_session

    ibl_options, allen_options = SIZES[size]
    n_ibl, n_allen = (sessions + 1) // 2, sessions // 2
    rows = []
    for index in range(n_ibl):
        lab, subject, date = _LABS[index % len(_LABS)], f"BENCH{index:03d}", "2021-05-10"
        eid = f"00000000-0000-4000-8000-{index:012d}"
        make_ibl_session(workdir / "ibl", lab=lab, subject=subject, date=date, eid=eid, birth_date="2020-01-01",
                         seed=index, **ibl_options)
        rows.append(["", f"pid{index}", eid, "probe00", 1, date, subject, lab])
    with open(workdir / "ibl_release.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["", "pid", "eid", "probe_name", "session_number", "date", "subject", "lab"])
        writer.writerows(rows)
    table = pd.read_csv(Path(__import__("nwbridge").__file__).parent / "testing/data/allen/vbn_ecephys_sessions.csv")
    chosen = table.iloc[:n_allen]
    for index, session_id in enumerate(chosen["ecephys_session_id"]):
        make_vbn_session(workdir / "allen" / "behavior_ecephys_sessions" / str(session_id),
                         ecephys_session_id=int(session_id), seed=index, **allen_options)
    chosen.to_csv(workdir / "vbn_sessions.csv", index=False)


def _child(arguments) -> None:
    import warnings

    warnings.simplefilter("ignore")
    workdir, output = Path(arguments.session), Path(arguments.output)
    # Imports are not part of the run's cost: loaded before the clock starts.
    from nwbridge.converters.release import release_client, run_release
    from nwbridge.converters.release_sources import (locate_allen_session, locate_ibl_session, read_ibl_release,
                                                     read_vbn_sessions)

    start = time.perf_counter()
    ibl = [locate_ibl_session(entry, workdir / "ibl") for entry in read_ibl_release(workdir / "ibl_release.csv")]
    allen = [locate_allen_session(entry, workdir / "allen") for entry in read_vbn_sessions(workdir / "vbn_sessions.csv")]
    with release_client(workers=arguments.workers) as client:
        reports = [run_release(ibl, output / "ibl", raw=False, client=client, progress=False),
                   run_release(allen, output / "allen", raw=True, client=client, progress=False)]
    seconds = time.perf_counter() - start
    failed = [(task.name, error) for report in reports for task, error, *_ in report.failed]
    if failed:
        raise SystemExit(f"failed tasks: {failed}")
    converted = [item for report in reports for item in report.converted]
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss(), "tasks": len(converted),
                      "sessions": len({task.session.session_id for task, _ in converted}),
                      "input_bytes": sum(task.input_bytes for task, _ in converted),
                      "bytes": sum(result["output_bytes"] for _, result in converted)}))


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="sessions to generate, half IBL, half Allen")
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help="size of each session")
    arguments = parser.parse_args()
    if arguments.run:
        return _child(arguments)

    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="bench_release_"))
    print(f"Generating {arguments.sessions} {arguments.size} sessions in {workdir} ...", flush=True)
    start = time.perf_counter()
    generate(workdir, arguments.sessions, arguments.size)
    print(f"  generated in {time.perf_counter() - start:.1f} s", flush=True)

    results = {}
    for workers in (1, 2):
        output = workdir / f"dandiset-{workers}"
        shutil.rmtree(output, ignore_errors=True)
        print(f"Converting with {workers} worker(s) ...", flush=True)
        results[workers] = measure(__file__, "release", workdir, output, workers=workers)
        shutil.rmtree(output, ignore_errors=True)

    mb, gb = 1024**2, 1024**3
    first = results[1]
    print(f"\n{first['sessions']} sessions, {first['tasks']} tasks, {first['input_bytes'] / mb:,.0f} MB of sources "
          f"-> {first['bytes'] / mb:,.0f} MB of NWB")
    print(f"{'workers':>7} {'time (s)':>9} {'sessions/min':>13} {'GB/min':>8} {'driver peak RSS (MB)':>21}")
    for workers, result in results.items():
        minutes = result["seconds"] / 60
        print(f"{workers:>7} {result['seconds']:>9.1f} {result['sessions'] / minutes:>13.1f} "
              f"{result['input_bytes'] / gb / minutes:>8.3f} {result['peak_rss'] / mb:>21,.0f}")
    speedup = results[1]["seconds"] / results[2]["seconds"]
    print(f"\nspeed-up with 2 workers: {speedup:.2f}x, parallel efficiency {speedup / 2:.0%}")
    if arguments.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
