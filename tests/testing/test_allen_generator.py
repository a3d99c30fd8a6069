"""The synthetic VBN session generator writes what AllenSDK's files hold, quirks included, consistently."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from importlib import resources

import h5py
import numpy as np
import pandas as pd
import pytest
from pynwb import NWBHDF5IO

from nwbridge.testing import VbnSession, make_vbn_session

DURATION = 900.0
LFP_DURATION = 200.0  # keeps the probe files small: validating them reads their data
PROBES = ("probeA", "probeB", "probeC")
N_UNITS = 25
IMAGE_SET = "Natural_Images_Lum_Matched_set_ophys_G_2019"
PRESENTATION_COLUMNS = [
    "start_time", "stop_time", "active", "color", "contrast", "duration", "end_frame", "flashes_since_change",
    "image_name", "is_change", "is_image_novel", "is_sham_change", "omitted", "orientation", "phase", "position_x",
    "position_y", "rewarded", "spatial_frequency", "start_frame", "stimulus_block", "stimulus_name",
    "temporal_frequency", "trials_id", "tags", "timeseries"]
TRIAL_COLUMNS = [
    "start_time", "stop_time", "initial_image_name", "change_image_name", "is_change",
    "change_time_no_display_delay", "go", "catch", "lick_times", "response_time", "reward_time", "reward_volume",
    "hit", "false_alarm", "miss", "correct_reject", "aborted", "auto_rewarded", "change_frame", "trial_length"]
UNIT_METRICS = [
    "PT_ratio", "amplitude", "amplitude_cutoff", "cluster_id", "cumulative_drift", "d_prime", "firing_rate",
    "isi_violations", "isolation_distance", "l_ratio", "local_index", "max_drift", "nn_hit_rate", "nn_miss_rate",
    "peak_channel_id", "presence_ratio", "quality", "recovery_slope", "repolarization_slope", "silhouette_score",
    "snr", "spread", "velocity_above", "velocity_below", "waveform_duration"]
OUTCOMES = ["hit", "false_alarm", "miss", "correct_reject", "aborted", "auto_rewarded"]
_DATA = str(resources.files("nwbridge.testing") / "data" / "allen")


# Real Allen devices set `manufacturer`, which pynwb 4 deprecates when it reads them.
pytestmark = pytest.mark.filterwarnings("ignore:The 'manufacturer' field is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> VbnSession:
    return make_vbn_session(tmp_path_factory.mktemp("vbn"), probes=PROBES, n_units_per_probe=N_UNITS,
                            duration_s=DURATION, lfp_channels=16, lfp_duration_s=LFP_DURATION, seed=11)


@pytest.fixture(scope="module")
def nwb(session):
    with NWBHDF5IO(session.session_file, "r", load_namespaces=True) as io:
        yield io.read()


@pytest.fixture(scope="module")
def probe_nwb(session):
    with NWBHDF5IO(session.probe_files["probeA"], "r", load_namespaces=True) as io:
        yield io.read()


@pytest.fixture(scope="module")
def trials(nwb):
    return nwb.trials.to_dataframe()


@pytest.fixture(scope="module")
def images(nwb):
    return nwb.intervals[f"{IMAGE_SET}_presentations"].to_dataframe()


@pytest.fixture(scope="module")
def units(nwb):
    return nwb.units.to_dataframe()


@pytest.fixture(scope="module")
def electrodes(nwb):
    return nwb.electrodes.to_dataframe()


def _session_row(session_id):
    table = pd.read_csv(_DATA + "/vbn_ecephys_sessions.csv")
    return table[table["ecephys_session_id"] == session_id].iloc[0]


def quick(tmp_path, **kwargs) -> VbnSession:
    kwargs = {"duration_s": 120.0, "n_units_per_probe": 5, "lfp": False, "seed": 2, **kwargs}
    return make_vbn_session(tmp_path, **kwargs)


# --- files, types, specs ----------------------------------------------------------------------

def test_files_are_named_as_allensdk_names_them(session):
    folder = session.session_file.parent
    assert session.session_file == folder / "ecephys_session_1044385384.nwb"
    assert set(session.probe_files) == set(PROBES)
    for name, path in session.probe_files.items():
        assert path == folder / f"probe_{session.probe_ids[name]}.nwb"
    assert len(set(session.probe_ids.values())) == len(PROBES)


def test_a_fresh_process_reads_the_allen_types_and_validates(session):
    """Without nwbridge imported: the cached specs are all a reader needs."""
    script = textwrap.dedent("""
        import json, sys
        from pynwb import NWBHDF5IO, validate
        out = {}
        with NWBHDF5IO(sys.argv[1], "r", load_namespaces=True) as io:
            f = io.read()
            eye = f.acquisition["EyeTracking"]
            out["session"] = {
                "subject": type(f.subject).__name__,
                "devices": sorted({type(d).__name__ for d in f.devices.values()}),
                "groups": sorted({type(g).__name__ for g in f.electrode_groups.values()}),
                "eye": type(eye).__name__,
                "ellipses": sorted(type(getattr(eye, n)).__name__ for n in
                                   ("eye_tracking", "pupil_tracking", "corneal_reflection_tracking")),
                "blink": type(eye.likely_blink).__name__,
                "template": type(f.stimulus_template[sys.argv[3]]).__name__,
                "meta": {k: type(v).__name__ for k, v in f.lab_meta_data.items()},
            }
        with NWBHDF5IO(sys.argv[2], "r", load_namespaces=True) as io:
            f = io.read()
            out["probe"] = {"csd": type(f.processing["current_source_density"]["ecephys_csd"]).__name__,
                            "subject": type(f.subject).__name__}
        out["validation"] = [[str(e) for e in validate(path=p)] for p in sys.argv[1:3]]
        out["nwbridge_imported"] = any(m.startswith("nwbridge") for m in sys.modules)
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-c", script, str(session.session_file),
                             str(session.probe_files["probeA"]), IMAGE_SET],
                            capture_output=True, text=True, check=True, timeout=120)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["nwbridge_imported"]
    assert out["session"] == {
        "subject": "BehaviorSubject", "devices": ["EcephysProbe"], "groups": ["EcephysElectrodeGroup"],
        "eye": "EllipseEyeTracking", "ellipses": ["EllipseSeries"] * 3, "blink": "TimeSeries",
        "template": "StimulusTemplate",
        "meta": {"metadata": "BehaviorMetadata", "task_parameters": "BehaviorTaskParameters"}}
    assert out["probe"] == {"csd": "EcephysCSD", "subject": "BehaviorSubject"}
    # The only finding is the real extension's own: EllipseEyeTracking extends core EyeTracking,
    # which requires unnamed SpatialSeries, and holds named EllipseSeries instead.
    session_errors, probe_errors = out["validation"]
    assert len(session_errors) == 1 and "EllipseEyeTracking" in session_errors[0]
    assert "missing data type SpatialSeries" in session_errors[0]
    assert probe_errors == []


