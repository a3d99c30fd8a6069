"""IBL probes and electrodes: devices, electrode groups, the electrodes table and its sources.

Sessions are built by hand in the ``empty_session`` folder (ALF arrays written with numpy, real
SpikeGLX metas copied from ``tests/data/ibl/spikeglx``). Expected values are computed here from
formulas and from the meta text, not with ibl-neuropixel, except where the test says so.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from datetime import datetime, timezone

import numpy as np
import pytest
from pynwb import NWBFile
from pynwb.file import Subject

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl.alf import AlfSession
from nwbridge.interfaces.ibl.electrodes import (
    COLUMNS,
    ElectrodeGeometryWarning,
    IblProbesInterface,
    electrode_rows,
    probe_electrodes,
    read_probe_meta,
)
from nwbridge.interfaces.ibl.probes import find_probes
from nwbridge.writing import write_nwbfile_atomically

N = 384
BREGMA_CCF_UM = {"ap": 5400.0, "dv": 332.0, "ml": 5739.0}
METAS = {
    "3A": "sample3A_g0_t0.imec.ap.meta",
    "3B": "sample3B_g0_t0.imec1.ap.meta",
    "3B_2023": "sample3B_version202304.ap.meta",
    "NP2.1": "sampleNP2.1_g0_t0.imec.ap.meta",
    "NP2.4_1shank": "sampleNP2.4_1shank_g0_t0.imec.ap.meta",
    "NP2.4": "sampleNP2.4_4shanks_g0_t0.imec.ap.meta",
}


# --- building sessions by hand ----------------------------------------------------------------------

def np1_geometry(channels):
    """IBL's Neuropixels 1.0 layout, bank 0: lateral 43, 11, 59, 27 µm repeating, 20 µm per row pair."""
    channels = np.asarray(channels)
    return np.array([43.0, 11.0, 59.0, 27.0])[channels % 4], 20.0 + 20.0 * (channels // 2)


def write_channels(session, probe="probe00", *, sorter="pykilosort", n=N, raw_ind=True, local=True,
                   mlapdv=None, ids=None):
    folder = session / "alf" / probe / sorter if sorter else session / "alf" / probe
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "spikes.times.npy", np.array([0.5, 1.0, 2.0]))
    if raw_ind:
        np.save(folder / "channels.rawInd.npy", np.arange(n, dtype=np.int64))
    if local is True:
        lateral, axial = np1_geometry(np.arange(n))
        local = np.c_[lateral, axial]
    if local is not None and local is not False:
        np.save(folder / "channels.localCoordinates.npy", np.asarray(local, dtype=np.float64))
    if mlapdv is not None:
        np.save(folder / "channels.mlapdv.npy", mlapdv)
    if ids is not None:
        np.save(folder / "channels.brainLocationIds_ccf_2017.npy", ids)
    return folder


def write_sites(session, probe="probe00", *, mlapdv=None, ids=None, local=None):
    folder = session / "alf" / probe
    folder.mkdir(parents=True, exist_ok=True)
    if mlapdv is not None:
        np.save(folder / "electrodeSites.mlapdv.npy", mlapdv)
    if ids is not None:
        np.save(folder / "electrodeSites.brainLocationIds_ccf_2017.npy", ids)
    if local is not None:
        np.save(folder / "electrodeSites.localCoordinates.npy", local)
    return folder


def copy_meta(test_data, session, kind, probe="probe00", index=0):
    folder = session / "raw_ephys_data" / probe
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"_spikeglx_ephysData_g0_t0.imec{index}.ap.meta"
    shutil.copyfile(test_data / "ibl" / "spikeglx" / METAS[kind], target)
    return target


def track(n=N, *, seed=0):
    """A straight track through the brain: mlapdv (float32, as the IBL releases it) and region ids."""
    rng = np.random.default_rng(seed)
    depth = np.linspace(-4200.0, 150.0, n)  # tip deep in the brain, top just above the surface
    mlapdv = np.c_[-1500.0 + rng.normal(0, 3, n), -2100.0 + rng.normal(0, 3, n), depth].astype(np.float32)
    # TH, CA1, Isocortex, then void (0) above the surface
    ids = np.select([depth < -3000, depth < -1200, depth < 0], [549, 382, 315], 0).astype(np.int64)
    return mlapdv, ids


