"""Converting one Allen Visual Behavior Neuropixels session into the shared representation."""

from __future__ import annotations

import re
from copy import deepcopy
from pathlib import Path

from neuroconv import ConverterPipe
from neuroconv.utils import dict_deep_update
from tqdm.auto import tqdm

from ..errors import SourceFileError
from ..provenance import ALLEN_DATASET, file_identifier, output_path
from .session_files import check_dandi_metadata, load_user_metadata, write_session_file

__all__ = ["convert_allen_session", "find_probe_files"]

_PROBE_FILE = re.compile(r"probe_(\d+)\.nwb")


def find_probe_files(session_nwb: str | Path) -> list[Path]:
    """The per-probe LFP files beside a session file, as the Allen release lays them out (``probe_<probe_id>.nwb``)."""
    return sorted(path for path in Path(session_nwb).parent.glob("probe_*.nwb") if _PROBE_FILE.fullmatch(path.name))


def convert_allen_session(session_nwb: str | Path, output_dir: str | Path, *, probe_files=None,
                          metadata: dict | str | Path | None = None, overwrite: bool = False,
                          release: str | None = None, workers: int | None = None, codec: str = "gzip",
                          progress: bool = True) -> list[Path]:
    """Convert one AllenSDK-written VBN session into the NWB files of the shared representation.

    Parameters
    ----------
    session_nwb : str or Path
        The session file, ``ecephys_session_<id>.nwb``.
    output_dir : str or Path
        Dandiset folder; the files go to ``sub-<mouse>/sub-<mouse>_ses-<id>_desc-processed_behavior+ecephys.nwb``
        and, when there are LFP files, ``sub-<mouse>/sub-<mouse>_ses-<id>_desc-raw_ecephys.nwb``.
    probe_files : list of str or Path, optional
        The per-probe LFP files (``probe_<probe_id>.nwb``) for the raw file. By default those beside the
        session file; an empty list writes no raw file.
    metadata : dict, str or Path, optional
        Metadata overriding or completing what the file provides (neuroconv layout: ``NWBFile``,
        ``Subject``), as a dictionary or a YAML/JSON file.
    overwrite : bool, default: False
        Replace existing output files.
    release : str, optional
        The data release the files come from, recorded in the provenance (the files do not say).
    workers : int, optional
        Compression threads; default every core.
    codec : {"gzip", "zstd"}, default: "gzip"
        Compression of the large datasets (zstd: readers need ``hdf5plugin``).
    progress : bool, default: True
        Show progress bars.

    Returns
    -------
    list of Path
        The files written.
    """
    from ..interfaces.allen import PROCESSED_INTERFACES, AllenLfpInterface, AllenSessionInterface
    from ..interfaces.allen.source import close_allen_file, open_allen_file

    session_nwb = Path(session_nwb)
    source = open_allen_file(session_nwb)
    try:
        interfaces = {}
        for cls in PROCESSED_INTERFACES:
            if cls is AllenSessionInterface:
                interfaces[cls.__name__] = cls(session_nwb=session_nwb, release=release)
            elif cls.is_available(source):
                interfaces[cls.__name__] = cls(session_nwb=session_nwb)
        merged = ConverterPipe(data_interfaces=interfaces).get_metadata()
        if metadata is not None:
            user = metadata if isinstance(metadata, dict) else load_user_metadata(metadata)
            merged = dict_deep_update(merged, user)
        check_dandi_metadata(merged, source_hint=str(session_nwb))

        subject, session_id = merged["Subject"]["subject_id"], merged["NWBFile"]["session_id"]
        files = {"processed": (output_path(output_dir, subject=subject, session=session_id, description="processed",
                                           modalities="behavior+ecephys"), interfaces)}
        probe_files = find_probe_files(session_nwb) if probe_files is None else [Path(p) for p in probe_files]
        for path in probe_files:
            if not path.is_file():
                raise SourceFileError(path, "the probe LFP file does not exist")
        if probe_files:
            files["raw"] = (output_path(output_dir, subject=subject, session=session_id, description="raw",
                                        modalities="ecephys"),
                            {"AllenSessionInterface": interfaces["AllenSessionInterface"],
                             "AllenLfpInterface": AllenLfpInterface(session_nwb=session_nwb,
                                                                    probe_files=[str(p) for p in probe_files])})
        existing = [str(destination) for destination, _ in files.values() if destination.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"{' and '.join(existing)} already {'exists' if len(existing) == 1 else 'exist'}; "
                                  "pass overwrite=True (CLI: --overwrite) to replace")

        steps = sum(len(chosen) + 1 for _, chosen in files.values())
        written = []
        with tqdm(total=steps, desc=f"Allen {session_id}", unit="step", disable=not progress, leave=False) as bar:
            for kind, (destination, chosen) in files.items():
                file_metadata = deepcopy(merged)
                # Derived from the final session id, which the user's metadata may have supplied.
                file_metadata["NWBFile"]["identifier"] = file_identifier(ALLEN_DATASET, session_id, kind)
                written.append(write_session_file(chosen, file_metadata, destination, overwrite=overwrite,
                                                  workers=workers, codec=codec, progress=progress, bar=bar))
        return written
    finally:
        # The data are read lazily while the files are written: close only now.
        close_allen_file(session_nwb)
        for path in probe_files or []:
            close_allen_file(path)
