"""Convert a whole release from Python: what ``nwbridge release ibl`` does, step by step.

Usage::

    python examples/convert_release.py RELEASE_CSV ONE_CACHE_ROOT DANDISET_DIR [--workers 2] [--dry-run]
    python examples/convert_release.py --demo FOLDER      # generates 4 small sessions and converts them

Run it again after stopping it (Ctrl-C, or a kill): what was finished is kept, the rest is done.
On a SLURM cluster, pass the client of a dask-jobqueue cluster (see ``slurm_client`` below and
docs/release.md); every path must then be visible from the compute nodes.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from nwbridge.converters.manifest import Manifest
from nwbridge.converters.release import release_status, run_release
from nwbridge.converters.release_plan import decide, plan_tasks
from nwbridge.converters.release_report import format_plan
from nwbridge.converters.release_sources import locate_ibl_session, read_ibl_release


def convert_ibl_release(release_csv, root, output_dir, *, workers=2, raw=False, dry_run=False, client=None):
    """Convert every session of an IBL release list found under a ONE cache ``root``; print what happened.

    Parameters
    ----------
    release_csv : str or Path
        The release list (``2023_12_bwm_release.csv`` layout: one row per probe insertion).
    root : str or Path
        The ONE cache root holding the sessions.
    output_dir : str or Path
        The dandiset folder.
    workers : int
        Worker processes of the local cluster (ignored with ``client``).
    raw : bool
        Also write the raw files.
    dry_run : bool
        Only list the tasks, their input sizes and what a run would do.
    client : distributed.Client, optional
        A client of an existing cluster (e.g. :func:`slurm_client`).

    Returns
    -------
    ReleaseReport or None
        None for a dry run.
    """
    root, output_dir = Path(root).absolute(), Path(output_dir).absolute()
    sessions = [locate_ibl_session(entry, root) for entry in read_ibl_release(release_csv)]
    print(f"{len(sessions)} sessions in {release_csv}, {sum(session.found for session in sessions)} found in {root}")
    if dry_run:
        tasks = plan_tasks(sessions, output_dir, raw=raw)
        try:
            with Manifest.in_folder(output_dir, readonly=True) as manifest:
                records = {record.key: record for record in manifest.records()}
        except FileNotFoundError:  # nothing converted yet
            records = {}
        print(format_plan([decide(task, records.get(task.key), retry_failed=False) for task in tasks]))
        return None
    report = run_release(sessions, output_dir, raw=raw, workers=workers, client=client)
    print(report.format())
    print()
    print(release_status(output_dir))
    return report


def slurm_client(*, jobs=10, cores=4, memory_gb=16):
    """A dask client on SLURM through dask-jobqueue (``pip install dask-jobqueue``): one worker per job.

    Each worker offers ``memory_gb - 2`` GB to tasks (``--resources memory=...``), keeping 2 GB for
    the worker itself; a task asks for its estimate, so a node runs as many conversions as fit.
    """
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    cluster = SLURMCluster(cores=cores, processes=1, memory=f"{memory_gb}GB", walltime="04:00:00",
                           worker_extra_args=["--resources", f"memory={memory_gb - 2}"])
    cluster.scale(jobs=jobs)
    return Client(cluster)


def make_demo(folder) -> tuple[Path, Path]:
    """Four small generated sessions in a ONE cache under ``folder`` and their release list."""
    from nwbridge.testing import make_ibl_session

    folder = Path(folder)
    rows = []
    for index, (lab, subject) in enumerate([("cortexlab", "KS055"), ("churchlandlab", "CSHL049"),
                                            ("danlab", "DY_013"), ("hoferlab", "SWC_043")]):
        eid = f"00000000-0000-4000-8000-{index:012d}"
        make_ibl_session(folder / "one_cache", lab=lab, subject=subject, date="2021-05-10", eid=eid, n_trials=40,
                         duration_s=600, cameras=(), probes=("probe00",), n_units=20, birth_date="2020-01-01",
                         seed=index)
        rows.append([index, f"pid-{index}", eid, "probe00", 1, "2021-05-10", subject, lab])
    release_csv = folder / "release.csv"
    with open(release_csv, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["", "pid", "eid", "probe_name", "session_number", "date", "subject", "lab"])
        writer.writerows(rows)
    return release_csv, folder / "one_cache"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="RELEASE_CSV ONE_CACHE_ROOT DANDISET_DIR")
    parser.add_argument("--demo", type=Path, metavar="FOLDER", help="generate 4 small sessions in FOLDER and convert")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    arguments = parser.parse_args()
    if arguments.demo:
        release_csv, root = make_demo(arguments.demo)
        output_dir = arguments.demo / "dandiset"
    elif len(arguments.paths) == 3:
        release_csv, root, output_dir = arguments.paths
    else:
        parser.error("give RELEASE_CSV ONE_CACHE_ROOT DANDISET_DIR, or --demo FOLDER")
    report = convert_ibl_release(release_csv, root, output_dir, workers=arguments.workers, raw=arguments.raw,
                                 dry_run=arguments.dry_run)
    raise SystemExit(0 if report is None or report.ok else 1)


# The guard matters: dask starts its worker processes by re-importing this file.
if __name__ == "__main__":
    main()