def test_the_allen_specs_are_cached_with_their_versions(session):
    expected = {"ndx-aibs-ecephys": "0.2.0", "ndx-ellipse-eye-tracking": "0.1.0",
                "ndx-aibs-behavior-ophys": "0.2.0", "ndx-aibs-stimulus-template": "0.1.0"}
    for path in (session.session_file, session.probe_files["probeB"]):
        with h5py.File(path, "r") as f:
            cached = {name: list(f["specifications"][name]) for name in f["specifications"]}
        for name, version in expected.items():
            assert cached[name] == [version]


# --- metadata ---------------------------------------------------------------------------------

def test_file_metadata_follow_the_real_session_row(nwb, session):
    row = _session_row(1044385384)
    assert nwb.identifier == "1044385384"
    assert nwb.session_description == row["session_type"] == session.session_type
    assert nwb.session_id is None
    assert nwb.institution == "Allen Institute"
    assert nwb.session_start_time.tzinfo is not None
    assert nwb.session_start_time == pd.Timestamp(row["date_of_acquisition"])
    subject = nwb.subject
    assert subject.subject_id == str(row["mouse_id"]) == session.mouse_id
    assert subject.age == f"P{row['age_in_days']}D"
    assert subject.genotype == row["genotype"] and subject.sex == row["sex"]
    assert subject.species == "Mus musculus"
    assert subject.strain is None  # Allen files carry no strain
    assert subject.driver_line is None  # a wild-type mouse


@pytest.fixture(scope="module")
def cre_session(tmp_path_factory) -> VbnSession:
    """A Cre mouse's session: no LFP, all probes registered, presentation columns dropped as AllenSDK does."""
    return quick(tmp_path_factory.mktemp("cre"), ecephys_session_id=1043752325, probes=("probeA", "probeC"),
                 unregistered_probes=(), drop_empty_presentation_columns=True)


