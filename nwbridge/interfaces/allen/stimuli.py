"""Stimuli of an Allen Visual Behavior Neuropixels session: presentations, protocol blocks, images.

AllenSDK writes one ``TimeIntervals`` per stimulus name in ``intervals``:
``Natural_Images_<set>_presentations`` (the change-detection images: block 0 during the task,
block 5 in the passive replay), ``spontaneous_presentations`` (grey screen),
``gabor_20_deg_250ms_presentations`` (receptive-field mapping) and ``flash_250ms_presentations``
(full-field flashes). Every table carries every presentation column, with ``"N/A"`` or NaN where
a column does not apply to the stimulus, and nullable booleans (``is_change``, ``omitted``, ...)
stored as floats with NaN. They become ``intervals/<kind>_presentations`` for the kinds
``natural_image``, ``spontaneous``, ``gabor`` and ``flash``.

The ``stimulus_block`` number
-----------------------------
AllenSDK numbers its stimulus blocks in time order (0 active change detection, 1 spontaneous,
2 Gabor receptive-field mapping, 3 spontaneous, 4 flashes, 5 passive replay); optotagging
follows them and is not a stimulus block. The ``epochs`` table written here has one row per
block, in time order, so that ``epochs[stimulus_block]`` gives the protocol of any presentation,
as in the IBL files (:mod:`nwbridge.interfaces.ibl.epochs`). :func:`protocol_blocks` is the one
place the blocks are computed. When the Allen numbers are not the rows of ``epochs`` (a block
missing, or optotagging run between blocks), presentations get the row as ``stimulus_block``
and keep the Allen number as ``allen_stimulus_block``.

The images of the natural image set (``stimulus/templates/<image set>``, an Allen
``StimulusTemplate``) are copied as core ``ImageSeries``.

The helpers reading Allen table columns one at a time (:func:`read_columns` and the
conversions after it) are shared with :mod:`.trials` and :mod:`.optotagging`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from hdmf.common import VectorIndex
from pynwb.base import TimeSeries, TimeSeriesReferenceVectorData
from pynwb.epoch import TimeIntervals
from pynwb.image import ImageSeries

from ...errors import SourceFileError
from ..tables import Column, build_table
from .base import AllenInterface
from .source import MISSING_TEXT, AllenFile, nullable_booleans, text_values

__all__ = ["AllenStimulusInterface", "ProtocolBlock", "SourceColumn", "protocol_blocks", "presentation_tables",
           "read_columns", "read_presentations", "PRESENTATION_KINDS", "NO_VALUE"]

# Allen's own marker for "no value" in integer columns (trials_id, flashes_since_change, change_frame).
NO_VALUE = -99

# Columns that hold booleans in AllenSDK tables, whatever dtype the file stores them in: AllenSDK writes
# a boolean column with missing values (pandas' nullable boolean) as float 1.0 / 0.0 / NaN.
BOOLEAN_COLUMNS = frozenset({"is_change", "omitted", "active", "is_sham_change", "is_image_novel", "rewarded",
                             "go", "catch", "hit", "false_alarm", "miss", "correct_reject", "aborted",
                             "auto_rewarded"})

# --- columns of Allen tables ------------------------------------------------------------------


@dataclass
class SourceColumn:
    """One column of an Allen table, read whole.

    Attributes
    ----------
    name : str
        The Allen column name.
    values : numpy.ndarray
        One value per row (text as ``str`` objects); for a ragged column, the flat values.
    ends : numpy.ndarray or None
        For a ragged column, the end offset of each row in ``values``.
    description : str
        The description AllenSDK gave the column (often empty).
    """

    name: str
    values: np.ndarray
    ends: np.ndarray | None = None
    description: str = ""

    def __len__(self) -> int:
        return len(self.ends) if self.ends is not None else len(self.values)

    @property
    def is_text(self) -> bool:
        return self.values.dtype == object

    def take(self, order: np.ndarray) -> "SourceColumn":
        """The column with its rows in ``order``."""
        if self.ends is None:
            return SourceColumn(self.name, self.values[order], None, self.description)
        starts = np.concatenate([[0], self.ends[:-1]]).astype(np.int64)
        lengths = self.ends.astype(np.int64) - starts
        pieces = [self.values[starts[row]:starts[row] + lengths[row]] for row in order]
        values = np.concatenate(pieces) if pieces else self.values[:0]
        return SourceColumn(self.name, values, np.cumsum(lengths[order]).astype(np.uint64), self.description)


def _read_vector(vector, *, path: Path, location: str) -> np.ndarray:
    data = vector.data
    values = np.asarray(data[:] if hasattr(data, "shape") else data)
    if values.dtype.kind in "OSUT":
        return text_values(values)
    if isinstance(data, h5py.Dataset) and h5py.check_string_dtype(data.dtype) is not None:
        return text_values(values)
    if values.dtype.kind not in "biuf":
        raise SourceFileError(path, f"column {vector.name!r} of {location} has values of an unexpected type "
                              f"({values.dtype})")
    return values


def read_columns(table, *, path: Path, location: str) -> tuple[dict[str, SourceColumn], list[str]]:
    """Every column of an Allen table, one column read at a time.

    Parameters
    ----------
    table : hdmf.common.DynamicTable
        The table as pynwb read it (its columns are still h5py datasets).
    path : Path
        The source file, named in errors.
    location : str
        Where the table is in the file (``intervals/trials``), named in errors.

    Returns
    -------
    columns : dict of str to SourceColumn
        In the table's column order.
    skipped : list of str
        Columns not read: ``timeseries``, references into the source file's stimulus frame
        timestamps, which are not copied.
    """
    n_rows = len(table.id)
    columns, skipped = {}, []
    for name in table.colnames:
        vector = table[name]
        ends = None
        if isinstance(vector, VectorIndex):
            if isinstance(vector.target, VectorIndex):
                raise SourceFileError(path, f"column {name!r} of {location} is doubly ragged; nwbridge reads one "
                                      "level of nesting")
            target = vector.target
            ends = np.asarray(vector.data[:], dtype=np.int64)
        else:
            target = vector
        if isinstance(target, TimeSeriesReferenceVectorData):
            skipped.append(name)
            continue
        values = _read_vector(target, path=path, location=location)
        if ends is not None:
            if np.any(np.diff(ends) < 0) or (len(ends) and (ends[0] < 0 or ends[-1] != len(values))):
                raise SourceFileError(path, f"the index of ragged column {name!r} of {location} does not fit its "
                                      f"{len(values)} values (ends must ascend to the number of values)")
            ends = ends.astype(np.uint64)
        column = SourceColumn(name, values, ends, str(getattr(target, "description", "") or ""))
        if len(column) != n_rows:
            raise SourceFileError(path, f"column {name!r} of {location} has {len(column)} rows, the table "
                                  f"{n_rows}: columns of different lengths")
        columns[name] = column
    return columns, skipped


def _source_note(column: SourceColumn) -> str:
    text = column.description.strip()
    if not text or text.lower() in ("no description", "none", "n/a"):
        return ""
    return f" AllenSDK: {text.rstrip('.')}."


def parsed_floats(column: SourceColumn) -> np.ndarray | None:
    """A column's values as float64 (missing-value markers as NaN), or None if some value is not a number."""
    values = column.values
    if not column.is_text:
        return values.astype(np.float64)
    out = np.full(len(values), np.nan)
    for index, text in enumerate(values):
        text = text.strip()
        if text in MISSING_TEXT:
            continue
        try:
            out[index] = float(text)
        except ValueError:
            return None
    return out


