"""Editing copies of generated Allen session files, for the tests of bad or unusual sources."""

from __future__ import annotations

from types import SimpleNamespace

import h5py

from nwbridge.errors import SourceFileError

__all__ = ["trimmed_copy", "replace_dataset", "EditedSource"]


def trimmed_copy(vbn_session, tmp_path, keep, edit=None, *, extensions=()):
    """A small copy of the generated session file holding only the groups in ``keep``, changed by ``edit``.

    Reading a whole Allen file costs over a second (mostly its cached namespaces); a copy with only
    what the interface reads, and only the specifications it needs, opens in a tenth of that.
    Links inside the kept groups keep their targets, the paths being unchanged.
    """
    target = tmp_path / vbn_session.session_file.name
    with h5py.File(vbn_session.session_file, "r") as old, h5py.File(target, "w") as new:
        new.attrs.update({key: value for key, value in old.attrs.items() if key != ".specloc"})
        for name in ("file_create_date", "identifier", "session_description", "session_start_time",
                     "timestamps_reference_time"):
            old.copy(old[name], new, name)
        for name in ("acquisition", "analysis", "general", "processing", "stimulus/presentation",
                     "stimulus/templates", "specifications"):
            new.require_group(name)
        for location in keep:
            parent, name = location.rsplit("/", 1)
            old.copy(old[location], new.require_group(parent), name)
        for name in ("core", "hdmf-common", "hdmf-experimental", *extensions):
            if name in old["specifications"]:
                old.copy(old[f"specifications/{name}"], new["specifications"], name)
        new.attrs[".specloc"] = new["specifications"].ref
        if edit is not None:
            edit(new)
    return target


def replace_dataset(file, location: str, values) -> None:
    """Rewrite a dataset (or a link to one) with other values, keeping its attributes."""
    attributes = dict(file[location].attrs)
    del file[location]
    file.create_dataset(location, data=values)
    file[location].attrs.update(attributes)


class EditedSource:
    """The generated session as the interfaces see it, with some tables replaced in memory.

    Each error case needs a source wrong in one way; re-reading an edited copy of the file costs
    seconds (pynwb loads the specs cached in it), so tables are edited in memory instead.
    """

    def __init__(self, base, tables: dict):
        self.path = base.path
        self._base = base
        self._tables = tables  # location -> table, or None for a removed table
        intervals = dict(base.nwbfile.intervals)
        for location, table in tables.items():
            if location.startswith("intervals/"):
                intervals.pop(location.removeprefix("intervals/"), None)
                if table is not None:
                    intervals[location.removeprefix("intervals/")] = table
        self.nwbfile = SimpleNamespace(intervals=intervals, stimulus_template=base.nwbfile.stimulus_template)

    def object(self, location):
        return self._tables[location] if location in self._tables else self._base.object(location)

    def require(self, location):
        found = self.object(location)
        if found is None:
            raise SourceFileError(self.path, f"has no {location}")
        return found