@pytest.fixture(scope="module")
def cre_nwb(cre_session):
    with NWBHDF5IO(cre_session.session_file, "r", load_namespaces=True) as io:
        yield io.read()


def test_cre_mouse_has_driver_and_reporter_lines(cre_nwb):
    assert list(cre_nwb.subject.driver_line) == ["Vip-IRES-Cre"]
    assert cre_nwb.subject.reporter_line == "Ai32(RCL-ChR2(H134R)_EYFP)"
    assert cre_nwb.session_description == "EPHYS_1_images_G_5uL_reward"
    assert (cre_nwb.electrodes["location"].data[:] != "").all()


def test_lab_meta_data(nwb, session):
    meta, params = nwb.lab_meta_data["metadata"], nwb.lab_meta_data["task_parameters"]
    assert meta.behavior_session_id == session.behavior_session_id == 1044408432
    assert meta.equipment_name == "NP.1" and meta.stimulus_frame_rate == 60.0
    assert meta.session_type == session.session_type and meta.project_code == "NeuropixelVisualBehavior"
    np.testing.assert_array_equal(params.blank_duration_sec, [0.5, 0.5])
    np.testing.assert_array_equal(params.response_window_sec, [0.15, 0.75])
    assert params.reward_volume == 0.005  # "5uL" session type, in mL
    assert params.stimulus_name == IMAGE_SET and params.omitted_flash_fraction == 0.05


# --- probes and electrodes --------------------------------------------------------------------

def test_devices_and_groups(nwb, session):
    for name in PROBES:
        device, group = nwb.devices[name], nwb.electrode_groups[name]
        assert device.probe_id == group.probe_id == session.probe_ids[name]
        assert device.sampling_rate == pytest.approx(30000.0, rel=1e-4)
        assert device.description == "Neuropixels 1.0 Probe"
        assert group.has_lfp_data
        assert group.lfp_sampling_rate == 2500.0  # while the LFP data are at 1250 Hz


def test_electrodes(electrodes, session):
    assert len(electrodes) == 384 * len(PROBES)
    assert electrodes.index.is_unique and electrodes.index.min() > 10**9
    for column in ("x", "y", "z", "location", "group_name", "probe_vertical_position", "probe_horizontal_position",
                   "probe_id", "probe_channel_number", "valid_data", "filtering", "imp"):
        assert column in electrodes
    for name, probe in electrodes.groupby("group_name"):
        np.testing.assert_array_equal(probe["probe_channel_number"], np.arange(384))
        np.testing.assert_array_equal(probe["probe_horizontal_position"], np.tile([43.0, 11.0, 59.0, 27.0], 96))
        np.testing.assert_array_equal(probe["probe_vertical_position"], np.repeat(np.arange(20.0, 3841.0, 20.0), 2))
        assert not probe["valid_data"].iloc[191] and probe["valid_data"].mean() > 0.98
    registered = electrodes[electrodes["group_name"] != "probeC"]
    assert registered["x"].between(6000, 10000).all() and registered["z"].between(5000, 9500).all()
    inside = registered[registered["location"] != "root"]
    assert inside["y"].between(500, 5000).all()
    acronyms = set(ast.literal_eval(_session_row(1044385384)["structure_acronyms"]))
    assert set(registered["location"]) <= acronyms and "root" in set(registered["location"])
    # The unregistered probe: CCF exactly (0, 0, 0) and no acronym.
    assert session.unregistered_probes == ("probeC",)
    unregistered = electrodes[electrodes["group_name"] == "probeC"]
    assert (unregistered[["x", "y", "z"]] == 0.0).all().all() and (unregistered["location"] == "").all()


# --- units ------------------------------------------------------------------------------------

def test_units_columns_and_ids(units, electrodes, nwb):
    assert list(units.columns) == UNIT_METRICS + ["spike_times", "spike_amplitudes", "waveform_mean"]
    assert "electrodes" not in nwb.units.colnames and "electrode_group" not in nwb.units.colnames
    assert len(units) == N_UNITS * len(PROBES) and units.index.is_unique and units.index.min() > 10**9
    # The only link to the electrodes: peak_channel_id.
    assert units["peak_channel_id"].isin(electrodes.index).all()
    probe_of_peak = electrodes.loc[units["peak_channel_id"], "group_name"].to_numpy()
    np.testing.assert_array_equal(probe_of_peak, np.repeat(PROBES, N_UNITS))
    assert set(units["quality"]) == {"good", "noise"}
    for start in range(0, len(units), N_UNITS):
        probe = units.iloc[start:start + N_UNITS]
        np.testing.assert_array_equal(probe["local_index"], np.arange(N_UNITS))
        assert probe["cluster_id"].is_monotonic_increasing
    assert units[["velocity_above", "velocity_below"]].isna().any().all()  # undefined metrics are NaN
    assert units["presence_ratio"].le(0.99).all() and units["amplitude_cutoff"].le(0.5).all()