def float_column(column: SourceColumn, *, path: Path, location: str) -> np.ndarray:
    """A numeric column as float64: AllenSDK's ``"N/A"`` (and NaN) become NaN."""
    values = parsed_floats(column)
    if values is None:
        found = []
        for text in column.values:
            try:
                float(text)
            except ValueError:
                if text.strip() not in MISSING_TEXT and text not in found:
                    found.append(text)
        raise SourceFileError(path, f"column {column.name!r} of {location} should hold numbers; found {found[:3]}")
    return values


def int_column(column: SourceColumn, *, path: Path, location: str, missing: int | None = NO_VALUE) -> np.ndarray:
    """An integer column as int64.

    AllenSDK writes integer columns with missing values as floats (NaN) or text (``"N/A"``); a
    missing value becomes ``missing`` (Allen's -99), or is an error when ``missing`` is None.
    """
    if column.values.dtype.kind in "iu" and column.ends is None:
        return column.values.astype(np.int64)
    values = float_column(column, path=path, location=location)
    absent = np.isnan(values)
    if absent.any() and missing is None:
        raise SourceFileError(path, f"column {column.name!r} of {location} has no value in row "
                              f"{int(np.flatnonzero(absent)[0])}")
    present = values[~absent]
    if np.any(present != np.round(present)):
        bad = present[present != np.round(present)][:3]
        raise SourceFileError(path, f"column {column.name!r} of {location} should hold whole numbers; found {bad}")
    return np.where(absent, missing if missing is not None else 0, values).astype(np.int64)


