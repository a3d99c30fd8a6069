"""Running one function over many files, in processes when asked, with a progress bar."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from tqdm.auto import tqdm

__all__ = ["map_files"]


def map_files(function, arguments: list, *, jobs: int, description: str, progress: bool) -> list:
    """``[function(argument) for argument in arguments]``, in order, in ``jobs`` processes when more than one.

    Reading NWB files with pynwb (dandi-cli's metadata, nwbinspector) is Python-bound, so
    parallel work needs processes, not threads.
    """
    results = []
    with tqdm(total=len(arguments), desc=description, unit="file", disable=not progress) as bar:
        if jobs > 1 and len(arguments) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for result in pool.map(function, arguments):
                    results.append(result)
                    bar.update()
        else:
            for argument in arguments:
                results.append(function(argument))
                bar.update()
    return results