def add_insertions(session, insertions):
    path = session / "alyx_session.json"
    records = json.loads(path.read_text())
    records["probe_insertions"] = insertions
    path.write_text(json.dumps(records))


def electrodes_of(nwbfile):
    return nwbfile.electrodes.to_dataframe()


def expected_ccf(mlapdv):
    """Bregma-relative µm (ML right +, AP anterior +, DV dorsal +) -> CCF µm in NWB order (AP, DV, ML)."""
    mlapdv = np.asarray(mlapdv, dtype=np.float64)
    return np.c_[BREGMA_CCF_UM["ap"] - mlapdv[:, 1], BREGMA_CCF_UM["dv"] - mlapdv[:, 2],
                 BREGMA_CCF_UM["ml"] + mlapdv[:, 0]]


# --- coordinates and regions: known points ---------------------------------------------------------

def test_known_points_convert_to_ccf_and_regions(empty_session):
    mlapdv = np.zeros((N, 3))
    mlapdv[1] = [1000.0, -2000.0, -3000.0]  # 1 mm right, 2 mm posterior, 3 mm ventral of bregma
    ids = np.full(N, 997, dtype=np.int64)
    ids[1] = 382
    write_channels(empty_session, mlapdv=mlapdv, ids=ids)
    frame = probe_electrodes(AlfSession(empty_session), "probe00")

    np.testing.assert_allclose(frame.loc[0, ["x", "y", "z"]].to_numpy(dtype=float), [5400.0, 332.0, 5739.0])
    np.testing.assert_allclose(frame.loc[1, ["x", "y", "z"]].to_numpy(dtype=float), [7400.0, 3332.0, 6739.0])
    assert frame.loc[0, "location"] == "root" and frame.loc[0, "brain_region_id"] == 997
    assert frame.loc[1, "location"] == "CA1" and frame.loc[1, "brain_region_id"] == 382
    assert frame.loc[1, "ibl_beryl_acronym"] == "CA1" and frame.loc[1, "ibl_cosmos_acronym"] == "HPF"
    # iblatlas itself gives the same (the converter builds its atlas with mock=True; here the real grid)
    from iblatlas.atlas import AllenAtlas

    ccf = AllenAtlas(25, mock=True).xyz2ccf(mlapdv[:2] / 1e6, ccf_order="apdvml", mode="wrap")
    np.testing.assert_array_equal(frame.loc[:1, ["x", "y", "z"]].to_numpy(dtype=float), ccf)


# --- round trip: every row and column equals its source ------------------------------------------