def test_spikes(units, nwb):
    for times, amplitudes, rate in zip(units["spike_times"], units["spike_amplitudes"], units["firing_rate"]):
        assert np.all(np.diff(times) >= 0)
        assert times.size == 0 or (times[0] >= 0 and times[-1] <= DURATION)
        assert times.size == amplitudes.size and rate == pytest.approx(times.size / DURATION)
        assert np.all((amplitudes > 1e-6) & (amplitudes < 5e-3))  # volts
    assert units["spike_times"].map(len).sum() / (len(units) * DURATION) == pytest.approx(8.0, rel=0.5)
    # spike_amplitudes says "(s)" though it holds volts (an Allen quirk).
    assert "(s)" in nwb.units["spike_amplitudes"].target.description
    assert nwb.units["spike_times"].target.data.dtype == np.float64


def test_waveforms(units, electrodes):
    waveform = units["waveform_mean"].iloc[0]
    assert waveform.shape == (82, 384)
    peak = electrodes.loc[units["peak_channel_id"].iloc[0], "probe_channel_number"]
    assert np.abs(waveform).max(axis=0).argmax() == pytest.approx(peak, abs=4)
    assert np.abs(waveform).max() < 1e-3  # volts


def test_units_respond_to_flashes(units, images):
    """Visual units fire more just after image onsets than before them."""
    onsets = images.loc[images["omitted"] == 0, "start_time"].to_numpy()
    times = np.sort(np.concatenate(units["spike_times"].to_numpy()))
    after = np.searchsorted(times, onsets + 0.1) - np.searchsorted(times, onsets + 0.03)
    before = np.searchsorted(times, onsets) - np.searchsorted(times, onsets - 0.07)
    assert after.sum() > 1.1 * before.sum()


# --- trials -------------------------------------------------------------------------------------

def test_trial_columns_and_types(trials, nwb):
    assert list(trials.columns) == TRIAL_COLUMNS
    for name in ("is_change", "go", "catch", *OUTCOMES):
        assert trials[name].dtype == bool
    assert trials["change_frame"].dtype == np.int64
    assert len(trials) >= 30


def test_trial_outcomes_are_exclusive_and_consistent(trials):
    assert (trials[OUTCOMES].sum(axis=1) == 1).all()
    assert (trials["go"] == (trials["hit"] | trials["miss"])).all()
    assert (trials["catch"] == (trials["false_alarm"] | trials["correct_reject"])).all()
    assert (trials["is_change"] == (trials["go"] | trials["auto_rewarded"])).all()
    for outcome in ("hit", "miss", "aborted", "auto_rewarded"):
        assert trials[outcome].any(), outcome
    rewarded = trials["hit"] | trials["auto_rewarded"]
    assert (trials["reward_time"].notna() == rewarded).all()
    assert (trials.loc[rewarded, "reward_volume"] <= 0.01).all() and (trials.loc[~rewarded, "reward_volume"] == 0).all()
    assert set(trials.loc[trials["hit"], "reward_volume"]) == {0.005}  # mL
    # No change without an image change, -99 where nothing happened.
    assert ((trials["change_frame"] == -99) == trials["aborted"]).all()
    assert (trials["change_time_no_display_delay"].isna() == trials["aborted"]).all()
    assert ((trials["initial_image_name"] != trials["change_image_name"]) == trials["is_change"]).all()
    np.testing.assert_array_equal(trials["initial_image_name"].iloc[1:], trials["change_image_name"].iloc[:-1])
    assert (trials["start_time"].iloc[1:].to_numpy() > trials["stop_time"].iloc[:-1].to_numpy()).all()
    np.testing.assert_allclose(trials["trial_length"], trials["stop_time"] - trials["start_time"])
    # The auto-rewarded trials open the session, as in the real table.
    assert trials["auto_rewarded"].iloc[:12].sum() == 5 and not trials["auto_rewarded"].iloc[12:].any()


