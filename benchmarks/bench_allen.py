"""Benchmark: one Allen Visual Behavior Neuropixels session (session file + LFP files) into the shared representation.

- nwbridge: ``convert_allen_session`` writing the processed file (units, trials, stimuli, behaviour)
  and the raw file (the LFP of every probe), compressed on every core; and the processed file alone.
- floor: reading every dataset of the source files once with h5py (what any conversion must at least do).

No converter of these files exists to compare with (AllenSDK reads them but writes no other NWB), so
the reference is the floor. Default size: a realistic session, 6 probes x 330 units (about 2,000 units,
55 M spikes), one hour, with 600 s of 96-channel LFP per probe (--lfp-duration 3600 for all of it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from harness import argument_parser, measure, peak_rss


def read_everything(session: Path) -> int:
    """Read every dataset of the session's files once; returns the bytes read."""
    import h5py

    total = 0
    for path in sorted(session.parent.glob("*.nwb")):
        with h5py.File(path, "r") as file:
            datasets = []
            file.visititems(lambda name, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None)
            for dataset in datasets:
                if dataset.dtype.kind in "biuf" and dataset.size:
                    # In blocks along the first axis, so memory stays small whatever the dataset's size.
                    step = max(1, (64 << 20) // max(1, dataset.nbytes // max(1, dataset.shape[0])))
                    for start in range(0, dataset.shape[0], step):
                        total += dataset[start:start + step].nbytes
                else:
                    total += len(dataset[()]) if dataset.shape else 1
    return total


def _child(arguments) -> None:
    import warnings

    warnings.simplefilter("ignore")
    session, output = Path(arguments.session), Path(arguments.output)
    # Imports are not part of a conversion's cost: loaded before the clock starts.
    from nwbridge.converters.allen_session import convert_allen_session
    import nwbridge.interfaces.allen  # noqa: F401

    start = time.perf_counter()
    if arguments.run == "floor":
        total = read_everything(session)
    else:
        probe_files = [] if arguments.run == "nwbridge-processed" else None
        written = convert_allen_session(session, output, probe_files=probe_files, workers=arguments.workers,
                                        progress=False, overwrite=True)
        total = sum(path.stat().st_size for path in written)
    seconds = time.perf_counter() - start
    # The output is a folder of files here: report their total size.
    print(json.dumps({"seconds": seconds, "bytes": total if arguments.run != "floor" else 0,
                      "peak_rss": peak_rss()}))


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=6, help="number of probes (default 6)")
    parser.add_argument("--units-per-probe", type=int, default=330, help="default 330")
    parser.add_argument("--duration", type=float, default=3600.0, help="session seconds (default 3600)")
    parser.add_argument("--lfp-duration", type=float, default=600.0, help="LFP seconds per probe (default 600)")
    arguments = parser.parse_args()
    if arguments.run:
        return _child(arguments)

    from nwbridge.testing import make_vbn_session

    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="bench_allen_"))
    probes = tuple(f"probe{letter}" for letter in "ABCDEF"[:arguments.probes])
    print(f"Generating a VBN session: {len(probes)} probes x {arguments.units_per_probe} units, "
          f"{arguments.duration:g} s, {arguments.lfp_duration:g} s of LFP, in {workdir} ...", flush=True)
    start = time.perf_counter()
    session = make_vbn_session(workdir / "source", probes=probes, n_units_per_probe=arguments.units_per_probe,
                               duration_s=arguments.duration, lfp_channels=96,
                               lfp_duration_s=min(arguments.lfp_duration, arguments.duration), seed=0)
    print(f"  generated in {time.perf_counter() - start:.1f} s: {session.n_units:,} units, "
          f"{session.n_spikes:,} spikes, {session.n_trials} trials", flush=True)
    sources = sorted(session.session_file.parent.glob("*.nwb"))
    source_bytes = sum(path.stat().st_size for path in sources)

    runs = [("nwbridge, processed + raw (LFP)", "nwbridge"), ("nwbridge, processed only", "nwbridge-processed"),
            ("floor: read every source dataset once (h5py)", "floor")]
    results = {}
    for label, run in runs:
        output = workdir / f"out-{run}"
        output.mkdir(exist_ok=True)
        print(f"Running {label} ...", flush=True)
        results[label] = measure(__file__, run, session.session_file, output)
        shutil.rmtree(output, ignore_errors=True)

    mb = 1024 * 1024
    print(f"\nSource files: {len(sources)} ({source_bytes / mb:,.0f} MB)")
    print(f"{'run':<48} {'time (s)':>9} {'peak RSS (MB)':>14} {'output (MB)':>12}")
    for label, result in results.items():
        print(f"{label:<48} {result['seconds']:>9.1f} {result['peak_rss'] / mb:>14,.0f} {result['bytes'] / mb:>12,.0f}")
    if arguments.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
