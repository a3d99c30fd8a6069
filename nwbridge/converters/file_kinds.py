"""Writing one file kind of a session on its own: the processed file, or the raw file.

A release converts each file kind of a session as its own task, because the two differ by an
order of magnitude in time and memory: the raw file streams gigabytes of voltage, the processed
file holds spikes and behaviour. The processed file comes from the session converters
(asked for that file only); the raw file is built here from the same interfaces, metadata and
identifiers the converters use for it, so it is the file ``convert_*_session`` would write.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import MissingSourceFileError, SourceFileError
from ..provenance import ALLEN_DATASET, IBL_DATASET, file_identifier, output_path
from .session_files import check_dandi_metadata, write_session_file

__all__ = ["FILE_KINDS", "write_ibl_file", "write_allen_file"]

FILE_KINDS = ("processed", "raw")


def _check_kind(kind: str) -> None:
    if kind not in FILE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FILE_KINDS)}, not {kind!r}")


def write_ibl_file(session_path: str | Path, output_dir: str | Path, *, kind: str, eid: str | None = None,
                   overwrite: bool = False, revision: str | None = None, workers: int | None = None,
                   codec: str = "gzip") -> Path:
    """Write one file of an IBL session: ``processed`` or ``raw``.

    Parameters
    ----------
    session_path : str or Path
        The session folder (ONE cache layout).
    output_dir : str or Path
        Dandiset folder.
    kind : {"processed", "raw"}
    eid : str, optional
        The eid the release list gives the session: a session folder whose Alyx record names
        another session is refused (it is not the session the list means).
    overwrite, revision, workers, codec
        As for :func:`nwbridge.converters.ibl_session.convert_ibl_session`.

    Returns
    -------
    Path
        The file written.
    """
    from ..interfaces.ibl import PROCESSED_INTERFACES, IblRawEphysInterface
    from ..interfaces.ibl.alf import AlfSession
    from ..interfaces.ibl.session import ALYX_METADATA_FILE, read_alyx_metadata
    from .ibl_session import convert_ibl_session

    _check_kind(kind)
    session_path = Path(session_path)
    if eid is not None:
        recorded = read_alyx_metadata(session_path).get("session", {}).get("id")
        if recorded and recorded != eid:
            raise SourceFileError(session_path / ALYX_METADATA_FILE,
                                  f"the session id is {recorded}, but the release list gives {eid} for this folder")
    if kind == "processed":
        (path,) = convert_ibl_session(session_path, output_dir, overwrite=overwrite, revision=revision, raw=False,
                                      workers=workers, codec=codec, progress=False)
        return path

    session = AlfSession(session_path, revision=revision)
    if not IblRawEphysInterface.is_available(session):
        raise MissingSourceFileError(session_path / "raw_ephys_data",
                                     "no raw electrophysiology (.cbin or .bin with its .meta) in the session")
    # The raw file carries the same file-level metadata as the processed one: gathered the same way.
    interfaces = {cls.__name__: cls(session_path=session_path, revision=revision)
                  for cls in PROCESSED_INTERFACES if cls.is_available(session)}
    from neuroconv import ConverterPipe

    metadata = ConverterPipe(data_interfaces=interfaces).get_metadata()
    check_dandi_metadata(metadata, source_hint=str(session_path / ALYX_METADATA_FILE))
    session_id = metadata["NWBFile"]["session_id"]
    destination = output_path(output_dir, subject=metadata["Subject"]["subject_id"], session=session_id,
                              description="raw", modalities="ecephys")
    _refuse_existing(destination, overwrite=overwrite)
    metadata = deepcopy(metadata)
    metadata["NWBFile"]["identifier"] = file_identifier(IBL_DATASET, session_id, "raw")
    chosen = {"IblSessionInterface": interfaces["IblSessionInterface"],
              "IblRawEphysInterface": IblRawEphysInterface(session_path=session_path, revision=revision,
                                                           workers=workers)}
    with tqdm(disable=True) as bar:
        return write_session_file(chosen, metadata, destination, overwrite=overwrite, workers=workers, codec=codec,
                                  progress=False, bar=bar)


def write_allen_file(session_nwb: str | Path, output_dir: str | Path, *, kind: str, overwrite: bool = False,
                     release: str | None = None, workers: int | None = None, codec: str = "gzip") -> Path:
    """Write one file of an Allen VBN session: ``processed``, or ``raw`` (the LFP of its probes).

    Parameters
    ----------
    session_nwb : str or Path
        The session file, ``ecephys_session_<id>.nwb``; for ``raw``, the LFP files of its probes
        (``probe_<probe_id>.nwb``) are taken from beside it.
    output_dir : str or Path
    kind : {"processed", "raw"}
    overwrite, release, workers, codec
        As for :func:`nwbridge.converters.allen_session.convert_allen_session`.

    Returns
    -------
    Path
        The file written.
    """
    from .allen_session import convert_allen_session, find_probe_files

    _check_kind(kind)
    session_nwb = Path(session_nwb)
    if kind == "processed":
        (path,) = convert_allen_session(session_nwb, output_dir, probe_files=[], overwrite=overwrite, release=release,
                                        workers=workers, codec=codec, progress=False)
        return path

    from neuroconv import ConverterPipe

    from ..interfaces.allen import PROCESSED_INTERFACES, AllenLfpInterface, AllenSessionInterface
    from ..interfaces.allen.electrodes import read_probes
    from ..interfaces.allen.source import close_allen_file, open_allen_file

    if not session_nwb.is_file():
        raise MissingSourceFileError(session_nwb, "the session file does not exist")
    opened = [session_nwb]
    try:
        source = open_allen_file(session_nwb)
        interfaces = {}
        for cls in PROCESSED_INTERFACES:
            if cls is AllenSessionInterface:
                interfaces[cls.__name__] = cls(session_nwb=session_nwb, release=release)
            elif cls.is_available(source):
                interfaces[cls.__name__] = cls(session_nwb=session_nwb)
        metadata = ConverterPipe(data_interfaces=interfaces).get_metadata()
        check_dandi_metadata(metadata, source_hint=str(session_nwb))
        probe_files = find_probe_files(session_nwb, probe_ids=[probe.probe_id for probe in read_probes(source)])
        if not probe_files:
            raise MissingSourceFileError(session_nwb.parent / "probe_<probe_id>.nwb",
                                         "no LFP file of the session's probes beside the session file")
        for path in probe_files:
            opened.append(path)
            open_allen_file(path)
        session_id = metadata["NWBFile"]["session_id"]
        destination = output_path(output_dir, subject=metadata["Subject"]["subject_id"], session=session_id,
                                  description="raw", modalities="ecephys")
        _refuse_existing(destination, overwrite=overwrite)
        metadata = deepcopy(metadata)
        metadata["NWBFile"]["identifier"] = file_identifier(ALLEN_DATASET, session_id, "raw")
        chosen = {"AllenSessionInterface": interfaces["AllenSessionInterface"],
                  "AllenLfpInterface": AllenLfpInterface(session_nwb=session_nwb,
                                                         probe_files=[str(path) for path in probe_files])}
        with tqdm(disable=True) as bar:
            return write_session_file(chosen, metadata, destination, overwrite=overwrite, workers=workers,
                                      codec=codec, progress=False, bar=bar)
    finally:
        # The data are read lazily while the file is written: close only now.
        for path in opened:
            close_allen_file(path)


def _refuse_existing(destination: Path, *, overwrite: bool) -> None:
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
