"""The synthetic IBL raw electrophysiology: SpikeGLX `.cbin`/`.ch`/`.bin` consistent with the rest."""

from __future__ import annotations

import hashlib
import json
import time
import tracemalloc
from importlib import resources

import mtscomp
import numpy as np
import pytest
import spikeglx

from nwbridge.testing import ibl_raw, make_ibl_session

STEM = "_spikeglx_ephysData_g0_t0"
RAW_S = 3.0
FS_AP_3B = 30000.390639481  # imSampRate of the real 3B metas
FS_LF_3B = 2500.0325532900833
REAL_CH = "/work/shared/data/ibl/spikeglx/np24_1s_example.imec0.ap.ch"
NOISE_V = 10e-6


def raw_session(root, **kwargs):
    kwargs = {"n_trials": 10, "duration_s": 200.0, "cameras": (), "pose": (), "passive": False,
              "probes": ("probe00",), "seed": 3, "raw_ephys": True, "raw_duration_s": RAW_S, **kwargs}
    return make_ibl_session(root, **kwargs)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One 3B probe, 3 s of compressed raw data (read-only)."""
    return raw_session(tmp_path_factory.mktemp("raw"))


def raw_folder(session, probe="probe00"):
    return session / "raw_ephys_data" / probe


def band_file(session, band, extension="cbin", probe="probe00", number=0):
    return raw_folder(session, probe) / f"{STEM}.imec{number}.{band}.{extension}"


def read_all(path):
    """All samples of a `.cbin` or `.bin`, int16 (samples x channels), through ibl-neuropixel."""
    with spikeglx.Reader(path) as reader:
        return np.asarray(reader._raw[:, :])


@pytest.fixture(scope="module")
def ap(session):
    return read_all(band_file(session, "ap"))


def centred(data):
    """The neural channels less their constant ADC offset (each channel's median); the sync column as is."""
    data = data.astype(np.int32)
    data[:, :-1] -= np.median(data[:, :-1], axis=0).astype(np.int32)
    return data


@pytest.fixture(scope="module")
def lf(session):
    return read_all(band_file(session, "lf"))


def sorting(session, probe="probe00"):
    return session / "alf" / probe / "pykilosort"


# --- files and formats ---------------------------------------------------------------------------

def test_files_of_the_probe(session):
    assert sorted(p.name for p in raw_folder(session).iterdir()) == sorted(
        f"{STEM}.imec0.{name}" for name in ("ap.cbin", "ap.ch", "ap.meta", "lf.cbin", "lf.ch", "lf.meta",
                                            "timestamps.npy"))


@pytest.mark.parametrize("band, fs, chunk", [("ap", FS_AP_3B, 30000), ("lf", FS_LF_3B, 2500)])
def test_ch_header_is_mtscomps_like_the_real_example(session, band, fs, chunk):
    real = json.loads(open(REAL_CH).read())
    header = json.loads(band_file(session, band, "ch").read_text())
    assert sorted(header) == sorted(real)
    for key in ("algorithm", "chunk_order", "do_spatial_diff", "do_time_diff", "dtype", "n_channels",
                "version"):
        assert header[key] == real[key], key
    n_samples = header["shape"][0]
    assert header["shape"] == [n_samples, 385] and header["sample_rate"] == fs
    bounds, offsets = header["chunk_bounds"], header["chunk_offsets"]
    # ~1 s chunks, as the IBL compresses: mtscomp's round(1 s x sample rate) samples each.
    assert bounds == list(range(0, n_samples, chunk)) + [n_samples]
    assert len(offsets) == len(bounds) and offsets[0] == 0 and np.all(np.diff(offsets) > 0)
    assert offsets[-1] == band_file(session, band).stat().st_size
    assert header["sha1_compressed"] == hashlib.sha1(band_file(session, band).read_bytes()).hexdigest()


def test_readers_agree_on_shape_dtype_rate_and_data(session, ap, lf):
    for band, data, fs, n_samples in (("ap", ap, FS_AP_3B, round(RAW_S * FS_AP_3B)),
                                      ("lf", lf, FS_LF_3B, -(-round(RAW_S * FS_AP_3B) // 12))):
        path = band_file(session, band)
        reader = mtscomp.Reader()
        reader.open(path, path.with_suffix(".ch"))
        try:
            assert reader.shape == (n_samples, 385) and reader.dtype == np.int16
            assert reader.sample_rate == fs and reader.n_channels == 385
            assert reader.n_chunks == int(np.ceil(n_samples / round(fs)))
            np.testing.assert_array_equal(reader[:], data)
            # The .ch's hash of the uncompressed data is right (mtscomp's own check).
            sha1 = hashlib.sha1()
            for index, start, length in reader.iter_chunks():
                sha1.update(np.ascontiguousarray(reader.read_chunk(index, start, length)))
            assert sha1.hexdigest() == json.loads(path.with_suffix(".ch").read_text())["sha1_uncompressed"]
        finally:
            reader.close()
        with spikeglx.Reader(path) as sr:
            assert sr.is_mtscomp and sr.shape == (n_samples, 385) and sr.nc == 385 and sr.nsync == 1
            assert sr.fs == fs and sr.type == band and sr.version == "3B2"
            assert sr.verify_hash()
            assert data.dtype == np.int16 and data.flags.c_contiguous


def test_metas_describe_the_data_and_keep_everything_else(session, ap, lf):
    source = resources.files("nwbridge.testing").joinpath("data", "spikeglx")
    for band, data in (("ap", ap), ("lf", lf)):
        meta_path = band_file(session, band, "meta")
        meta = spikeglx.read_meta_data(meta_path)
        assert meta["fileSizeBytes"] == data.size * 2
        assert round(meta["fileTimeSecs"] * meta["imSampRate"]) == data.shape[0]
        assert abs(meta["fileTimeSecs"] - data.shape[0] / meta["imSampRate"]) < 1e-9
        assert meta["fileSHA1"] == hashlib.sha1(data).hexdigest().upper()
        written = meta_path.read_text().splitlines()
        real = source.joinpath(f"sample3B_g0_t0.imec1.{band}.meta").read_text().splitlines()
        assert len(written) == len(real)
        changed = {old.split("=")[0] for old, new in zip(real, written) if old != new}
        assert changed == {"fileSHA1", "fileSizeBytes", "fileTimeSecs"}


# --- content -----------------------------------------------------------------------------------

def test_ap_noise_is_about_10_microvolts(session, ap):
    with spikeglx.Reader(band_file(session, "ap")) as sr:
        volts = sr.sample2volts[:384]
    np.testing.assert_allclose(volts, 1.2 / 1024 / 500)  # NP1 AP: gain 500, 2.34 µV per bit
    rms = np.median(ap[:, :384].std(axis=0)) * volts[0]
    assert 8e-6 < rms < 12e-6
    assert abs(np.median(ap[:, :384])) <= 1  # no offset


def test_a_large_spike_is_seen_on_its_peak_channel(session, ap):
    ap = centred(ap)
    folder = sorting(session)
    samples, clusters, amps = (np.load(folder / f"spikes.{name}.npy") for name in ("samples", "clusters", "amps"))
    waveforms = np.load(folder / "clusters.waveforms.npy")
    channels = np.load(folder / "clusters.waveformsChannels.npy")
    template_amps = np.load(folder / "clusters.amps.npy")
    raw_index = np.load(folder / "channels.rawInd.npy")
    volts = 1.2 / 1024 / 500
    noise = NOISE_V / volts
    inside = np.flatnonzero((samples > 100) & (samples < ap.shape[0] - 100))
    assert len(inside) > 100
    # The biggest spike of the window: trough of its template, scaled to its amplitude.
    trough = waveforms[:, :, 0].min(axis=1)  # the peak channel comes first
    expected = trough[clusters[inside]] * amps[inside] / template_amps[clusters[inside]] / volts
    biggest = inside[np.argmin(expected)]
    assert expected.min() < -15 * noise
    column = raw_index[channels[clusters[biggest], 0]]
    trough_sample = samples[biggest]
    assert ap[trough_sample, column] < -10 * noise  # a negative deflection well above the noise
    assert abs(ap[trough_sample, column] - expected.min()) < 6 * noise
    # ... at its sample: the deflection is deepest there, and the far channels do not see it.
    window = ap[trough_sample - 30:trough_sample + 31, column]
    assert np.argmin(window) in range(28, 33)
    far = raw_index[np.argsort(np.abs(np.arange(384) - channels[clusters[biggest], 0]))[-50:]]
    assert np.abs(ap[trough_sample, far]).max() < 6 * noise
    # On average over the large spikes, the trough is where spikes.samples says.
    large = inside[expected < -10 * noise]
    columns = raw_index[channels[clusters[large], 0]]
    mean_trace = np.mean([ap[s - 20:s + 21, c] for s, c in zip(samples[large], columns)], axis=0)
    assert np.argmin(mean_trace) == 20 and mean_trace[20] < -10 * noise


def test_sync_pulses_follow_the_probe_clock(session, ap, lf):
    stamps = np.load(raw_folder(session) / f"{STEM}.imec0.timestamps.npy")
    sync = ap[:, 384]
    assert set(np.unique(sync)) == {0, 64}  # bit 6 of the imec sync word, nothing else
    changes = np.flatnonzero(np.diff(sync)) + 1
    rising = changes[sync[changes] == 64]
    falling = changes[sync[changes] == 0]
    assert abs(len(rising) - RAW_S) <= 1 and abs(len(falling) - RAW_S) <= 1  # a 1 Hz square wave
    assert np.all(np.abs(np.diff(rising) - FS_AP_3B) < 2)
    # Rising edges at the whole seconds of the session clock, falling edges half a second later:
    # the first sample at or after the edge's time on the probe clock.
    session_time = np.interp(np.arange(len(sync) + 1), stamps[:, 0], stamps[:, 1])
    for edges, offset in ((rising, 0.0), (falling, 0.5)):
        whole = np.round(session_time[edges] - offset)
        assert np.all(session_time[edges - 1] < whole + offset)
        assert np.all(session_time[edges] >= whole + offset - 1e-9)
        assert np.all(np.diff(whole) == 1)
    expected_rising, expected_falling = ibl_raw.sync_edges(stamps, len(sync))
    np.testing.assert_array_equal(rising, expected_rising)
    np.testing.assert_array_equal(falling, expected_falling)
    # The LF band samples the same sync word every 12th AP sample.
    np.testing.assert_array_equal(lf[:, 384], sync[::12])


def test_lf_band(session, lf):
    with spikeglx.Reader(band_file(session, "lf")) as sr:
        assert sr.fs == FS_LF_3B and abs(sr.fs - 2500) < 0.1
        assert abs(sr.ns - RAW_S * 2500) <= 1 and abs(sr.rl - RAW_S) < 1e-3
        volts = sr.sample2volts[0]
    assert volts == pytest.approx(1.2 / 1024 / 250)  # NP1 LF: gain 250
    x = lf[:, :384].astype(float) * volts
    x -= x.mean(axis=0)
    # LFP-like: tens of µV, mostly below 20 Hz, shared by neighbouring channels.
    rms = np.median(x.std(axis=0))
    assert 20e-6 < rms < 200e-6
    power = np.abs(np.fft.rfft(x[:, ::8], axis=0)) ** 2
    freq = np.fft.rfftfreq(len(x), 1 / sr.fs)
    low = power[(freq > 1) & (freq < 20)].mean()
    high = power[(freq > 200) & (freq < 1000)].mean()
    assert low > 300 * high
    neighbours = np.corrcoef(x[:, 100], x[:, 102])[0, 1]
    distant = np.corrcoef(x[:, 10], x[:, 370])[0, 1]
    assert neighbours > 0.8 and neighbours > distant


def test_ap_band_of_np1_has_no_lfp(ap, lf):
    # NP1 probes high-pass the AP band in hardware: its slow part does not follow the LFP.
    slow = ap[: len(ap) // 12 * 12, 100].reshape(-1, 12).mean(axis=1)
    assert abs(np.corrcoef(slow, lf[: len(slow), 100])[0, 1]) < 0.2


# --- options ---------------------------------------------------------------------------------------

def test_bin_format_is_the_same_data(session, ap, lf, tmp_path):
    plain = raw_session(tmp_path, raw_format="bin")
    assert sorted(p.name for p in raw_folder(plain).iterdir()) == sorted(
        f"{STEM}.imec0.{name}" for name in ("ap.bin", "ap.meta", "lf.bin", "lf.meta", "timestamps.npy"))
    for band, data in (("ap", ap), ("lf", lf)):
        path = band_file(plain, band, "bin")
        assert path.stat().st_size == data.size * 2
        with spikeglx.Reader(path) as sr:
            assert not sr.is_mtscomp and sr.shape == data.shape and sr.verify_hash()
            np.testing.assert_array_equal(sr._raw[:, :], data)
        assert band_file(plain, band, "meta").read_bytes() == band_file(session, band, "meta").read_bytes()


def test_same_seed_same_bytes_on_any_number_of_threads(session, tmp_path, monkeypatch):
    monkeypatch.setattr(ibl_raw, "_MAX_THREADS", 1)
    again = raw_session(tmp_path / "a")
    for name in ("ap.cbin", "ap.ch", "ap.meta", "lf.cbin", "lf.ch", "lf.meta"):
        assert (raw_folder(again) / f"{STEM}.imec0.{name}").read_bytes() == \
            (raw_folder(session) / f"{STEM}.imec0.{name}").read_bytes(), name
    other = raw_session(tmp_path / "b", seed=4, raw_duration_s=1.0)
    assert not np.array_equal(read_all(band_file(other, "ap"))[:1000], read_all(band_file(again, "ap"))[:1000])


def test_raw_data_change_nothing_else(session, tmp_path):
    plain = raw_session(tmp_path, raw_ephys=False)
    assert sorted(p.name for p in raw_folder(plain).iterdir()) == sorted(
        f"{STEM}.imec0.{name}" for name in ("ap.meta", "lf.meta", "timestamps.npy"))
    files = sorted(p.relative_to(plain) for p in plain.rglob("*") if p.is_file() and "meta" not in p.name)
    assert len(files) > 20
    for name in files:
        assert (session / name).read_bytes() == (plain / name).read_bytes(), name


def test_np2_probes_have_a_full_band_ap_and_the_lf_extracted_from_it(tmp_path):
    path = raw_session(tmp_path, probe_type="NP2.4", n_units=10, n_spikes=2000, raw_duration_s=1.0)
    for shank in "abcd":
        folder = f"probe00{shank}"
        ap_path, lf_path = band_file(path, "ap", probe=folder), band_file(path, "lf", probe=folder)
        with spikeglx.Reader(ap_path) as sr_ap, spikeglx.Reader(lf_path) as sr_lf:
            assert sr_ap.shape == (round(29999.757983), 97) and sr_lf.shape == (2500, 97)
            assert sr_lf.fs == 2500 and sr_ap.nsync == sr_lf.nsync == 1
            ap_data, lf_data = np.asarray(sr_ap._raw[:, :]), np.asarray(sr_lf._raw[:, :])
            np.testing.assert_array_equal(sr_ap.sample2volts, sr_lf.sample2volts)  # one gain for both
        np.testing.assert_array_equal(lf_data[:, 96], ap_data[::12, 96])
        # The AP band carries the LFP too: every 12th AP sample is the LF sample plus noise (and spikes).
        difference = ap_data[::12, :96].astype(float) - lf_data[:, :96]
        assert np.median(difference.std(axis=0)) < 0.3 * np.median(lf_data[:, :96].std(axis=0))
        assert np.median(np.abs(difference), axis=0).max() < 20


def test_generation_memory_is_bounded(tmp_path, monkeypatch):
    """20 s of 3B AP (462 MB) and LF (38 MB) band, with their spikes, compressed in < 250 MB.

    Measured with tracemalloc (every numpy and Python allocation of the call; the process's peak
    RSS mark may have been set by earlier tests): about 190 MB on two threads, the chunks in
    flight (~55 MB each) and the previous batch's (~32 MB each), whatever the duration.
    """
    monkeypatch.setattr(ibl_raw, "_MAX_THREADS", 2)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        path = raw_session(tmp_path, raw_duration_s=20.0, seed=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = band_file(path, "ap").stat().st_size
    print(f"20 s of raw data: {time.perf_counter() - started:.1f} s, traced peak {peak / 1e6:.0f} MB, "
          f"ap.cbin {size / 1e6:.0f} MB")
    header = json.loads(band_file(path, "ap", "ch").read_text())
    assert header["shape"] == [round(20 * FS_AP_3B), 385]
    assert peak < 250e6


@pytest.mark.parametrize("kwargs", [
    {"raw_format": "zip"}, {"raw_duration_s": -1.0}, {"raw_duration_s": 0}, {"raw_duration_s": "long"},
    {"raw_duration_s": float("nan")}, {"raw_duration_s": 500.0}, {"raw_ephys": "yes"},
])
def test_invalid_raw_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        raw_session(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_channels_carry_constant_adc_offsets(ap):
    medians = np.median(ap[:, :-1], axis=0)
    assert 50 < medians.std() < 200  # about 100 ADC units between channels, as real recordings
    np.testing.assert_array_equal(np.median(centred(ap)[:, :-1], axis=0), 0)
