"""IBL probes and their recording channels: devices, electrode groups and the ``electrodes`` table.

Sources, per probe (see :mod:`.probes` for where each probe's collections are):

* ``alf/<probe>/electrodeSites.*`` (``localCoordinates``, ``mlapdv``, ``brainLocationIds_ccf_2017``):
  every recording site after histology alignment; it takes precedence over the channels;
* ``alf/<probe>/<sorter>/channels.*`` (``rawInd``, ``localCoordinates``, ``mlapdv``,
  ``brainLocationIds_ccf_2017``): the channels of the spike sorting;
* ``raw_ephys_data/<probe>/*.ap.meta``: the SpikeGLX metadata, for the probe model, its serial
  number and the geometry of the recorded sites (read with ibl-neuropixel);
* ``alyx_session.json`` ``probe_insertions``: the Alyx insertion id (pid), model and serial.

:func:`probe_electrodes` gives one probe's rows as a plain table (no NWB objects, so the raw
file can build the very same rows); :class:`IblProbesInterface` writes a ``Device``, a
``DeviceModel`` and an ``ElectrodeGroup`` per probe and the whole ``electrodes`` table, built
from whole columns; :func:`electrode_rows` maps a probe's channels to rows of that table.

Coordinates: ``mlapdv`` is in µm from bregma (ML right +, AP anterior +, DV dorsal +). It is
kept unchanged in ``ibl_ml_um``, ``ibl_ap_um``, ``ibl_dv_um`` and converted with iblatlas to
Allen CCFv3 µm in the NWB orientation: ``x`` = AP (posterior +), ``y`` = DV (inferior +),
``z`` = ML (right +).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from hdmf.common import VectorData
from pydantic import DirectoryPath

from ...errors import SourceFileError
from .alf import AlfSession, load_npy, require_same_length
from .base import IblInterface
from .probes import IblProbe, find_probes
from .session import read_alyx_metadata

__all__ = ["COLUMNS", "ElectrodeGeometryWarning", "IblProbesInterface", "ProbeMeta", "add_probes",
           "electrode_rows", "probe_electrodes", "probe_model_description", "read_probe_meta"]

HISTOLOGY_IDS = "brainLocationIds_ccf_2017"

# Column name -> description, in the order of the table (group and group_name are added by NWB).
COLUMNS = {
    "location": "Allen CCF acronym of the channel's brain region (IBL histology, channels or electrodeSites "
                "brainLocationIds_ccf_2017, named with iblatlas); 'root' outside the brain (Allen id 997, "
                "or id 0 'void' on a registered channel); 'unknown' where the channel has no histology.",
    "x": "Allen CCFv3 antero-posterior coordinate, posterior positive (µm), from the IBL bregma-relative "
         "mlapdv converted with iblatlas (bregma at CCF AP 5400 µm); NaN where the channel has no histology.",
    "y": "Allen CCFv3 dorso-ventral coordinate, inferior positive (µm), from the IBL bregma-relative mlapdv "
         "converted with iblatlas (bregma at CCF DV 332 µm); NaN where the channel has no histology.",
    "z": "Allen CCFv3 left-right coordinate, right positive (µm), from the IBL bregma-relative mlapdv "
         "converted with iblatlas (bregma at CCF ML 5739 µm); NaN where the channel has no histology.",
    "brain_region_id": "Allen structure id of `location` (IBL brainLocationIds_ccf_2017); 0 where there is no "
                       "structure: the channel has no histology (location 'unknown') or lies outside the brain "
                       "(Allen 'void', location 'root').",
    "rel_x": "Lateral position of the site on the probe (µm), as ibl-neuropixel reads the SpikeGLX .ap.meta "
             "geometry (else channels.localCoordinates[:, 0]), in the IBL convention of the spike sorting "
             "(on Neuropixels 1.0 mirrored from SpikeGLX's own x: 70 - x); on multi-shank probes the shank "
             "offset (shank index x shank pitch, 250 µm on Neuropixels 2.0) is added.",
    "rel_y": "Axial position of the site from the probe tip (µm; IBL convention: the first row of sites at "
             "20 µm), from the SpikeGLX .ap.meta geometry (else channels.localCoordinates[:, 1]).",
    "probe_channel": "Channel index on the probe: the column of the channel in the raw SpikeGLX file "
                     "(channels.rawInd; for electrodeSites, which do not state it, the channel at the same "
                     "position in channels.* or the .ap.meta, else the site index). The sync channel is not an "
                     "electrode.",
    "ibl_ml_um": "Medio-lateral distance from bregma, right positive (µm), IBL mlapdv[:, 0] unchanged; NaN "
                 "without histology.",
    "ibl_ap_um": "Antero-posterior distance from bregma, anterior positive (µm), IBL mlapdv[:, 1] unchanged; "
                 "NaN without histology.",
    "ibl_dv_um": "Dorso-ventral distance from bregma, dorsal positive (µm), IBL mlapdv[:, 2] unchanged; NaN "
                 "without histology.",
    "ibl_beryl_acronym": "Region in the IBL Beryl parcellation (iblatlas remap of brain_region_id); 'void' "
                         "outside the brain, 'unknown' without histology.",
    "ibl_cosmos_acronym": "Region in the IBL Cosmos parcellation (iblatlas remap of brain_region_id); 'void' "
                          "outside the brain, 'unknown' without histology.",
}
GROUP_DESCRIPTION = "The probe's ElectrodeGroup."
GROUP_NAME_DESCRIPTION = "Name of the probe's ElectrodeGroup (the IBL probe name, e.g. probe00)."

# Probe generation (ibl-neuropixel's version tag, also Alyx's probe model) -> what the device is.
PROBE_MODELS = {
    "3A": "Neuropixels 1.0 (3A)",
    "3B1": "Neuropixels 1.0 (3B1)",
    "3B2": "Neuropixels 1.0 (3B2)",
    "NP2.1": "Neuropixels 2.0 single shank (NP2.1)",
    "NP2.4": "Neuropixels 2.0 four shanks (NP2.4)",
    "NPultra": "Neuropixels Ultra (NPultra)",
    "NP2QB": "Neuropixels 2.0 quad base (NP2QB)",
    "NHPlong": "Neuropixels NHP long (NHPlong)",
}
MANUFACTURER = "IMEC"
# Centre-to-centre distance of the shanks of a Neuropixels 2.0 four-shank probe (µm), used when
# the meta predates SpikeGLX's snsGeomMap, which states it.
NP2_SHANK_PITCH_UM = 250.0
# pykilosort / iblsorter place shanks 200 µm apart in channels.localCoordinates (`xc = x + shank * 200`):
# a lateral offset of that size is the sorter's convention, not a disagreement about the site.
SORTER_SHANK_PITCH_UM = 200.0
GEOMETRY_TOLERANCE_UM = 1e-3
UNKNOWN = "unknown"


class ElectrodeGeometryWarning(UserWarning):
    """The SpikeGLX meta and the ALF files place a channel at different positions on the probe."""


def _atlas():
    """The Allen atlas at 25 µm.

    ``mock=True`` builds the volume geometry without downloading the annotation and template
    images: ``xyz2ccf`` uses only the grid (bregma position, resolution, axis directions). It is
    built for each use, not kept: it takes 0.05 s but holds about 190 MB, which would otherwise
    stay in memory while the large datasets are written.
    """
    from iblatlas.atlas import AllenAtlas

    return AllenAtlas(25, mock=True)


@lru_cache(maxsize=1)
def _regions():
    """The Allen structure ontology with the IBL Beryl and Cosmos parcellations (offline)."""
    from iblatlas.regions import BrainRegions

    return BrainRegions()


def probe_model_description(model: str | None) -> str:
    """What a probe model tag (``3B2``, ``NP2.4``, ...) is, for the device description."""
    if not model:
        return "Neuropixels probe (model unknown)"
    return PROBE_MODELS.get(model, f"Neuropixels probe ({model})")


@dataclass(frozen=True)
class ProbeMeta:
    """What a SpikeGLX ``.ap.meta`` says about the probe and its recorded sites.

    Attributes
    ----------
    path : Path
        The meta file.
    model : str or None
        ibl-neuropixel's probe version tag (``3A``, ``3B2``, ``NP2.1``, ``NP2.4``, ...).
    part_number : str or None
        ``imDatPrb_pn`` (e.g. ``PRB_1_4_0480_1``); absent from Phase 3A metas.
    serial_number : str or None
        ``imDatPrb_sn`` (``imProbeSN`` on 3A).
    channels : numpy.ndarray
        Probe channel of each recorded site (the sync channel excluded).
    shank : numpy.ndarray
        Shank index of each site.
    lateral_in_shank_um : numpy.ndarray
        Lateral position of each site on its shank (µm), as ibl-neuropixel gives it.
    rel_x_um, rel_y_um : numpy.ndarray
        Lateral position on the probe (shank offset added when the file holds several shanks)
        and axial position from the tip (µm).
    shank_pitch_um : float
        Distance between the probe's shanks (0 for a single-shank probe), even when the file
        holds one shank of it.
    """

    path: Path
    model: str | None
    part_number: str | None
    serial_number: str | None
    channels: np.ndarray
    shank: np.ndarray
    lateral_in_shank_um: np.ndarray
    rel_x_um: np.ndarray
    rel_y_um: np.ndarray
    shank_pitch_um: float


def _saved_channels(value) -> list[int] | None:
    """The channel numbers of ``snsSaveChanSubset`` (``"0:383,768"``, ``"all"``), or None for all."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    if isinstance(value, (int, float)):
        return [int(value)]
    if isinstance(value, list):
        return [int(v) for v in value]
    channels: list[int] = []
    for part in str(value).split(","):
        first, _, last = part.partition(":")
        channels.extend(range(int(first), int(last or first) + 1))
    return channels