def bool_column(column: SourceColumn, *, path: Path, location: str) -> tuple[np.ndarray, np.ndarray]:
    """A boolean column, which AllenSDK may store as floats with NaN (or text): (values, missing)."""
    return nullable_booleans(column.values, name=f"{column.name} of {location}", path=path)


def text_column(column: SourceColumn) -> np.ndarray:
    """A text column as str objects, values unchanged."""
    if column.is_text:
        return column.values
    return np.array([str(value) for value in column.values], dtype=object)


def extra_column(column: SourceColumn, *, path: Path, location: str, name: str | None = None) -> Column:
    """A source column the representation does not name, kept under its Allen name.

    Values are converted only where AllenSDK's storage hides their type: a text column of numbers
    with ``"N/A"`` for missing becomes float with NaN; a boolean column stored as float 1/0 becomes
    bool when no value is missing, and stays float (1.0 true, 0.0 false, NaN missing) otherwise,
    since a bool column cannot say "missing". Everything else is kept as stored.
    """
    name = name or column.name
    origin = f"Allen column '{column.name}' of {location}"
    note = _source_note(column)
    if column.ends is not None:
        return Column(name, f"{origin}, as stored (one list per row).{note}", column.values, ends=column.ends)
    if column.name in BOOLEAN_COLUMNS and column.values.dtype != bool:
        try:
            values, missing = bool_column(column, path=path, location=location)
        except SourceFileError:
            values = None
        if values is not None:
            if not missing.any():
                return Column(name, f"{origin} (bool; the source stores it as numbers).{note}", values)
            floats = np.where(missing, np.nan, values.astype(np.float64))
            return Column(name, f"{origin}: a boolean with missing values, kept as float (1.0 true, 0.0 false, "
                          f"NaN where the source has no value), since a bool column cannot hold a missing value."
                          f"{note}", floats)
    if column.is_text:
        numbers = parsed_floats(column)
        missing = np.array([text.strip() in MISSING_TEXT for text in column.values], dtype=bool)
        if numbers is not None and not missing.all():
            return Column(name, f"{origin}: numbers stored as text, converted to float (the source's "
                          f"'N/A' as NaN).{note}", numbers)
        missing_note = " ('N/A' where the source has no value)" if missing.any() else ""
        return Column(name, f"{origin}, text as stored{missing_note}.{note}", column.values)
    return Column(name, f"{origin}, as stored ({column.values.dtype}; NaN where the source has no value).{note}",
                  column.values)


def is_empty(column: SourceColumn) -> bool:
    """Whether a column has no value in any row (only NaN, AllenSDK's "N/A" or -99, or empty lists)."""
    if column.ends is not None:
        return len(column.values) == 0
    if column.is_text:
        return all(text.strip() in MISSING_TEXT for text in column.values)
    if column.values.dtype.kind == "f":
        return bool(np.isnan(column.values).all())
    if column.values.dtype.kind in "iu":
        return bool(np.all(column.values == NO_VALUE))
    return len(column.values) == 0


def concatenate_columns(tables: list[dict[str, SourceColumn]], *, path: Path, location: str
                        ) -> dict[str, SourceColumn]:
    """Rows of several tables of one kind in one table; a column missing from a table is missing there."""
    if len(tables) == 1:
        return tables[0]
    names = list(dict.fromkeys(name for table in tables for name in table))
    out = {}
    for name in names:
        parts = [table.get(name) for table in tables]
        rows = [len(next(iter(table.values()))) if table else 0 for table in tables]
        ragged = any(part is not None and part.ends is not None for part in parts)
        text = any(part is not None and part.is_text for part in parts)
        values, ends, offset = [], [], 0
        for part, n in zip(parts, rows):
            if part is None:
                if ragged:
                    ends.append(np.full(n, offset, dtype=np.uint64))
                    continue
                values.append(np.full(n, "N/A", dtype=object) if text else np.full(n, np.nan))
                continue
            if ragged and part.ends is None:
                raise SourceFileError(path, f"column {name!r} is ragged in one of {location} and not in another")
            part_values = part.values
            if text and not part.is_text:
                part_values = np.array([str(value) for value in part_values], dtype=object)
            values.append(part_values)
            if ragged:
                ends.append(part.ends + np.uint64(offset))
                offset += len(part_values)
        description = next(part.description for part in parts if part is not None)
        merged = np.concatenate(values) if values else np.array([])
        out[name] = SourceColumn(name, merged, np.concatenate(ends) if ragged else None, description)
    return out


