"""Allen probes and their recording channels: devices, electrode groups and the ``electrodes`` table.

Source: the session file's ``general/devices/probeX`` (``EcephysProbe``: ``probe_id``,
``sampling_rate``), ``general/extracellular_ephys/probeX`` (``EcephysElectrodeGroup``) and its
electrodes table, whose id is the Allen channel id and whose columns are ``x, y, z`` (Allen CCF
µm: AP, DV, LR), ``location`` (structure acronym), ``probe_horizontal_position``,
``probe_vertical_position``, ``probe_channel_number``, ``probe_id`` and ``valid_data``.

Written as the IBL's probes are (:mod:`nwbridge.interfaces.ibl.electrodes`): one ``Device`` and one
``ElectrodeGroup`` per probe, named by the probe, and one ``electrodes`` table built from whole
columns, probes in name order and each probe's channels in the source's order. The table's ids are
its row numbers (as on the IBL side); the Allen channel id is kept in ``allen_channel_id``.

Channels of probes that were never registered to the atlas have CCF (0, 0, 0) and no acronym in the
Allen files: they are written as unknown (``location`` ``unknown``, NaN coordinates,
``brain_region_id`` 0), not as a place at the atlas origin.

The processed and the raw file each get the table, built by :func:`add_allen_probes` from the same
session file, so a channel has the same row in both.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from hdmf.common import VectorData

from ...errors import SourceFileError
from .base import AllenInterface
from .source import MISSING_TEXT, AllenFile, float_values, nullable_booleans, text_values

__all__ = ["AllenChannels", "AllenProbe", "AllenProbesInterface", "COLUMNS", "PROBE_MODEL", "add_allen_probes",
           "electrode_rows_of_channels", "read_channels", "read_probes"]

PROBE_MODEL = "Neuropixels 1.0"
MANUFACTURER = "IMEC"
UNKNOWN = "unknown"

# Column name -> description, in the order of the table (group and group_name follow location, as
# in the IBL table).
COLUMNS = {
    "location": "Allen CCF acronym of the channel's brain region (Allen electrodes location); 'root' outside the "
                "brain; 'unknown' where the channel is not registered to the atlas (CCF (0, 0, 0) or no acronym "
                "in the Allen file).",
    "x": "Allen CCFv3 antero-posterior coordinate, posterior positive (µm; Allen electrodes x); NaN where the "
         "channel is not registered (the Allen file has (0, 0, 0) there).",
    "y": "Allen CCFv3 dorso-ventral coordinate, inferior positive (µm; Allen electrodes y); NaN where the channel "
         "is not registered (the Allen file has (0, 0, 0) there).",
    "z": "Allen CCFv3 left-right coordinate, right positive (µm; Allen electrodes z); NaN where the channel is not "
         "registered (the Allen file has (0, 0, 0) there).",
    "brain_region_id": "Allen structure id of `location` (the acronym looked up in the Allen ontology bundled with "
                       "iblatlas); 0 where the channel is not registered (location 'unknown').",
    "rel_x": "Lateral position of the site on the probe (µm; Allen probe_horizontal_position).",
    "rel_y": "Axial position of the site on the probe, from the tip (µm; Allen probe_vertical_position).",
    "probe_channel": "Channel index on the probe (Allen probe_channel_number).",
    "allen_channel_id": "The Allen channel id (the id of the Allen session file's electrodes table).",
    "allen_valid_data": "Whether the Allen Institute considers the channel's data valid (Allen valid_data; False "
                        "for the probe's reference channels, and where the Allen file gives no value).",
}
GROUP_DESCRIPTION = "The probe's ElectrodeGroup."
GROUP_NAME_DESCRIPTION = "Name of the probe's ElectrodeGroup (the Allen probe name, e.g. probeA)."

# Allen electrodes columns read for each shared column.
_SOURCE_COLUMNS = ("location", "x", "y", "z", "probe_horizontal_position", "probe_vertical_position",
                   "probe_channel_number", "valid_data")


@lru_cache(maxsize=1)
def _regions():
    """The Allen structure ontology with the IBL Cosmos parcellation (offline, bundled with iblatlas)."""
    from iblatlas.regions import BrainRegions

    return BrainRegions()


@lru_cache(maxsize=1)
def _structure_ids() -> dict[str, int]:
    """Allen acronym -> structure id. iblatlas also lists each structure with a negative id for the
    left hemisphere; the Allen ids are the non-negative ones."""
    regions = _regions()
    return {str(acronym): int(structure) for structure, acronym in zip(regions.id, regions.acronym) if structure >= 0}


@dataclass(frozen=True)
class AllenProbe:
    """One probe of the session file.

    Attributes
    ----------
    name : str
        ``probeA`` .. ``probeF``.
    probe_id : int
        The Allen probe id (also the ``<id>`` of its ``probe_<id>.nwb`` LFP file).
    sampling_rate : float or None
        Sampling rate of the spike band (Hz), the ``EcephysProbe`` attribute.
    has_lfp_data : bool or None
    lfp_sampling_rate : float or None
        The electrode group's attribute, as written (it states the LF band's 2.5 kHz although the
        released LFP is sampled at half that: never use it as the LFP rate).
    group_location, group_description : str
        Of the source's electrode group.
    """

    name: str
    probe_id: int
    sampling_rate: float | None
    has_lfp_data: bool | None
    lfp_sampling_rate: float | None
    group_location: str
    group_description: str


@dataclass(frozen=True)
class AllenChannels:
    """The session file's electrodes table, one array per column, in the file's row order.

    ``location``, ``x``, ``y``, ``z`` and ``brain_region_id`` are already as the shared table holds them
    (unregistered channels unknown, NaN, 0).
    """

    channel_id: np.ndarray
    probe: np.ndarray
    location: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    brain_region_id: np.ndarray
    rel_x: np.ndarray
    rel_y: np.ndarray
    probe_channel: np.ndarray
    valid_data: np.ndarray
    filtering: np.ndarray
    impedance: np.ndarray

    def of_probe(self, name: str) -> np.ndarray:
        """Rows of the source table that belong to probe ``name``."""
        return np.flatnonzero(self.probe == name)


def _scalar(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_probes(source: AllenFile) -> list[AllenProbe]:
    """The probes of a session (or probe) file, sorted by name: electrode groups with an Allen ``probe_id``.

    Raises
    ------
    SourceFileError
        When a probe's device and electrode group give different probe ids.
    """
    nwbfile = source.nwbfile
    probes = []
    for name, group in nwbfile.electrode_groups.items():
        probe_id = _scalar(getattr(group, "probe_id", None))
        device = nwbfile.devices.get(name) if nwbfile.devices else None
        device_id = _scalar(getattr(device, "probe_id", None)) if device is not None else None
        if probe_id is None:
            probe_id = device_id
        if probe_id is None:
            continue  # not an Allen probe
        if device_id is not None and int(device_id) != int(probe_id):
            raise SourceFileError(source.path, f"probe {name}: the device says probe_id {device_id} but the electrode "
                                               f"group says {probe_id}")
        rate = _scalar(getattr(device, "sampling_rate", None)) if device is not None else None
        lfp_rate = _scalar(getattr(group, "lfp_sampling_rate", None))
        has_lfp = _scalar(getattr(group, "has_lfp_data", None))
        probes.append(AllenProbe(
            name=name, probe_id=int(probe_id),
            sampling_rate=float(rate) if rate is not None else None,
            has_lfp_data=bool(has_lfp) if has_lfp is not None else None,
            lfp_sampling_rate=float(lfp_rate) if lfp_rate is not None else None,
            group_location=str(_scalar(group.location) or ""),
            group_description=str(_scalar(group.description) or "")))
    return sorted(probes, key=lambda probe: probe.name)


def read_channels(source: AllenFile) -> AllenChannels:
    """Read the session file's electrodes table, one whole column at a time.

    Raises
    ------
    SourceFileError
        When the file has no electrodes table or lacks a column, when columns differ in length,
        when channel ids repeat, when a channel's group is not a probe of the file or its
        ``probe_id`` is not its group's, or when an acronym is not in the Allen ontology.
    """
    table = source.nwbfile.electrodes
    if table is None:
        raise SourceFileError(source.path, "has no electrodes table (general/extracellular_ephys/electrodes)")
    missing = [name for name in (*_SOURCE_COLUMNS, "group_name") if name not in table.colnames]
    if missing:
        raise SourceFileError(source.path, f"the electrodes table lacks the column(s) {', '.join(missing)}")
    channel_id = np.asarray(table.id.data[:], dtype=np.int64)
    n = len(channel_id)
    raw = {name: table[name].data[:] for name in (*_SOURCE_COLUMNS, "group_name")}
    for optional in ("probe_id", "filtering", "imp"):
        if optional in table.colnames:
            raw[optional] = table[optional].data[:]
    lengths = {name: len(values) for name, values in raw.items() if len(values) != n}
    if lengths:
        raise SourceFileError(source.path, f"electrodes table columns differ in length from its {n} ids: "
                                           + ", ".join(f"{name} has {length}" for name, length in lengths.items()))
    if len(np.unique(channel_id)) != n:
        repeated = np.unique(channel_id[np.flatnonzero(np.diff(np.sort(channel_id)) == 0)])
        raise SourceFileError(source.path, f"electrodes ids (channel ids) repeat: {repeated[:5].tolist()}")

    probe = text_values(raw["group_name"])
    probes = {found.name: found for found in read_probes(source)}
    strangers = sorted(set(probe) - set(probes))
    if strangers:
        raise SourceFileError(source.path, f"electrodes of group(s) {', '.join(strangers)}, which is not a probe "
                                           "(an electrode group with a probe_id) of the file")
    if "probe_id" in raw:
        probe_id = np.asarray(raw["probe_id"], dtype=np.int64)
        expected = np.array([probes[name].probe_id for name in probe], dtype=np.int64)
        wrong = np.flatnonzero(probe_id != expected)
        if wrong.size:
            first = int(wrong[0])
            raise SourceFileError(source.path, f"electrodes row {first} (channel {channel_id[first]}) has probe_id "
                                               f"{probe_id[first]} but its group {probe[first]} is probe "
                                               f"{expected[first]} ({wrong.size} such rows)")

    ccf = np.column_stack([float_values(raw[axis]) for axis in ("x", "y", "z")])
    acronym = text_values(raw["location"])
    # The atlas origin is outside the brain: (0, 0, 0) is how the Allen files say "not registered".
    registered = ~np.all(ccf == 0, axis=1) & ~np.isin(acronym, MISSING_TEXT)
    ccf[~registered] = np.nan
    location = np.where(registered, acronym, UNKNOWN).astype(object)
    ids = _structure_ids()
    unknown_acronyms = sorted({value for value in location[registered] if value not in ids})
    if unknown_acronyms:
        raise SourceFileError(source.path, f"electrodes location(s) {', '.join(map(repr, unknown_acronyms[:5]))} "
                                           "are not acronyms of the Allen ontology (iblatlas)")
    brain_region_id = np.array([ids[value] if keep else 0 for value, keep in zip(location, registered)],
                               dtype=np.int64)
    valid, valid_missing = nullable_booleans(raw["valid_data"], name="valid_data", path=source.path)
    if valid_missing.any():
        # A missing verdict is not a "valid" one.
        valid = np.where(valid_missing, False, valid)
    channel_number = float_values(raw["probe_channel_number"])
    if np.isnan(channel_number).any() or (channel_number != np.round(channel_number)).any():
        raise SourceFileError(source.path, "electrodes probe_channel_number must be whole numbers")
    return AllenChannels(
        channel_id=channel_id, probe=probe, location=location,
        x=ccf[:, 0], y=ccf[:, 1], z=ccf[:, 2], brain_region_id=brain_region_id,
        rel_x=float_values(raw["probe_horizontal_position"]), rel_y=float_values(raw["probe_vertical_position"]),
        probe_channel=channel_number.astype(np.int64), valid_data=np.asarray(valid, dtype=bool),
        filtering=text_values(raw["filtering"]) if "filtering" in raw else np.full(n, "", dtype=object),
        impedance=float_values(raw["imp"]) if "imp" in raw else np.full(n, np.nan))


def _crossed_regions(brain_region_id: np.ndarray, rel_y: np.ndarray) -> str:
    """Cosmos regions along the probe, from its top (brain surface) to its tip, or ``unknown`` (as the IBL)."""
    known = brain_region_id != 0
    if not known.any():
        return UNKNOWN
    order = np.argsort(-np.nan_to_num(rel_y[known], nan=-np.inf), kind="stable")
    crossed = []
    for region in _regions().id2acronym(brain_region_id[known][order], mapping="Cosmos"):
        # root (fibre tracts, ventricles) and void (outside the brain) name no region crossed.
        if region not in (UNKNOWN, "root", "void") and region not in crossed:
            crossed.append(str(region))
    return ", ".join(crossed) if crossed else UNKNOWN


def _existing_rows(nwbfile, names: list[str]) -> dict[int, int]:
    """Channel id -> row for ``names``, from an electrodes table :func:`add_allen_probes` already built."""
    table = nwbfile.electrodes
    if "allen_channel_id" not in table.colnames:
        raise ValueError("the NWB file already has an electrodes table not made from an Allen session; the Allen "
                         "probes build it whole and must be the only source of electrodes")
    groups = np.asarray(table["group_name"].data[:]).astype(str)
    absent = sorted(set(names) - set(groups))
    if absent:
        raise ValueError(f"the NWB file's electrodes table has no channels of {', '.join(absent)}: it is built once, "
                         "whole; add every probe the file needs the first time")
    channel_ids = np.asarray(table["allen_channel_id"].data[:], dtype=np.int64)
    rows = np.flatnonzero(np.isin(groups, names))
    return {int(channel_ids[row]): int(row) for row in rows}


def add_allen_probes(nwbfile, source: AllenFile, *, probes: list[str] | None = None) -> dict[int, int]:
    """Add a Device, an ElectrodeGroup and the electrodes of every probe, once per NWB file.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
    source : AllenFile
        The session file (its electrodes table is the reference for the processed and raw files).
    probes : list of str, optional
        Probe names to add (``probeA``, ...); by default every probe of the session.

    Returns
    -------
    dict of int to int
        Allen channel id -> row of the NWB file's ``electrodes`` table, for the channels of ``probes``.

    Raises
    ------
    SourceFileError
        When the session's electrodes table is inconsistent (see :func:`read_channels`), or a requested
        probe is not in the session.
    ValueError
        When the NWB file already has an electrodes table that lacks the requested probes or was not
        made by this function (the table is built once, whole, from columns).
    """
    from pynwb.device import Device, DeviceModel
    from pynwb.ecephys import ElectrodeGroup, ElectrodesTable

    known = read_probes(source)
    by_name = {probe.name: probe for probe in known}
    if probes is not None:
        absent = sorted(set(probes) - set(by_name))
        if absent:
            raise SourceFileError(source.path, f"has no probe {', '.join(absent)} (probes: {', '.join(by_name)})")
    names = sorted(by_name) if probes is None else sorted(set(probes))
    channels = read_channels(source)
    if nwbfile.electrodes is not None:
        # Probes without channels were left out when the table was built: nothing to find for them.
        return _existing_rows(nwbfile, [name for name in names if channels.of_probe(name).size])

    rows, groups = [], []
    for name in names:
        probe = by_name[name]
        mine = channels.of_probe(name)
        if not mine.size:
            warnings.warn(f"{source.path}: probe {name} has no channels in the electrodes table; it is left out",
                          stacklevel=2)
            continue
        device_model = nwbfile.device_models.get(PROBE_MODEL) if nwbfile.device_models else None
        if device_model is None:
            device_model = DeviceModel(name=PROBE_MODEL, manufacturer=MANUFACTURER, description=PROBE_MODEL)
            nwbfile.add_device_model(device_model)
        rate = f", spike band sampled at {probe.sampling_rate:.6f} Hz" if probe.sampling_rate else ""
        description = f"{PROBE_MODEL}; Allen probe {name}, probe id {probe.probe_id}{rate}."
        device = Device(name=name, description=description, model=device_model)
        nwbfile.add_device(device)
        source_location = probe.group_location if probe.group_location not in MISSING_TEXT else ""
        filtering = sorted(set(channels.filtering[mine]) - set(MISSING_TEXT))
        group_description = (f"Allen probe {name}, probe id {probe.probe_id}; {PROBE_MODEL}"
                             + (f"; Allen electrode group location: {source_location}" if source_location else "")
                             # One text for every channel in the release: said once here, not per row.
                             + (f"; hardware filtering: {filtering[0]}" if len(filtering) == 1 else "")
                             + ". Location: the Cosmos regions the channels cross, from the surface down.")
        group = ElectrodeGroup(name=name, description=group_description, device=device,
                               location=_crossed_regions(channels.brain_region_id[mine], channels.rel_y[mine]))
        nwbfile.add_electrode_group(group)
        rows.append(mine)
        groups.extend([group] * mine.size)
    if not rows:
        return {}
    order = np.concatenate(rows)
    columns = [VectorData(name="location", description=COLUMNS["location"], data=channels.location[order]),
               VectorData(name="group", description=GROUP_DESCRIPTION, data=groups),
               VectorData(name="group_name", description=GROUP_NAME_DESCRIPTION,
                          data=np.array([group.name for group in groups], dtype=object))]
    values = {"x": channels.x, "y": channels.y, "z": channels.z, "brain_region_id": channels.brain_region_id,
              "rel_x": channels.rel_x, "rel_y": channels.rel_y, "probe_channel": channels.probe_channel,
              "allen_channel_id": channels.channel_id, "allen_valid_data": channels.valid_data}
    for name in list(COLUMNS)[1:]:
        columns.append(VectorData(name=name, description=COLUMNS[name], data=values[name][order]))
    if len(set(channels.filtering[order]) - set(MISSING_TEXT)) > 1:
        columns.append(VectorData(name="allen_filtering", description="Hardware filtering of the channel (Allen "
                                  "filtering).", data=channels.filtering[order]))
    if np.isfinite(channels.impedance[order]).any():
        columns.append(VectorData(name="allen_imp", description="Impedance of the channel, ohms (Allen imp).",
                                  data=channels.impedance[order]))
    nwbfile.electrodes = ElectrodesTable(columns=columns)
    return {int(channel): row for row, channel in enumerate(channels.channel_id[order])}


def electrode_rows_of_channels(nwbfile, channel_ids, *, path: Path | str, what: str = "channel") -> np.ndarray:
    """Row of the NWB file's ``electrodes`` table of each Allen channel id, vectorised.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
        With an electrodes table built by :func:`add_allen_probes`.
    channel_ids : array-like of int
    path : Path or str
        The file the ids come from, named in the error.
    what : str
        What the ids are, for the error (``peak_channel_id of unit 1234``, ...).

    Raises
    ------
    SourceFileError
        When an id has no row.
    """
    known = np.asarray(nwbfile.electrodes["allen_channel_id"].data[:], dtype=np.int64)
    wanted = np.asarray(channel_ids, dtype=np.int64)
    order = np.argsort(known, kind="stable")
    position = np.searchsorted(known[order], wanted)
    position = np.minimum(position, max(len(known) - 1, 0))
    found = (known[order][position] == wanted) if len(known) else np.zeros(len(wanted), dtype=bool)
    if not found.all():
        first = int(np.flatnonzero(~found)[0])
        raise SourceFileError(path, f"{what} {int(wanted[first])} (entry {first}) is not a channel of the "
                                    f"electrodes table ({int((~found).sum())} such entries)")
    return order[position].astype(np.int64)


class AllenProbesInterface(AllenInterface):
    """The probes of an Allen session: devices, electrode groups and the ``electrodes`` table.

    Parameters
    ----------
    session_nwb : Path
        The AllenSDK session file, ``ecephys_session_<id>.nwb``.
    verbose : bool, default: False
    """

    display_name = "Allen probes and electrodes"

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        electrodes = source.nwbfile.electrodes
        return electrodes is not None and len(electrodes) > 0 and bool(read_probes(source))

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None, *, probes: list[str] | None = None) -> None:
        """Add the probes (by default every probe) and their channels, unless the file already has them."""
        add_allen_probes(nwbfile, self.source, probes=probes)