def test_roundtrip_every_row_and_column_equals_the_source(test_data, empty_session, roundtrip):
    mlapdv, ids = track()
    write_channels(empty_session, mlapdv=mlapdv, ids=ids)
    copy_meta(test_data, empty_session, "3B")
    nwbfile = roundtrip(IblProbesInterface(session_path=empty_session))
    table = nwbfile.electrodes
    frame = electrodes_of(nwbfile)

    assert list(table.colnames) == ["location", "group", "group_name", *list(COLUMNS)[1:]]
    assert len(frame) == N
    np.testing.assert_array_equal(frame["probe_channel"], np.arange(N))
    lateral, axial = np1_geometry(np.arange(N))
    np.testing.assert_array_equal(frame["rel_x"], lateral)
    np.testing.assert_array_equal(frame["rel_y"], axial)
    # the bregma-relative source values are kept bit for bit
    for column, axis in (("ibl_ml_um", 0), ("ibl_ap_um", 1), ("ibl_dv_um", 2)):
        assert table[column].data[:].tobytes() == mlapdv[:, axis].astype(np.float64).tobytes()
    # CCF: by the bregma formula, and as iblatlas computes it
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(dtype=float), expected_ccf(mlapdv), atol=1e-6)
    from iblatlas.atlas import AllenAtlas
    from iblatlas.regions import BrainRegions

    ccf = AllenAtlas(25, mock=True).xyz2ccf(mlapdv.astype(np.float64) / 1e6, ccf_order="apdvml", mode="wrap")
    np.testing.assert_array_equal(frame[["x", "y", "z"]].to_numpy(dtype=float), ccf)
    regions = BrainRegions()
    np.testing.assert_array_equal(frame["brain_region_id"], ids)
    assert table["brain_region_id"].data.dtype.kind == "i"
    outside = ids == 0
    np.testing.assert_array_equal(frame["location"][~outside], regions.id2acronym(ids[~outside]))
    assert set(frame["location"][outside]) == {"root"}  # registered but in the atlas's void
    np.testing.assert_array_equal(frame["ibl_beryl_acronym"], regions.id2acronym(ids, mapping="Beryl"))
    np.testing.assert_array_equal(frame["ibl_cosmos_acronym"], regions.id2acronym(ids, mapping="Cosmos"))
    assert set(frame["group_name"]) == {"probe00"}
    assert all(group.name == "probe00" for group in frame["group"])
    for name, description in COLUMNS.items():
        assert table[name].description == description
    assert "µm" in table["rel_y"].description and "µm" in table["x"].description

    device = nwbfile.devices["probe00"]
    assert device.description == "Neuropixels 1.0 (3B2)"
    assert device.serial_number == "18005116811"
    assert device.model.manufacturer == "IMEC" and device.model.model_number == "PRB_1_4_0480_1"
    group = nwbfile.electrode_groups["probe00"]
    assert group.device is device
    assert group.location == "Isocortex, HPF, TH"  # from the surface down; void and root are no region


# --- real metas: the electrodes follow each probe's channel map -----------------------------------

def meta_fields(path):
    return {key.lstrip("~"): value for key, value in
            (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)}


@pytest.mark.parametrize("kind", ["3A", "3B", "3B_2023"])
def test_neuropixels_1_channel_map(kind, test_data, empty_session):
    """Meta only (raw data, no sorting): one row per channel of bank 0, the sync channel excluded."""
    path = copy_meta(test_data, empty_session, kind)
    fields = meta_fields(path)
    banks = [int(entry.split()[1]) for entry in re.findall(r"\((\d+(?: \d+)+)\)", fields["imroTbl"])]
    assert banks == [0] * N  # every channel on bank 0: electrode == channel
    frame = probe_electrodes(AlfSession(empty_session), "probe00")
    assert len(frame) == N
    np.testing.assert_array_equal(frame["probe_channel"], np.arange(N))
    lateral, axial = np1_geometry(np.arange(N))
    np.testing.assert_array_equal(frame["rel_x"], lateral)
    np.testing.assert_array_equal(frame["rel_y"], axial)
    assert set(frame["location"]) == {"unknown"} and np.isnan(frame[["x", "y", "z"]].to_numpy(dtype=float)).all()