def read_probe_meta(path: str | Path) -> ProbeMeta:
    """Read the probe model and the site geometry of a SpikeGLX ``.ap.meta`` file.

    Parameters
    ----------
    path : str or Path
        The ``.ap.meta`` file.

    Returns
    -------
    ProbeMeta
    """
    import spikeglx

    path = Path(path)
    try:
        meta = spikeglx.read_meta_data(path)
        model = spikeglx._get_neuropixel_version_from_meta(meta)
        geometry = spikeglx.geometry_from_meta(meta, sort=False)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        raise SourceFileError(path, f"not a readable SpikeGLX meta file ({error})") from error
    if geometry is None or geometry.get("x") is None:
        raise SourceFileError(path, "the meta file has no site geometry (snsShankMap or snsGeomMap) and no "
                              "known probe type to derive it from")
    n_sites = len(geometry["x"])
    shank = np.asarray(geometry["shank"], dtype=np.float64).astype(np.int64)
    lateral = np.asarray(geometry["x"], dtype=np.float64)
    axial = np.asarray(geometry["y"], dtype=np.float64)

    pitch = 0.0
    geometry_header = re.match(r"\(([^,()]*),(\d+),([\d.]+),([\d.]+)\)", str(meta.get("snsGeomMap", "")))
    if geometry_header and int(geometry_header.group(2)) > 1:
        pitch = float(geometry_header.group(3))
    elif len(np.unique(shank)) > 1 or model in ("NP2.4", "NP2QB") or "NP2.4_shank" in meta:
        pitch = NP2_SHANK_PITCH_UM
    # A file holding several shanks repeats the same within-shank x on each, so the shank offset
    # is added to place every site uniquely. A file of one shank (the IBL splits NP2.4 recordings
    # into one insertion per shank) keeps the within-shank x, as its spike sorting does.
    offset = pitch if len(np.unique(shank)) > 1 else 0.0

    # snsShankMap lists the saved neural channels in file order; snsSaveChanSubset says which
    # probe channels they are (all of them in IBL recordings, then the sync channel).
    saved = _saved_channels(meta.get("snsSaveChanSubset"))
    n_neural = meta.get("snsApLfSy")
    n_neural = int(n_neural[0]) if isinstance(n_neural, list) and n_neural[0] else n_sites
    channels = np.arange(n_sites)
    if saved is not None:
        neural = [channel for channel in saved if channel < n_neural]
        if len(neural) == n_sites:
            channels = np.asarray(neural, dtype=np.int64)

    serial = meta.get("serial")
    return ProbeMeta(
        path=path,
        model=model,
        part_number=str(meta["imDatPrb_pn"]) if meta.get("imDatPrb_pn") else None,
        serial_number=str(int(serial)) if serial else None,
        channels=channels,
        shank=shank,
        lateral_in_shank_um=lateral,
        rel_x_um=lateral + shank * offset,
        rel_y_um=axial,
        shank_pitch_um=pitch,
    )


