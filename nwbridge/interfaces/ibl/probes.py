"""Finding the probes of an IBL session and where each one's data are.

An IBL session holds, per probe insertion (``probe00``, ``probe01``; NP2.4 shanks split into
``probe00a`` .. ``probe00d``):

- ``alf/<probe>/``: ``electrodeSites.*`` (every recording site, from histology);
- ``alf/<probe>/<sorter>/`` (``iblsorter``, ``pykilosort``; older sessions: ``alf/<probe>/``
  itself): the spike sorting, ``spikes.*``, ``clusters.*``, ``channels.*``;
- ``raw_ephys_data/<probe>/``: the SpikeGLX files (``.ap.meta``, ``.ap.cbin``, ...).

Revisions inside those collections are resolved per dataset by :class:`~.alf.AlfSession`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import SourceFileError
from .alf import AlfSession

__all__ = ["IblProbe", "SORTERS", "find_probes"]

# Newest first: when a probe was sorted by several, the first found is converted.
SORTERS = ("iblsorter", "pykilosort")

_PROBE = re.compile(r"^(?:alf|raw_ephys_data)/(probe\d{2}[a-z]?)(?:/|$)")


@dataclass(frozen=True)
class IblProbe:
    """One probe insertion of a session and the collections holding its data.

    Attributes
    ----------
    name : str
        ``probe00``, ``probe01``, ``probe00a``, ...
    sorting_collection : str or None
        Collection of ``spikes.*`` / ``clusters.*`` / ``channels.*``, or None without spike sorting.
    sorter : str or None
        The spike sorter (``iblsorter``, ``pykilosort``), or ``""`` for the older layout without a
        sorter folder.
    """

    name: str
    sorting_collection: str | None
    sorter: str | None

    @property
    def probe_collection(self) -> str:
        return f"alf/{self.name}"

    @property
    def raw_collection(self) -> str:
        return f"raw_ephys_data/{self.name}"

    def raw_file(self, session: AlfSession, *, band: str = "ap", extension: str = "meta") -> Path | None:
        """A SpikeGLX file of this probe (``_spikeglx_ephysData_g0_t0.imec0.<band>.<extension>``), or None."""
        table = session.datasets
        if table.empty:
            return None
        found = table[(table["collection"] == self.raw_collection) & (table["extension"] == extension)
                      & (table["namespace"] == "spikeglx")
                      & table["extra"].str.split(".").apply(lambda parts: band in parts)]
        if len(found) > 1:
            names = ", ".join(found["rel_path"])
            raise SourceFileError(Path(found["file"].iloc[0]),
                                  f"several SpikeGLX .{band}.{extension} files for {self.name}: {names}")
        return Path(found["file"].iloc[0]) if len(found) else None


def find_probes(session: AlfSession, *, sorter: str | None = None) -> list[IblProbe]:
    """Every probe of the session with spike sorting, channels, electrode sites or raw data.

    Parameters
    ----------
    session : AlfSession
    sorter : str, optional
        Use this sorter's output (``iblsorter``, ``pykilosort``); by default the newest available.

    Returns
    -------
    list of IblProbe
        Sorted by name.
    """
    table = session.datasets
    if table.empty:
        return []
    names = sorted({match.group(1) for collection in table["collection"].unique()
                    if (match := _PROBE.match(collection))})
    preference = (sorter,) if sorter else SORTERS
    probes = []
    for name in names:
        sorting_collection, chosen = None, None
        for candidate in preference:
            collection = f"alf/{name}/{candidate}"
            if session.has("spikes", "times", collection=collection):
                sorting_collection, chosen = collection, candidate
                break
        if sorting_collection is None and sorter is None and session.has("spikes", "times", collection=f"alf/{name}"):
            sorting_collection, chosen = f"alf/{name}", ""
        probes.append(IblProbe(name=name, sorting_collection=sorting_collection, sorter=chosen))
    return probes
