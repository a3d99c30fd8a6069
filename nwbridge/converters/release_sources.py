"""The sessions of a data release: reading the release tables and finding each session on disk.

Two tables list a release: the IBL Brain Wide Map release list (one row per probe insertion,
``,pid,eid,probe_name,session_number,date,subject,lab``) and the Allen Visual Behavior
Neuropixels sessions table (``ecephys_sessions.csv``, one row per session). Each session is then
looked for where the source's own download tool puts it: the ONE cache layout
``<root>/<lab>/Subjects/<subject>/<date>/<NNN>`` for the IBL, the AllenSDK S3 cache layout
``<cache>/behavior_ecephys_sessions/<id>/ecephys_session_<id>.nwb`` (with ``probe_<probe_id>.nwb``
beside it) for the Allen Institute. Nothing here opens a session's data files: listing a release
of hundreds of sessions takes a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourceFileError

__all__ = [
    "IBL_RELEASE_COLUMNS",
    "VBN_SESSION_COLUMNS",
    "IblReleaseEntry",
    "VbnReleaseEntry",
    "ReleaseSession",
    "read_ibl_release",
    "read_vbn_sessions",
    "locate_ibl_session",
    "locate_allen_session",
    "input_bytes",
]

IBL_RELEASE_COLUMNS = ("pid", "eid", "probe_name", "session_number", "date", "subject", "lab")
VBN_SESSION_COLUMNS = ("ecephys_session_id", "mouse_id")

# Bulk raw data of a SpikeGLX recording: what the raw file is made from. The small .meta, .ch and
# timestamp files beside them are read for the processed file too.
_RAW_EPHYS_SUFFIXES = (".cbin", ".bin")
# Raw videos are placed beside the processed file (a hard link), not converted: not counted as input.
_NOT_CONVERTED_FOLDERS = ("raw_video_data",)
_PROBE_FILE = re.compile(r"probe_(\d+)\.nwb")


@dataclass(frozen=True)
class IblReleaseEntry:
    """One session of the IBL release list (its rows grouped by eid).

    Attributes
    ----------
    eid : str
        The session's experiment id.
    subject, lab, date : str
    number : int
        Session number of the day.
    probes : tuple of (str, str)
        ``(pid, probe_name)`` of every insertion of the session in the release.
    """

    eid: str
    subject: str
    lab: str
    date: str
    number: int
    probes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class VbnReleaseEntry:
    """One session of the VBN sessions table.

    Attributes
    ----------
    ecephys_session_id : str
    mouse_id : str
    date : str or None
        ``date_of_acquisition`` as the table gives it.
    session_type : str or None
    probe_count : int or None
    """

    ecephys_session_id: str
    mouse_id: str
    date: str | None = None
    session_type: str | None = None
    probe_count: int | None = None


@dataclass(frozen=True)
class ReleaseSession:
    """A session of a release and where its sources are (or were expected).

    Attributes
    ----------
    dataset : {"ibl", "allen"}
    session_id : str
        IBL eid or Allen ecephys_session_id: the id the output files are named after.
    subject : str
        IBL subject nickname or Allen mouse id: the ``sub-`` folder of the output.
    source : Path
        The IBL session folder or the Allen session file, found or expected.
    found : bool
        Whether ``source`` exists.
    label : str
        How to name the session to a person (``KS055 2021-05-10 #001``).
    probe_files : tuple of Path
        Allen: the LFP files (``probe_<id>.nwb``) in the session's folder.
    """

    dataset: str
    session_id: str
    subject: str
    source: Path
    found: bool
    label: str
    probe_files: tuple[Path, ...] = field(default=())


def _read_table(path: Path, required: tuple[str, ...], *, what: str):
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SourceFileError(path, f"the {what} does not exist")
    try:
        # Ids stay text: eids are UUIDs and Allen ids must not become floats where a cell is empty.
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise SourceFileError(path, f"the {what} is not readable as CSV ({error})") from error
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise SourceFileError(path, f"missing column(s) {', '.join(missing)}: the {what} needs "
                                    f"{', '.join(required)} (found {', '.join(map(str, table.columns))})")
    for column in required:
        empty = table.index[table[column].str.strip() == ""]
        if len(empty):
            raise SourceFileError(path, f"empty {column} in {len(empty)} row(s), first at data row {empty[0] + 1}")
    return table


def read_ibl_release(path: str | Path) -> list[IblReleaseEntry]:
    """The sessions of an IBL Brain Wide Map release list, in the order they first appear.

    Parameters
    ----------
    path : str or Path
        A release list such as ``2023_12_bwm_release.csv``: one row per probe insertion with
        the columns ``pid, eid, probe_name, session_number, date, subject, lab``.

    Raises
    ------
    SourceFileError
        When the file is missing, unreadable, lacks a column, or gives one eid two different
        subjects, dates, labs or session numbers.
    """
    path = Path(path)
    table = _read_table(path, IBL_RELEASE_COLUMNS, what="IBL release list")
    sessions: dict[str, dict] = {}
    for row_number, row in enumerate(table.itertuples(index=False), start=1):
        identity = {"subject": row.subject.strip(), "lab": row.lab.strip(), "date": row.date.strip()}
        try:
            identity["number"] = int(float(row.session_number))
        except ValueError:
            raise SourceFileError(path, f"session_number {row.session_number!r} of data row {row_number} is not "
                                        "a number") from None
        eid = row.eid.strip()
        known = sessions.setdefault(eid, {**identity, "probes": []})
        differing = [name for name, value in identity.items() if known[name] != value]
        if differing:
            raise SourceFileError(path, f"eid {eid} has two different {', '.join(differing)} (data row {row_number}: "
                                        + ", ".join(f"{name}={identity[name]!r}, before {known[name]!r}"
                                                    for name in differing) + ")")
        known["probes"].append((row.pid.strip(), row.probe_name.strip()))
    return [IblReleaseEntry(eid=eid, subject=known["subject"], lab=known["lab"], date=known["date"],
                            number=known["number"], probes=tuple(known["probes"]))
            for eid, known in sessions.items()]


def read_vbn_sessions(path: str | Path) -> list[VbnReleaseEntry]:
    """The sessions of a Visual Behavior Neuropixels sessions table (``ecephys_sessions.csv``).

    Raises
    ------
    SourceFileError
        When the file is missing, unreadable, lacks ``ecephys_session_id`` or ``mouse_id``, or lists a
        session twice.
    """
    path = Path(path)
    table = _read_table(path, VBN_SESSION_COLUMNS, what="VBN sessions table")
    entries, seen = [], set()
    for row_number, row in enumerate(table.to_dict("records"), start=1):
        session_id = _integer_text(row["ecephys_session_id"])
        if not session_id.isdigit():
            raise SourceFileError(path, f"ecephys_session_id {row['ecephys_session_id']!r} of data row {row_number} "
                                        "is not a number")
        if session_id in seen:
            raise SourceFileError(path, f"ecephys_session_id {session_id} is listed twice (again at data row "
                                        f"{row_number})")
        seen.add(session_id)
        probe_count = _integer_text(row.get("probe_count", ""))
        entries.append(VbnReleaseEntry(ecephys_session_id=session_id, mouse_id=_integer_text(row["mouse_id"]),
                                       date=row.get("date_of_acquisition") or None,
                                       session_type=row.get("session_type") or None,
                                       probe_count=int(probe_count) if probe_count.isdigit() else None))
    return entries


def _integer_text(value: str) -> str:
    """``"1044385384"`` and ``"1044385384.0"`` (pandas writes ids of a column with gaps as floats) -> ``"1044385384"``."""
    value = str(value).strip()
    return value[:-2] if value.endswith(".0") and value[:-2].isdigit() else value


def locate_ibl_session(entry: IblReleaseEntry, root: str | Path) -> ReleaseSession:
    """Where the ONE API puts ``entry``'s session under the cache ``root``."""
    folder = Path(root) / entry.lab / "Subjects" / entry.subject / entry.date / f"{entry.number:03d}"
    return ReleaseSession(dataset="ibl", session_id=entry.eid, subject=entry.subject, source=folder,
                          found=folder.is_dir(), label=f"{entry.subject} {entry.date} #{entry.number:03d}")


def locate_allen_session(entry: VbnReleaseEntry, cache_dir: str | Path) -> ReleaseSession:
    """Where AllenSDK's S3 cache puts ``entry``'s session file (and its probes' LFP files) under ``cache_dir``."""
    folder = Path(cache_dir) / "behavior_ecephys_sessions" / entry.ecephys_session_id
    session_file = folder / f"ecephys_session_{entry.ecephys_session_id}.nwb"
    found = session_file.is_file()
    # The cache gives every session its own folder, so every probe file in it is this session's.
    probe_files = tuple(sorted(path for path in folder.glob("probe_*.nwb") if _PROBE_FILE.fullmatch(path.name))
                        ) if found else ()
    return ReleaseSession(dataset="allen", session_id=entry.ecephys_session_id, subject=entry.mouse_id,
                          source=session_file, found=found, label=f"mouse {entry.mouse_id}", probe_files=probe_files)


def input_bytes(session: ReleaseSession, kind: str) -> int:
    """Bytes of source data one file kind (``processed`` or ``raw``) of ``session`` is made from; 0 if not found.

    IBL processed: every file of the session but the bulk raw data and the raw videos; IBL raw: the
    ``.cbin`` / ``.bin`` files. Allen processed: the session file; Allen raw: the probes' LFP files.
    """
    if not session.found:
        return 0
    if session.dataset == "allen":
        paths = [session.source] if kind == "processed" else list(session.probe_files)
        return sum(path.stat().st_size for path in paths if path.is_file())
    total = 0
    for path in session.source.rglob("*"):
        relative = path.relative_to(session.source).parts
        if not path.is_file() or relative[0] in _NOT_CONVERTED_FOLDERS:
            continue
        is_raw = relative[0] == "raw_ephys_data" and path.suffix in _RAW_EPHYS_SUFFIXES
        if is_raw == (kind == "raw"):
            total += path.stat().st_size
    return total
