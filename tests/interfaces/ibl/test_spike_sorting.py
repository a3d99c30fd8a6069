"""Units from IBL spike sorting: every spike exact per probe, columns from the right sources, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import nwbridge
from nwbridge.errors import SourceFileError
from nwbridge.interfaces.ibl import IblProbesInterface, IblSortingInterface
from nwbridge.testing import make_ibl_session


@pytest.fixture(scope="module")
def two_probes(tmp_path_factory):
    root = tmp_path_factory.mktemp("sorting")
    return make_ibl_session(root, n_trials=20, duration_s=400, cameras=(), passive=False, seed=11,
                            probes=("probe00", "probe01"), n_units=40, revision="2024-05-06")


def sorting_folder(session, probe, sorter="pykilosort"):
    return session / "alf" / probe / sorter if sorter else session / "alf" / probe


def expected_units(session, probe, sorter="pykilosort"):
    """What the units of one probe must be, computed from the ALF files with numpy alone."""
    folder = sorting_folder(session, probe, sorter)
    times = np.load(folder / "spikes.times.npy")
    clusters = np.load(folder / "spikes.clusters.npy")
    n_clusters = len(np.load(folder / "clusters.channels.npy"))
    per_unit = [times[clusters == cluster] for cluster in range(n_clusters)]
    return folder, times, clusters, per_unit


def ragged(units, name):
    """The flat values of a ragged column and the end offset of each row."""
    index = units[name]  # pynwb returns the index of a ragged column
    return index.target.data[:], index.data[:]


def convert(roundtrip, session, **options):
    return roundtrip(IblProbesInterface(session_path=session), IblSortingInterface(session_path=session, **options))


def test_every_spike_time_and_cluster_round_trips_per_probe(two_probes, roundtrip):
    units = convert(roundtrip, two_probes).units
    probes = np.asarray(units["probe"].data[:], dtype=str)
    cluster_ids = units["source_cluster_id"].data[:]
    flat, ends = ragged(units, "spike_times")
    starts = np.concatenate([[0], ends[:-1]])
    for probe in ("probe00", "probe01"):
        _, times, clusters, per_unit = expected_units(two_probes, probe)
        rows = np.flatnonzero(probes == probe)
        assert len(rows) == len(per_unit)
        np.testing.assert_array_equal(cluster_ids[rows], np.arange(len(per_unit)))
        for row, expected in zip(rows, per_unit):
            np.testing.assert_array_equal(flat[starts[row]:ends[row]], expected)  # bit for bit, in time order
        # Every spike of the probe is there once: the multiset of (time, cluster) pairs is the source's.
        got_times = np.concatenate([flat[starts[row]:ends[row]] for row in rows])
        got_clusters = np.repeat(cluster_ids[rows], ends[rows] - starts[rows])
        order = np.lexsort((got_clusters, got_times))
        source_order = np.lexsort((clusters, times))
        np.testing.assert_array_equal(got_times[order], times[source_order])
        np.testing.assert_array_equal(got_clusters[order], clusters[source_order])
    np.testing.assert_array_equal(units.id[:], np.arange(len(units)))  # unique across probes


def test_per_unit_columns_come_from_clusters_and_metrics(two_probes, roundtrip):
    nwbfile = convert(roundtrip, two_probes)
    units = nwbfile.units.to_dataframe(index=True)
    electrodes = nwbfile.electrodes.to_dataframe()
    for probe in ("probe00", "probe01"):
        folder = sorting_folder(two_probes, probe)
        revised = folder / "#2024-05-06#" / "clusters.metrics.pqt"
        metrics = pd.read_parquet(revised if revised.exists() else folder / "clusters.metrics.pqt")
        mine = units[units["probe"] == probe]
        np.testing.assert_array_equal(mine["is_good"], metrics["label"] == 1)
        np.testing.assert_array_equal(mine["amplitude_median_uv"], metrics["amp_median"] * 1e6)
        np.testing.assert_array_equal(mine["firing_rate"], metrics["firing_rate"])
        np.testing.assert_array_equal(mine["presence_ratio"], metrics["presence_ratio"])
        for column in metrics.columns.drop("cluster_id"):
            np.testing.assert_array_equal(mine[f"ibl_{column}"].astype(float), metrics[column].astype(float))
        uuids = pd.read_csv(folder / "clusters.uuids.csv")["uuids"]
        assert list(mine["source_unit_id"]) == list(uuids)
        np.testing.assert_array_equal(mine["depth_um"], np.load(folder / "clusters.depths.npy"))
        peak = np.load(folder / "channels.rawInd.npy")[np.load(folder / "clusters.channels.npy")]
        np.testing.assert_array_equal(mine["peak_channel"], peak)
        # The electrodes link lands on the peak channel's row of the same probe.
        linked = electrodes.loc[[int(np.asarray(rows).ravel()[0]) for rows in mine["electrodes"]]]
        assert (linked["group_name"] == probe).all()
        np.testing.assert_array_equal(linked["probe_channel"], peak)
        assert list(mine["location"]) == list(linked["location"])
        assert (mine["electrode_group"].map(lambda group: group.name) == probe).all()


def test_newest_metrics_revision_decides_is_good(two_probes, roundtrip):
    folder = sorting_folder(two_probes, "probe00")
    plain = pd.read_parquet(folder / "clusters.metrics.pqt")["label"]
    revised = pd.read_parquet(folder / "#2024-05-06#" / "clusters.metrics.pqt")["label"]
    assert not plain.equals(revised)
    units = convert(roundtrip, two_probes).units.to_dataframe()
    np.testing.assert_array_equal(units[units["probe"] == "probe00"]["is_good"], revised == 1)


def test_spike_features_and_waveforms(two_probes, roundtrip):
    units = convert(roundtrip, two_probes).units
    flat_amps, ends = ragged(units, "spike_amplitudes_uv")
    flat_depths, _ = ragged(units, "spike_depths_um")
    np.testing.assert_array_equal(ends, ragged(units, "spike_times")[1])
    expected_amps, expected_depths, waveforms = [], [], []
    for probe in ("probe00", "probe01"):
        folder = sorting_folder(two_probes, probe)
        clusters = np.load(folder / "spikes.clusters.npy")
        order = np.argsort(clusters, kind="stable")
        # µV = V x 1e6, computed in the source's float32.
        expected_amps.append(np.load(folder / "spikes.amps.npy")[order] * np.float32(1e6))
        expected_depths.append(np.load(folder / "spikes.depths.npy")[order])
        waveforms.append(np.load(folder / "clusters.waveforms.npy"))
    np.testing.assert_array_equal(flat_amps, np.concatenate(expected_amps))
    np.testing.assert_array_equal(flat_depths, np.concatenate(expected_depths))
    np.testing.assert_array_equal(units["waveform_mean"].data[:], np.concatenate(waveforms))
    assert units.waveform_unit == "volts"


def test_resolution_is_the_sample_period_of_the_meta(two_probes, roundtrip):
    units = convert(roundtrip, two_probes).units
    meta = next((two_probes / "raw_ephys_data" / "probe00").glob("*.ap.meta")).read_text()
    rate = float(next(line for line in meta.splitlines() if line.startswith("imSampRate=")).split("=")[1])
    assert units.resolution == 1 / rate


@pytest.mark.parametrize("sorter", ["iblsorter", ""])
def test_sorter_layouts_and_uint32_clusters(tmp_path, roundtrip, sorter):
    session = make_ibl_session(tmp_path, n_trials=10, duration_s=300, cameras=(), passive=False, seed=5,
                               probes=("probe00",), n_units=25, sorter=sorter, cluster_dtype=np.uint32)
    folder, times, clusters, per_unit = expected_units(session, "probe00", sorter)
    assert clusters.dtype == np.uint32
    units = convert(roundtrip, session).units
    for row, expected in enumerate(per_unit):
        np.testing.assert_array_equal(units["spike_times"][row], expected)


def test_real_ibl_spikes(tmp_path, test_data, roundtrip):
    """124,905 real spikes (ibllib's brainbox fixture), placed as probe00's spike sorting."""
    real = np.load(test_data / "ibl" / "brainbox" / "ephys_test_spikes.npz")
    times, clusters = real["spike_times"], real["spike_clusters"]
    n_clusters = int(clusters.max()) + 1
    session = make_ibl_session(tmp_path, n_trials=10, duration_s=max(300.0, float(times.max()) + 60), cameras=(),
                               passive=False, seed=8, probes=("probe00",), n_units=n_clusters)
    folder = sorting_folder(session, "probe00")
    np.save(folder / "spikes.times.npy", times)
    np.save(folder / "spikes.clusters.npy", clusters)
    for attribute in ("amps", "depths", "samples"):
        (folder / f"spikes.{attribute}.npy").unlink()
    units = convert(roundtrip, session).units
    assert len(units) == n_clusters
    flat, ends = ragged(units, "spike_times")
    np.testing.assert_array_equal(np.diff(np.concatenate([[0], ends])), np.bincount(clusters, minlength=n_clusters))
    np.testing.assert_array_equal(flat, times[np.argsort(clusters, kind="stable")])
    for cluster in np.unique(clusters)[:20]:
        np.testing.assert_array_equal(units["spike_times"][int(cluster)], times[clusters == cluster])


@pytest.fixture
def one_probe(tmp_path):
    return make_ibl_session(tmp_path / "src", n_trials=10, duration_s=300, cameras=(), passive=False, seed=3,
                            probes=("probe00",), n_units=20)


def test_cluster_beyond_the_clusters(one_probe, tmp_path):
    path = sorting_folder(one_probe, "probe00") / "spikes.clusters.npy"
    clusters = np.load(path)
    clusters[5] = 20
    np.save(path, clusters)
    with pytest.raises(SourceFileError, match=r"spikes\.clusters\.npy: spike 5 is assigned to cluster 20 but "
                                              r"there are only 20 clusters"):
        nwbridge.convert_ibl_session(one_probe, tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("*.nwb*"))


def test_times_and_clusters_of_different_lengths(one_probe, tmp_path):
    path = sorting_folder(one_probe, "probe00") / "spikes.clusters.npy"
    np.save(path, np.load(path)[:-3])
    with pytest.raises(SourceFileError, match=r"spikes\.clusters\.npy: has \d+ spikes but spikes\.times\.npy has"):
        nwbridge.convert_ibl_session(one_probe, tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("*.nwb*"))


def test_unsorted_spike_times(one_probe, tmp_path):
    path = sorting_folder(one_probe, "probe00") / "spikes.times.npy"
    times = np.load(path)
    times[[10, 11]] = times[[11, 10]]
    np.save(path, times)
    with pytest.raises(SourceFileError, match=r"spikes\.times\.npy: spike times are not sorted: spike 11"):
        nwbridge.convert_ibl_session(one_probe, tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("*.nwb*"))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int64])
def test_group_by_cluster_is_the_stable_argsort(dtype):
    from nwbridge.interfaces.ibl.spike_sorting import group_by_cluster

    clusters = np.random.default_rng(2).integers(0, 37, 100_000).astype(dtype)
    order = group_by_cluster(clusters, np.bincount(clusters, minlength=40))
    np.testing.assert_array_equal(order, np.argsort(clusters, kind="stable"))
    assert order.dtype == np.uint32


def test_two_probe_session_passes_check_and_nwbinspector(two_probes, tmp_path):
    from nwbridge.schemas.checker import check_file, inspect_file

    (path,) = nwbridge.convert_ibl_session(two_probes, tmp_path, progress=False)
    report = check_file(path)
    assert report.conformance_ok, [result.messages for result in report.failures]
    for name in ("units", "general/extracellular_ephys/electrodes"):
        assert report.result(name).status == "pass"
    severe = [message for message in inspect_file(path)
              if message.importance.name in ("CRITICAL", "ERROR", "PYNWB_VALIDATION")]
    assert severe == []
