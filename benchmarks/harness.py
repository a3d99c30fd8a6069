"""What the benchmarks share: running one measured conversion in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux VmHWM).

    Not ``wait4``'s ``ru_maxrss``: that counts the memory of the parent the child was forked from
    (the parent holds the generated session), so it would report the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory is measured on Linux only")


def report(seconds: float, output: Path) -> None:
    """Print a child run's result, as the last line of its output, for :func:`measure`."""
    print(json.dumps({"seconds": seconds, "bytes": output.stat().st_size, "peak_rss": peak_rss()}))


def measure(script: str, run: str, session: Path, output: Path, *, workers: int | None = None) -> dict:
    """Run ``script --run RUN`` in a fresh process and return its time, output size and peak memory."""
    # Flush what earlier steps wrote (the generated session, the previous run's output): otherwise the
    # kernel writes it back during this run, which then pays for the disk time of another.
    os.sync()
    command = [sys.executable, script, "--run", run, "--session", str(session), "--output", str(output)]
    if workers:
        command += ["--workers", str(workers)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{run} failed (exit {completed.returncode})")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def argument_parser(description: str):
    """The options every benchmark has: where to work, skipping the baseline, and a child run's hidden options."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, help="where to generate the session (default: a temporary folder)")
    parser.add_argument("--skip-neuroconv", action="store_true", help="measure nwbridge only")
    for hidden in ("--run", "--session", "--output"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    return parser
