"""The synthetic IBL probes: spike sorting, channels, SpikeGLX metadata and clocks, consistently."""

from __future__ import annotations

import json
import uuid
from importlib import resources

import numpy as np
import pandas as pd
import pytest
import spikeglx
import yaml
from iblatlas.regions import BrainRegions
from iblutil.numerical import bincount2D
from one.alf import io as alfio

from nwbridge.interfaces.ibl.alf import AlfSession
from nwbridge.interfaces.ibl.probes import find_probes
from nwbridge.testing import make_ibl_session

DURATION = 400.0
REVISION = "2024-05-06"
STEM = "_spikeglx_ephysData_g0_t0"
SPIKE_FILES = {"spikes.times.npy", "spikes.clusters.npy", "spikes.amps.npy", "spikes.depths.npy",
               "spikes.samples.npy"}
SORTING_FILES = SPIKE_FILES | {
    "clusters.channels.npy", "clusters.depths.npy", "clusters.amps.npy", "clusters.peakToTrough.npy",
    "clusters.uuids.csv", "clusters.metrics.pqt", "clusters.waveforms.npy",
    "clusters.waveformsChannels.npy", "channels.localCoordinates.npy", "channels.rawInd.npy",
    "channels.mlapdv.npy", "channels.brainLocationIds_ccf_2017.npy"}
SITE_FILES = {"electrodeSites.localCoordinates.npy", "electrodeSites.mlapdv.npy",
              "electrodeSites.brainLocationIds_ccf_2017.npy"}
METRIC_COLUMNS = ["cluster_id", "amp_max", "amp_min", "amp_median", "amp_std_dB", "contamination",
                  "contamination_alt", "drift", "missed_spikes_est", "noise_cutoff", "presence_ratio",
                  "presence_ratio_std", "slidingRP_viol", "spike_count", "firing_rate", "label"]
# The repeated site (probe00) and the frontal track (probe01), from the brain surface down.
TRACK00 = ["void", "VISa1", "VISa2/3", "VISa4", "VISa5", "VISa6a", "VISa6b", "alv", "CA1", "DG-mo",
           "DG-sg", "DG-po", "LP", "PO"]
TRACK01 = ["void", "MOs1", "MOs2/3", "MOs5", "MOs6a", "MOs6b", "ccb", "CP", "SI"]


