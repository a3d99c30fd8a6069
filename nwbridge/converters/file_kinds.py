"""Writing one file kind of a session on its own: the processed file, or the raw file.

A release converts each file kind of a session as its own task, because the two differ by an
order of magnitude in time and memory: the raw file streams gigabytes of voltage, the processed
file holds spikes and behaviour. Both come from the session converters, asked for that one file
(``processed=False`` for the raw file alone), so each is the file ``convert_*_session`` writes.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SourceFileError

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
    from ..interfaces.ibl.session import ALYX_METADATA_FILE, read_alyx_metadata
    from .ibl_session import convert_ibl_session

    _check_kind(kind)
    session_path = Path(session_path)
    if eid is not None:
        recorded = read_alyx_metadata(session_path).get("session", {}).get("id")
        if recorded and recorded != eid:
            raise SourceFileError(session_path / ALYX_METADATA_FILE,
                                  f"the session id is {recorded}, but the release list gives {eid} for this folder")
    (path,) = convert_ibl_session(session_path, output_dir, overwrite=overwrite, revision=revision,
                                  raw=kind == "raw", processed=kind == "processed", workers=workers, codec=codec,
                                  progress=False)
    return path


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
    from .allen_session import convert_allen_session

    _check_kind(kind)
    session_nwb = Path(session_nwb)
    # The raw file takes the LFP files of the session's own probes beside it (the converter's default).
    (path,) = convert_allen_session(session_nwb, output_dir, probe_files=[] if kind == "processed" else None,
                                    processed=kind == "processed", overwrite=overwrite, release=release,
                                    workers=workers, codec=codec, progress=False)
    return path
