"""Raw electrophysiology: sample-exact voltages and sync, gains, session times, bad input."""

from __future__ import annotations

import json

import mtscomp
import numpy as np
import pytest
from pynwb import NWBHDF5IO

import nwbridge
from nwbridge.errors import MissingSourceFileError, SourceFileError
from nwbridge.testing import make_ibl_session


def generate(root, probe_type="3B", raw_format="cbin", seed=2):
    return make_ibl_session(root, n_trials=10, duration_s=300, cameras=(), passive=False, probes=("probe00",),
                            probe_type=probe_type, raw_ephys=True, raw_duration_s=3, raw_format=raw_format,
                            seed=seed)


def source_data(folder, band):
    """The recording decompressed by mtscomp itself (or the plain .bin), samples x channels."""
    cbin = next(folder.glob(f"*.{band}.cbin"), None)
    if cbin is None:
        meta = next(folder.glob(f"*.{band}.meta")).read_text()
        channels = int(next(line for line in meta.splitlines() if line.startswith("nSavedChans=")).split("=")[1])
        return np.fromfile(next(folder.glob(f"*.{band}.bin")), dtype=np.int16).reshape(-1, channels)
    reader = mtscomp.Reader()
    reader.open(cbin, cbin.with_suffix(".ch"))
    try:
        return np.asarray(reader[:])
    finally:
        reader.close()


def meta_value(folder, band, key):
    meta = next(folder.glob(f"*.{band}.meta")).read_text()
    # SpikeGLX marks some keys with a leading "~" (e.g. ~imroTbl).
    return next(line.split("=", 1)[1] for line in meta.splitlines() if line.lstrip("~").startswith(f"{key}="))


def raw_file(session, output):
    written = nwbridge.convert_ibl_session(session, output, raw=True, progress=False)
    assert written[1].name.endswith("_desc-raw_ecephys.nwb")
    return written


@pytest.mark.parametrize("probe_type", ["3B", "NP2.1", "NP2.4-1shank"])
def test_every_sample_of_every_band_equals_the_source(tmp_path, probe_type):
    session = generate(tmp_path / "src", probe_type=probe_type)
    processed, raw = raw_file(session, tmp_path / "out")
    probe = next((session / "raw_ephys_data").iterdir())
    bands = sorted(path.name.split(".")[-2] for path in probe.glob("*.cbin"))
    with NWBHDF5IO(raw, "r") as io, NWBHDF5IO(processed, "r") as processed_io:
        nwbfile = io.read()
        suffix = probe.name[0].upper() + probe.name[1:]
        for band in bands:
            source = source_data(probe, band)
            voltage = nwbfile.acquisition[f"ElectricalSeries{band.capitalize()}{suffix}"]
            sync = nwbfile.acquisition[f"Sync{band.capitalize()}{suffix}"]
            np.testing.assert_array_equal(voltage.data[:], source[:, :-1])  # sample-exact
            np.testing.assert_array_equal(sync.data[:], source[:, -1])      # the sync kept on its own
            assert voltage.data.dtype == np.int16
            assert voltage.data.chunks[1] == source.shape[1] - 1  # chunks span every channel
        # The electrodes of the raw file are the processed file's, row for row.
        raw_electrodes = nwbfile.electrodes.to_dataframe().drop(columns="group")
        processed_electrodes = processed_io.read().electrodes.to_dataframe().drop(columns="group")
        assert raw_electrodes.equals(processed_electrodes)
        region = voltage.electrodes.data[:]
        np.testing.assert_array_equal(raw_electrodes.iloc[region]["probe_channel"], np.arange(len(region)))


def test_gains_give_volts(tmp_path):
    session = generate(tmp_path / "src", probe_type="3B")
    _, raw = raw_file(session, tmp_path / "out")
    probe = session / "raw_ephys_data" / "probe00"
    imro = meta_value(probe, "ap", "imroTbl")
    # NP1 imroTbl entries: (channel bank reference AP-gain LF-gain filter); ADC range 0.6 V over 512 steps.
    ap_gain, lf_gain = (int(value) for value in imro.split(")(")[1].split(" ")[3:5])
    with NWBHDF5IO(raw, "r") as io:
        acquisition = io.read().acquisition
        assert acquisition["ElectricalSeriesApProbe00"].conversion == 0.6 / 512 / ap_gain
        assert acquisition["ElectricalSeriesLfProbe00"].conversion == 0.6 / 512 / lf_gain
        assert acquisition["ElectricalSeriesApProbe00"].channel_conversion is None


