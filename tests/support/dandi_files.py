"""Shared by the DANDI workflow tests: the converted sessions they start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IBL_EID = "6f1e2c3a-0000-4000-8000-00000000d409"
IBL_SUBJECT = "KS055"


@dataclass(frozen=True)
class Converted:
    """A dandiset folder written by nwbridge's converters, before ``dandi organize``."""

    folder: Path
    ibl_processed: Path
    allen_processed: Path
    allen_raw: Path
    allen_mouse: str
    allen_session: str
    videos: dict  # camera -> source .mp4


def moved(converted: Converted, path: Path, dandiset: Path) -> Path:
    """Where a file of ``converted`` is in the copy ``dandiset``."""
    return dandiset / path.relative_to(converted.folder)


def ibl_name() -> str:
    """The IBL processed file's path once organized."""
    return f"sub-{IBL_SUBJECT}/sub-{IBL_SUBJECT}_ses-{IBL_EID}_desc-processed_behavior+ecephys+image.nwb"


def allen_names(converted: Converted) -> tuple[str, str]:
    """The Allen processed and raw files' paths once organized."""
    stem = f"sub-{converted.allen_mouse}/sub-{converted.allen_mouse}_ses-{converted.allen_session}"
    return f"{stem}_desc-processed_behavior+ecephys+image.nwb", f"{stem}_desc-raw_ecephys.nwb"