# --- presentations ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PresentationKind:
    """How one kind of Allen presentations table is written."""

    kind: str
    pattern: re.Pattern
    description: str


PRESENTATION_KINDS = (
    PresentationKind("natural_image", re.compile(r"^natural_images.*_presentations$", re.IGNORECASE),
                     "Natural image flashes of the change-detection task (250 ms on, 500 ms grey), one row per flash "
                     "including omitted flashes: the active task (is_passive false) and its passive replay "
                     "(is_passive true)"),
    PresentationKind("spontaneous", re.compile(r"^spontaneous.*_presentations$", re.IGNORECASE),
                     "Grey-screen periods with no stimulus (spontaneous activity), one row per period"),
    PresentationKind("gabor", re.compile(r"^gabor.*_presentations$", re.IGNORECASE),
                     "Gabor patches of the receptive-field mapping (20 degrees, 250 ms, positions on a 9 x 9 grid, "
                     "3 orientations), one row per patch"),
    PresentationKind("flash", re.compile(r"^flash.*_presentations$", re.IGNORECASE),
                     "Full-field flashes (250 ms, white or black), one row per flash"),
)

# Protocol of the representation for a block of each kind (natural images: task or replay, by `active`).
KIND_PROTOCOLS = {"spontaneous": "spontaneous", "gabor": "receptive_field_mapping", "flash": "flash"}
PROTOCOL_DESCRIPTIONS = {
    "task": "the active change-detection task (natural images, the mouse licks for water at image changes)",
    "spontaneous": "grey screen, spontaneous activity",
    "receptive_field_mapping": "Gabor patches for receptive-field mapping",
    "flash": "full-field flashes",
    "task_replay": "passive replay of the task's image sequence, without reward (the lick spout retracted)",
    "optotagging": "optogenetic stimulation for identifying genetically defined cell types (optotagging)",
}

SHARED_DESCRIPTIONS = {
    "start_time": "Onset of the presentation (s, session clock; the monitor display delay included).",
    "stop_time": "Offset of the presentation (s, session clock).",
    "stimulus_block": "Row of the protocol block in the epochs table (int, no unit).",
    "is_passive": "Whether the stimulus was presented outside the task, with no response expected (bool).",
    "stimulus_name": "The Allen stimulus name of the presentation (no unit).",
}
KIND_COLUMNS = {
    # kind -> [(name, dtype, description)], in the representation's order.
    "gabor": [
        ("contrast", "float", "Michelson contrast of the Gabor patch (fraction, 0 to 1)."),
        ("position_x", "float", "Azimuth of the Gabor patch centre (degrees of visual angle)."),
        ("position_y", "float", "Elevation of the Gabor patch centre (degrees of visual angle)."),
        ("phase", "float", "Spatial phase of the Gabor grating, as the Allen column 'phase' stores it."),
        ("orientation", "float", "Orientation of the Gabor grating (degrees)."),
    ],
    "natural_image": [
        ("image_name", "text", "Name of the image shown; 'omitted' for an omitted flash (no unit)."),
        ("is_change", "bool", "Whether this flash is the first presentation of a new image (bool)."),
        ("omitted", "bool", "Whether the flash was omitted: grey screen instead of the image (bool)."),
        ("flashes_since_change", "int", "Flashes since the last image change (count)."),
        ("start_frame", "int", "First stimulus frame of the presentation (frame index)."),
        ("end_frame", "int", "Last stimulus frame of the presentation (frame index)."),
        ("trials_id", "int", "Row of the trials table the flash belongs to; -99 outside the task (index)."),
    ],
    "flash": [("color", "float", "Colour of the full-field flash: +1 white, -1 black.")],
    "spontaneous": [],
}
# Contract columns that must be in the source table of their kind (the rest are written when present).
REQUIRED_KIND_COLUMNS = {"gabor": ("contrast", "position_x", "position_y", "orientation"),
                         "natural_image": ("image_name", "is_change", "omitted"),
                         "flash": ("color",), "spontaneous": ()}


