"""The dandiset folder: its ``dandiset.yaml``, and the NWB files in it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from dandi.consts import dandiset_identifier_regex, dandiset_metadata_file

from ..errors import NwbridgeError

__all__ = ["DANDISET_FILE", "DandiWorkflowError", "ensure_dandiset_file", "read_dandiset_id", "find_nwb_files"]

DANDISET_FILE = dandiset_metadata_file


class DandiWorkflowError(NwbridgeError):
    """Organizing, validating or uploading a dandiset cannot go on; the message says why and what to do."""


def read_dandiset_id(dandiset_dir: str | Path) -> str | None:
    """The ``identifier`` in ``<dandiset_dir>/dandiset.yaml``, or None when the file is absent."""
    path = Path(dandiset_dir) / DANDISET_FILE
    if not path.is_file():
        return None
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DandiWorkflowError(f"{path}: not valid YAML ({error})") from error
    identifier = content.get("identifier") if isinstance(content, dict) else None
    return None if identifier is None else str(identifier)


def ensure_dandiset_file(dandiset_dir: str | Path, dandiset_id: str) -> Path:
    """Make sure ``<dandiset_dir>/dandiset.yaml`` names ``dandiset_id``; write a minimal one if absent.

    dandi-cli finds a dandiset by this file (validation and upload refuse without it); the
    dandiset's real metadata is edited on the archive, so only the identifier is written here.

    Raises
    ------
    DandiWorkflowError
        The identifier is not six digits, or the folder's file names another dandiset.
    """
    dandiset_id = str(dandiset_id).strip()
    if not re.match(dandiset_identifier_regex, dandiset_id):
        raise DandiWorkflowError(f"{dandiset_id!r} is not a dandiset identifier (six digits, e.g. 000409)")
    folder = Path(dandiset_dir)
    path = folder / DANDISET_FILE
    existing = read_dandiset_id(folder)
    if existing is not None:
        if existing != dandiset_id:
            raise DandiWorkflowError(f"{path} names dandiset {existing}, not {dandiset_id}: one folder holds one "
                                     "dandiset")
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"identifier: '{dandiset_id}'\n")
    partial.replace(path)
    return path


def find_nwb_files(folder: str | Path) -> list[Path]:
    """The NWB files under ``folder``, sorted; hidden folders (``.nwbridge``) and unfinished files skipped.

    Unfinished writes end in ``.partial`` or ``.staged``, so ``*.nwb`` never matches them.
    """
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    found = []
    for path in folder.rglob("*.nwb"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        found.append(path)
    return sorted(found)
