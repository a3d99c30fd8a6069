"""Plain-text summaries of what nwbridge wrote, for the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py

__all__ = ["describe_nwbfile", "RunSummary", "human_size"]


def human_size(size: float) -> str:
    """``1536`` -> ``1.5 KB``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _rows(group: h5py.Group) -> int | None:
    if "id" in group and isinstance(group["id"], h5py.Dataset):
        return group["id"].shape[0]
    return None


def describe_nwbfile(path: str | Path) -> str:
    """One line per neurodata object of an NWB file: where, type, and its size (rows or shape)."""
    path = Path(path)
    lines = [f"{path} ({human_size(path.stat().st_size)})"]
    with h5py.File(path, "r") as file:
        def visit(name, obj):
            if not isinstance(obj, h5py.Group):
                return
            neurodata_type = obj.attrs.get("neurodata_type")
            if neurodata_type is None or name.count("/") > 3 or name.startswith(("specifications", "general")):
                return
            if isinstance(neurodata_type, bytes):
                neurodata_type = neurodata_type.decode()
            if neurodata_type in ("ProcessingModule", "LabMetaData"):
                return
            rows = _rows(obj)
            if rows is not None:
                columns = [key for key in obj.attrs.get("colnames", [])]
                size = f"{rows} rows, {len(columns)} columns"
            elif "data" in obj and isinstance(obj["data"], h5py.Dataset):
                size = "x".join(str(n) for n in obj["data"].shape) or "scalar"
                size += f" {obj['data'].dtype}"
            elif "external_file" in obj:
                size = "external file"
            else:
                size = ""
            parent = name.rsplit("/", 1)[0] if "/" in name else ""
            # Children of a container (keypoints of a pose, series of a pupil) are summarised by their parent.
            if parent and parent.count("/") >= 2 and name.count("/") >= 3:
                return
            lines.append(f"  {name:<58} {neurodata_type:<24} {size}")

        file.visititems(visit)
    return "\n".join(lines)


@dataclass
class RunSummary:
    """What a command wrote, skipped and why sessions failed."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def format(self) -> str:
        lines = ["", "Summary"]
        lines.append(f"  written: {len(self.written)} file(s)")
        for path in self.written:
            lines.append(f"    {path} ({human_size(path.stat().st_size)})")
        lines.append(f"  skipped: {len(self.skipped)}")
        for item, reason in self.skipped:
            lines.append(f"    {item}: {reason}")
        lines.append(f"  failed:  {len(self.failed)}")
        for item, reason in self.failed:
            lines.append(f"    {item}: {reason}")
        return "\n".join(lines)