def test_licks_responses_and_rewards(trials, nwb):
    licks = nwb.processing["licking"]["licks"]
    lick_times = licks.timestamps[:]
    for _, trial in trials.iterrows():
        times = np.asarray(trial["lick_times"])
        assert np.isin(times, lick_times).all()
        assert ((times >= trial["start_time"]) & (times <= trial["stop_time"])).all()
        if not trial["aborted"]:
            after = times[times >= trial["change_time_no_display_delay"]]
            assert (after[0] if after.size else np.nan) == pytest.approx(trial["response_time"], nan_ok=True)
        else:
            assert np.isnan(trial["response_time"]) and times.size > 0  # aborted by a lick
    hits = trials[trials["hit"]]
    latency = hits["response_time"] - hits["change_time_no_display_delay"]
    assert latency.between(0.15, 0.8).all()
    rewards = nwb.processing["rewards"]
    np.testing.assert_array_equal(rewards["volume"].timestamps[:], trials["reward_time"].dropna())
    assert rewards["volume"].unit == "mL" and rewards["autorewarded"].unit == "mL"  # "mL" on a boolean
    assert rewards["autorewarded"].data.dtype == bool
    np.testing.assert_array_equal(rewards["autorewarded"].data[:], trials.loc[trials["reward_time"].notna(),
                                                                              "auto_rewarded"])


# --- stimuli ----------------------------------------------------------------------------------

def test_presentation_tables(nwb, session):
    names = {name for name in nwb.intervals if name.endswith("_presentations")}
    assert names == {f"{IMAGE_SET}_presentations", "spontaneous_presentations",
                     "gabor_20_deg_250ms_presentations", "flash_250ms_presentations"}
    timestamps = nwb.processing["stimulus"]["timestamps"]
    for name in names:
        table = nwb.intervals[name]
        assert list(table.colnames) == PRESENTATION_COLUMNS
        frame = table.to_dataframe()
        assert frame["start_time"].is_monotonic_increasing
        references = table["timeseries"].target.data[:]
        np.testing.assert_array_equal(references["idx_start"], frame["start_frame"])
        np.testing.assert_array_equal(references["count"], frame["end_frame"] - frame["start_frame"])
        np.testing.assert_allclose(frame["start_time"], timestamps.timestamps[frame["start_frame"].to_numpy()])
        assert frame["tags"].map(lambda tags: list(tags) == ["stimulus_time_interval"]).all()
    assert np.diff(timestamps.timestamps[:]).mean() == pytest.approx(1 / 60, rel=1e-3)


def test_natural_image_presentations(images, session):
    assert set(images["stimulus_block"]) == {0, 5} and set(images["stimulus_name"]) == {IMAGE_SET}
    active, replay = images[images["stimulus_block"] == 0], images[images["stimulus_block"] == 5]
    assert active["active"].all() and not replay["active"].any()
    # The replay shows the same images with the same timing, later.
    np.testing.assert_array_equal(active["image_name"], replay["image_name"])
    np.testing.assert_array_equal(np.diff(active["start_frame"]), np.diff(replay["start_frame"]))
    assert set(np.diff(active["start_frame"])) == {45}  # an image every 750 ms
    shown = active[active["omitted"] == 0]
    assert shown["duration"].between(0.249, 0.251).all() and (shown["end_frame"] - shown["start_frame"] == 15).all()
    # Nullable booleans are floats; NaN where undefined (novelty of an omitted flash).
    omitted = active[active["omitted"] == 1]
    assert len(omitted) > 0 and (omitted["image_name"] == "omitted").all() and omitted["is_image_novel"].isna().all()
    for column in ("is_change", "omitted", "rewarded", "is_image_novel"):
        assert images[column].dtype == np.float64
    assert images["is_sham_change"].dtype == bool
    # Columns of other stimuli: "N/A" and NaN.
    assert images[["position_x", "orientation", "color", "contrast"]].isna().all().all()