def presentation_tables(source: AllenFile, *, warn: bool = True) -> dict[str, list[str]]:
    """The presentation tables of the session file by kind: kind -> names in ``intervals``.

    A ``*_presentations`` table of no known kind is not converted, with a warning (unless ``warn`` is false).
    """
    found: dict[str, list[str]] = {}
    for name in source.nwbfile.intervals:
        if not name.endswith("_presentations"):
            continue
        kind = next((item.kind for item in PRESENTATION_KINDS if item.pattern.match(name)), None)
        if kind is None:
            if warn:
                warnings.warn(f"{source.path}: intervals/{name} is a presentations table of a stimulus nwbridge "
                              "does not know; it is not converted", stacklevel=2)
            continue
        found.setdefault(kind, []).append(name)
    return found


@dataclass
class Presentations:
    """The presentations of one kind, all its source tables together, in time order."""

    kind: str
    tables: list[str]
    columns: dict[str, SourceColumn]
    skipped: list[str]
    start_time: np.ndarray
    stop_time: np.ndarray
    block: np.ndarray  # the Allen stimulus_block of each row
    active: np.ndarray | None  # bool, None when no table has `active`
    active_missing: np.ndarray | None

    @property
    def location(self) -> str:
        return ", ".join(f"intervals/{name}" for name in self.tables)


def read_presentations(source: AllenFile, kind: str, names: list[str]) -> Presentations:
    """The presentations of one kind from its tables, sorted by start time (stable)."""
    path = source.path
    tables, skipped = [], []
    for name in names:
        columns, left_out = read_columns(source.require(f"intervals/{name}"), path=path, location=f"intervals/{name}")
        missing = [column for column in ("start_time", "stop_time", "stimulus_block") if column not in columns]
        if missing:
            raise SourceFileError(path, f"intervals/{name} lacks the columns {missing}")
        tables.append(columns)
        skipped.extend(column for column in left_out if column not in skipped)
    location = ", ".join(f"intervals/{name}" for name in names)
    columns = concatenate_columns(tables, path=path, location=location)
    start = float_column(columns["start_time"], path=path, location=location)
    if np.isnan(start).any():
        raise SourceFileError(path, f"{location}: row {int(np.flatnonzero(np.isnan(start))[0])} has no start_time")
    # Several tables of one kind are interleaved in time; one table is already in time order.
    order = np.argsort(start, kind="stable")
    if np.any(order != np.arange(len(order))):
        columns = {name: column.take(order) for name, column in columns.items()}
        start = start[order]
    stop = float_column(columns["stop_time"], path=path, location=location)
    block = int_column(columns["stimulus_block"], path=path, location=location, missing=None)
    active = active_missing = None
    if "active" in columns:
        active, active_missing = bool_column(columns["active"], path=path, location=location)
    return Presentations(kind, list(names), columns, skipped, start, stop, block, active, active_missing)


# --- protocol blocks ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ProtocolBlock:
    """One protocol block of the session: a row of ``epochs``.

    Attributes
    ----------
    protocol : str
        ``task``, ``spontaneous``, ``receptive_field_mapping``, ``task_replay``, ``flash`` or ``optotagging``.
    protocol_name : str
        The Allen stimulus name(s) of the block (``optotagging`` for optotagging).
    start_time, stop_time : float
        Extent of the block (s): first presentation onset to last offset; the task block also spans
        every trial.
    allen_block : int or None
        The Allen ``stimulus_block``; None for optotagging, which is not a stimulus block.
    """

    protocol: str
    protocol_name: str
    start_time: float
    stop_time: float
    allen_block: int | None


OPTOTAGGING_LOCATION = "processing/optotagging/optogenetic_stimulation"


def _block_protocol(presentations: Presentations, rows: np.ndarray, *, path: Path, block: int) -> str:
    if presentations.kind != "natural_image":
        return KIND_PROTOCOLS[presentations.kind]
    if presentations.active is None:
        raise SourceFileError(path, f"{presentations.location} has no 'active' column: the task cannot be told "
                              "from its passive replay")
    if presentations.active_missing[rows].any():
        raise SourceFileError(path, f"{presentations.location}: 'active' has no value in stimulus block {block}")
    active = presentations.active[rows]
    if active.all():
        return "task"
    if not active.any():
        return "task_replay"
    raise SourceFileError(path, f"{presentations.location}: stimulus block {block} mixes active and passive "
                          "presentations")


