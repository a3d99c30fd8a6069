"""Allen probes and electrodes: devices, electrode groups and every value of the electrodes table.

Expected values are read from the generated session file with plain h5py (``vbn_raw``); structure ids
come from iblatlas' Allen ontology, looked up here independently of the interface.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from pynwb import NWBFile

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.allen.electrodes import AllenProbesInterface, add_allen_probes
from nwbridge.interfaces.allen.source import open_allen_file
from nwbridge.provenance import ALLEN_DATASET, provenance_record
from nwbridge.schemas.checker import check_file
from nwbridge.writing import write_nwbfile_atomically

ELECTRODES = "general/extracellular_ephys/electrodes"


def source_table(raw) -> dict[str, np.ndarray]:
    """The session file's electrodes columns, as h5py reads them."""
    table = raw[ELECTRODES]
    columns = {name: table[name][:] for name in ("id", "x", "y", "z", "probe_vertical_position",
                                                 "probe_horizontal_position", "probe_channel_number", "valid_data",
                                                 "probe_id")}
    columns["location"] = table["location"].asstr()[:].astype(object)
    columns["group_name"] = table["group_name"].asstr()[:].astype(object)
    return columns


def probe_order(group_name: np.ndarray) -> np.ndarray:
    """Source rows in the order the shared table holds them: probes by name, each in source order."""
    return np.concatenate([np.flatnonzero(group_name == probe) for probe in sorted(set(group_name))])


def allen_structure_id(acronym: str) -> int:
    from iblatlas.regions import BrainRegions

    regions = BrainRegions()
    match = regions.id[(regions.acronym == acronym) & (regions.id >= 0)]
    assert match.size == 1, acronym
    return int(match[0])


def new_nwbfile(**kwargs) -> NWBFile:
    return NWBFile(session_description="test", identifier="test",
                   session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc), **kwargs)


def damaged_copy(vbn_session, tmp_path, change) -> str:
    """A copy of the session file, changed in place with h5py by ``change(file)``."""
    path = tmp_path / vbn_session.session_file.name
    shutil.copy(vbn_session.session_file, path)
    with h5py.File(path, "r+") as file:
        change(file)
    return path


def replace_dataset(file, name: str, values) -> None:
    """Recreate a dataset (of another length) with its attributes (not for targets of an index)."""
    attributes = dict(file[name].attrs)
    del file[name]
    dataset = file.create_dataset(name, data=values)
    for key, value in attributes.items():
        dataset.attrs[key] = value


def test_every_electrode_value_round_trips(vbn_session, vbn_raw, roundtrip):
    nwbfile = roundtrip(AllenProbesInterface(vbn_session.session_file))
    table = nwbfile.electrodes
    source = source_table(vbn_raw)
    order = probe_order(source["group_name"])
    assert len(table) == len(source["id"])

    ccf = np.column_stack([source["x"], source["y"], source["z"]])[order]
    acronym = source["location"][order]
    registered = ~np.all(ccf == 0, axis=1) & (acronym != "")
    assert registered.any() and (~registered).any()  # the generated session has both kinds

    np.testing.assert_array_equal(table["allen_channel_id"].data[:], source["id"][order])
    np.testing.assert_array_equal(np.asarray(table["group_name"].data[:], dtype=str), source["group_name"][order])
    np.testing.assert_array_equal([group.name for group in table["group"].data[:]], source["group_name"][order])
    np.testing.assert_array_equal(table["rel_x"].data[:], source["probe_horizontal_position"][order])
    np.testing.assert_array_equal(table["rel_y"].data[:], source["probe_vertical_position"][order])
    np.testing.assert_array_equal(table["probe_channel"].data[:], source["probe_channel_number"][order])
    np.testing.assert_array_equal(table["allen_valid_data"].data[:], source["valid_data"][order])
    assert not table["allen_valid_data"].data[:].all()  # the reference channels are not valid
    for axis, column in enumerate(("x", "y", "z")):
        expected = np.where(registered, ccf[:, axis], np.nan)
        np.testing.assert_array_equal(table[column].data[:], expected)  # bit for bit, NaN where unregistered
    np.testing.assert_array_equal(np.asarray(table["location"].data[:], dtype=str),
                                  np.where(registered, acronym, "unknown"))
    expected_ids = {name: allen_structure_id(name) for name in set(acronym[registered])}
    np.testing.assert_array_equal(table["brain_region_id"].data[:],
                                  [expected_ids[name] if keep else 0 for name, keep in zip(acronym, registered)])
    assert table["brain_region_id"].data.dtype.kind == "i"
    assert list(table.colnames[:3]) == ["location", "group", "group_name"]


def test_unregistered_channels_are_unknown_not_at_the_atlas_origin(vbn_session, vbn_raw, roundtrip):
    """The Allen files put unregistered channels at CCF (0, 0, 0): that is no place in the brain."""
    assert vbn_session.unregistered_probes
    nwbfile = roundtrip(AllenProbesInterface(vbn_session.session_file))
    table = nwbfile.electrodes.to_dataframe()
    source = source_table(vbn_raw)
    for probe in vbn_session.unregistered_probes:
        mine = source["group_name"] == probe
        assert (source["x"][mine] == 0).all() and (source["y"][mine] == 0).all() and (source["z"][mine] == 0).all()
        rows = table[table["group_name"] == probe]
        assert len(rows) == mine.sum()
        assert rows[["x", "y", "z"]].isna().all().all()
        assert (rows["location"] == "unknown").all()
        assert (rows["brain_region_id"] == 0).all()
        assert nwbfile.electrode_groups[probe].location == "unknown"
    registered = table[~table["group_name"].isin(vbn_session.unregistered_probes)]
    assert registered[["x", "y", "z"]].notna().all().all()
    assert (registered["brain_region_id"] > 0).all()
    outside = registered["location"] == "root"  # channels above the brain surface
    assert outside.any() and (registered.loc[outside, "brain_region_id"] == 997).all()