def _load_attributes(session: AlfSession, *, object: str, collection: str | None,
                     ) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    """The ``.npy`` attributes of one ALF object that the electrodes need (others are not read).

    Reading only these keeps an unrelated attribute (e.g. the pickled acronyms of old releases)
    from stopping the conversion.
    """
    wanted = ("rawInd", "localCoordinates", "mlapdv", HISTOLOGY_IDS)
    if collection is None:
        return {}, {}
    found = session.find(object, collection=collection, extension="npy")
    values, files = {}, {}
    for row in found.itertuples():
        key = f"{row.attribute}_{row.timescale}" if row.timescale else row.attribute
        if key in wanted:
            files[key] = Path(row.file)
            values[key] = load_npy(row.file)
    if values:
        require_same_length({files[key]: array for key, array in values.items()}, what=f"{object} rows")
    for key, array in values.items():
        if array.dtype.kind not in "iuf":
            raise SourceFileError(files[key], f"{object}.{key} must hold numbers, found {array.dtype}")
    for key, columns in (("localCoordinates", 2), ("mlapdv", 3)):
        if key in values and (values[key].ndim != 2 or values[key].shape[1] != columns):
            raise SourceFileError(files[key], f"{object}.{key} must be (n, {columns}), found shape "
                                  f"{values[key].shape}")
    for key in ("rawInd", HISTOLOGY_IDS):
        if key in values and values[key].ndim != 1:
            raise SourceFileError(files[key], f"{object}.{key} must be 1-D, found shape {values[key].shape}")
    return values, files


