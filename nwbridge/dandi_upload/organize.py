"""Giving converted files their DANDI names and places, with their videos beside them.

Names come from dandi-cli: its ``get_metadata`` reads each file, and
``create_unique_filenames_from_metadata`` makes ``sub-<subject>/sub-<subject>_ses-<session>
[_desc-<kind>]_<modalities>.nwb``; its external-file machinery names the videos
``<file name>/<ImageSeries object_id>_external_file_<n>.mp4``, moves them and rewrites
``external_file``. nwbridge adds three things around those steps, which is why it does not simply
call ``dandi.organize.organize``:

* the names always carry the session, and nwbridge's ``desc-processed``/``desc-raw`` (dandi-cli
  keeps a session only when the files in hand have several, so adding a session later would
  rename every earlier file; and a raw and a processed file of one session stay told apart);
* a file already organized is left alone, not opened for writing again: a re-run changes
  nothing, so nothing is uploaded twice;
* each file is finished under a temporary name and renamed, and a failure puts back what was
  moved; the release manifest follows the files it records.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
from ..converters.manifest import MANIFEST_PATH, Manifest
from ..converters.release_task import sha256_file
from ..schemas.checker import file_kind
from .dandiset_folder import DandiWorkflowError, ensure_dandiset_file, find_nwb_files
from .file_jobs import map_files

__all__ = ["OrganizedFile", "OrganizeReport", "organize_dandiset", "nwbridge_file_kind", "REQUIRED_NAME_FIELDS"]

# dandi-cli's layout fields that every name carries (see the module docstring for why).
REQUIRED_NAME_FIELDS = ("session_id", "description")
_STAGING_SUFFIX = ".organizing"


@dataclass
class OrganizedFile:
    """One NWB file that was moved, renamed or had its videos placed.

    Attributes
    ----------
    source, target : Path
        Where the file was and where it is now.
    videos : list of (Path, Path)
        Each video it references: where it was, where it is now.
    rewritten : bool
        Whether ``external_file`` was rewritten (the file's content changed).
    """

    source: Path
    target: Path
    videos: list[tuple[Path, Path]] = field(default_factory=list)
    rewritten: bool = False


@dataclass
class OrganizeReport:
    """What :func:`organize_dandiset` did.

    Attributes
    ----------
    dandiset : Path
    organized : list of OrganizedFile
        Files moved, renamed or whose videos were placed.
    unchanged : list of Path
        Files already at their DANDI name with their videos in place.
    failed : list of (Path, str)
        Files that could not be organized, and why; the others went on.
    """

    dandiset: Path
    organized: list[OrganizedFile] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def format(self) -> str:
        """Plain text for the command line: every move, then the counts."""
        lines = []
        for item in self.organized:
            lines.append(f"  {_shown(item.source, self.dandiset)} -> {_shown(item.target, self.dandiset)}")
            lines += [f"      video {_shown(old, self.dandiset)} -> {_shown(new, self.dandiset)}"
                      for old, new in item.videos if old != new]
        for path, problem in self.failed:
            lines.append(f"  FAILED {path}: {problem}")
        lines.append(f"organize: {len(self.organized)} file(s) organized, {len(self.unchanged)} already in place, "
                     f"{len(self.failed)} failed ({self.dandiset})")
        return "\n".join(lines)


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def nwbridge_file_kind(path: str | Path) -> str | None:
    """``processed`` or ``raw`` for a file nwbridge wrote, None for any other file.

    The kind is in the name nwbridge gave the file; a renamed file is told by its content
    (continuous voltage in ``acquisition`` is what makes a raw file).
    """
    path = Path(path)
    with h5py.File(path, "r") as file:
        provenance = file.get("general/source_script")
        if provenance is None:
            return None
        text = provenance[()]
        text = text.decode() if isinstance(text, bytes) else str(text)
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if not isinstance(record, dict) or record.get("converter") != "nwbridge":
            return None
        return file_kind(file, path.name)[0]


def _read_metadata(path: str) -> tuple[dict | None, str | None]:
    """dandi-cli's metadata of one file, plus nwbridge's file kind; or the reason it cannot be read."""
    from dandi.metadata.nwb import get_metadata

    try:
        metadata = get_metadata(path)
        kind = nwbridge_file_kind(path)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported with its path, the others go on
        return None, f"not readable as NWB ({type(error).__name__}: {error})"
    metadata["path"] = path
    if kind is not None:
        metadata["description"] = kind
    if not metadata.get("subject_id"):
        return None, "has no subject id (general/subject/subject_id), which every DANDI name starts with"
    return metadata, None


def organize_dandiset(dandiset_dir: str | Path, sources=None, *, mode: str = "move", dandiset_id: str | None = None,
                      jobs: int = 1, progress: bool = False) -> OrganizeReport:
    """Give every NWB file its DANDI name in ``dandiset_dir``, with its videos beside it.

    Parameters
    ----------
    dandiset_dir : str or Path
        The dandiset folder (created if absent).
    sources : list of str or Path, optional
        NWB files or folders of them to bring in; by default the NWB files already in
        ``dandiset_dir`` are organized in place.
    mode : {"move", "copy"}
        Move the files and videos (the default) or copy them, leaving the sources as they were.
    dandiset_id : str, optional
        Write ``dandiset.yaml`` with this identifier if the folder has none.
    jobs : int, default: 1
        Processes reading the files' metadata.
    progress : bool
        Show a progress bar.

    Returns
    -------
    OrganizeReport
        A file that cannot be organized is reported there with the reason; the others go on.

    Raises
    ------
    DandiWorkflowError
        dandi-cli cannot give the files unique names.
    """
    from dandi.organize import CopyMode, OrganizeImpossibleError, create_unique_filenames_from_metadata

    if mode not in ("move", "copy"):
        raise ValueError(f"mode must be 'move' or 'copy', not {mode!r}")
    dandiset = Path(dandiset_dir).absolute()
    dandiset.mkdir(parents=True, exist_ok=True)
    if dandiset_id is not None:
        ensure_dandiset_file(dandiset, dandiset_id)
    paths = _expand(sources) if sources else find_nwb_files(dandiset)
    report = OrganizeReport(dandiset=dandiset)
    metadata = []
    read = map_files(_read_metadata, [str(path) for path in paths], jobs=jobs, description="reading metadata",
                     progress=progress)
    for path, (record, problem) in zip(paths, read):
        if problem is None:
            metadata.append(record)
        else:
            report.failed.append((path, problem))
    if not metadata:
        return report
    try:
        named = create_unique_filenames_from_metadata(metadata, required_fields=list(REQUIRED_NAME_FIELDS))
    except OrganizeImpossibleError as error:
        raise DandiWorkflowError(f"dandi-cli cannot give these files unique names: {error}") from error
    named = _name_external_files(named)
    copy_mode = CopyMode.MOVE if mode == "move" else CopyMode.COPY
    plans = [_plan(record, dandiset) for record in named]
    with _release_lock(dandiset):
        _carry_out(named, plans, dandiset, copy_mode, report)
        _update_manifest(dandiset, report.organized)
    return report


@contextlib.contextmanager
def _release_lock(dandiset: Path):
    """Hold the release's lock while files move: a release converting into the folder would lose track of them."""
    if not (dandiset / MANIFEST_PATH).is_file():
        yield
        return
    from ..converters.release import release_lock

    try:
        with release_lock(dandiset):
            yield
    except RuntimeError as error:
        if "another release is writing" in str(error):
            raise DandiWorkflowError(f"cannot organize now: {error}") from error
        raise


def _carry_out(named: list[dict], plans: list[OrganizedFile], dandiset: Path, copy_mode,
               report: OrganizeReport) -> None:
    targets = {plan.target for plan in plans}
    for record, plan in zip(named, plans):
        if plan.source == plan.target and all(old == new for old, new in plan.videos):
            report.unchanged.append(plan.source)
            continue
        problem = _problem(plan, targets_of_others=targets - {plan.target})
        if problem is not None:
            report.failed.append((plan.source, problem))
            continue
        try:
            _organize_one(record, plan, dandiset, copy_mode)
        except Exception as error:  # noqa: BLE001 - reported with the file's path; the other files go on
            report.failed.append((plan.source, f"{type(error).__name__}: {error}"))
            continue
        report.organized.append(plan)


def _expand(sources) -> list[Path]:
    paths = []
    for source in sources:
        source = Path(source).absolute()
        if not source.exists():
            raise DandiWorkflowError(f"{source}: no such file or folder")
        paths += find_nwb_files(source)
    return sorted(set(paths))


def _name_external_files(metadata: list[dict]) -> list[dict]:
    # dandi-cli's own naming of external files (<file name>/<object id>_external_file_<n><ext>);
    # it has no public name, so it is looked up and a changed dandi-cli fails here, clearly.
    from dandi import organize as dandi_organize

    namer = getattr(dandi_organize, "_create_external_file_names", None)
    if namer is None:
        raise DandiWorkflowError("this dandi-cli has no _create_external_file_names; nwbridge needs dandi>=0.81,<1")
    return namer(metadata)


def _plan(record: dict, dandiset: Path) -> OrganizedFile:
    source = Path(record["path"]).absolute()
    target = dandiset / record["dandi_path"]
    videos = []
    for item in record.get("external_file_objects", []):
        for old, new in zip(item.get("external_files", []), item.get("external_files_renamed", [])):
            old_text = str(old)
            if "://" in old_text:
                continue  # a URL is left as it is, as dandi-cli does
            old_path = Path(old_text) if os.path.isabs(old_text) else source.parent / old_text
            videos.append((Path(os.path.normpath(old_path)), target.parent / new))
    return OrganizedFile(source=source, target=target, videos=videos,
                         rewritten=any(old != new for old, new in videos))


def _problem(plan: OrganizedFile, *, targets_of_others: set[Path]) -> str | None:
    """Why ``plan`` cannot be carried out, or None."""
    if plan.target != plan.source and plan.target.exists():
        return f"{plan.target} already exists (another file has this DANDI name); remove one of them"
    for old, new in plan.videos:
        if old == new:
            continue
        if not old.is_file():
            return f"references the video {old}, which does not exist"
        if new.exists():
            return f"its video would go to {new}, which already exists"
    if plan.target in targets_of_others:
        return f"another file would also be named {plan.target.name}"
    return None


def _organize_one(record: dict, plan: OrganizedFile, dandiset: Path, copy_mode) -> None:
    """Place one file and its videos; on failure, put back what was moved and remove what was copied."""
    from dandi.organize import organize_external_files
    from dandi.pynwb_utils import rename_nwb_external_files

    move = copy_mode.value == "move"
    staged = plan.target.with_name(plan.target.name + _STAGING_SUFFIX)
    placed_videos: list[tuple[Path, Path]] = []
    staged_done = False
    try:
        pending = [(old, new) for old, new in plan.videos if old != new]
        if pending:
            # dandi-cli moves or copies every video of the record, resolved from the file's current place.
            organize_external_files([record], str(dandiset), copy_mode)
            placed_videos = pending
        plan.target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            shutil.move(plan.source, staged)
        else:
            shutil.copy2(plan.source, staged)
        staged_done = True
        if plan.rewritten:
            # dandi-cli rewrites the file at <dandiset>/<dandi_path>: point it at the staged name.
            staged_record = dict(record, dandi_path=staged.relative_to(dandiset).as_posix())
            rename_nwb_external_files([staged_record], str(dandiset))
        os.replace(staged, plan.target)
    except BaseException:
        if staged_done and staged.exists():
            if move:
                shutil.move(staged, plan.source)
            else:
                staged.unlink()
        for old, new in placed_videos:
            if new.exists():
                if move:
                    old.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(new, old)
                else:
                    new.unlink()
        raise
    if move:
        for old, _ in placed_videos:
            _remove_empty_folders(old.parent, stop=dandiset)


def _remove_empty_folders(folder: Path, *, stop: Path) -> None:
    """Remove ``folder`` and its parents while empty, up to (not including) ``stop``."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _update_manifest(dandiset: Path, organized: list[OrganizedFile]) -> None:
    """Point the release manifest's records at the files' new places, so a re-run does not convert them again."""
    if not organized or not (dandiset / MANIFEST_PATH).is_file():
        return
    with Manifest.in_folder(dandiset) as manifest:
        for item in organized:
            manifest.relocate(item.source, item.target, output_bytes=item.target.stat().st_size,
                              checksum=sha256_file(item.target) if item.rewritten else None)
