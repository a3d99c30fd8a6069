"""Reading an IBL session folder (ALF files, ONE cache layout) through the ONE-api.

File discovery, name parsing and the choice of revision are ONE's own (`one.alf.path`,
`one.util.filter_revision_last_before`), so nwbridge resolves datasets exactly as
``one.load_dataset`` would. Loading file contents is done here rather than with
``one.alf.io.load_file_content`` because that function accepts pickled arrays and returns
``None`` for an unreadable JSON file; a converter must instead refuse with an error naming
the file.
"""

from __future__ import annotations

import re
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from one.alf import exceptions as alf_exceptions
from one.alf.path import ALFPath, rel_path_parts, session_path_parts
from one.util import filter_revision_last_before

from ...errors import MissingSourceFileError, SourceFileError

__all__ = ["AlfSession", "column_name", "load_npy", "load_table", "require_same_length", "require_increasing"]


def column_name(attribute: str) -> str:
    """NWB column name of an ALF attribute: snake_case, with ``_times`` shortened to ``_time``.

    The representation ends every time column in ``_time`` (``goCue_times`` -> ``go_cue_time``,
    ``peakVelocity_times`` -> ``peak_velocity_time``).
    """
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", attribute).lower()
    return re.sub(r"_times($|_)", r"_time\1", snake)