def _extend_to_trials(source: AllenFile, start: float, stop: float) -> tuple[float, float]:
    trials = source.object("intervals/trials")
    if trials is None or len(trials.id) == 0:
        return start, stop
    trial_starts = np.asarray(trials["start_time"].data[:], dtype=np.float64)
    trial_stops = np.asarray(trials["stop_time"].data[:], dtype=np.float64)
    return float(np.nanmin([start, *trial_starts[:1]])), float(np.nanmax([stop, *trial_stops[-1:]]))


def protocol_blocks(source: AllenFile, presentations: dict[str, Presentations] | None = None) -> list[ProtocolBlock]:
    """The protocol blocks of a session, in time order: the rows of ``epochs``.

    Parameters
    ----------
    source : AllenFile
        The session file.
    presentations : dict of str to Presentations, optional
        Already read presentations by kind (read from ``source`` otherwise).

    Returns
    -------
    list of ProtocolBlock
        One per Allen stimulus block (its extent over every presentation of the block) and one
        for optotagging when the session has it, sorted by start time.
    """
    path = source.path
    if presentations is None:
        presentations = {kind: read_presentations(source, kind, names)
                         for kind, names in presentation_tables(source).items()}
    found: dict[int, tuple[str, Presentations, np.ndarray]] = {}
    blocks = []
    for kind, table in presentations.items():
        for block in np.unique(table.block):
            block = int(block)
            rows = table.block == block
            if block in found:
                raise SourceFileError(path, f"stimulus block {block} has presentations in {found[block][1].location} "
                                      f"and in {table.location}: a block must hold one kind of stimulus")
            found[block] = (kind, table, rows)
            protocol = _block_protocol(table, rows, path=path, block=block)
            names = text_column(table.columns["stimulus_name"])[rows] if "stimulus_name" in table.columns else []
            protocol_name = ", ".join(dict.fromkeys(str(name) for name in names)) or table.tables[0].removesuffix(
                "_presentations")
            starts, stops = table.start_time[rows], table.stop_time[rows]
            start, stop = float(np.nanmin(starts)), float(np.nanmax(np.concatenate([stops, starts])))
            if protocol == "task":
                # The trials start a display delay (~20 ms) before the first displayed image: the task
                # epoch spans them too, so selecting trials by epoch keeps the first one.
                start, stop = _extend_to_trials(source, start, stop)
            blocks.append(ProtocolBlock(protocol, protocol_name, start, stop, block))
    optotagging = source.object(OPTOTAGGING_LOCATION)
    if optotagging is not None and len(optotagging.id) > 0:
        starts = float_column(SourceColumn("start_time", np.asarray(optotagging["start_time"].data[:])), path=path,
                              location=OPTOTAGGING_LOCATION)
        stops = float_column(SourceColumn("stop_time", np.asarray(optotagging["stop_time"].data[:])), path=path,
                             location=OPTOTAGGING_LOCATION)
        blocks.append(ProtocolBlock("optotagging", "optotagging", float(np.nanmin(starts)),
                                    float(np.nanmax(np.concatenate([stops, starts]))), None))
    return sorted(blocks, key=lambda block: block.start_time)


def block_rows(blocks: list[ProtocolBlock]) -> dict[int, int]:
    """Allen stimulus_block -> row of the block in ``epochs``."""
    return {block.allen_block: row for row, block in enumerate(blocks) if block.allen_block is not None}


# --- the interface -------------------------------------------------------------------------------

