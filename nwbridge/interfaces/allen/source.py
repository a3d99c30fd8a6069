"""Reading AllenSDK-written NWB files with today's pynwb, without AllenSDK.

AllenSDK pins pynwb < 3 and old numpy and pandas, so it cannot share an environment with
current pynwb. The VBN files cache their own specs (core 2.6.0-alpha and the Allen extensions
``ndx-aibs-ecephys``, ``ndx-ellipse-eye-tracking``, ``ndx-aibs-behavior-ophys``,
``ndx-aibs-stimulus-template``), so pynwb reads them with ``load_namespaces=True``: the Allen
types come back as classes generated from the cached specs, and every dataset stays an h5py
dataset until it is sliced. Nothing here materialises a whole table.

A session file is opened once per process and shared by the interfaces that read it (each
interface is given only the file's path, as neuroconv wants source data to be plain values);
:func:`close_allen_files` closes them.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import h5py
import numpy as np
from hdmf.build import BuildManager

from ...errors import MissingSourceFileError, SourceFileError

__all__ = ["AllenFile", "open_allen_file", "close_allen_file", "close_allen_files", "text_values", "float_values", "nullable_booleans"]

_lock = threading.RLock()
_open_files: dict[tuple, "AllenFile"] = {}


class AllenFile:
    """An Allen NWB file opened for reading with the namespaces it caches.

    Parameters
    ----------
    path : Path
        The session file (``ecephys_session_<id>.nwb``) or a probe file (``probe_<id>.nwb``).
    """

    def __init__(self, path: Path):
        from pynwb import NWBHDF5IO

        self.path = Path(path)
        if not self.path.is_file():
            raise MissingSourceFileError(self.path, "the Allen NWB file does not exist")
        try:
            with h5py.File(self.path, "r"):
                pass
        except OSError as error:
            raise SourceFileError(self.path, f"not a readable HDF5 file, truncated or damaged ({error})") from error
        try:
            with warnings.catch_warnings():
                # The files cache core 2.6.0-alpha; pynwb keeps its own core and says so, harmlessly.
                warnings.filterwarnings("ignore", message=".*Ignoring cached namespace.*")
                warnings.filterwarnings("ignore", message=".*is already loaded.*")
                self.io = NWBHDF5IO(str(self.path), "r", manager=BuildManager(_type_map(self.path)))
                self.nwbfile = self.io.read()
        except Exception as error:
            # Closed now, not when collected: the caller may want to repair or replace the file.
            if getattr(self, "io", None) is not None:
                self.io.close()
            raise SourceFileError(self.path, f"not a readable NWB file ({type(error).__name__}: {error})") from error

    def close(self) -> None:
        self.io.close()

    def object(self, location: str):
        """The object at ``location`` (``acquisition/EyeTracking``, ``processing/running/speed``,
        ``intervals/trials``), or None when the file has none there."""
        parts = location.split("/")
        kind, rest = parts[0], parts[1:]
        holders = {"acquisition": self.nwbfile.acquisition, "processing": self.nwbfile.processing,
                   "intervals": self.nwbfile.intervals, "stimulus": self.nwbfile.stimulus,
                   "devices": self.nwbfile.devices, "electrode_groups": self.nwbfile.electrode_groups}
        if kind not in holders:
            raise ValueError(f"unknown location {location!r}")
        current = holders[kind]
        for part in rest:
            try:
                current = current[part]
            except (KeyError, TypeError):
                return None
        return current

    def require(self, location: str):
        """The object at ``location``; a :class:`SourceFileError` naming the file when it is absent."""
        found = self.object(location)
        if found is None:
            raise SourceFileError(self.path, f"has no {location}")
        return found


_type_maps: dict[tuple, object] = {}


def _type_map(path: Path):
    """pynwb's types plus the specs cached in the file, loaded once per distinct set of cached specs.

    Loading the cached specs is most of the cost of opening a file (about 1 s of the 1.1 s it takes
    ``load_namespaces=True`` on a session file; 0.03 s with the loaded types reused), and every file
    of a release caches the same ones.
    """
    from pynwb import NWBHDF5IO, get_type_map

    key = _cached_specifications(path)
    with _lock:
        type_map = _type_maps.get(key)
        if type_map is None:
            type_map = get_type_map()
            if key:
                NWBHDF5IO.load_namespaces(type_map, str(path))
            _type_maps[key] = type_map
    return type_map


def _cached_specifications(path: Path) -> tuple:
    """The text of every spec cached in the file (a few kB): two files share loaded types only if these match."""
    found = []
    with h5py.File(path, "r") as file:
        specifications = file.get("specifications")
        if specifications is not None:
            def collect(name, item):
                if isinstance(item, h5py.Dataset):
                    value = item[()]
                    found.append((name, value.decode() if isinstance(value, bytes) else str(value)))

            specifications.visititems(collect)
    return tuple(sorted(found))


def open_allen_file(path) -> AllenFile:
    """The Allen NWB file at ``path``, opened once per process (reopened if the file changed)."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (str(path), None, None)
    with _lock:
        found = _open_files.get(key)
        if found is None:
            found = _open_files[key] = AllenFile(path)
        return found