def test_devices_and_groups_name_the_probe_and_its_model(vbn_session, vbn_raw, roundtrip):
    nwbfile = roundtrip(AllenProbesInterface(vbn_session.session_file))
    assert sorted(nwbfile.devices) == sorted(vbn_session.probe_ids)
    for probe, probe_id in vbn_session.probe_ids.items():
        device = nwbfile.devices[probe]
        assert device.description.startswith("Neuropixels 1.0")
        assert str(probe_id) in device.description
        assert device.model.name == "Neuropixels 1.0"
        group = nwbfile.electrode_groups[probe]
        assert group.device is device
        assert str(probe_id) in group.description
        # The source's per-channel filtering text is the same on every channel: kept once, in the group.
        rows = vbn_raw["general/extracellular_ephys/electrodes/group_name"][:].astype(str) == probe
        (filtering,) = set(vbn_raw["general/extracellular_ephys/electrodes/filtering"][:][rows].astype(str))
        assert f"hardware filtering: {filtering}" in group.description
    assert "allen_filtering" not in nwbfile.electrodes.colnames
    # The release's impedances are all NaN: no column of nothing.
    assert np.isnan(vbn_raw["general/extracellular_ephys/electrodes/imp"][:]).all()
    assert "allen_imp" not in nwbfile.electrodes.colnames
    registered = sorted(set(vbn_session.probe_ids) - set(vbn_session.unregistered_probes))
    for probe in registered:
        # Cosmos regions from the brain surface down: the generated probes enter the visual cortex first.
        assert nwbfile.electrode_groups[probe].location.split(", ")[0] == "Isocortex"


def test_add_allen_probes_is_idempotent_and_maps_channel_ids_to_rows(vbn_source):
    nwbfile = new_nwbfile()
    first = add_allen_probes(nwbfile, vbn_source)
    n_rows, n_devices = len(nwbfile.electrodes), len(nwbfile.devices)
    second = add_allen_probes(nwbfile, vbn_source)
    assert first == second
    assert len(nwbfile.electrodes) == n_rows and len(nwbfile.devices) == n_devices
    channel_ids = nwbfile.electrodes["allen_channel_id"].data[:]
    assert first == {int(channel): row for row, channel in enumerate(channel_ids)}
    only_a = add_allen_probes(nwbfile, vbn_source, probes=["probeA"])
    assert set(only_a.values()) == set(np.flatnonzero(np.asarray(nwbfile.electrodes["group_name"].data[:]) == "probeA"))


def test_a_table_built_for_some_probes_is_not_silently_extended(vbn_source):
    nwbfile = new_nwbfile()
    add_allen_probes(nwbfile, vbn_source, probes=["probeA"])
    assert set(nwbfile.electrodes["group_name"].data[:]) == {"probeA"}
    with pytest.raises(ValueError, match="probeB"):
        add_allen_probes(nwbfile, vbn_source)
    with pytest.raises(SourceFileError, match="probeZ"):
        add_allen_probes(new_nwbfile(), vbn_source, probes=["probeZ"])


def test_checker_passes_the_probes_and_electrodes(vbn_session, vbn_source, tmp_path):
    nwbfile = new_nwbfile(source_script=provenance_record(ALLEN_DATASET, native_ids={}, data_revision=None),
                          source_script_file_name="nwbridge")
    add_allen_probes(nwbfile, vbn_source)
    path = write_nwbfile_atomically(nwbfile, tmp_path / "sub-x_ses-y_desc-processed_behavior+ecephys.nwb")
    report = check_file(path)
    assert report.source == "allen"
    probes = [result for result in report.results if result.section == "probes"]
    assert len(probes) == 2 * len(vbn_session.probe_ids) + 1
    assert all(result.status == "pass" for result in probes), [result for result in probes if result.status != "pass"]


@pytest.mark.parametrize("change, problem", [
    (lambda file: replace_dataset(file, f"{ELECTRODES}/probe_vertical_position",
                                  file[f"{ELECTRODES}/probe_vertical_position"][:-3]), "probe_vertical_position"),
    (lambda file: file[f"{ELECTRODES}/probe_id"].__setitem__(0, 7), "probe_id"),
    (lambda file: file[f"{ELECTRODES}/location"].__setitem__(0, "NOT-A-REGION"), "NOT-A-REGION"),
    (lambda file: file[f"{ELECTRODES}/id"].__setitem__(1, file[f"{ELECTRODES}/id"][0]), "repeat"),
], ids=["column-length", "probe-id", "acronym", "repeated-id"])
def test_inconsistent_electrodes_name_the_file(vbn_session, tmp_path, change, problem):
    path = damaged_copy(vbn_session, tmp_path, change)
    with pytest.raises(SourceFileError, match=problem) as error:
        add_allen_probes(new_nwbfile(), open_allen_file(path))
    assert error.value.path == path.resolve()