@pytest.mark.parametrize("kind", ["NP2.1", "NP2.4_1shank", "NP2.4"])
def test_neuropixels_2_channel_map_matches_imro_and_shank_map(kind, test_data, empty_session):
    path = copy_meta(test_data, empty_session, kind)
    fields = meta_fields(path)
    probe_type = int(re.match(r"\((\d+),", fields["imroTbl"]).group(1))
    entries = np.array([[int(v) for v in entry.split()]
                        for entry in re.findall(r"\((\d+(?: \d+)+)\)", fields["imroTbl"])])
    if probe_type == 24:  # (channel shank bank reference electrode)
        shank, electrode = entries[:, 1], entries[:, 4]
    else:  # type 21: (channel bank-mask reference electrode-in-bank)
        shank, electrode = np.zeros(N, dtype=int), entries[:, 3] + 384 * np.log2(entries[:, 1]).astype(int)
    shank_map = np.array([[int(v) for v in entry.split(":")]
                          for entry in re.findall(r"\((\d+:\d+:\d+:\d+)\)", fields["snsShankMap"])])
    np.testing.assert_array_equal(entries[:, 0], np.arange(N))

    frame = probe_electrodes(AlfSession(empty_session), "probe00")
    assert len(frame) == N
    # Neuropixels 2.0: two columns 32 µm apart from 27 µm, rows 15 µm apart from 20 µm, shanks 250 µm apart
    from_imro = (250 * shank + 27 + 32 * (electrode % 2), 20 + 15 * (electrode // 2))
    from_shank_map = (250 * shank_map[:, 0] + 27 + 32 * shank_map[:, 1], 20 + 15 * shank_map[:, 2])
    for rel_x, rel_y in (from_imro, from_shank_map):
        np.testing.assert_array_equal(frame["rel_x"], rel_x)
        np.testing.assert_array_equal(frame["rel_y"], rel_y)
    positions = set(zip(frame["rel_x"], frame["rel_y"]))
    assert len(positions) == N  # no two channels at one place, even on four shanks


@pytest.mark.parametrize("kind, description, serial", [
    ("3A", "Neuropixels 1.0 (3A)", "641251510"),
    ("3B", "Neuropixels 1.0 (3B2)", "18005116811"),
    ("NP2.1", "Neuropixels 2.0 single shank (NP2.1)", "19011116954"),
    ("NP2.4", "Neuropixels 2.0 four shanks (NP2.4)", "19011110513"),
])
def test_device_model_from_the_meta(kind, description, serial, test_data, empty_session, roundtrip):
    copy_meta(test_data, empty_session, kind)
    nwbfile = roundtrip(IblProbesInterface(session_path=empty_session))
    device = nwbfile.devices["probe00"]
    assert device.description == description
    assert device.serial_number == serial
    assert device.model.manufacturer == "IMEC"
    assert nwbfile.electrode_groups["probe00"].location == "unknown"


def test_pykilosort_shank_offsets_agree_with_the_four_shank_meta(test_data, empty_session):
    """pykilosort writes x + 200 µm per shank; that is a convention, not a disagreement."""
    copy_meta(test_data, empty_session, "NP2.4")
    meta = read_probe_meta(next((empty_session / "raw_ephys_data" / "probe00").glob("*.meta")))
    write_channels(empty_session, local=np.c_[meta.lateral_in_shank_um + 200 * meta.shank, meta.rel_y_um])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ElectrodeGeometryWarning)
        frame = probe_electrodes(AlfSession(empty_session), "probe00")
    np.testing.assert_array_equal(frame["rel_x"], meta.rel_x_um)


def test_meta_wins_over_disagreeing_local_coordinates(test_data, empty_session):
    lateral, axial = np1_geometry(np.arange(N))
    axial = axial.copy()
    axial[10] += 1000.0
    write_channels(empty_session, local=np.c_[lateral, axial])
    copy_meta(test_data, empty_session, "3B")
    with pytest.warns(ElectrodeGeometryWarning, match=r"1 of 384 channels.*channel 10.*meta"):
        frame = probe_electrodes(AlfSession(empty_session), "probe00")
    np.testing.assert_array_equal(frame["rel_y"], np1_geometry(np.arange(N))[1])


def test_local_coordinates_without_meta(empty_session):
    local = np.c_[np.arange(N) * 1.5, np.arange(N) * 2.5]
    write_channels(empty_session, local=local)
    frame = probe_electrodes(AlfSession(empty_session), "probe00")
    np.testing.assert_array_equal(frame[["rel_x", "rel_y"]].to_numpy(dtype=float), local)


# --- sources: electrodeSites over channels; no histology -----------------------------------------

def test_electrode_sites_take_precedence_over_channels(empty_session):
    old_mlapdv = np.tile([[0.0, 0.0, 0.0]], (N, 1))
    write_channels(empty_session, mlapdv=old_mlapdv, ids=np.full(N, 997))
    new_mlapdv, new_ids = track()
    write_sites(empty_session, mlapdv=new_mlapdv, ids=new_ids)  # no localCoordinates: those come from channels
    frame = probe_electrodes(AlfSession(empty_session), "probe00")
    np.testing.assert_array_equal(frame["brain_region_id"], new_ids)
    np.testing.assert_array_equal(frame["ibl_dv_um"], new_mlapdv[:, 2].astype(np.float64))
    np.testing.assert_array_equal(frame["rel_y"], np1_geometry(np.arange(N))[1])
    np.testing.assert_array_equal(frame["probe_channel"], np.arange(N))


def test_electrode_sites_in_sorted_order_find_their_channels_in_the_meta(test_data, empty_session):
    """Sites listed by row then column (not channel order) still land on their channels."""
    path = copy_meta(test_data, empty_session, "NP2.1")
    fields = meta_fields(path)
    shank_map = np.array([[int(v) for v in entry.split(":")]
                          for entry in re.findall(r"\((\d+:\d+:\d+:\d+)\)", fields["snsShankMap"])])
    position = np.c_[27.0 + 32 * shank_map[:, 1], 20.0 + 15 * shank_map[:, 2]]
    order = np.arange(N).reshape(-1, 2)[:, ::-1].ravel()  # 1, 0, 3, 2, ...: right column first
    mlapdv, ids = track()
    write_sites(empty_session, mlapdv=mlapdv, ids=ids, local=position[order])
    frame = probe_electrodes(AlfSession(empty_session), "probe00")
    np.testing.assert_array_equal(frame["probe_channel"], order)
    np.testing.assert_array_equal(frame[["rel_x", "rel_y"]].to_numpy(dtype=float), position[order])
    np.testing.assert_array_equal(frame["brain_region_id"], ids)


def test_without_histology_channels_are_unknown(empty_session, roundtrip):
    write_channels(empty_session)
    nwbfile = roundtrip(IblProbesInterface(session_path=empty_session))
    frame = electrodes_of(nwbfile)
    assert len(frame) == N
    assert set(frame["location"]) == {"unknown"}
    assert set(frame["ibl_beryl_acronym"]) == set(frame["ibl_cosmos_acronym"]) == {"unknown"}
    assert (frame["brain_region_id"] == 0).all()
    for column in ("x", "y", "z", "ibl_ml_um", "ibl_ap_um", "ibl_dv_um"):
        assert frame[column].isna().all()
    assert nwbfile.electrode_groups["probe00"].location == "unknown"
    assert nwbfile.devices["probe00"].description == "Neuropixels probe (model unknown)"


def test_partly_registered_probe(empty_session):
    mlapdv, ids = track()
    mlapdv[:5] = np.nan
    write_channels(empty_session, mlapdv=mlapdv, ids=np.where(np.arange(N) < 5, 0, ids))
    frame = probe_electrodes(AlfSession(empty_session), "probe00")
    assert (frame["location"][:5] == "unknown").all() and (frame["brain_region_id"][:5] == 0).all()
    assert frame[["x", "y", "z"]][:5].isna().all().all()
    assert not frame[["x", "y", "z"]][5:].isna().any().any()


# --- errors ------------------------------------------------------------------------------------------

def test_mismatched_lengths_name_the_file(empty_session):
    folder = write_channels(empty_session, mlapdv=np.zeros((N - 1, 3)), ids=np.full(N, 997))
    with pytest.raises(SourceFileError, match="383 channels rows") as error:
        probe_electrodes(AlfSession(empty_session), "probe00")
    assert error.value.path == folder / "channels.mlapdv.npy"


@pytest.mark.parametrize("attribute, shape", [("mlapdv", (N, 2)), ("localCoordinates", (N, 3))])
def test_wrong_shapes_are_refused(attribute, shape, empty_session):
    folder = write_channels(empty_session, local=None)
    np.save(folder / f"channels.{attribute}.npy", np.zeros(shape))
    with pytest.raises(SourceFileError, match=rf"channels.{attribute}.npy.*\(n, {3 if attribute == 'mlapdv' else 2}\)"):
        probe_electrodes(AlfSession(empty_session), "probe00")


def test_unknown_structure_id_is_refused(empty_session):
    mlapdv, ids = track()
    ids[7] = 123456789
    write_sites(empty_session, mlapdv=mlapdv, ids=ids)
    write_channels(empty_session)
    with pytest.raises(SourceFileError, match=r"electrodeSites.brainLocationIds_ccf_2017.npy.*123456789"):
        probe_electrodes(AlfSession(empty_session), "probe00")


# --- two probes ------------------------------------------------------------------------------------

def test_two_probes(test_data, empty_session, roundtrip):
    mlapdv, ids = track()
    write_channels(empty_session, "probe00", mlapdv=mlapdv, ids=ids)
    copy_meta(test_data, empty_session, "3B", "probe00", 0)
    # probe01: a shorter channel list in reverse order, no meta; model and serial from Alyx
    write_channels(empty_session, "probe01", sorter="iblsorter", n=8, raw_ind=False,
                   local=np.c_[np.zeros(8), np.arange(8) * 15.0])
    np.save(empty_session / "alf" / "probe01" / "iblsorter" / "channels.rawInd.npy", np.arange(8)[::-1] + 100)
    add_insertions(empty_session, [
        {"id": "da8dfec1-d265-44e8-84ce-6ae9c109b8bd", "name": "probe00", "model": "3B2", "serial": "18005116811"},
        {"id": "0851db85-2889-4070-ac18-a40e8ebd96ba", "name": "probe01", "model": "NP2.1", "serial": "19011116954"},
    ])
    nwbfile = roundtrip(IblProbesInterface(session_path=empty_session))

    assert set(nwbfile.devices) == {"probe00", "probe01"}
    assert set(nwbfile.electrode_groups) == {"probe00", "probe01"}
    assert nwbfile.devices["probe01"].description == "Neuropixels 2.0 single shank (NP2.1)"
    assert nwbfile.devices["probe01"].serial_number == "19011116954"
    assert "da8dfec1-d265-44e8-84ce-6ae9c109b8bd" in nwbfile.electrode_groups["probe00"].description
    assert "0851db85-2889-4070-ac18-a40e8ebd96ba" in nwbfile.electrode_groups["probe01"].description
    assert nwbfile.electrode_groups["probe01"].device is nwbfile.devices["probe01"]

    frame = electrodes_of(nwbfile)
    assert len(frame) == N + 8
    assert list(frame["group_name"]) == ["probe00"] * N + ["probe01"] * 8
    assert [group.name for group in frame["group"]] == ["probe00"] * N + ["probe01"] * 8
    np.testing.assert_array_equal(frame["probe_channel"][N:], np.arange(8)[::-1] + 100)

    rows00 = electrode_rows(nwbfile, "probe00")
    np.testing.assert_array_equal(rows00, np.arange(N))
    rows01 = electrode_rows(nwbfile, "probe01")
    assert len(rows01) == 108 and (rows01[:100] == -1).all()
    for channel in range(100, 108):
        row = rows01[channel]
        assert frame["group_name"].iloc[row] == "probe01" and frame["probe_channel"].iloc[row] == channel
    with pytest.raises(ValueError, match="probe02"):
        electrode_rows(nwbfile, "probe02")


def test_interface_availability(empty_session):
    assert not IblProbesInterface.is_available(AlfSession(empty_session))
    write_channels(empty_session)
    assert IblProbesInterface.is_available(AlfSession(empty_session))


def test_sorter_choice(empty_session):
    write_channels(empty_session, sorter="pykilosort", local=np.c_[np.zeros(N), np.arange(N) * 1.0])
    write_channels(empty_session, sorter="iblsorter", local=np.c_[np.zeros(N), np.arange(N) * 2.0])
    session = AlfSession(empty_session)
    newest = probe_electrodes(session, find_probes(session)[0])
    older = probe_electrodes(session, find_probes(session, sorter="pykilosort")[0])
    np.testing.assert_array_equal(newest["rel_y"], np.arange(N) * 2.0)
    np.testing.assert_array_equal(older["rel_y"], np.arange(N) * 1.0)


# --- nwbinspector -----------------------------------------------------------------------------------

def test_nwbinspector_dandi_reports_no_critical_or_error(test_data, empty_session, tmp_path):
    import nwbinspector

    mlapdv, ids = track()
    write_sites(empty_session, mlapdv=mlapdv, ids=ids)
    write_channels(empty_session)
    copy_meta(test_data, empty_session, "3B")
    write_channels(empty_session, "probe01")
    nwbfile = NWBFile(
        session_description="IBL probes test", identifier="electrodes-test", session_id="test",
        session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc), institution="test",
        experiment_description="test", keywords=["test"], experimenter=["Doe, Jane"], lab="test",
        subject=Subject(subject_id="KS055", species="Mus musculus", sex="F", age="P189D"),
    )
    IblProbesInterface(session_path=empty_session).add_to_nwbfile(nwbfile)
    path = write_nwbfile_atomically(nwbfile, tmp_path / "inspected.nwb")
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=path, config=nwbinspector.load_config("dandi")))
    severe = [message for message in messages
              if message.importance.name in ("CRITICAL", "ERROR", "PYNWB_VALIDATION")]
    assert not severe, "\n".join(f"{m.importance.name} {m.object_name}: {m.message}" for m in severe)
    # and the probes conform to the representation's schema
    from nwbridge.schemas.checker import PASS, check_file

    report = check_file(path)
    for name in ("general/devices/probe00", "general/devices/probe01", "general/extracellular_ephys/probe00",
                 "general/extracellular_ephys/probe01", "general/extracellular_ephys/electrodes"):
        assert report.result(name).status == PASS, report.result(name).messages