def load_npy(path: str | Path, *, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file, refusing pickles and reporting truncation clearly.

    Parameters
    ----------
    path : str or Path
        The file.
    mmap : bool, default: False
        Map the file instead of reading it (for large arrays read in pieces).

    Returns
    -------
    numpy.ndarray
    """
    path = Path(path)
    if not path.is_file():
        raise MissingSourceFileError(path, "file not found")
    try:
        with open(path, "rb") as stream:
            version = np.lib.format.read_magic(stream)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(stream)
            header_end = stream.tell()
    except Exception as error:  # numpy raises ValueError or OSError depending on the damage
        raise SourceFileError(path, f"not a readable .npy file ({error})") from error
    if dtype.hasobject:
        raise SourceFileError(path, "holds Python objects (pickled); refusing to load it")
    expected_bytes = header_end + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual_bytes = path.stat().st_size
    if actual_bytes < expected_bytes:
        raise SourceFileError(
            path,
            f"truncated: its header announces shape {shape} of {dtype} ({expected_bytes} bytes) "
            f"but the file has {actual_bytes} bytes",
        )
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def load_table(path: str | Path) -> pd.DataFrame:
    """Load a ``.pqt`` (parquet) or ``.csv`` table, reporting unreadable files by name."""
    path = Path(path)
    if not path.is_file():
        raise MissingSourceFileError(path, "file not found")
    try:
        if path.suffix == ".pqt":
            return pd.read_parquet(path)
        if path.suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    except Exception as error:
        raise SourceFileError(path, f"not a readable {path.suffix} table ({error})") from error
    raise SourceFileError(path, f"unsupported table format {path.suffix!r}")


def require_same_length(arrays: dict[Path, np.ndarray | pd.DataFrame], *, what: str) -> int:
    """Check that datasets of one ALF object have the same number of rows.

    Parameters
    ----------
    arrays : dict of Path to array
        The datasets, keyed by their file.
    what : str
        What the rows are, for the message (e.g. "wheel samples").

    Returns
    -------
    int
        The common number of rows.
    """
    lengths = {path: len(array) for path, array in arrays.items()}
    reference_path, reference_length = next(iter(lengths.items()))
    for path, length in lengths.items():
        if length != reference_length:
            raise SourceFileError(
                path,
                f"has {length} {what} but {reference_path.name} has {reference_length}; "
                "all attributes of one ALF object must have the same number of rows",
            )
    return reference_length


def require_increasing(times: np.ndarray, path: Path, *, strict: bool = False) -> None:
    """Check that a time vector is finite where defined and does not go backwards.

    Parameters
    ----------
    times : numpy.ndarray
        Times in seconds.
    path : Path
        The file the times come from, named in the error.
    strict : bool, default: False
        Also refuse repeated values.
    """
    times = np.asarray(times)
    if times.ndim != 1:
        raise SourceFileError(path, f"expected a 1-D vector of times, found shape {times.shape}")
    steps = np.diff(times)
    bad = np.flatnonzero(steps <= 0 if strict else steps < 0)
    if bad.size:
        index = int(bad[0])
        raise SourceFileError(
            path,
            f"timestamps are not {'strictly ' if strict else ''}increasing: "
            f"element {index + 1} ({float(times[index + 1])!r}) follows {float(times[index])!r} "
            f"({bad.size} place{'s' if bad.size > 1 else ''} in all)",
        )
    if np.isnan(times).any():
        raise SourceFileError(path, f"timestamps contain {int(np.isnan(times).sum())} NaN values")


class AlfSession:
    """The datasets of one IBL session folder, resolved to one revision each.

    Parameters
    ----------
    session_path : str or Path
        ``<root>/<lab>/Subjects/<subject>/<date>/<number>``, as the ONE cache lays it out.
    revision : str, optional
        Use this revision (or, for a dataset that lacks it, the last one before it).
        By default the newest revision of every dataset is used.
    """

    def __init__(self, session_path: str | Path, *, revision: str | None = None):
        self.session_path = Path(session_path)
        self.revision = revision
        if not self.session_path.is_dir():
            raise MissingSourceFileError(self.session_path, "session folder not found")
        parts = session_path_parts(ALFPath(self.session_path), as_dict=True, assert_valid=False)
        if not parts.get("subject"):
            raise SourceFileError(
                self.session_path,
                "not an ALF session folder: expected <lab>/Subjects/<subject>/<YYYY-MM-DD>/<NNN>",
            )
        self.lab = parts["lab"]
        self.subject = parts["subject"]
        self.date = parts["date"]
        self.number = int(parts["number"])

    @cached_property
    def datasets(self) -> pd.DataFrame:
        """Every dataset of the session after revision selection, one row each."""
        rows = []
        for relative in ALFPath(self.session_path).iter_datasets(recursive=True):
            relative = ALFPath(relative).relative_to(self.session_path)
            # A dataset UUID in the name (an "extra" part) identifies a file version, not a dataset.
            rel_path = relative.without_uuid().as_posix()
            parts = rel_path_parts(rel_path, as_dict=True)
            extra = parts["extra"]
            rows.append(
                {
                    "rel_path": rel_path,
                    "file": (self.session_path / relative),
                    "collection": parts["collection"] or "",
                    "revision": parts["revision"] or "",
                    "namespace": parts["namespace"] or "",
                    "object": parts["object"],
                    "attribute": parts["attribute"],
                    "timescale": parts["timescale"] or "",
                    "extra": extra or "",
                    "extension": parts["extension"],
                }
            )
        columns = ["rel_path", "file", "collection", "revision", "namespace", "object", "attribute",
                   "timescale", "extra", "extension"]
        table = pd.DataFrame(rows, columns=columns)
        if table.empty:
            return table
        with warnings.catch_warnings():
            # With no default-revision column ONE warns on every dataset, and warns again when
            # datasets fall back to different revisions; both are the documented behaviour here.
            warnings.simplefilter("ignore", alf_exceptions.ALFWarning)
            selected = filter_revision_last_before(table, revision=self.revision, assert_unique=False)
        return selected.sort_values("rel_path").reset_index(drop=True)

    def find(
        self,
        object: str,
        *,
        attribute: str | None = None,
        collection: str = "alf",
        namespace: str | None = None,
        extension: str | None = None,
    ) -> pd.DataFrame:
        """Datasets of one ALF object in one collection (``None`` matches any namespace)."""
        table = self.datasets
        if table.empty:
            return table
        mask = (table["object"] == object) & (table["collection"] == collection)
        if attribute is not None:
            mask &= table["attribute"] == attribute
        if namespace is not None:
            mask &= table["namespace"] == namespace
        if extension is not None:
            mask &= table["extension"] == extension
        return table[mask]

    def path(
        self,
        object: str,
        attribute: str,
        *,
        collection: str = "alf",
        namespace: str | None = None,
        extension: str | None = None,
        required: bool = True,
    ) -> Path | None:
        """The file of one dataset, or ``None`` (or an error if ``required``) when absent."""
        found = self.find(object, attribute=attribute, collection=collection, namespace=namespace,
                          extension=extension)
        if len(found) == 0:
            if required:
                prefix = f"_{namespace}_" if namespace else ""
                expected = self.session_path / collection / f"{prefix}{object}.{attribute}.{extension or '*'}"
                raise MissingSourceFileError(expected, "required dataset not found in the session")
            return None
        if len(found) > 1:
            names = ", ".join(found["rel_path"])
            raise SourceFileError(found["file"].iloc[0], f"ambiguous dataset: several files match ({names})")
        return Path(found["file"].iloc[0])

    def has(self, object: str, attribute: str | None = None, *, collection: str = "alf") -> bool:
        """Whether the session has a dataset (or any dataset of an object)."""
        return len(self.find(object, attribute=attribute, collection=collection)) > 0

    def load_object(self, object: str, *, collection: str = "alf", namespace: str | None = None,
                    ) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
        """Load every attribute of an ALF object, merging a ``.table.pqt`` with loose attributes.

        Columns ``<name>_0``, ``<name>_1`` of a table become one 2-D attribute ``<name>``, as ONE
        does. A loose ``.npy`` wins over a table column of the same name (it is the newer form).

        Returns
        -------
        attributes : dict of str to numpy.ndarray
        files : dict of str to Path
            The file each attribute came from.
        """
        found = self.find(object, collection=collection, namespace=namespace)
        attributes: dict[str, np.ndarray] = {}
        files: dict[str, Path] = {}
        for row in found.itertuples():
            path = Path(row.file)
            # A timescale names another clock (``intervals_bpod``): it is a separate attribute.
            key = f"{row.attribute}_{row.timescale}" if row.timescale else row.attribute
            if row.attribute == "table" and row.extension in ("pqt", "csv"):
                table = load_table(path)
                for name, values in _merge_split_columns(table).items():
                    attributes.setdefault(name, values)
                    files.setdefault(name, path)
            elif row.extension == "npy":
                attributes[key] = load_npy(path)
                files[key] = path
        if attributes:
            require_same_length({files[name]: values for name, values in attributes.items()},
                                what=f"{object} rows")
        return attributes, files


def _merge_split_columns(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Columns of a table as arrays, with ``x_0, x_1, ...`` stacked into one 2-D ``x``."""
    merged: dict[str, np.ndarray] = {}
    groups: dict[str, list[tuple[int, str]]] = {}
    for column in table.columns:
        stem, _, suffix = str(column).rpartition("_")
        if stem and suffix.isdigit():
            groups.setdefault(stem, []).append((int(suffix), column))
    consumed = set()
    for stem, members in groups.items():
        members.sort()
        if [index for index, _ in members] == list(range(len(members))) and len(members) > 1:
            merged[stem] = np.column_stack([table[column].to_numpy() for _, column in members])
            consumed.update(column for _, column in members)
    for column in table.columns:
        if column not in consumed:
            merged[str(column)] = table[column].to_numpy()
    return merged