def test_changes_line_up_with_trials(trials, images, session):
    active = images[images["stimulus_block"] == 0].set_index("start_frame")
    changes = trials[trials["is_change"]]
    at_change = active.loc[changes["change_frame"]]
    assert (at_change["is_change"] == 1).all()
    np.testing.assert_array_equal(at_change["image_name"], changes["change_image_name"])
    delay = at_change["start_time"].to_numpy() - changes["change_time_no_display_delay"].to_numpy()
    np.testing.assert_allclose(delay, session.monitor_delay_s, atol=1e-9)
    assert 0.015 < session.monitor_delay_s < 0.025  # the stimulus table is ~20 ms after the trials
    assert set(active.index[active["is_change"] == 1]) == set(changes["change_frame"])
    np.testing.assert_array_equal(active.loc[changes["change_frame"], "flashes_since_change"], 0)
    rewarded = changes[changes["hit"] | changes["auto_rewarded"]]
    assert set(active.index[active["rewarded"] == 1]) == set(rewarded["change_frame"])
    catch = trials[trials["catch"]]
    assert (active.loc[catch["change_frame"], "is_sham_change"]).all()
    assert active["is_sham_change"].sum() == len(catch)
    np.testing.assert_array_equal(active.loc[catch["change_frame"], "image_name"], catch["initial_image_name"])
    ids = active["trials_id"].to_numpy()
    assert ids.min() == 0 and ids.max() == len(trials) - 1 and (np.diff(ids) >= 0).all()


def test_receptive_field_flash_and_spontaneous_presentations(nwb):
    gabor = nwb.intervals["gabor_20_deg_250ms_presentations"].to_dataframe()
    assert set(gabor["stimulus_block"]) == {2} and not gabor["active"].any()
    grid = set(np.arange(-40.0, 41.0, 10.0))
    assert set(gabor["position_x"]) <= grid and set(gabor["position_y"]) <= grid
    assert set(gabor["orientation"]) == {0.0, 45.0, 90.0} and set(gabor["contrast"]) == {0.8}
    assert set(gabor["phase"]) == {0.0} and set(gabor["spatial_frequency"]) == {0.08}
    assert gabor["duration"].between(0.249, 0.251).all()
    assert (gabor["image_name"] == "N/A").all() and gabor["is_change"].isna().all()
    assert (gabor["trials_id"] == -99).all() and (gabor["flashes_since_change"] == -99).all()
    flash = nwb.intervals["flash_250ms_presentations"].to_dataframe()
    assert set(flash["stimulus_block"]) == {4} and set(flash["color"]) == {-1.0, 1.0}
    spontaneous = nwb.intervals["spontaneous_presentations"].to_dataframe()
    assert list(spontaneous["stimulus_block"]) == [1, 3]
    assert spontaneous["stop_time"].iloc[0] == gabor["start_time"].iloc[0]
    assert spontaneous["stop_time"].iloc[1] == flash["start_time"].iloc[0]


def test_drop_empty_presentation_columns(cre_nwb):
    gabor = cre_nwb.intervals["gabor_20_deg_250ms_presentations"].colnames
    images = cre_nwb.intervals[f"{IMAGE_SET}_presentations"].colnames
    spontaneous = cre_nwb.intervals["spontaneous_presentations"].colnames
    assert "image_name" not in gabor and "orientation" in gabor
    assert "position_x" not in images and "image_name" in images
    assert "is_change" not in spontaneous and "trials_id" in spontaneous


def test_templates(nwb, images):
    template = nwb.stimulus_template[IMAGE_SET]
    assert template.data.shape == (8, 32, 48) and template.data.dtype == np.uint8
    unwarped = template.unwarped[:]
    assert unwarped.shape == (8, 32, 48) and np.isnan(unwarped).any() and np.nanmax(unwarped) <= 255 + 1e-9
    names = set(template.control_description[:])
    assert set(images["image_name"]) - {"omitted"} <= names and len(names) == 8


# --- behaviour ----------------------------------------------------------------------------------

def test_running(nwb):
    running = nwb.processing["running"]
    speed = running["speed"]
    assert speed.unit == "cm/s" and running["speed_unfiltered"].unit == "cm/s"
    assert np.diff(speed.timestamps[:]).mean() == pytest.approx(1 / 60, rel=1e-3)
    assert 0 < np.mean(speed.data[:]) < 40
    assert {"v_sig", "v_in"} <= set(nwb.acquisition)
    assert 0 <= np.min(nwb.acquisition["v_sig"].data[:]) and np.max(nwb.acquisition["v_sig"].data[:]) < 5.0
    np.testing.assert_array_equal(running["dx"].timestamps[:], speed.timestamps[:])


def test_lick_frames_index_the_stimulus_frames(nwb, session):
    licks = nwb.processing["licking"]["licks"]
    frames = licks.data[:]
    assert np.issubdtype(frames.dtype, np.integer)
    stimulus = nwb.processing["stimulus"]["timestamps"].timestamps[:]
    np.testing.assert_allclose(licks.timestamps[:], stimulus[frames] - session.monitor_delay_s)