class AllenStimulusInterface(AllenInterface):
    """The visual stimuli of an Allen VBN session.

    Writes ``intervals/natural_image_presentations``, ``intervals/spontaneous_presentations``,
    ``intervals/gabor_presentations`` and ``intervals/flash_presentations`` (each when the session
    file has its table), ``epochs`` (one row per protocol block, optotagging included) and the
    image set as ``stimulus/templates/<image set>`` (``ImageSeries``).
    """

    display_name = "Allen stimuli, protocol blocks and stimulus templates"

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        return any(name.endswith("_presentations") for name in source.nwbfile.intervals)

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None, *, include_epochs: bool = True,
                       include_templates: bool = True) -> None:
        """Add the presentations, and by default the epochs and the stimulus templates.

        Parameters
        ----------
        nwbfile : pynwb.NWBFile
        metadata : dict, optional
            Not used.
        include_epochs : bool, default: True
            Write ``epochs`` (the protocol blocks).
        include_templates : bool, default: True
            Write the image sets of ``stimulus/templates``.
        """
        source = self.source
        presentations = {kind: read_presentations(source, kind, names)
                         for kind, names in presentation_tables(source).items()}
        blocks = protocol_blocks(source, presentations)
        rows = block_rows(blocks)
        for kind in ("natural_image", "spontaneous", "gabor", "flash"):
            if kind in presentations:
                nwbfile.add_time_intervals(self._presentations_table(presentations[kind], rows))
        if include_epochs and blocks:
            nwbfile.epochs = epochs_table(blocks)
        if include_templates:
            for template in templates(source):
                nwbfile.add_stimulus_template(template)
        frames = source.object(FRAME_TIMES)
        if frames is not None:
            nwbfile.add_stimulus(stimulus_frame_times(frames, path=source.path))

    def _presentations_table(self, table: Presentations, rows: dict[int, int]) -> TimeIntervals:
        path = self.source.path
        location = table.location
        columns = dict(table.columns)
        n = len(table.start_time)
        kind_spec = next(item for item in PRESENTATION_KINDS if item.kind == table.kind)
        missing = [name for name in REQUIRED_KIND_COLUMNS[table.kind] if name not in columns]
        if missing:
            raise SourceFileError(path, f"{location} lacks the columns {missing}")

        block = np.array([rows[int(number)] for number in table.block], dtype=np.int64)
        renumbered = bool(np.any(block != table.block))
        if table.kind == "natural_image":
            if table.active is None or table.active_missing.any():
                raise SourceFileError(path, f"{location}: 'active' is absent or has missing values; is_passive "
                                      "cannot be derived")
            is_passive = ~table.active
            passive_note = " From the Allen column 'active' (is_passive = not active): the replay block is passive."
        else:
            # Outside the change-detection task nothing is asked of the mouse; `active` agrees where present.
            is_passive = np.ones(n, dtype=bool) if table.active is None else ~(table.active & ~table.active_missing)
            passive_note = " Always true outside the change-detection task."
        out = [
            Column("start_time", SHARED_DESCRIPTIONS["start_time"], table.start_time),
            Column("stop_time", SHARED_DESCRIPTIONS["stop_time"],
                   float_column(columns.pop("stop_time"), path=path, location=location)),
            Column("stimulus_type", f"Kind of stimulus: '{table.kind}' (no unit).",
                   np.full(n, table.kind, dtype=object)),
            Column("stimulus_block", SHARED_DESCRIPTIONS["stimulus_block"] + (
                " The Allen block number is in allen_stimulus_block." if renumbered else
                " Equal to the Allen stimulus_block, which numbers the blocks in time order."), block),
            Column("is_passive", SHARED_DESCRIPTIONS["is_passive"] + passive_note, is_passive),
        ]
        columns.pop("start_time")
        columns.pop("stimulus_block")
        if "stimulus_name" in columns:
            out.append(Column("stimulus_name", SHARED_DESCRIPTIONS["stimulus_name"],
                              text_column(columns.pop("stimulus_name"))))
        for name, dtype, description in KIND_COLUMNS[table.kind]:
            if name not in columns:
                continue
            column = columns.pop(name)
            if dtype == "float":
                values = float_column(column, path=path, location=location)
                if column.is_text:
                    description += " The source stores it as text, 'N/A' for missing: converted to float, NaN."
            elif dtype == "int":
                values = int_column(column, path=path, location=location)
                if column.values.dtype.kind not in "iu":
                    description += " -99 where the source has no value."
            elif dtype == "bool":
                values, absent = bool_column(column, path=path, location=location)
                if absent.any():
                    description += (f" False in the {int(absent.sum())} rows where the source has no value (the "
                                    "source stores the column as float with NaN).")
            else:
                values = text_column(column)
            out.append(Column(name, description, values))
        if renumbered:
            out.append(Column("allen_stimulus_block", "The Allen stimulus_block of the presentation (int, no unit); "
                              "stimulus_block is the row of its block in epochs.", table.block))
        # AllenSDK gives every presentations table the columns of every stimulus, filled with "N/A" or NaN
        # where they do not apply: a column without a single value says nothing about this stimulus.
        empty = [name for name, column in columns.items() if is_empty(column)]
        for name, column in columns.items():
            if name not in empty:
                out.append(extra_column(column, path=path, location=location))
        notes = ""
        if empty:
            notes += (f" Allen columns with no value in any row (AllenSDK's fillers for other stimuli) are left out: "
                      f"{', '.join(empty)}.")
        if table.skipped:
            notes += (f" The source's {', '.join(table.skipped)} column (references into its stimulus frame "
                      "timestamps) is not copied.")
        return build_table(
            TimeIntervals,
            name=f"{table.kind}_presentations",
            description=(f"{kind_spec.description}. From {location} of the Allen session file, in time order. "
                         "Other Allen columns follow under their Allen names; 'N/A' in numeric columns became NaN."
                         + notes),
            columns=out,
        )


