"""Converting one IBL session folder into the shared representation."""

from __future__ import annotations

import json
import os
import shutil
from copy import deepcopy
from datetime import date, datetime
from pathlib import Path

import yaml
from neuroconv import ConverterPipe
from neuroconv.tools.nwb_helpers import make_nwbfile_from_metadata
from neuroconv.utils import dict_deep_update
from tqdm.auto import tqdm

from ..errors import MissingMetadataError, MissingSourceFileError, SourceFileError
from ..interfaces.ibl import PROCESSED_INTERFACES
from ..interfaces.ibl.alf import AlfSession
from ..interfaces.ibl.raw_ephys import IblRawEphysInterface
from ..interfaces.ibl.session import ALYX_METADATA_FILE
from ..provenance import IBL_DATASET, file_identifier, output_path
from ..writing import write_nwbfile_atomically

__all__ = ["convert_ibl_session", "load_user_metadata", "check_dandi_metadata"]


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
        missing["NWBFile.session_id"] = f"the session id (IBL eid): not in {source_hint}"
    start = nwbfile.get("session_start_time")
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if start is None:
        missing["NWBFile.session_start_time"] = f"not in {source_hint}"
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
        birth = subject["date_of_birth"] = datetime.fromisoformat(birth)
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


def convert_ibl_session(session_path: str | Path, output_dir: str | Path, *, metadata: dict | str | Path | None = None,
                        overwrite: bool = False, revision: str | None = None, raw: bool = False,
                        workers: int | None = None, codec: str = "gzip", progress: bool = True) -> list[Path]:
    """Convert one IBL session folder into the NWB files of the shared representation.

    Parameters
    ----------
    session_path : str or Path
        ``<root>/<lab>/Subjects/<subject>/<YYYY-MM-DD>/<NNN>``, as the ONE API downloads it.
    output_dir : str or Path
        Dandiset folder; the files go to ``sub-<subject>/sub-<subject>_ses-<eid>_desc-processed_behavior+ecephys.nwb``
        and, with ``raw``, ``sub-<subject>/sub-<subject>_ses-<eid>_desc-raw_ecephys.nwb``.
    metadata : dict, str or Path, optional
        Metadata overriding or completing what the session provides (neuroconv layout: ``NWBFile``,
        ``Subject``), as a dictionary or a YAML/JSON file.
    overwrite : bool, default: False
        Replace existing output files.
    revision : str, optional
        ALF revision to convert; by default the newest revision of every dataset.
    raw : bool, default: False
        Also write the raw file: the AP and LF voltage of every probe, streamed from the ``.cbin`` files.
    workers : int, optional
        Threads for decompression and compression; default every core.
    codec : {"gzip", "zstd"}, default: "gzip"
        Compression of the large datasets: gzip (with shuffle) is readable by any HDF5 reader; zstd
        is faster but readers need the HDF5 Zstandard filter (``pip install hdf5plugin``, then
        ``import hdf5plugin`` before opening the file).
    progress : bool, default: True
        Show progress bars.

    Returns
    -------
    list of Path
        The files written.
    """
    session_path = Path(session_path)
    session = AlfSession(session_path, revision=revision)
    interfaces = {cls.__name__: cls(session_path=session_path, revision=revision)
                  for cls in PROCESSED_INTERFACES if cls.is_available(session)}
    merged = ConverterPipe(data_interfaces=interfaces).get_metadata()
    if metadata is not None:
        user = metadata if isinstance(metadata, dict) else load_user_metadata(metadata)
        merged = dict_deep_update(merged, user)
    check_dandi_metadata(merged, source_hint=str(session_path / ALYX_METADATA_FILE))

    subject, session_id = merged["Subject"]["subject_id"], merged["NWBFile"]["session_id"]
    files = {"processed": (output_path(output_dir, subject=subject, session=session_id, description="processed",
                                       modalities="behavior+ecephys"), interfaces)}
    if raw:
        if not IblRawEphysInterface.is_available(session):
            raise MissingSourceFileError(session_path / "raw_ephys_data",
                                         "no raw electrophysiology (.cbin or .bin with its .meta) in the session")
        files["raw"] = (output_path(output_dir, subject=subject, session=session_id, description="raw",
                                    modalities="ecephys"),
                        {"IblSessionInterface": interfaces["IblSessionInterface"],
                         "IblRawEphysInterface": IblRawEphysInterface(session_path=session_path, revision=revision,
                                                                      workers=workers)})
    existing = [str(destination) for destination, _ in files.values() if destination.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{' and '.join(existing)} already {'exists' if len(existing) == 1 else 'exist'}; "
                              "pass overwrite=True (CLI: --overwrite) to replace")

    label = f"{session.subject} {session.date} #{session.number:03d}"
    steps = sum(len(chosen) + 1 for _, chosen in files.values())
    written = []
    with tqdm(total=steps, desc=label, unit="step", disable=not progress, leave=False) as bar:
        for kind, (destination, chosen) in files.items():
            file_metadata = deepcopy(merged)
            # Derived from the final session id, which the user's metadata may have supplied.
            file_metadata["NWBFile"]["identifier"] = file_identifier(IBL_DATASET, session_id, kind)
            written.append(_write_file(chosen, file_metadata, destination, overwrite=overwrite, workers=workers,
                                       codec=codec, progress=progress, bar=bar))
    return written


def _write_file(interfaces: dict, metadata: dict, destination: Path, *, overwrite: bool, workers: int | None,
                codec: str, progress: bool, bar) -> Path:
    """One NWB file from ``interfaces``, written atomically, with its videos placed beside it."""
    # Videos travel with the NWB file: DANDI wants them beside it, referenced by a relative path.
    video_folder = destination.with_suffix("")
    videos = {}
    conversion_options = {}
    cameras = interfaces.get("IblCamerasInterface")
    if cameras is not None:
        videos = {camera: (source, video_folder / f"video_{camera}{source.suffix}")
                  for camera, source in cameras.video_files().items()}
        conversion_options["IblCamerasInterface"] = {"external_files": {
            camera: target.relative_to(destination.parent).as_posix() for camera, (_, target) in videos.items()}}
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