def test_eye_tracking(nwb):
    eye = nwb.acquisition["EyeTracking"]
    pupil = eye.pupil_tracking
    assert pupil.unit == "meters" and np.nanmedian(pupil.data[:, 0]) > 100  # says meters, holds pixels
    times = eye.eye_tracking.timestamps[:]
    assert np.diff(times).mean() == pytest.approx(1 / 60, rel=1e-3)
    np.testing.assert_array_equal(pupil.timestamps[:], times)
    blink = eye.likely_blink.data[:]
    assert blink.dtype == bool and 0 < blink.mean() < 0.3
    for series in (eye.eye_tracking, pupil, eye.corneal_reflection_tracking):
        assert series.data.shape == (times.size, 2)
        assert np.isnan(series.area[:][blink]).all() and np.isfinite(series.area_raw[:]).all()
        assert np.isfinite(series.area[:][~blink]).all()
    area = pupil.area[:][~blink]
    np.testing.assert_allclose(area, np.pi * np.maximum(pupil.width[:], pupil.height[:])[~blink] ** 2)


def test_optotagging(nwb):
    module = nwb.processing["optotagging"]
    table = module["optogenetic_stimulation"].to_dataframe()
    assert {"condition", "level", "stimulus_name", "duration"} <= set(table.columns)
    assert set(table["stimulus_name"]) <= {"pulse", "raised_cosine"} and table["level"].between(0, 5).all()
    np.testing.assert_allclose(table["stop_time"] - table["start_time"], table["duration"])
    np.testing.assert_array_equal(module["optotagging"].timestamps[:], table["start_time"])
    assert table["start_time"].min() > nwb.intervals["flash_250ms_presentations"]["stop_time"][-1]


# --- probe files ------------------------------------------------------------------------------

def test_probe_file(probe_nwb, session, electrodes):
    probe_id = session.probe_ids["probeA"]
    assert probe_nwb.identifier == str(probe_id)
    assert probe_nwb.session_id == "None"  # AllenSDK formats a missing session id
    assert set(probe_nwb.devices) == {"probeA"}
    lfp_electrodes = probe_nwb.electrodes.to_dataframe()
    np.testing.assert_array_equal(lfp_electrodes["probe_channel_number"], session.lfp_channels["probeA"])
    assert lfp_electrodes.index.isin(electrodes.index).all()
    series = probe_nwb.acquisition[f"probe_{probe_id}_lfp"][f"probe_{probe_id}_lfp_data"]
    assert series.data.dtype == np.float32 and series.data.shape[1] == 16 and series.unit == "volts"
    timestamps = series.timestamps[:]
    rate = 1.0 / np.diff(timestamps).mean()
    assert rate == pytest.approx(1250.0, rel=1e-4) and rate != 1250.0  # ~1250 Hz with a drift, not 2500
    assert probe_nwb.electrode_groups["probeA"].lfp_sampling_rate == 2500.0
    assert series.data.shape[0] == timestamps.size and LFP_DURATION - 0.01 < timestamps[-1] <= LFP_DURATION
    data = series.data[:12500]
    assert 10e-6 < data.std() < 500e-6  # tens of µV
    # Mostly low frequencies: neighbouring samples are strongly correlated.
    centered = data - data.mean(axis=0)
    assert np.mean(centered[1:] * centered[:-1]) / np.mean(centered ** 2) > 0.5


def test_current_source_density(probe_nwb):
    csd = probe_nwb.processing["current_source_density"]["ecephys_csd"]
    assert type(csd).__name__ == "EcephysCSD"
    assert csd.time_series.name == "current_source_density"
    assert csd.virtual_electrode_x_positions.dtype == np.float32
    assert csd.virtual_electrode_x_positions__unit == csd.virtual_electrode_y_positions__unit == "um"
    assert csd.time_series.data.shape == (csd.time_series.timestamps.size, csd.virtual_electrode_y_positions.size)