def _channel_numbers(values: dict, *, files: dict, object: str) -> np.ndarray:
    """Probe channel of each row: ``rawInd``, or the row index (site index) without it."""
    if "rawInd" not in values:
        n = len(next(iter(values.values())))
        return np.arange(n, dtype=np.int64)
    raw = np.asarray(values["rawInd"])
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        raise SourceFileError(files["rawInd"], f"{object}.rawInd holds non-integer channel numbers")
    if raw.dtype.kind not in "iuf":
        raise SourceFileError(files["rawInd"], f"{object}.rawInd must hold integers, found {raw.dtype}")
    raw = raw.astype(np.int64)
    if raw.size and raw.min() < 0:
        raise SourceFileError(files["rawInd"], f"{object}.rawInd holds negative channel numbers")
    if len(np.unique(raw)) != len(raw):
        raise SourceFileError(files["rawInd"], f"{object}.rawInd lists a channel twice")
    return raw


def _site_channels(sites: dict, *, site_numbers: np.ndarray, channels: dict, channel_numbers: np.ndarray | None,
                   meta: ProbeMeta | None) -> np.ndarray:
    """Probe channel of each electrode site, which ``electrodeSites`` does not state.

    The IBL writes the sites from the probe geometry in the order its tools sort it (by shank,
    row and column), which on Neuropixels 2.0 is not the channel order. The sites' channels are
    therefore those of the sorting's channels when both list the same positions row by row,
    else those of the meta site at each position, else the row index.
    """
    local = sites.get("localCoordinates")
    if local is None:
        return site_numbers
    local = np.asarray(local, dtype=np.float64)
    if channel_numbers is not None and "localCoordinates" in channels:
        theirs = np.asarray(channels["localCoordinates"], dtype=np.float64)
        if theirs.shape == local.shape and np.allclose(theirs, local, rtol=0, atol=GEOMETRY_TOLERANCE_UM):
            return channel_numbers
    if meta is not None and np.isfinite(local).all():
        axial = np.round(meta.rel_y_um / GEOMETRY_TOLERANCE_UM).astype(np.int64)
        for pitch in dict.fromkeys((0.0, meta.shank_pitch_um, SORTER_SHANK_PITCH_UM)):
            lateral = np.round((meta.lateral_in_shank_um + meta.shank * pitch) / GEOMETRY_TOLERANCE_UM)
            where = {key: i for i, key in enumerate(zip(lateral.astype(np.int64), axial))}
            if len(where) != len(axial):
                continue  # positions repeat across shanks under this convention
            keys = zip(np.round(local[:, 0] / GEOMETRY_TOLERANCE_UM).astype(np.int64),
                       np.round(local[:, 1] / GEOMETRY_TOLERANCE_UM).astype(np.int64))
            found = [where.get(key, -1) for key in keys]
            if min(found, default=-1) >= 0 and len(set(found)) == len(found):
                return meta.channels[np.asarray(found)]
    return site_numbers