def ephys_session(root, **kwargs):
    kwargs = {"n_trials": 30, "duration_s": DURATION, "cameras": (), "passive": False, "seed": 7,
              **kwargs}
    return make_ibl_session(root, **kwargs)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Default probes (two 3B, pykilosort), firing-rate spike counts, a revision (read-only)."""
    return ephys_session(tmp_path_factory.mktemp("ephys"), revision=REVISION)


@pytest.fixture(scope="module")
def typed_sessions(tmp_path_factory):
    """One small session per probe type, made on first use (read-only)."""
    made = {}

    def get(probe_type):
        if probe_type not in made:
            made[probe_type] = ephys_session(tmp_path_factory.mktemp(probe_type.replace(".", "")),
                                             probe_type=probe_type, n_units=25, n_spikes=20_000)
        return made[probe_type]
    return get


def sorting(session, probe="probe00", sorter="pykilosort"):
    return session / "alf" / probe / sorter if sorter else session / "alf" / probe


def load(folder, *names):
    return [np.load(folder / f"{name}.npy") for name in names]


def relative_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- files ---------------------------------------------------------------------------------------

def test_files_of_each_probe(session):
    for number, probe in enumerate(("probe00", "probe01")):
        alf = session / "alf" / probe
        assert {p.name for p in (alf / "pykilosort").iterdir() if p.is_file()} == SORTING_FILES
        assert {p.name for p in alf.iterdir() if p.is_file()} == SITE_FILES
        assert {p.name for p in (session / "raw_ephys_data" / probe).iterdir()} == {
            f"{STEM}.imec{number}.ap.meta", f"{STEM}.imec{number}.lf.meta", f"{STEM}.imec{number}.timestamps.npy"}
    assert relative_files(sorting(session) / f"#{REVISION}#") == ["clusters.metrics.pqt"]


def test_one_sees_every_file_as_a_dataset(session):
    datasets = {p.as_posix() for p in alfio.iter_datasets(session)}
    assert datasets == set(relative_files(session)) - {"alyx_session.json"}
    assert "alf/probe01/pykilosort/spikes.times.npy" in datasets
    assert f"raw_ephys_data/probe01/{STEM}.imec1.timestamps.npy" in datasets


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside ONE, under pandas 3
def test_one_loads_objects_with_consistent_lengths(session):
    folder = sorting(session)
    for name in ("spikes", "channels"):
        assert alfio.check_dimensions(alfio.load_object(folder, name)) == 0
    clusters = alfio.load_object(folder, "clusters")
    assert clusters["metrics"].shape[0] == clusters["channels"].shape[0] == 60
    assert alfio.check_dimensions(alfio.load_object(session / "alf" / "probe00", "electrodeSites")) == 0


def test_raw_metas_are_the_real_ones_unchanged(session):
    source = resources.files("nwbridge.testing").joinpath("data", "spikeglx")
    for band in ("ap", "lf"):
        real = source.joinpath(f"sample3B_g0_t0.imec1.{band}.meta").read_bytes()
        for number in (0, 1):
            written = session / "raw_ephys_data" / f"probe0{number}" / f"{STEM}.imec{number}.{band}.meta"
            assert written.read_bytes() == real


# --- spikes --------------------------------------------------------------------------------------

def test_spike_times_are_sorted_and_inside_the_session(session):
    for probe in ("probe00", "probe01"):
        times, = load(sorting(session, probe), "spikes.times")
        assert times.dtype == np.float64
        assert np.all(np.diff(times) >= 0)
        assert 0 < times[0] and times[-1] < DURATION
        assert times[-1] - times[0] > DURATION - 2  # the whole session is sorted


def test_spike_attributes(session):
    folder = sorting(session)
    times, clusters, amps, depths, samples = load(
        folder, "spikes.times", "spikes.clusters", "spikes.amps", "spikes.depths", "spikes.samples")
    assert len(times) > 10_000
    assert len({len(times), len(clusters), len(amps), len(depths), len(samples)}) == 1
    assert clusters.dtype == np.uint16 and clusters.max() < 60
    assert amps.dtype == np.float32 and depths.dtype == np.float32 and samples.dtype == np.int64
    # Volts: typical spikes are tens to hundreds of microvolts.
    assert np.all(amps > 0)
    assert 3e-5 < np.median(amps) < 4e-4
    assert np.mean((amps > 1e-5) & (amps < 1e-3)) > 0.99
    cluster_depths, cluster_channels = load(folder, "clusters.depths", "clusters.channels")
    # A spike is seen around its cluster's depth, µm from the tip.
    assert np.abs(depths - cluster_depths[clusters]).max() < 50
    coordinates, = load(folder, "channels.localCoordinates")
    np.testing.assert_allclose(cluster_depths, coordinates[cluster_channels, 1], atol=10)


def test_exact_spike_count_and_forced_cluster_dtype(tmp_path):
    plain = ephys_session(tmp_path / "a", n_spikes=12_345, n_units=30, probes=("probe00",))
    wide = ephys_session(tmp_path / "b", n_spikes=12_345, n_units=30, probes=("probe00",),
                         cluster_dtype=np.uint32)
    narrow, = load(sorting(plain), "spikes.clusters")
    forced, = load(sorting(wide), "spikes.clusters")
    assert narrow.dtype == np.uint16 and forced.dtype == np.uint32
    np.testing.assert_array_equal(narrow, forced)  # the dtype changes nothing else
    for name in SPIKE_FILES:
        assert len(np.load(sorting(plain) / name)) == 12_345
    assert narrow.max() < 30


def test_spike_samples_follow_the_probe_clock(session):
    for number, probe in enumerate(("probe00", "probe01")):
        times, samples = load(sorting(session, probe), "spikes.times", "spikes.samples")
        stamps = np.load(session / "raw_ephys_data" / probe / f"{STEM}.imec{number}.timestamps.npy")
        assert stamps.dtype == np.float64 and stamps.ndim == 2 and stamps.shape[1] == 2
        assert stamps.shape[0] >= 2
        assert np.all(np.diff(stamps, axis=0) > 0)
        # The probe runs from before the session clock's zero to after its end.
        assert stamps[0, 1] < 0 and stamps[-1, 1] > DURATION
        slope = np.diff(stamps[[0, -1], 1]) / np.diff(stamps[[0, -1], 0])
        fs = 30000.390639481  # imSampRate of the real 3B meta
        assert slope * fs != 1 and abs(slope * fs - 1) < 5e-5  # a drift of a few ppm
        np.testing.assert_array_equal(np.rint(np.interp(times, stamps[:, 1], stamps[:, 0])), samples)
        np.testing.assert_allclose(np.interp(samples, stamps[:, 0], stamps[:, 1]), times, rtol=0, atol=1e-9)


# --- clusters and metrics --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spikes_and_metrics(session):
    folder = sorting(session)
    spikes = dict(zip(("times", "clusters", "amps", "depths"),
                      load(folder, "spikes.times", "spikes.clusters", "spikes.amps", "spikes.depths")))
    return spikes, pd.read_parquet(folder / "clusters.metrics.pqt")


def test_metrics_table_layout(spikes_and_metrics):
    _, metrics = spikes_and_metrics
    assert list(metrics.columns) == METRIC_COLUMNS
    np.testing.assert_array_equal(metrics["cluster_id"], np.arange(60))
    assert metrics["cluster_id"].dtype == np.int64
    assert all(metrics[name].dtype == np.float64 for name in METRIC_COLUMNS[1:])


def test_metrics_counts_rates_and_presence(spikes_and_metrics):
    spikes, metrics = spikes_and_metrics
    times, clusters = spikes["times"], spikes["clusters"]
    counts = np.bincount(clusters, minlength=60)
    np.testing.assert_array_equal(metrics["spike_count"], counts)
    np.testing.assert_allclose(metrics["firing_rate"], counts / (times[-1] - times[0]), rtol=1e-12)
    # Presence exactly as the IBL's quick_unit_metrics computes it.
    per_bin, _, _ = bincount2D(times, clusters, xbin=10, ybin=np.arange(60), xlim=[times[0], times[-1]])
    np.testing.assert_allclose(metrics["presence_ratio"], np.sum(per_bin > 0, axis=1) / per_bin.shape[1])
    np.testing.assert_allclose(metrics["presence_ratio_std"], np.std(per_bin, axis=1))
    assert (metrics["presence_ratio"] < 0.5).any() and (metrics["presence_ratio"] > 0.95).any()


def test_metrics_amplitudes_and_drift(spikes_and_metrics):
    spikes, metrics = spikes_and_metrics
    table = pd.DataFrame({"amps": spikes["amps"].astype(np.float64), "clusters": spikes["clusters"],
                          "depths": spikes["depths"]})
    table["log_amps"] = 20 * np.log10(table["amps"])
    groups = table.groupby("clusters")
    ids = np.array(sorted(groups.groups))
    got = metrics.set_index("cluster_id").loc[ids]
    np.testing.assert_array_equal(got["amp_min"], groups["amps"].min())
    np.testing.assert_array_equal(got["amp_max"], groups["amps"].max())
    # The IBL's median is the geometric one; it is also the plain median up to rounding.
    np.testing.assert_allclose(got["amp_median"], 10 ** (groups["log_amps"].median() / 20), rtol=1e-12)
    np.testing.assert_allclose(got["amp_median"], groups["amps"].median(), rtol=1e-3)
    np.testing.assert_allclose(got["amp_std_dB"], groups["log_amps"].std(), rtol=1e-9)
    duration = spikes["times"][-1] - spikes["times"][0]
    drift = groups["depths"].apply(lambda d: np.abs(np.diff(d.to_numpy(np.float64))).sum()) / duration * 3600
    np.testing.assert_allclose(got["drift"], drift, rtol=1e-5)


def test_labels_are_the_three_ibl_checks(spikes_and_metrics):
    _, metrics = spikes_and_metrics
    has = metrics["spike_count"] > 0
    label = metrics.loc[has, "label"]
    assert set(np.round(label * 3)) <= {0, 1, 2, 3}
    assert (label == 1).any() and (label < 1).any()
    checks = np.c_[metrics["slidingRP_viol"], metrics["noise_cutoff"] < 5, metrics["amp_median"] > 50e-6]
    np.testing.assert_allclose(label, checks[has].mean(axis=1))
    assert metrics["slidingRP_viol"].dropna().isin([0.0, 1.0]).all()


def test_clusters_without_spikes(spikes_and_metrics):
    spikes, metrics = spikes_and_metrics
    empty = metrics[metrics["spike_count"] == 0]
    assert 1 <= len(empty) <= 2
    assert not np.isin(empty["cluster_id"], spikes["clusters"]).any()
    for name in ("amp_max", "amp_min", "amp_median", "amp_std_dB", "contamination", "drift",
                 "noise_cutoff", "slidingRP_viol", "label"):
        assert empty[name].isna().all(), name
    assert (empty[["presence_ratio", "firing_rate"]] == 0).all().all()
    full = metrics[metrics["spike_count"] > 1]
    assert full[["amp_median", "amp_std_dB", "drift", "label"]].notna().all().all()


def test_cluster_attributes(session):
    folder = sorting(session)
    channels, depths, amps, peak_to_trough = load(
        folder, "clusters.channels", "clusters.depths", "clusters.amps", "clusters.peakToTrough")
    assert channels.dtype == np.int64 and channels.shape == (60,)
    assert channels.min() >= 0 and channels.max() < 384
    assert depths.dtype == amps.dtype == peak_to_trough.dtype == np.float64
    assert np.all((amps >= 3e-5) & (amps <= 4e-4))
    assert np.all((peak_to_trough > 0.1) & (peak_to_trough < 1.5))
    # Clusters sit where the brain is, not on the channels above its surface.
    regions, = load(folder, "channels.brainLocationIds_ccf_2017")
    assert np.all(regions[channels] != 0)
    uuids = pd.read_csv(folder / "clusters.uuids.csv")
    assert list(uuids.columns) == ["uuids"] and len(uuids) == 60
    assert len({str(uuid.UUID(u)) for u in uuids["uuids"]}) == 60


def test_waveforms_on_the_nearest_channels(session):
    folder = sorting(session)
    waveforms, waveform_channels, channels, amps, coordinates = load(
        folder, "clusters.waveforms", "clusters.waveformsChannels", "clusters.channels", "clusters.amps",
        "channels.localCoordinates")
    assert waveforms.dtype == np.float32 and waveforms.shape == (60, 82, 32)
    assert waveform_channels.dtype == np.int64 and waveform_channels.shape == (60, 32)
    np.testing.assert_array_equal(waveform_channels[:, 0], channels)
    distance = np.linalg.norm(coordinates[waveform_channels] - coordinates[channels][:, None], axis=2)
    assert np.all(np.diff(distance, axis=1) >= 0)
    # 32 channels of an NP1 span 16 rows of 20 µm: ±80 µm around the peak, 320 µm at the tip.
    assert np.median(distance[:, -1]) <= 170 and distance[:, -1].max() < 330
    assert np.all(np.abs(waveforms).max(axis=1).argmax(axis=1) == 0)  # largest on the peak channel
    np.testing.assert_allclose(np.ptp(waveforms[:, :, 0], axis=1), amps, rtol=1e-5)
    assert np.all(waveforms[:, :, 0].argmin(axis=1) == 41)  # the trough


def test_revision_changes_some_labels(session):
    folder = sorting(session)
    old = pd.read_parquet(folder / "clusters.metrics.pqt")
    new = pd.read_parquet(folder / f"#{REVISION}#" / "clusters.metrics.pqt")
    changed = ~np.isclose(old["label"], new["label"], equal_nan=True)
    assert 1 <= changed.sum() < len(old)
    assert set(np.round(new["label"].dropna() * 3)) <= {0, 1, 2, 3}
    pd.testing.assert_frame_equal(new.drop(columns="label"), old.drop(columns="label"))
    # The newest revision is what a reader gets.
    resolved = AlfSession(session).path("clusters", "metrics", collection="alf/probe00/pykilosort")
    assert resolved == folder / f"#{REVISION}#" / "clusters.metrics.pqt"


# --- channels ------------------------------------------------------------------------------------

@pytest.mark.parametrize("probe_type", ["3A", "3B", "NP2.1", "NP2.4", "NP2.4-1shank"])
def test_channel_geometry_is_ibl_neuropixels(typed_sessions, probe_type):
    session = typed_sessions(probe_type)
    folders = sorted(p.name for p in (session / "alf").iterdir() if p.is_dir())
    assert folders
    for folder in folders:
        number = int(folder[5:7])
        meta = spikeglx.read_meta_data(session / "raw_ephys_data" / folder / f"{STEM}.imec{number}.ap.meta")
        geometry = spikeglx.geometry_from_meta(meta)
        coordinates, raw_index = load(sorting(session, folder), "channels.localCoordinates", "channels.rawInd")
        assert coordinates.dtype == np.float64 and raw_index.dtype == np.int64
        np.testing.assert_array_equal(coordinates, np.c_[geometry["x"], geometry["y"]])
        np.testing.assert_array_equal(raw_index, geometry["ind"])
        sites, = load(session / "alf" / folder, "electrodeSites.localCoordinates")
        np.testing.assert_array_equal(sites, coordinates)
        clusters, = load(sorting(session, folder), "spikes.clusters")
        assert len(clusters) == 20_000 and clusters.max() < 25


def test_np1_layout_checked_by_hand(session):
    """Neuropixels 1.0: a checkerboard of 43, 11, 59, 27 µm across, two sites per 20 µm row."""
    coordinates, raw_index = load(sorting(session), "channels.localCoordinates", "channels.rawInd")
    assert coordinates.shape == (384, 2)
    np.testing.assert_array_equal(coordinates[:, 0], np.tile([43.0, 11.0, 59.0, 27.0], 96))
    np.testing.assert_array_equal(coordinates[:, 1], 20.0 * (np.arange(384) // 2 + 1))
    np.testing.assert_array_equal(raw_index, np.arange(384))


def test_np24_is_split_into_shank_folders(typed_sessions):
    session = typed_sessions("NP2.4")
    expected = [f"probe0{n}{s}" for n in (0, 1) for s in "abcd"]
    assert sorted(p.name for p in (session / "alf").iterdir() if p.is_dir()) == expected
    assert sorted(p.name for p in (session / "raw_ephys_data").iterdir()) == expected
    for folder in expected:
        assert (sorting(session, folder) / "spikes.times.npy").exists()
        meta = spikeglx.read_meta_data(session / "raw_ephys_data" / folder / f"{STEM}.imec{folder[6]}.ap.meta")
        # As the IBL's NP2 converter rewrites it: one shank's 96 channels plus sync.
        assert meta["NP2.4_shank"] == "abcd".index(folder[-1])
        assert meta["nSavedChans"] == 97
        coordinates, = load(sorting(session, folder), "channels.localCoordinates")
        assert coordinates.shape == (96, 2)
        lf = spikeglx.read_meta_data(session / "raw_ephys_data" / folder / f"{STEM}.imec{folder[6]}.lf.meta")
        assert lf["imSampRate"] == 2500 and lf["snsApLfSy"] == [0, 96, 1]
    # The shanks of one probe lie side by side, 250 µm apart, on one clock.
    tips = np.array([np.load(session / "alf" / f"probe00{s}" / "electrodeSites.mlapdv.npy")[0] for s in "abcd"])
    np.testing.assert_allclose(np.linalg.norm(np.diff(tips, axis=0), axis=1), 250, rtol=1e-9)
    stamps = [np.load(session / "raw_ephys_data" / f"probe00{s}" / f"{STEM}.imec0.timestamps.npy") for s in "abcd"]
    assert all(np.array_equal(stamps[0], other) for other in stamps[1:])
    record = json.loads((session / "alyx_session.json").read_text())
    assert [(p["name"], p["model"]) for p in record["probe_insertions"]] == [(f, "NP2.4") for f in expected]
    description = yaml.safe_load((session / "_ibl_experiment.description.yaml").read_text())
    assert list(description["devices"]["neuropixel"]) == expected


def test_brain_regions_are_real_and_in_depth_order(session):
    regions = BrainRegions()
    for probe, track in (("probe00", TRACK00), ("probe01", TRACK01)):
        ids, = load(sorting(session, probe), "channels.brainLocationIds_ccf_2017")
        coordinates, = load(sorting(session, probe), "channels.localCoordinates")
        assert ids.dtype == np.int64 and ids.shape == (384,)
        assert np.isin(ids, regions.id).all()
        acronyms = regions.id2acronym(ids[np.argsort(-coordinates[:, 1], kind="stable")])  # top first
        runs = [a for i, a in enumerate(acronyms) if i == 0 or a != acronyms[i - 1]]
        assert runs[0] == "void"  # the top channels are above the brain
        assert runs == track[:len(runs)]  # and each region comes once, in the track's order
        assert len(runs) >= 5
        sites, = load(session / "alf" / probe, "electrodeSites.brainLocationIds_ccf_2017")
        np.testing.assert_array_equal(sites, ids)


def test_tracks_are_straight_tilted_insertions_in_different_places(session):
    entries = []
    for probe in ("probe00", "probe01"):
        mlapdv, coordinates, ids = load(sorting(session, probe), "channels.mlapdv",
                                        "channels.localCoordinates", "channels.brainLocationIds_ccf_2017")
        assert mlapdv.dtype == np.float64 and mlapdv.shape == (384, 3)
        np.testing.assert_array_equal(np.load(session / "alf" / probe / "electrodeSites.mlapdv.npy"), mlapdv)
        column = np.flatnonzero(coordinates[:, 0] == 43.0)  # one column of sites: a straight line
        points = mlapdv[column]
        axis = points[-1] - points[0]
        assert axis[2] > 0  # DV grows towards the top of the probe (dorsal +)
        tilt = np.degrees(np.arccos(axis[2] / np.linalg.norm(axis)))
        assert 10 <= tilt <= 20
        residual = np.cross(points - points[0], axis / np.linalg.norm(axis))
        assert np.abs(residual).max() < 1e-6
        # The tip is 3-4 mm below the brain surface, which lies between DV 0 and -1 mm.
        inside = ids != 0
        surface = mlapdv[inside][np.argmax(coordinates[inside, 1])]
        assert -1000 < surface[2] < 0
        assert 3000 < surface[2] - mlapdv[:, 2].min() < 4000
        entries.append(surface)
    assert np.linalg.norm(entries[0][:2] - entries[1][:2]) > 1000


# --- session records --------------------------------------------------------------------------

def test_alyx_probe_insertions(session, tmp_path):
    record = json.loads((session / "alyx_session.json").read_text())
    insertions = record["probe_insertions"]
    assert [p["name"] for p in insertions] == ["probe00", "probe01"]
    for insertion in insertions:
        assert set(insertion) == {"id", "name", "model", "serial"}
        assert str(uuid.UUID(insertion["id"])) == insertion["id"]
        assert insertion["model"] == "3B2"
        assert insertion["serial"].isdigit()
    assert insertions[0]["id"] != insertions[1]["id"]
    description = yaml.safe_load((session / "_ibl_experiment.description.yaml").read_text())
    assert description["devices"]["neuropixel"] == {
        probe: {"collection": f"raw_ephys_data/{probe}", "sync_label": "imec_sync"}
        for probe in ("probe00", "probe01")}
    again = ephys_session(tmp_path, probes=("probe00",))
    assert json.loads((again / "alyx_session.json").read_text())["probe_insertions"] == insertions[:1]


def test_no_probes(tmp_path):
    path = ephys_session(tmp_path, probes=())
    assert not (path / "raw_ephys_data").exists()
    assert not any(p.is_dir() for p in (path / "alf").iterdir())
    assert json.loads((path / "alyx_session.json").read_text())["probe_insertions"] == []
    description = yaml.safe_load((path / "_ibl_experiment.description.yaml").read_text())
    assert "neuropixel" not in description["devices"]


# --- determinism -------------------------------------------------------------------------------

def test_same_seed_same_files_other_seed_other_spikes(tmp_path):
    kwargs = {"n_units": 20, "revision": REVISION}
    first = ephys_session(tmp_path / "a", **kwargs)
    second = ephys_session(tmp_path / "b", **kwargs)
    names = [n for n in relative_files(first) if "probe" in n]
    assert names == [n for n in relative_files(second) if "probe" in n] and len(names) > 40
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    other = ephys_session(tmp_path / "c", seed=8, **kwargs)
    for name in ("spikes.times.npy", "spikes.clusters.npy", "clusters.uuids.csv", "channels.mlapdv.npy"):
        assert (sorting(first) / name).read_bytes() != (sorting(other) / name).read_bytes(), name
    # Each probe has its own random stream: dropping probe00 leaves probe01 as it was.
    alone = ephys_session(tmp_path / "d", probes=("probe01",), **kwargs)
    for name in relative_files(sorting(first, "probe01")):
        assert (sorting(alone, "probe01") / name).read_bytes() == (sorting(first, "probe01") / name).read_bytes()


# --- the converter's view ----------------------------------------------------------------------

@pytest.mark.parametrize("sorter", ["iblsorter", "pykilosort", ""])
def test_converter_finds_every_probe_and_sorter(tmp_path, sorter):
    path = ephys_session(tmp_path, sorter=sorter, n_units=10, n_spikes=1000)
    session = AlfSession(path)
    probes = find_probes(session)
    assert [p.name for p in probes] == ["probe00", "probe01"]
    for number, probe in enumerate(probes):
        assert probe.sorter == sorter
        assert probe.sorting_collection == (f"alf/{probe.name}/{sorter}" if sorter else f"alf/{probe.name}")
        assert session.has("clusters", "metrics", collection=probe.sorting_collection)
        assert session.has("electrodeSites", "mlapdv", collection=probe.probe_collection)
        assert probe.raw_file(session).name == f"{STEM}.imec{number}.ap.meta"
        assert probe.raw_file(session, band="lf").name == f"{STEM}.imec{number}.lf.meta"
    if not sorter:
        assert not any(p.is_dir() for p in (path / "alf" / "probe00").iterdir())


def test_converter_finds_np24_shanks(typed_sessions):
    probes = find_probes(AlfSession(typed_sessions("NP2.4")))
    assert [p.name for p in probes] == [f"probe0{n}{s}" for n in (0, 1) for s in "abcd"]
    assert {p.sorter for p in probes} == {"pykilosort"}


def test_uuid_extras_leave_the_probes_findable(tmp_path):
    path = ephys_session(tmp_path, uuid_extras=True, n_units=10, n_spikes=1000, probes=("probe00",))
    assert all(len(p.name.split(".")) == 4 for p in (path / "alf" / "probe00" / "pykilosort").iterdir())
    probes = find_probes(AlfSession(path))
    assert [(p.name, p.sorter) for p in probes] == [("probe00", "pykilosort")]


# --- arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"probe_type": "3C"}, {"sorter": "kilosort2"}, {"probes": ("probeA",)}, {"probes": ("probe00", "probe00")},
    {"n_units": 0}, {"n_spikes": 1}, {"cluster_dtype": np.int32}, {"cluster_dtype": np.uint16, "n_units": 70_000},
])
def test_invalid_probe_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        ephys_session(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # refused before writing anything