# --- generated sessions (nwbridge.testing): every probe generation, end to end ------------------

GENERATED_MODELS = {
    "3B": "Neuropixels 1.0 (3B2)",
    "3A": "Neuropixels 1.0 (3A)",
    "NP2.1": "Neuropixels 2.0 single shank (NP2.1)",
    "NP2.4": "Neuropixels 2.0 four shanks (NP2.4)",
    "NP2.4-1shank": "Neuropixels 2.0 four shanks (NP2.4)",
}


@pytest.mark.parametrize("probe_type", list(GENERATED_MODELS))
def test_generated_session_roundtrip(probe_type, small_session, roundtrip):
    session_path = small_session(probes=("probe00", "probe01"), probe_type=probe_type, n_units=4)
    session = AlfSession(session_path)
    probes = find_probes(session)
    insertions = {record["name"]: record
                  for record in json.loads((session_path / "alyx_session.json").read_text())["probe_insertions"]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ElectrodeGeometryWarning)  # the generator writes the meta's geometry
        nwbfile = roundtrip(IblProbesInterface(session_path=session_path))
    frame = electrodes_of(nwbfile)

    names = [probe.name for probe in probes]
    assert names == sorted(insertions)
    assert sorted(nwbfile.devices) == sorted(nwbfile.electrode_groups) == names
    start = 0
    for probe in probes:
        sites = session_path / "alf" / probe.name
        sorting = session_path / probe.sorting_collection
        mlapdv = np.load(sites / "electrodeSites.mlapdv.npy")
        ids = np.load(sites / "electrodeSites.brainLocationIds_ccf_2017.npy")
        raw_ind = np.load(sorting / "channels.rawInd.npy")
        local = np.load(sorting / "channels.localCoordinates.npy")
        rows = frame.iloc[start:start + len(mlapdv)]
        assert (rows["group_name"] == probe.name).all()
        # rows in the order of the electrode sites, each on its raw channel
        np.testing.assert_array_equal(rows["probe_channel"], raw_ind)
        np.testing.assert_array_equal(rows[["rel_x", "rel_y"]].to_numpy(dtype=float), local)
        np.testing.assert_array_equal(rows[["ibl_ml_um", "ibl_ap_um", "ibl_dv_um"]].to_numpy(dtype=float),
                                      mlapdv.astype(np.float64))
        np.testing.assert_allclose(rows[["x", "y", "z"]].to_numpy(dtype=float), expected_ccf(mlapdv), atol=1e-6)
        np.testing.assert_array_equal(rows["brain_region_id"], ids)
        # units link to their peak channel through clusters.channels -> channels.rawInd -> electrode_rows
        peak = raw_ind[np.load(sorting / "clusters.channels.npy")]
        linked = electrode_rows(nwbfile, probe.name)[peak]
        assert (linked >= start).all()
        np.testing.assert_array_equal(frame["probe_channel"].to_numpy()[linked], peak)

        insertion = insertions[probe.name]
        device = nwbfile.devices[probe.name]
        assert device.description == GENERATED_MODELS[probe_type]
        assert device.serial_number == insertion["serial"]
        assert insertion["id"] in nwbfile.electrode_groups[probe.name].description
        start += len(mlapdv)
    assert start == len(frame)