def test_times_equal_the_interpolated_session_times(tmp_path):
    session = generate(tmp_path / "src")
    _, raw = raw_file(session, tmp_path / "out")
    probe = session / "raw_ephys_data" / "probe00"
    sync_points = np.load(next(probe.glob("*.timestamps.npy")))
    with NWBHDF5IO(raw, "r") as io:
        acquisition = io.read().acquisition
        for band, samples_per_ap_sample in (("ap", 1.0), ("lf", 1 / 12)):
            series = acquisition[f"ElectricalSeries{band.capitalize()}Probe00"]
            n = series.data.shape[0]
            samples = np.arange(0, n, 97, dtype=np.float64)
            nwb_times = series.starting_time + samples / series.rate
            ibl_times = np.interp(samples / samples_per_ap_sample, sync_points[:, 0], sync_points[:, 1])
            # Within a tenth of a sample period: the documented tolerance of the linear clock.
            np.testing.assert_allclose(nwb_times, ibl_times, atol=0.1 / series.rate, rtol=0)
            assert "straight line" in series.comments


def test_plain_bin_is_accepted(tmp_path):
    session = generate(tmp_path / "src", raw_format="bin")
    assert list(session.rglob("*.ap.bin")) and not list(session.rglob("*.cbin"))
    _, raw = raw_file(session, tmp_path / "out")
    with NWBHDF5IO(raw, "r") as io:
        data = io.read().acquisition["ElectricalSeriesApProbe00"].data[:]
    np.testing.assert_array_equal(data, source_data(session / "raw_ephys_data" / "probe00", "ap")[:, :-1])


@pytest.fixture
def session(tmp_path):
    return generate(tmp_path / "src")


def assert_no_raw_output(output):
    assert not list(output.rglob("*raw_ecephys.nwb*"))


def test_truncated_cbin(session, tmp_path):
    cbin = next(session.rglob("*.ap.cbin"))
    cbin.write_bytes(cbin.read_bytes()[:-1000])
    with pytest.raises(SourceFileError, match=r"\.ap\.cbin: truncated: .*\.ap\.ch indexes \d+ bytes"):
        nwbridge.convert_ibl_session(session, tmp_path / "out", raw=True, progress=False)
    assert_no_raw_output(tmp_path / "out")


def test_ch_that_does_not_match_its_cbin(session, tmp_path):
    ch = next(session.rglob("*.ap.ch"))
    index = json.loads(ch.read_text())
    index["chunk_offsets"][-1] -= 10
    ch.write_text(json.dumps(index))
    with pytest.raises(SourceFileError, match=r"\.ap\.ch: does not match .*\.ap\.cbin"):
        nwbridge.convert_ibl_session(session, tmp_path / "out", raw=True, progress=False)
    assert_no_raw_output(tmp_path / "out")


def test_missing_meta(session, tmp_path):
    next(session.rglob("*.lf.meta")).unlink()
    with pytest.raises(MissingSourceFileError, match=r"\.lf\.meta: the SpikeGLX metadata of .*\.lf\.cbin is missing"):
        nwbridge.convert_ibl_session(session, tmp_path / "out", raw=True, progress=False)
    assert_no_raw_output(tmp_path / "out")


def test_corrupt_chunk_leaves_no_partial_file(session, tmp_path):
    cbin = next(session.rglob("*.ap.cbin"))
    content = bytearray(cbin.read_bytes())
    content[len(content) // 2: len(content) // 2 + 64] = bytes(64)
    cbin.write_bytes(bytes(content))
    with pytest.raises(Exception):
        nwbridge.convert_ibl_session(session, tmp_path / "out", raw=True, progress=False)
    assert_no_raw_output(tmp_path / "out")


def test_chunk_decoder_equals_mtscomp(session):
    from nwbridge.interfaces.ibl.raw_ephys import _ChunkDecoder

    cbin = next(session.rglob("*.ap.cbin"))
    reader = mtscomp.Reader()
    reader.open(cbin, cbin.with_suffix(".ch"))
    decoder = _ChunkDecoder(cbin, cbin.with_suffix(".ch"))
    try:
        for chunk in range(reader.n_chunks):
            offsets = reader.chunk_offsets
            expected = reader.read_chunk(chunk, offsets[chunk], offsets[chunk + 1] - offsets[chunk])
            np.testing.assert_array_equal(decoder.decode(chunk), expected)
    finally:
        decoder.close()
        reader.close()


def test_fused_time_difference_kernel_wraps_like_numpy():
    """The compiled kernel that undoes mtscomp's time differences equals numpy's int16 cumsum, overflow included."""
    from nwbridge.interfaces.ibl import raw_ephys

    if raw_ephys._undo_time_difference is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(5)
    # Large differences make the running sums wrap around the int16 range many times.
    differences = np.asfortranarray(rng.integers(-30000, 30000, size=(1000, 385), dtype=np.int16))
    out = raw_ephys._undo_time_difference(differences, np.empty((1000, 385), dtype=np.int16), 256)
    expected = np.cumsum(differences, axis=0, dtype=np.int16)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
