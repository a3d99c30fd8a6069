"""Converting one IBL session folder into the shared representation."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

from neuroconv import ConverterPipe
from neuroconv.utils import dict_deep_update
from tqdm.auto import tqdm

from ..errors import MissingSourceFileError
from ..interfaces.ibl import PROCESSED_INTERFACES
from ..interfaces.ibl.alf import AlfSession
from ..interfaces.ibl.raw_ephys import IblRawEphysInterface
from ..interfaces.ibl.session import ALYX_METADATA_FILE
from ..provenance import IBL_DATASET, file_identifier, output_path
from .session_files import check_dandi_metadata, load_user_metadata, write_session_file

__all__ = ["convert_ibl_session"]


def convert_ibl_session(session_path: str | Path, output_dir: str | Path, *, metadata: dict | str | Path | None = None,
                        overwrite: bool = False, revision: str | None = None, raw: bool = False, processed: bool = True,
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
    processed : bool, default: True
        Write the processed file; ``processed=False, raw=True`` writes the raw file alone (a release
        converts each file kind as its own task).
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
                                       modalities="behavior+ecephys"), interfaces)} if processed else {}
    if raw:
        if not IblRawEphysInterface.is_available(session):
            raise MissingSourceFileError(session_path / "raw_ephys_data",
                                         "no raw electrophysiology (.cbin or .bin with its .meta) in the session")
        files["raw"] = (output_path(output_dir, subject=subject, session=session_id, description="raw",
                                    modalities="ecephys"),
                        {"IblSessionInterface": interfaces["IblSessionInterface"],
                         "IblRawEphysInterface": IblRawEphysInterface(session_path=session_path, revision=revision,
                                                                      workers=workers)})
    if not files:
        raise ValueError("nothing to write: processed=False needs raw=True")
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
            videos, options = _videos(chosen, destination)
            written.append(write_session_file(chosen, file_metadata, destination, overwrite=overwrite,
                                              workers=workers, codec=codec, progress=progress, bar=bar,
                                              videos=videos, conversion_options=options))
    return written


def _videos(interfaces: dict, destination: Path) -> tuple[dict, dict]:
    """The session's videos and where they go: beside the NWB file, as DANDI wants, referenced by a relative path."""
    cameras = interfaces.get("IblCamerasInterface")
    if cameras is None:
        return {}, {}
    video_folder = destination.with_suffix("")
    videos = {camera: (source, video_folder / f"video_{camera}{source.suffix}")
              for camera, source in cameras.video_files().items()}
    options = {"IblCamerasInterface": {"external_files": {
        camera: target.relative_to(destination.parent).as_posix() for camera, (_, target) in videos.items()}}}
    return videos, options