def close_allen_files() -> None:
    """Close every Allen file opened by :func:`open_allen_file`."""
    with _lock:
        for found in _open_files.values():
            found.close()
        _open_files.clear()


# --- Allen value conventions ------------------------------------------------------------------

# AllenSDK writes missing text as these strings, and pandas' None as "None".
MISSING_TEXT = ("N/A", "None", "nan", "NaN", "")


def text_values(data) -> np.ndarray:
    """Text column as a numpy array of str (h5py gives bytes for some string datasets)."""
    values = np.asarray(data[:] if hasattr(data, "shape") else data, dtype=object)
    return np.array([value.decode() if isinstance(value, bytes) else str(value) for value in values], dtype=object)


def float_values(data) -> np.ndarray:
    """Numeric column as float64, with AllenSDK's "N/A" (and other missing-value strings) as NaN."""
    values = data[:] if hasattr(data, "shape") else data
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64)
    texts = text_values(array)
    out = np.full(len(texts), np.nan)
    for index, text in enumerate(texts):
        if text not in MISSING_TEXT:
            out[index] = float(text)
    return out


def nullable_booleans(data, *, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An Allen boolean column, which may be stored as floats with NaN for missing (a quirk).

    Returns
    -------
    values : numpy.ndarray of bool
        False where missing.
    missing : numpy.ndarray of bool
        Where the source had no value (NaN or "N/A").
    """
    array = np.asarray(data[:] if hasattr(data, "shape") else data)
    if array.dtype == bool:
        return array, np.zeros(len(array), dtype=bool)
    if array.dtype.kind in "iuf":
        missing = np.isnan(array) if array.dtype.kind == "f" else np.zeros(len(array), dtype=bool)
        present = array[~missing]
        if not np.isin(present, (0, 1)).all():
            raise SourceFileError(path, f"column {name!r} should hold booleans (0/1, NaN for missing); "
                                        f"found {np.unique(present)[:5]}")
        return np.where(missing, False, array == 1), missing
    texts = text_values(array)
    missing = np.isin(texts, MISSING_TEXT)
    lowered = np.char.lower(texts.astype(str))
    if not np.isin(lowered[~missing], ("true", "false", "1", "0", "1.0", "0.0")).all():
        raise SourceFileError(path, f"column {name!r} should hold booleans; found {np.unique(texts[~missing])[:5]}")
    return np.isin(lowered, ("true", "1", "1.0")), missing


def close_allen_file(path) -> None:
    """Close the Allen file at ``path`` if :func:`open_allen_file` opened it (others stay open)."""
    resolved = str(Path(path).resolve())
    with _lock:
        for key in [key for key in _open_files if key[0] == resolved]:
            _open_files.pop(key).close()
