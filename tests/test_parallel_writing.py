"""Large datasets compressed on every core: exact, standard HDF5 filters, any writer."""

from __future__ import annotations

from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from nwbridge.parallel_writing import BlockSource, compress_chunk
from nwbridge.writing import write_nwbfile_atomically


def blocks_of(array, sizes):
    def blocks():
        start = 0
        for size in sizes:
            yield array[start:start + size]
            start += size
    return blocks


def new_file():
    return NWBFile(session_description="t", identifier="t", session_start_time=datetime(2021, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("workers", [1, 2])
def test_block_source_round_trips_exactly_with_standard_filters(tmp_path, workers):
    rng = np.random.default_rng(0)
    voltage = rng.integers(-500, 500, size=(10_007, 385), dtype=np.int16)
    times = np.sort(rng.uniform(0, 3600, 1_234_567))
    nwbfile = new_file()
    nwbfile.add_acquisition(TimeSeries(
        name="voltage", unit="V", rate=30000.0,
        data=BlockSource(blocks_of(voltage, [3000, 1, 5000, 2006]), shape=voltage.shape, dtype=np.int16,
                         chunk_rows=1024)))
    nwbfile.add_acquisition(TimeSeries(
        name="times", unit="s", rate=1.0,
        data=BlockSource(blocks_of(times, [1_000_000, 234_567]), shape=times.shape, dtype=np.float64)))
    path = write_nwbfile_atomically(nwbfile, tmp_path / "f.nwb", workers=workers)

    with h5py.File(path, "r") as file:
        dataset = file["acquisition/voltage/data"]
        assert dataset.compression == "gzip" and dataset.shuffle and dataset.chunks == (1024, 385)
        np.testing.assert_array_equal(dataset[:], voltage)
        np.testing.assert_array_equal(file["acquisition/times/data"][:], times)
    with NWBHDF5IO(path, "r") as io:
        np.testing.assert_array_equal(io.read().acquisition["voltage"].data[-7:], voltage[-7:])


def test_any_other_writer_still_writes_a_block_source(tmp_path):
    values = np.arange(100_000, dtype=np.float64)
    nwbfile = new_file()
    nwbfile.add_acquisition(TimeSeries(name="x", unit="s", rate=1.0,
                                       data=BlockSource(blocks_of(values, [60_000, 40_000]), shape=values.shape,
                                                        dtype=np.float64)))
    with NWBHDF5IO(tmp_path / "plain.nwb", "w") as io:
        io.write(nwbfile)
    with NWBHDF5IO(tmp_path / "plain.nwb", "r") as io:
        np.testing.assert_array_equal(io.read().acquisition["x"].data[:], values)


def test_compressed_chunk_is_what_hdf5_reads(tmp_path):
    chunk = np.random.default_rng(1).normal(size=(512, 3))
    with h5py.File(tmp_path / "c.h5", "w") as file:
        dataset = file.create_dataset("d", shape=(1024, 3), chunks=(512, 3), dtype=np.float64, compression="gzip",
                                      shuffle=True)
        dataset.id.write_direct_chunk((512, 0), compress_chunk(chunk))
        np.testing.assert_array_equal(dataset[512:], chunk)
        assert (dataset[:512] == 0).all()


def test_blocks_that_do_not_add_up_are_an_error(tmp_path):
    values = np.arange(10.0)
    nwbfile = new_file()
    nwbfile.add_acquisition(TimeSeries(name="x", unit="s", rate=1.0,
                                       data=BlockSource(blocks_of(values, [5]), shape=(10,), dtype=np.float64)))
    with pytest.raises(ValueError, match="the blocks gave 5 rows, the dataset declared 10"):
        write_nwbfile_atomically(nwbfile, tmp_path / "bad.nwb")
    assert not list(tmp_path.iterdir())


def test_shared_blocks_fill_several_datasets_in_one_pass(tmp_path):
    from nwbridge.parallel_writing import SharedBlocks

    recording = np.random.default_rng(3).integers(-1000, 1000, size=(7_001, 5), dtype=np.int16)
    passes = []

    def blocks():
        passes.append(1)
        for start in range(0, len(recording), 3000):
            yield recording[start:start + 3000]

    shared = SharedBlocks(blocks)
    nwbfile = new_file()
    nwbfile.add_acquisition(TimeSeries(name="voltage", unit="V", rate=30000.0, data=BlockSource(
        shape=(7_001, 4), dtype=np.int16, shared=shared, select=lambda block: block[:, :4], chunk_rows=1000)))
    nwbfile.add_acquisition(TimeSeries(name="sync", unit="n.a.", rate=30000.0, data=BlockSource(
        shape=(7_001,), dtype=np.int16, shared=shared, select=lambda block: block[:, 4])))
    path = write_nwbfile_atomically(nwbfile, tmp_path / "shared.nwb", workers=2)
    assert len(passes) == 1
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["acquisition/voltage/data"][:], recording[:, :4])
        np.testing.assert_array_equal(file["acquisition/sync/data"][:], recording[:, 4])


def test_zstd_codec_round_trips_with_hdf5plugin(tmp_path):
    import hdf5plugin  # noqa: F401  (what a reader of a zstd file needs)

    from nwbridge.parallel_writing import ZSTD_FILTER_ID

    voltage = np.random.default_rng(5).integers(-300, 300, size=(9_001, 385), dtype=np.int16)
    nwbfile = new_file()
    nwbfile.add_acquisition(TimeSeries(name="voltage", unit="V", rate=30000.0, data=BlockSource(
        blocks_of(voltage, [4000, 5001]), shape=voltage.shape, dtype=np.int16, chunk_rows=2048)))
    path = write_nwbfile_atomically(nwbfile, tmp_path / "zstd.nwb", codec="zstd")
    with h5py.File(path, "r") as file:
        dataset = file["acquisition/voltage/data"]
        assert dataset.shuffle and str(ZSTD_FILTER_ID) in dataset._filters
        np.testing.assert_array_equal(dataset[:], voltage)


def test_unknown_codec_is_refused(tmp_path):
    nwbfile = new_file()
    nwbfile.add_acquisition(TimeSeries(name="x", unit="s", rate=1.0, data=BlockSource(
        blocks_of(np.arange(10.0), [10]), shape=(10,), dtype=np.float64)))
    with pytest.raises(ValueError, match="unknown codec 'lz4'"):
        write_nwbfile_atomically(nwbfile, tmp_path / "x.nwb", codec="lz4")
    assert not list(tmp_path.iterdir())


def test_large_allocations_are_reused_while_filling_then_given_back(monkeypatch):
    """glibc's thresholds are raised for the fill and restored after it, even when the fill fails."""
    import ctypes

    from nwbridge import parallel_writing

    calls = []

    class FakeLibc:
        def mallopt(self, parameter, value):
            calls.append(("mallopt", parameter, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("malloc_trim", pad))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    with pytest.raises(RuntimeError):
        with parallel_writing.reused_large_allocations():
            assert calls == [("mallopt", -3, 512 * 1024 * 1024), ("mallopt", -1, 1024 * 1024 * 1024)]
            raise RuntimeError("a failing fill")
    assert calls[2:] == [("mallopt", -3, 128 * 1024), ("mallopt", -1, 128 * 1024), ("malloc_trim", 0)]

    def no_glibc(name):
        raise OSError("not glibc")

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    with parallel_writing.reused_large_allocations():
        pass  # nothing to tune, nothing raised
