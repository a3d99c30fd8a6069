"""Benchmark: IBL spike sorting into an NWB units table, nwbridge against neuroconv.

One command::

    .venv/bin/python benchmarks/bench_units.py [--probes 2] [--spikes 30000000] [--clusters 1500]

generates an IBL session with ``--probes`` probes of ``--spikes`` spikes and ``--clusters``
clusters each (``nwbridge.testing``), then converts its spike sorting to an NWB units table:

- nwbridge: ``IblProbesInterface`` + ``IblSortingInterface`` (spike times only, the same content
  as the baseline; then again with the per-spike amplitudes and depths, and with one worker);
- neuroconv: each probe's ``spikes.times`` / ``spikes.clusters`` as a spikeinterface
  ``NumpySorting``, added with ``neuroconv.tools.spikeinterface.add_sorting_to_nwbfile`` and
  written with ``configure_and_write_nwbfile``, spike times with the same filters (shuffle + gzip).

Each run is a fresh process; its wall time (from loading the ALF files to the closed NWB file,
libraries imported beforehand) and its peak resident memory (VmHWM) are measured inside it. The
table gives the ratios. Nothing here asserts a time: the numbers are for the reader.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from harness import argument_parser, measure, report


def _new_nwbfile():
    from pynwb import NWBFile

    return NWBFile(session_description="benchmark", identifier="benchmark",
                   session_start_time=datetime(2021, 5, 10, tzinfo=timezone.utc))


def run_nwbridge(session: Path, output: Path, *, spike_features: bool, workers: int | None) -> None:
    from nwbridge.interfaces.ibl import IblProbesInterface, IblSortingInterface
    from nwbridge.writing import write_nwbfile_atomically

    nwbfile = _new_nwbfile()
    IblProbesInterface(session_path=session).add_to_nwbfile(nwbfile)
    IblSortingInterface(session_path=session, spike_features=spike_features).add_to_nwbfile(nwbfile)
    write_nwbfile_atomically(nwbfile, output, overwrite=True, workers=workers)


def run_neuroconv(session: Path, output: Path) -> None:
    import numpy as np
    from neuroconv.tools.nwb_helpers import configure_and_write_nwbfile, get_default_backend_configuration
    from neuroconv.tools.spikeinterface import add_sorting_to_nwbfile
    from spikeinterface.core import NumpySorting

    from nwbridge.interfaces.ibl.alf import AlfSession
    from nwbridge.interfaces.ibl.probes import find_probes

    alf_session = AlfSession(session)
    nwbfile = _new_nwbfile()
    for probe in find_probes(alf_session):
        collection = session / probe.sorting_collection
        times = np.load(collection / "spikes.times.npy")
        clusters = np.load(collection / "spikes.clusters.npy")
        sorting = NumpySorting.from_times_and_labels([times], [clusters.astype(np.int64)], sampling_frequency=30000.0)
        sorting = sorting.rename_units([f"{probe.name}_{unit}" for unit in sorting.unit_ids])
        del times, clusters
        add_sorting_to_nwbfile(sorting, nwbfile)
    configuration = get_default_backend_configuration(nwbfile, backend="hdf5")
    for location, dataset in configuration.dataset_configurations.items():
        if location.startswith("units/spike_times"):
            dataset.compressors = ["shuffle", "gzip"]
    configure_and_write_nwbfile(nwbfile, nwbfile_path=output, backend_configuration=configuration)


def _child(arguments) -> None:
    session, output = Path(arguments.session), Path(arguments.output)
    # Imports are not part of a conversion's cost: load each side's libraries before the clock starts.
    if arguments.run == "neuroconv":
        import neuroconv.tools.spikeinterface  # noqa: F401
        import spikeinterface.core  # noqa: F401
    else:
        import nwbridge.interfaces.ibl  # noqa: F401
        import nwbridge.writing  # noqa: F401
    start = time.perf_counter()
    if arguments.run == "neuroconv":
        run_neuroconv(session, output)
    else:
        run_nwbridge(session, output, spike_features=arguments.run == "nwbridge+features",
                     workers=arguments.workers)
    report(time.perf_counter() - start, output)


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=2)
    parser.add_argument("--spikes", type=float, default=30e6, help="spikes per probe")
    parser.add_argument("--clusters", type=int, default=1500, help="clusters per probe")
    arguments = parser.parse_args()
    if arguments.run:
        return _child(arguments)

    from nwbridge.testing import make_ibl_session

    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="bench_units_"))
    n_spikes = int(arguments.spikes)
    names = tuple(f"probe{index:02d}" for index in range(arguments.probes))
    print(f"Generating {arguments.probes} probe(s) x {n_spikes:,} spikes x {arguments.clusters} clusters in {workdir} ...")
    start = time.perf_counter()
    session = make_ibl_session(workdir / "source", probes=names, n_spikes=n_spikes, n_units=arguments.clusters,
                               cameras=(), passive=False, n_trials=50, duration_s=max(600.0, n_spikes / 5000))
    print(f"  generated in {time.perf_counter() - start:.1f} s")
    spike_bytes = sum((session / f"alf/{name}/pykilosort/spikes.{attribute}.npy").stat().st_size
                      for name in names for attribute in ("times", "clusters"))

    runs = [("nwbridge", "nwbridge", None), ("nwbridge, 1 worker", "nwbridge", 1),
            ("nwbridge + spike amplitudes/depths", "nwbridge+features", None)]
    if not arguments.skip_neuroconv:
        runs.append(("neuroconv add_sorting_to_nwbfile", "neuroconv", None))
    results = {}
    for label, run, workers in runs:
        output = workdir / f"{run}-{workers or 'all'}.nwb"
        print(f"Running {label} ...", flush=True)
        results[label] = measure(__file__, run, session, output, workers=workers)
        output.unlink(missing_ok=True)

    mb = 1024 * 1024
    print(f"\nSpike arrays (spikes.times + spikes.clusters, all probes): {spike_bytes / mb:,.0f} MB")
    print(f"{'run':<38} {'time (s)':>9} {'peak RSS (MB)':>14} {'output (MB)':>12} {'peak / spike arrays':>20}")
    for label, result in results.items():
        print(f"{label:<38} {result['seconds']:>9.2f} {result['peak_rss'] / mb:>14,.0f} {result['bytes'] / mb:>12,.0f}"
              f" {result['peak_rss'] / spike_bytes:>20.2f}")
    baseline = results.get("neuroconv add_sorting_to_nwbfile")
    if baseline:
        ours = results["nwbridge"]
        print(f"\nnwbridge vs neuroconv: {baseline['seconds'] / ours['seconds']:.1f}x faster, "
              f"peak memory {ours['peak_rss'] / baseline['peak_rss']:.2f} of neuroconv's")
    if arguments.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