def test_other_options_and_an_unknown_session_id(tmp_path):
    made = make_vbn_session(tmp_path, ecephys_session_id=1234, probes=("probeD",), n_units_per_probe=3,
                            duration_s=90.0, lfp_channels=8, lfp_duration_s=10.0, csd=False, templates=False,
                            optotagging=False, waveforms=False, mouse_id="999", sex="M", seed=3)
    first_row = pd.read_csv(_DATA + "/vbn_ecephys_sessions.csv").iloc[0]
    probe_id = made.probe_ids["probeD"]
    with h5py.File(made.probe_files["probeD"], "r") as f:
        series = f[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
        assert series["timestamps"][-1] < 10.0 and series["data"].shape[1] == 8
        assert "current_source_density" not in f["processing"]
    with h5py.File(made.session_file, "r") as f:
        assert "optotagging" not in f["processing"] and not len(f["stimulus/templates"])
        assert "waveform_mean" not in f["units"] and made.unregistered_probes == ()
        # An id not in the session table takes its first row, with the overrides given.
        assert f["identifier"][()].decode() == "1234"
        assert f["general/subject/subject_id"][()].decode() == "999" and f["general/subject/sex"][()].decode() == "M"
        assert f["session_description"][()].decode() == first_row["session_type"]
        assert f["general/metadata"].attrs["behavior_session_id"] == 1234 + 23_048


def test_without_lfp_the_groups_say_so(cre_session, cre_nwb):
    assert cre_session.probe_files == {} and cre_session.lfp_channels == {}
    group = cre_nwb.electrode_groups["probeA"]
    assert not group.has_lfp_data and np.isnan(group.lfp_sampling_rate)


# --- determinism, sizes, arguments ------------------------------------------------------------

def _arrays(made: VbnSession) -> dict[str, np.ndarray]:
    """Datasets of both files, read with h5py (quicker than building the containers)."""
    paths = ["units/spike_times", "units/spike_amplitudes", "units/waveform_mean", "intervals/trials/start_time",
             f"intervals/{IMAGE_SET}_presentations/image_name", "acquisition/EyeTracking/pupil_tracking/area_raw",
             "processing/running/speed/data", "general/extracellular_ephys/electrodes/x"]
    with h5py.File(made.session_file, "r") as f:
        out = {path: f[path][:] for path in paths}
    probe_id = made.probe_ids["probeA"]
    with h5py.File(made.probe_files["probeA"], "r") as f:
        out["lfp"] = f[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data/data"][:]
    return out


def test_same_seed_same_arrays(tmp_path):
    kwargs = {"probes": ("probeA",), "n_units_per_probe": 3, "lfp": True, "lfp_channels": 2, "duration_s": 60.0,
              "templates": False}
    first = _arrays(quick(tmp_path / "a", **kwargs))
    second = _arrays(quick(tmp_path / "b", **kwargs))
    other = _arrays(quick(tmp_path / "c", **kwargs, seed=3))
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert first["lfp"].shape == (pytest.approx(60.0 * 1250, rel=0.002), 2)  # by default the whole recording
    assert not np.array_equal(first["units/spike_times"], other["units/spike_times"])
    assert not np.array_equal(first["lfp"], other["lfp"])


def test_sizes_scale_with_the_arguments(tmp_path):
    small = quick(tmp_path / "small", probes=("probeA",), n_units_per_probe=4, duration_s=120.0)
    large = quick(tmp_path / "large", probes=("probeA", "probeB", "probeE"), n_units_per_probe=12,
                  duration_s=480.0)
    assert (small.n_units, large.n_units) == (4, 36)
    assert large.n_trials >= 2.5 * small.n_trials
    assert large.n_spikes / (36 * 480) == pytest.approx(small.n_spikes / (4 * 120), rel=0.8)
    with h5py.File(large.session_file, "r") as f:
        assert f["general/extracellular_ephys/electrodes/id"].shape == (3 * 384,)
        assert f["units/id"].shape == (36,) and f["units/spike_times"].shape == (large.n_spikes,)
        assert f["intervals/trials/id"].shape == (large.n_trials,) and f["intervals/trials/stop_time"][-1] < 480.0


@pytest.mark.parametrize("kwargs, match", [
    ({"probes": ("probeG",)}, "probes"), ({"probes": ()}, "probes"), ({"probes": ("probeA", "probeA")}, "probes"),
    ({"n_units_per_probe": 0}, "n_units"), ({"duration_s": 30.0}, "duration"), ({"lfp_channels": 0}, "lfp_channels"),
    ({"unregistered_probes": ("probeF",)}, "unregistered"), ({"lfp_duration_s": -1.0}, "lfp_duration")])
def test_invalid_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_vbn_session(tmp_path, **kwargs)


def test_refuses_to_overwrite(cre_session):
    with pytest.raises(FileExistsError):
        quick(cre_session.session_file.parent, ecephys_session_id=1043752325, probes=("probeA",))
