"""What converting a session means whatever its source: metadata checks and writing each file safely."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date, datetime
from pathlib import Path

import yaml
from neuroconv.tools.nwb_helpers import make_nwbfile_from_metadata

from ..errors import MissingMetadataError, SourceFileError
from ..writing import write_nwbfile_atomically

__all__ = ["load_user_metadata", "check_dandi_metadata", "write_session_file", "place_file"]


def load_user_metadata(path: str | Path) -> dict:
    """Read a metadata file (YAML or JSON) in neuroconv's layout (``NWBFile``, ``Subject``, ...)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SourceFileError(path, f"metadata file not readable ({error})") from error
    try:
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise SourceFileError(path, f"not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({error})") from error
    if not isinstance(loaded, dict):
        raise SourceFileError(path, "expected a mapping with sections such as 'NWBFile' and 'Subject'")
    return loaded


def check_dandi_metadata(metadata: dict, *, source_hint: str) -> None:
    """Refuse to convert when metadata DANDI requires is missing, naming each field.

    Dates given as text or as plain dates (as YAML reads them) are turned into the time-zone-aware
    datetimes NWB needs, in place.

    Parameters
    ----------
    metadata : dict
        Merged metadata (from the sources and the user).
    source_hint : str
        Where the converter looked, for the message.
    """
    nwbfile = metadata.get("NWBFile", {})
    subject = metadata.get("Subject", {})
    missing = {}
    if not nwbfile.get("session_id"):
        missing["NWBFile.session_id"] = f"the session id: not in {source_hint}"
    start = nwbfile.get("session_start_time")
    if isinstance(start, str):
        try:
            start = nwbfile["session_start_time"] = datetime.fromisoformat(start)
        except ValueError:
            missing["NWBFile.session_start_time"] = (f"{start!r} is not an ISO 8601 time; give it with an offset, "
                                                     "e.g. 2021-05-10T13:47:08+01:00")
            start = None
    if start is None:
        missing.setdefault("NWBFile.session_start_time", f"not in {source_hint}")
    elif start.tzinfo is None:
        missing["NWBFile.session_start_time"] = "has no time zone: give it with an offset, e.g. 2021-05-10T13:47:08+01:00"
    if not subject.get("subject_id"):
        missing["Subject.subject_id"] = f"not in {source_hint}"
    if not subject.get("species"):
        missing["Subject.species"] = "e.g. 'Mus musculus'"
    if subject.get("sex") not in ("M", "F", "U", "O"):
        found = f" (found {subject['sex']!r})" if subject.get("sex") else ""
        missing["Subject.sex"] = f"one of M, F, U, O{found}: not in {source_hint}"
    birth = subject.get("date_of_birth")
    if isinstance(birth, str):
        try:
            # A bare date (always text in JSON) is a date, not a naive midnight.
            birth = subject["date_of_birth"] = (date.fromisoformat(birth) if len(birth) == 10
                                                else datetime.fromisoformat(birth))
        except ValueError:
            missing["Subject.date_of_birth"] = f"{birth!r} is not an ISO 8601 date (e.g. 2020-01-31)"
            birth = None
    if isinstance(birth, date) and not isinstance(birth, datetime):
        # A plain date (as YAML reads 2020-01-31) is midnight in the session's time zone.
        zone = start.tzinfo if start is not None else None
        birth = subject["date_of_birth"] = datetime(birth.year, birth.month, birth.day, tzinfo=zone)
    if isinstance(birth, datetime) and birth.tzinfo is None:
        missing["Subject.date_of_birth"] = "has no time zone: give it as a date (2020-01-31) or with an offset"
    if not subject.get("age") and not birth:
        missing["Subject.age or Subject.date_of_birth"] = (
            f"not in {source_hint}; give age as ISO 8601 (e.g. P90D) or date_of_birth")
    if missing:
        raise MissingMetadataError(missing)



def write_session_file(interfaces: dict, metadata: dict, destination: Path, *, overwrite: bool,
                       workers: int | None, codec: str, progress: bool, bar, videos: dict | None = None,
                       conversion_options: dict | None = None) -> Path:
    """One NWB file from ``interfaces``, written atomically, with its videos placed beside it.

    Parameters
    ----------
    interfaces : dict
        neuroconv interfaces by name, added in this order.
    metadata : dict
        The file's metadata (neuroconv layout).
    destination : Path
    overwrite : bool
    workers, codec, progress
        As for :func:`nwbridge.writing.write_nwbfile_atomically`.
    bar : tqdm
        Advanced by one for every interface and once for the write.
    videos : dict, optional
        ``{name: (source, target)}`` files to place beside the NWB file (hard link or copy).
    conversion_options : dict, optional
        Keyword arguments of each interface's ``add_to_nwbfile``, by interface name.
    """
    videos = videos or {}
    conversion_options = conversion_options or {}
    placed = []
    try:
        nwbfile = make_nwbfile_from_metadata(metadata=metadata)
        for name, interface in interfaces.items():
            bar.set_postfix_str(interface.display_name or name)
            interface.add_to_nwbfile(nwbfile, metadata=metadata, **conversion_options.get(name, {}))
            bar.update()
        for source, target in videos.values():
            # On failure only new videos are removed: an existing one belongs to a finished conversion.
            if not target.exists():
                placed.append(target)
            place_file(source, target)
        bar.set_postfix_str(f"writing {destination.name}")
        write_nwbfile_atomically(nwbfile, destination, overwrite=overwrite, workers=workers, codec=codec,
                                 progress=progress)
        bar.update()
    except BaseException:
        for target in placed:
            target.unlink(missing_ok=True)
        raise
    return destination


def place_file(source: Path, target: Path) -> Path:
    """Put a copy of ``source`` at ``target``: a hard link when on the same disk (videos are large), else a copy.

    The copy is made under a temporary name and renamed, so ``target`` is never a partial file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".partial")
    temporary.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target
