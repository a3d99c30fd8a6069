"""Validating a dandiset folder: dandi-cli's validation and nwbridge's check, one row per file.

dandi-cli validates every asset as ``dandi validate`` does (the file layout and names, PyNWB
validation, nwbinspector with the "dandi" configuration, the metadata the archive will extract)
through each asset's own ``get_validation_errors``, so files can be validated in parallel
processes. nwbridge's check adds the shared representation: every object an analysis script
relies on is there with its names, columns and units. Its nwbinspector pass is not repeated:
dandi-cli already ran it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..summary import human_size
from .dandiset_folder import DANDISET_FILE, read_dandiset_id
from .file_jobs import map_files

__all__ = ["Message", "FileValidation", "DandisetValidation", "validate_dandiset"]

_BLOCKING = ("ERROR", "CRITICAL")
_NO_DANDISET = "DANDI.NO_DANDISET_FOUND"


@dataclass(frozen=True)
class Message:
    """One finding: who found it, how bad, what."""

    severity: str
    code: str
    text: str

    @property
    def blocking(self) -> bool:
        return self.severity in _BLOCKING


@dataclass
class FileValidation:
    """The verdicts on one asset of the dandiset (or on the dandiset itself).

    Attributes
    ----------
    path : str
        The asset path in the dandiset (``sub-.../...``), or ``dandiset.yaml``.
    size : int or None
        Bytes on disk.
    dandi_messages : list of Message
        dandi-cli's findings.
    check : str
        nwbridge's check: ``ok``, ``N failed`` (objects of the representation that fail),
        ``not nwbridge`` (a file another tool wrote) or ``-`` (not an NWB file).
    check_messages : list of Message
        Why nwbridge's check failed.
    """

    path: str
    size: int | None = None
    dandi_messages: list[Message] = field(default_factory=list)
    check: str = "-"
    check_messages: list[Message] = field(default_factory=list)

    @property
    def errors(self) -> list[Message]:
        return [message for message in self.dandi_messages + self.check_messages if message.blocking]

    @property
    def warnings(self) -> list[Message]:
        return [message for message in self.dandi_messages if message.severity == "WARNING"]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class DandisetValidation:
    """Every asset's verdicts; ``ok`` when nothing blocks an upload."""

    dandiset: Path
    files: list[FileValidation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.files)

    @property
    def errors(self) -> list[tuple[str, Message]]:
        return [(item.path, message) for item in self.files for message in item.errors]

    def format(self, *, verbose: bool = False) -> str:
        """The per-file table, then every error (and with ``verbose`` every warning), then a verdict."""
        header = ("file", "size", "dandi validate", "nwbridge check", "result")
        rows = []
        for item in self.files:
            dandi = (f"{len([m for m in item.dandi_messages if m.blocking])} error(s), "
                     f"{len(item.warnings)} warning(s)")
            size = "" if item.size is None else human_size(item.size)
            rows.append((item.path, size, dandi, item.check, "ok" if item.ok else "ERRORS"))
        widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
        lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip() for row in [header, *rows]]
        for item in self.files:
            shown = item.errors + (item.warnings if verbose else [])
            if shown:
                lines.append(f"\n{item.path}:")
                lines += [f"  {message.severity} {message.code}: {message.text}" for message in shown]
        failing = [item for item in self.files if not item.ok]
        lines.append(f"\nvalidate: {len(self.files)} item(s), {len(self.files) - len(failing)} ok, "
                     f"{len(failing)} with errors ({self.dandiset})")
        return "\n".join(lines)


def validate_dandiset(dandiset_dir: str | Path, *, paths=None, jobs: int = 1, progress: bool = False) -> DandisetValidation:
    """Validate a dandiset folder with dandi-cli and nwbridge's check.

    Parameters
    ----------
    dandiset_dir : str or Path
        The dandiset folder (with ``dandiset.yaml``).
    paths : list of str or Path, optional
        Validate only these files (or folders) of the dandiset; by default every asset.
    jobs : int, default: 1
        Files validated at once, each in its own process.
    progress : bool

    Returns
    -------
    DandisetValidation
        One row for the dandiset itself when it has a problem (no ``dandiset.yaml``), then one per
        asset, in asset-path order.
    """
    from dandi.files import find_dandi_files

    dandiset = Path(dandiset_dir).absolute()
    result = DandisetValidation(dandiset=dandiset)
    has_dandiset_file = read_dandiset_id(dandiset) is not None
    if not has_dandiset_file:
        result.files.append(FileValidation(path=DANDISET_FILE, dandi_messages=[Message(
            "ERROR", _NO_DANDISET, f"{dandiset / DANDISET_FILE} is missing or has no identifier: dandi-cli finds a "
            "dandiset by it; run `nwbridge dandi organize DIR --dandiset-id ID` (or `dandi download` the dandiset)")]))
    roots = [Path(path).absolute() for path in paths] if paths else [dandiset]
    assets = []
    for root in roots:
        assets += [item.filepath for item in find_dandi_files(root, dandiset_path=dandiset if has_dandiset_file
                                                             else None, allow_all=False)]
    assets = sorted(set(assets), key=lambda path: (path.name != DANDISET_FILE, str(path)))
    arguments = [(str(path), str(dandiset), has_dandiset_file) for path in assets]
    result.files += map_files(_validate_one, arguments, jobs=jobs, description="validating", progress=progress)
    return result


def _validate_one(argument: tuple[str, str, bool]) -> FileValidation:
    """dandi-cli's validation of one asset, then nwbridge's check of it if nwbridge wrote it."""
    from dandi.files import dandi_file
    from dandi.pynwb_utils import ignore_benign_pynwb_warnings

    filepath, dandiset, has_dandiset_file = Path(argument[0]), Path(argument[1]), argument[2]
    ignore_benign_pynwb_warnings()
    asset = dandi_file(filepath, dandiset if has_dandiset_file else None)
    shown = filepath.relative_to(dandiset).as_posix() if dandiset in filepath.parents else str(filepath)
    item = FileValidation(path=shown, size=filepath.stat().st_size if filepath.is_file() else None)
    try:
        found = list(asset.get_validation_errors())
    except Exception as error:  # noqa: BLE001 - a validator crash is a finding about this file, not the end
        found = []
        item.dandi_messages.append(Message("ERROR", "NWBRIDGE.VALIDATOR_FAILED",
                                           f"dandi-cli could not validate the file: {type(error).__name__}: {error}"))
    for finding in found:
        if finding.id == _NO_DANDISET:
            continue  # said once, on the dandiset's own row
        severity = finding.severity.name if finding.severity is not None else "INFO"
        item.dandi_messages.append(Message(severity, finding.id, finding.message or ""))
    if filepath.suffix == ".nwb":
        _check(filepath, item)
    return item


def _check(filepath: Path, item: FileValidation) -> None:
    from ..schemas.checker import check_file
    from .organize import nwbridge_file_kind

    try:
        kind = nwbridge_file_kind(filepath)
    except OSError as error:
        item.check = "unreadable"
        item.check_messages.append(Message("ERROR", "NWBRIDGE.UNREADABLE", f"not readable as HDF5: {error}"))
        return
    if kind is None:
        item.check = "not nwbridge"
        return
    report = check_file(filepath)
    failures = report.failures
    item.check = "ok" if not failures else f"{len(failures)} failed"
    for failure in failures:
        item.check_messages.append(Message("ERROR", f"NWBRIDGE.{failure.section or 'object'}",
                                           f"{failure.name}: " + "; ".join(failure.messages)))