def _aligned(values: np.ndarray, *, source_channels: np.ndarray, channels: np.ndarray,
             columns: int | None) -> np.ndarray:
    """``values`` (one per ``source_channels``) reordered to ``channels``; NaN where absent."""
    shape = (len(channels),) if columns is None else (len(channels), columns)
    out = np.full(shape, np.nan)
    position = {int(channel): index for index, channel in enumerate(source_channels)}
    rows = np.array([position.get(int(channel), -1) for channel in channels], dtype=np.int64)
    present = rows >= 0
    out[present] = np.asarray(values, dtype=np.float64)[rows[present]]
    return out


def _empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=object if name in ("location", "ibl_beryl_acronym",
                                                                   "ibl_cosmos_acronym") else np.float64)
                          for name in COLUMNS})
    return frame.astype({"probe_channel": np.int64, "brain_region_id": np.int64})


def probe_electrodes(session: AlfSession, probe: IblProbe | str) -> pd.DataFrame:
    """One row per recorded channel of a probe, with the columns of the ``electrodes`` table.

    Rows are those of ``electrodeSites.*`` when the probe has them, else of the sorting's
    ``channels.*``, else of the ``.ap.meta`` sites, in that file's order. Each attribute is taken
    from ``electrodeSites`` when there, else from ``channels`` (matched by probe channel). The
    position on the probe comes from the meta when there; where the ALF ``localCoordinates``
    say otherwise, the meta wins and an :class:`ElectrodeGeometryWarning` says so.

    Parameters
    ----------
    session : AlfSession
    probe : IblProbe or str
        The probe, or its name (``probe00``).

    Returns
    -------
    pandas.DataFrame
        Columns as :data:`COLUMNS` (no ``group``: the table holds no NWB objects). Channels
        without histology have location ``unknown``, ``brain_region_id`` 0 and NaN coordinates.

    Raises
    ------
    SourceFileError
        When attributes of one object differ in length (the error names the file), arrays have
        the wrong shape, or a structure id is not in the Allen ontology.
    """
    if isinstance(probe, str):
        matching = [candidate for candidate in find_probes(session) if candidate.name == probe]
        if not matching:
            raise SourceFileError(session.session_path / "alf" / probe, "no such probe in the session")
        probe = matching[0]
    sites, site_files = _load_attributes(session, object="electrodeSites", collection=probe.probe_collection)
    channels, channel_files = _load_attributes(session, object="channels", collection=probe.sorting_collection)
    meta_path = probe.raw_file(session, band="ap", extension="meta")
    meta = read_probe_meta(meta_path) if meta_path is not None else None

    sources = []  # (values, files, channel numbers), in order of precedence
    channel_numbers = None
    if channels:
        channel_numbers = _channel_numbers(channels, files=channel_files, object="channels")
    if sites:
        site_numbers = _channel_numbers(sites, files=site_files, object="electrodeSites")
        if "rawInd" not in sites:
            site_numbers = _site_channels(sites, site_numbers=site_numbers, channels=channels,
                                          channel_numbers=channel_numbers, meta=meta)
        sources.append((sites, site_files, site_numbers))
    if channels:
        sources.append((channels, channel_files, channel_numbers))
    if sources:
        probe_channel = sources[0][2]
    elif meta is not None:
        probe_channel = meta.channels
    else:
        return _empty_frame()
    n = len(probe_channel)

    def first(attribute, columns):
        for values, files, source_channels in sources:
            if attribute in values:
                return _aligned(values[attribute], source_channels=source_channels, channels=probe_channel,
                                columns=columns), files[attribute]
        return None, None

    local, local_file = first("localCoordinates", 2)
    mlapdv, _ = first("mlapdv", 3)
    ids, ids_file = first(HISTOLOGY_IDS, None)

    rel_x = np.full(n, np.nan) if local is None else local[:, 0].copy()
    rel_y = np.full(n, np.nan) if local is None else local[:, 1].copy()
    if meta is not None:
        rel_x, rel_y = _geometry_from_meta(meta, probe_channel=probe_channel, rel_x=rel_x, rel_y=rel_y,
                                           local_file=local_file)

    if mlapdv is None:
        mlapdv = np.full((n, 3), np.nan)
    registered = np.all(np.isfinite(mlapdv), axis=1)
    ccf = np.full((n, 3), np.nan)
    if registered.any():
        # AllenAtlas coordinates are metres from bregma, ML right +, AP anterior +, DV dorsal +
        # (the mlapdv axes); "wrap" keeps points outside the volume instead of raising.
        ccf[registered] = _atlas().xyz2ccf(mlapdv[registered] / 1e6, ccf_order="apdvml", mode="wrap")

    region_id = np.zeros(n, dtype=np.int64)
    location = np.full(n, UNKNOWN, dtype=object)
    beryl = np.full(n, UNKNOWN, dtype=object)
    cosmos = np.full(n, UNKNOWN, dtype=object)
    if ids is not None:
        known = np.isfinite(ids)
        if not np.all(ids[known] == np.round(ids[known])):
            raise SourceFileError(ids_file, "brain location ids must be integers")
        region_id[known] = ids[known].astype(np.int64)
        regions = _regions()
        absent = known & ~np.isin(region_id, regions.id)
        if absent.any():
            index = int(np.flatnonzero(absent)[0])
            raise SourceFileError(ids_file, f"structure id {region_id[index]} (row {index}) is not in the Allen "
                                  f"ontology iblatlas knows ({int(absent.sum())} such rows)")
        location[known] = regions.id2acronym(region_id[known], mapping="Allen")
        beryl[known] = regions.id2acronym(region_id[known], mapping="Beryl")
        cosmos[known] = regions.id2acronym(region_id[known], mapping="Cosmos")
        # Id 0 is the atlas's "void": a registered channel there is outside the brain.
        outside = known & (region_id == 0)
        location[outside & registered] = "root"
        location[outside & ~registered] = UNKNOWN

    frame = pd.DataFrame({
        "location": location,
        "x": ccf[:, 0], "y": ccf[:, 1], "z": ccf[:, 2],
        "brain_region_id": region_id,
        "rel_x": rel_x, "rel_y": rel_y,
        "probe_channel": np.asarray(probe_channel, dtype=np.int64),
        "ibl_ml_um": mlapdv[:, 0], "ibl_ap_um": mlapdv[:, 1], "ibl_dv_um": mlapdv[:, 2],
        "ibl_beryl_acronym": beryl, "ibl_cosmos_acronym": cosmos,
    })
    return frame[list(COLUMNS)]


