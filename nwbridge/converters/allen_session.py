"""Converting one Allen Visual Behavior Neuropixels session into the shared representation."""

from __future__ import annotations

import os
import re
from copy import deepcopy
from pathlib import Path

from neuroconv import ConverterPipe
from neuroconv.utils import dict_deep_update
from tqdm.auto import tqdm

from ..errors import MissingSourceFileError
from ..provenance import ALLEN_DATASET, file_identifier, output_path
from .session_files import check_dandi_metadata, load_user_metadata, write_session_file

__all__ = ["convert_allen_session", "find_probe_files"]

_PROBE_FILE = re.compile(r"probe_(\d+)\.nwb")


def find_probe_files(session_nwb: str | Path, *, probe_ids=None) -> list[Path]:
    """The per-probe LFP files beside a session file, as the Allen release lays them out (``probe_<probe_id>.nwb``).

    Parameters
    ----------
    session_nwb : str or Path
        The session file.
    probe_ids : iterable of int, optional
        The session's probe ids: only their files are returned, so the files of other sessions kept in
        the same folder are left out. By default every ``probe_<id>.nwb`` of the folder.
    """
    wanted = None if probe_ids is None else {int(probe_id) for probe_id in probe_ids}
    found = []
    for path in Path(session_nwb).parent.glob("probe_*.nwb"):
        match = _PROBE_FILE.fullmatch(path.name)
        if match and (wanted is None or int(match.group(1)) in wanted):
            found.append(path)
    return sorted(found)


def convert_allen_session(session_nwb: str | Path, output_dir: str | Path, *, probe_files=None,
                          metadata: dict | str | Path | None = None, overwrite: bool = False,
                          release: str | None = None, workers: int | None = None, codec: str = "gzip",
                          progress: bool = True, processed: bool = True) -> list[Path]:
    """Convert one AllenSDK-written VBN session into the NWB files of the shared representation.

    Parameters
    ----------
    session_nwb : str or Path
        The session file, ``ecephys_session_<id>.nwb``.
    output_dir : str or Path
        Dandiset folder; the files go to ``sub-<mouse>/sub-<mouse>_ses-<id>_desc-processed_behavior+ecephys.nwb``
        and, when there are LFP files, ``sub-<mouse>/sub-<mouse>_ses-<id>_desc-raw_ecephys.nwb``.
    probe_files : list of str or Path, optional
        The per-probe LFP files (``probe_<probe_id>.nwb``) for the raw file. By default the files of the
        session's probes beside the session file; an empty list writes no raw file.
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
    processed : bool, default: True
        Write the processed file; ``processed=False`` writes the raw file alone (a release converts each
        file kind as its own task), and needs probe files.

    Returns
    -------
    list of Path
        The files written. They are put in place together once all are complete: a failure leaves
        none of them (and, with ``overwrite``, the previous files untouched).

    Raises
    ------
    MissingSourceFileError
        When the session file or a given probe file does not exist.
    SourceFileError
        When a source file is unreadable or inconsistent (the message names the file).
    MissingMetadataError
        When metadata DANDI requires is neither in the session file nor in ``metadata``.
    FileExistsError
        When an output file exists and ``overwrite`` is False.
    """
    from ..interfaces.allen import PROCESSED_INTERFACES, AllenLfpInterface, AllenSessionInterface
    from ..interfaces.allen.electrodes import read_probes
    from ..interfaces.allen.source import close_allen_file, open_allen_file

    session_nwb = Path(session_nwb)
    opened = [session_nwb]
    source = open_allen_file(session_nwb)
    staged = {}
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
                                           modalities="behavior+ecephys"), interfaces)} if processed else {}
        if probe_files is None:
            # Only this session's probes: the folder may hold the files of other sessions too.
            probe_files = find_probe_files(session_nwb, probe_ids=[probe.probe_id for probe in read_probes(source)])
        else:
            probe_files = [Path(p) for p in probe_files]
        for path in probe_files:
            # Open every probe file now, so a missing or unreadable one stops the conversion before
            # minutes are spent writing the processed file.
            opened.append(path)
            if not path.is_file():
                raise MissingSourceFileError(path, "the probe LFP file does not exist")
            open_allen_file(path)
        if probe_files:
            files["raw"] = (output_path(output_dir, subject=subject, session=session_id, description="raw",
                                        modalities="ecephys"),
                            {"AllenSessionInterface": interfaces["AllenSessionInterface"],
                             "AllenLfpInterface": AllenLfpInterface(session_nwb=session_nwb,
                                                                    probe_files=[str(p) for p in probe_files])})
        if not files:
            raise MissingSourceFileError(session_nwb.parent / "probe_<probe_id>.nwb",
                                         "no LFP file of the session's probes beside the session file")
        _refuse_existing([destination for destination, _ in files.values()], overwrite=overwrite)

        steps = sum(len(chosen) + 1 for _, chosen in files.values())
        with tqdm(total=steps, desc=f"Allen {session_id}", unit="step", disable=not progress, leave=False) as bar:
            for kind, (destination, chosen) in files.items():
                file_metadata = deepcopy(merged)
                # Derived from the final session id, which the user's metadata may have supplied.
                file_metadata["NWBFile"]["identifier"] = file_identifier(ALLEN_DATASET, session_id, kind)
                # Every file is written under a staging name and put in place only when all of them are
                # complete: a failure in a later file leaves neither file of this session behind (and an
                # overwritten session keeps its previous files).
                staged[destination] = _staging_path(destination)
                staged[destination].unlink(missing_ok=True)
                write_session_file(chosen, file_metadata, staged[destination], overwrite=True, workers=workers,
                                   codec=codec, progress=progress, bar=bar)
        _refuse_existing(list(staged), overwrite=overwrite)
        for destination, staging in staged.items():
            os.replace(staging, destination)
        return list(staged)
    finally:
        for staging in staged.values():
            staging.unlink(missing_ok=True)
        # The data are read lazily while the files are written: close only now.
        for path in opened:
            close_allen_file(path)


def _staging_path(destination: Path) -> Path:
    """Where a complete file waits until every file of its session is written (no NWB tool picks it up)."""
    return destination.with_name(destination.name + ".staged")


def _refuse_existing(destinations: list[Path], *, overwrite: bool) -> None:
    existing = [str(destination) for destination in destinations if destination.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{' and '.join(existing)} already {'exists' if len(existing) == 1 else 'exist'}; "
                              "pass overwrite=True (CLI: --overwrite) to replace")