FRAME_TIMES = "processing/stimulus/timestamps"


def stimulus_frame_times(series, *, path: Path) -> TimeSeries:
    """``allen_stimulus_frame_times``: the time of every displayed stimulus frame, indexed by frame number.

    The presentations and trials count time in frames (start_frame, end_frame, change_frame); these
    times turn a frame into seconds.
    """
    times = np.asarray(series.timestamps[:] if series.timestamps is not None else series.data[:], dtype=np.float64)
    if times.ndim != 1 or not np.isfinite(times).all() or (np.diff(times) < 0).any():
        raise SourceFileError(path, f"{FRAME_TIMES}: stimulus frame times must be finite and non-decreasing")
    return TimeSeries(
        name="allen_stimulus_frame_times",
        description=("Every stimulus frame as displayed on the monitor (Allen processing/stimulus/timestamps): data "
                     "is the frame index used by start_frame, end_frame and change_frame, timestamps its time (s)."),
        data=np.arange(len(times), dtype=np.int64), timestamps=times, unit="n.a.")


def epochs_table(blocks: list[ProtocolBlock]) -> TimeIntervals:
    """The ``epochs`` table of the protocol blocks (see :func:`protocol_blocks`)."""
    protocols = [block.protocol for block in blocks]
    described = "; ".join(f"{name}: {PROTOCOL_DESCRIPTIONS[name]}" for name in dict.fromkeys(protocols))
    return build_table(
        TimeIntervals,
        name="epochs",
        description=("Protocol blocks of the session in time order. The row index of a block is its stimulus_block "
                     "number in every <kind>_presentations table. " + described + "."),
        columns=[
            Column("start_time", "Start of the protocol block: onset of its first presentation (s, session clock).",
                   np.array([block.start_time for block in blocks], dtype=np.float64)),
            Column("stop_time", "End of the protocol block: offset of its last presentation (s, session clock).",
                   np.array([block.stop_time for block in blocks], dtype=np.float64)),
            Column("protocol", "Protocol of the block: 'task', 'spontaneous', 'receptive_field_mapping', "
                   "'task_replay', 'flash' or 'optotagging' (no unit).", np.array(protocols, dtype=object)),
            Column("protocol_name", "The Allen stimulus name of the block ('optotagging' for optotagging) (no unit).",
                   np.array([block.protocol_name for block in blocks], dtype=object)),
        ],
    )


def templates(source: AllenFile) -> list[ImageSeries]:
    """The image sets of ``stimulus/templates`` as core ImageSeries (images as displayed, warped)."""
    out = []
    for name, template in source.nwbfile.stimulus_template.items():
        data = np.asarray(template.data[:])
        kwargs = {}
        if template.timestamps is not None:
            kwargs["timestamps"] = np.asarray(template.timestamps[:], dtype=np.float64)
        else:
            kwargs["rate"] = float(template.rate)
            kwargs["starting_time"] = float(template.starting_time or 0.0)
        if getattr(template, "control", None) is not None:
            control = np.asarray(template.control[:])
            if control.size and (control.min() < 0 or control.max() > np.iinfo(np.uint8).max):
                raise SourceFileError(source.path, f"stimulus/templates/{name}: control values must be image "
                                      f"indices 0..255 (NWB stores them as uint8), found {control.min()}..{control.max()}")
            kwargs["control"] = control.astype(np.uint8)
            kwargs["control_description"] = [str(text) for text in text_values(template.control_description)]
        unwarped = " The source's unwarped images (before the monitor warping) are not copied." if getattr(
            template, "unwarped", None) is not None else ""
        out.append(ImageSeries(
            name=name,
            description=(f"The images of the Allen image set {name} as displayed (warped for the monitor), one frame "
                         "per image, from stimulus/templates/" + name + " of the Allen session file (pixel values, no "
                         "unit). control_description gives the image_name of each frame." + unwarped),
            data=data,
            unit="n.a.",
            format="raw",
            **kwargs,
        ))
    return out