def _geometry_from_meta(meta: ProbeMeta, *, probe_channel: np.ndarray, rel_x: np.ndarray, rel_y: np.ndarray,
                        local_file: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Positions on the probe from the meta where it has the channel, warning where ALF disagrees."""
    index = {int(channel): i for i, channel in enumerate(meta.channels)}
    rows = np.array([index.get(int(channel), -1) for channel in probe_channel], dtype=np.int64)
    has = rows >= 0
    meta_x = np.full(len(rows), np.nan)
    meta_y = np.full(len(rows), np.nan)
    meta_x[has] = meta.rel_x_um[rows[has]]
    meta_y[has] = meta.rel_y_um[rows[has]]

    compared = has & np.isfinite(rel_x) & np.isfinite(rel_y)
    if compared.any():
        shank = np.zeros(len(rows))
        shank[has] = meta.shank[rows[has]]
        in_shank = np.full(len(rows), np.nan)
        in_shank[has] = meta.lateral_in_shank_um[rows[has]]
        # The lateral position agrees if it matches under any of the shank-offset conventions.
        lateral_ok = np.zeros(len(rows), dtype=bool)
        for pitch in {meta.shank_pitch_um, SORTER_SHANK_PITCH_UM, 0.0}:
            lateral_ok |= np.abs(rel_x - (in_shank + shank * pitch)) <= GEOMETRY_TOLERANCE_UM
        axial_ok = np.abs(rel_y - meta_y) <= GEOMETRY_TOLERANCE_UM
        differ = compared & ~(lateral_ok & axial_ok)
        if differ.any():
            first = int(np.flatnonzero(differ)[0])
            warnings.warn(
                f"{local_file}: localCoordinates place {int(differ.sum())} of {int(compared.sum())} channels "
                f"elsewhere than the SpikeGLX meta {meta.path.name} (e.g. channel {int(probe_channel[first])}: "
                f"({rel_x[first]:g}, {rel_y[first]:g}) µm vs ({meta_x[first]:g}, {meta_y[first]:g}) µm in the "
                "meta); the meta's positions are used",
                ElectrodeGeometryWarning, stacklevel=3)
    rel_x = np.where(has, meta_x, rel_x)
    rel_y = np.where(has, meta_y, rel_y)
    return rel_x, rel_y


def _insertions(session: AlfSession) -> dict[str, dict]:
    """Alyx probe insertions by probe name (empty without ``alyx_session.json``)."""
    records = read_alyx_metadata(session.session_path).get("probe_insertions") or []
    return {record["name"]: record for record in records if isinstance(record, dict) and record.get("name")}


def _crossed_regions(frame: pd.DataFrame) -> str:
    """Cosmos regions along the probe, from its top (brain surface) to its tip, or ``unknown``."""
    order = np.argsort(-frame["rel_y"].to_numpy(dtype=np.float64, na_value=np.nan), kind="stable")
    crossed = []
    for region in frame["ibl_cosmos_acronym"].to_numpy()[order]:
        # root (fibre tracts, ventricles) and void (outside the brain) name no region crossed.
        if region not in (UNKNOWN, "root", "void") and region not in crossed:
            crossed.append(region)
    return ", ".join(crossed) if crossed else UNKNOWN


def add_probes(nwbfile, *, session: AlfSession, probes: list[IblProbe] | None = None) -> None:
    """Add a Device, an ElectrodeGroup and the electrodes of every probe to ``nwbfile``.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
        Must not have an electrodes table yet: the table is built whole, from columns.
    session : AlfSession
    probes : list of IblProbe, optional
        By default every probe of the session.
    """
    from pynwb.device import Device, DeviceModel
    from pynwb.ecephys import ElectrodeGroup, ElectrodesTable

    if nwbfile.electrodes is not None:
        raise ValueError("the NWB file already has an electrodes table; the IBL probes build it whole and "
                         "must be the only interface adding electrodes")
    probes = sorted(find_probes(session) if probes is None else probes, key=lambda probe: probe.name)
    insertions = _insertions(session)
    frames, groups = [], []
    for probe in probes:
        frame = probe_electrodes(session, probe)
        if not len(frame):
            # Without channels, sites or a meta nothing says which channels the probe recorded.
            warnings.warn(f"{session.session_path / probe.probe_collection}: probe {probe.name} has no channels.*, "
                          "electrodeSites.* or .ap.meta; it is left out of the electrodes table", stacklevel=2)
            continue
        meta_path = probe.raw_file(session, band="ap", extension="meta")
        meta = read_probe_meta(meta_path) if meta_path is not None else None
        insertion = insertions.get(probe.name, {})
        model = (meta.model if meta else None) or insertion.get("model")
        serial = (meta.serial_number if meta else None) or (str(insertion["serial"]) if insertion.get("serial")
                                                           else None)
        if meta and meta.serial_number and insertion.get("serial") and str(insertion["serial"]) != meta.serial_number:
            warnings.warn(f"{meta.path}: probe serial number {meta.serial_number} differs from the Alyx insertion's "
                          f"{insertion['serial']} for {probe.name}; the meta's is used", stacklevel=2)
        description = probe_model_description(model)

        device_model = None
        model_name = (meta.part_number if meta else None) or model
        if model_name:
            device_model = nwbfile.device_models.get(model_name) if nwbfile.device_models else None
            if device_model is None:
                device_model = DeviceModel(name=model_name, manufacturer=MANUFACTURER,
                                           model_number=meta.part_number if meta else None,
                                           description=description)
                nwbfile.add_device_model(device_model)
        device = Device(name=probe.name, description=description, serial_number=serial, model=device_model)
        nwbfile.add_device(device)

        pid = insertion.get("id")
        group_description = (f"IBL probe insertion {probe.name}"
                             + (f", Alyx probe insertion id (pid) {pid}" if pid else ", no Alyx insertion id known")
                             + f"; {description}"
                             + (f", spike sorting {probe.sorting_collection}" if probe.sorting_collection else "")
                             + ". Location: the Cosmos regions the channels cross, from the surface down.")
        group = ElectrodeGroup(name=probe.name, description=group_description, location=_crossed_regions(frame),
                               device=device)
        nwbfile.add_electrode_group(group)
        frames.append(frame)
        groups.extend([group] * len(frame))

    table = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
    if not len(table):
        return
    columns = [VectorData(name="location", description=COLUMNS["location"],
                          data=table["location"].to_numpy(dtype=object)),
               VectorData(name="group", description=GROUP_DESCRIPTION, data=groups),
               VectorData(name="group_name", description=GROUP_NAME_DESCRIPTION,
                          data=np.array([group.name for group in groups], dtype=object))]
    for name in list(COLUMNS)[1:]:
        values = table[name].to_numpy()
        if values.dtype == object:
            values = values.astype(str).astype(object)
        columns.append(VectorData(name=name, description=COLUMNS[name], data=values))
    nwbfile.electrodes = ElectrodesTable(columns=columns)


def electrode_rows(nwbfile, probe_name: str) -> np.ndarray:
    """Row of the ``electrodes`` table of each channel of a probe.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
        In memory or read from a file.
    probe_name : str

    Returns
    -------
    numpy.ndarray of int64
        ``rows[probe_channel]`` is the row of that channel of the probe; -1 for a channel the
        table does not have.
    """
    if nwbfile.electrodes is None:
        raise ValueError("the NWB file has no electrodes table")
    names = np.asarray(nwbfile.electrodes["group_name"].data[:]).astype(str)
    channels = np.asarray(nwbfile.electrodes["probe_channel"].data[:], dtype=np.int64)
    mine = np.flatnonzero(names == probe_name)
    if not mine.size:
        raise ValueError(f"the electrodes table has no channel of probe {probe_name!r}")
    rows = np.full(int(channels[mine].max()) + 1, -1, dtype=np.int64)
    rows[channels[mine]] = mine
    return rows


class IblProbesInterface(IblInterface):
    """The probes of an IBL session: devices, electrode groups and the ``electrodes`` table.

    Parameters
    ----------
    session_path : Path
        The session folder.
    revision : str, optional
        ALF revision to read; by default the newest of every dataset.
    sorter : str, optional
        Read the channels of this sorter's output (``iblsorter``, ``pykilosort``); by default the
        newest available.
    verbose : bool, default: False
    """

    display_name = "IBL probes and electrodes"

    def __init__(self, session_path: DirectoryPath, *, revision: str | None = None, sorter: str | None = None,
                 verbose: bool = False):
        super().__init__(session_path, revision=revision, verbose=verbose)
        self.source_data["sorter"] = sorter
        self.sorter = sorter

    @classmethod
    def is_available(cls, session) -> bool:
        return bool(find_probes(session))

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        add_probes(nwbfile, session=self.session, probes=find_probes(self.session, sorter=self.sorter))
