"""The synthetic IBL session generator writes what real IBL sessions hold, consistently."""

from __future__ import annotations

import json
import re
import uuid
from importlib import resources

import numpy as np
import pandas as pd
import pytest
import yaml
from one.alf import io as alfio
from one.alf.path import ALFPath

from nwbridge.testing import IBL_LABS, make_ibl_session

STEP = 2 * np.pi / 1024
FPS = {"left": 60.0, "right": 150.0, "body": 30.0}
DURATION = 1500.0
REVISION = "2024-05-06"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A mid-sized session with every option that adds files (read-only)."""
    root = tmp_path_factory.mktemp("ibl")
    return make_ibl_session(root, n_trials=150, duration_s=DURATION, seed=3, revision=REVISION,
                            videos=True)


@pytest.fixture(scope="module")
def trials(session):
    table = pd.read_parquet(session / "alf" / "_ibl_trials.table.pqt")
    for name in ("stimOff_times", "goCueTrigger_times", "stimOnTrigger_times",
                 "stimOffTrigger_times", "stimFreezeTrigger_times", "quiescencePeriod"):
        table[name] = np.load(session / "alf" / f"_ibl_trials.{name}.npy")
    return table


@pytest.fixture(scope="module")
def wheel(session):
    alf = session / "alf"
    return {name: np.load(alf / f"_ibl_{name}.npy") for name in
            ("wheel.position", "wheel.timestamps", "wheelMoves.intervals", "wheelMoves.peakAmplitude")}


def small_session(root, **kwargs):
    kwargs = {"n_trials": 30, "duration_s": 400.0, "seed": 1, **kwargs}
    return make_ibl_session(root, **kwargs)


def relative_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- layout and determinism ---------------------------------------------------------------

def test_session_path_follows_the_one_cache_layout(session, tmp_path):
    assert session.parts[-5:] == ("cortexlab", "Subjects", "KS055", "2021-05-10", "001")
    path = small_session(tmp_path, lab="mainenlab", subject="ZFM-01935", date="2021-02-05",
                         number=2, cameras=(), passive=False)
    assert path == tmp_path / "mainenlab" / "Subjects" / "ZFM-01935" / "2021-02-05" / "002"


def test_one_sees_every_file_as_a_dataset(session):
    datasets = {p.as_posix() for p in alfio.iter_datasets(session)}
    files = set(relative_files(session)) - {"alyx_session.json"}  # Alyx metadata, not ALF
    assert datasets == files
    assert f"alf/#{REVISION}#/_ibl_trials.table.pqt" in datasets
    assert "raw_passive_data/_iblrig_RFMapStim.raw.bin" in datasets
    assert "raw_video_data/_iblrig_leftCamera.raw.mp4" in datasets


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside ONE, under pandas 3
def test_one_loads_objects_with_consistent_lengths(session):
    trials = alfio.load_object(session / "alf", "trials", namespace="ibl")
    assert trials["intervals"].shape == (150, 2)
    assert trials["intervals_bpod"].shape == (150, 2)
    assert alfio.check_dimensions(trials) == 0
    assert alfio.check_dimensions(alfio.load_object(session / "alf", "wheel")) == 0
    assert alfio.check_dimensions(alfio.load_object(session / "alf", "wheelMoves")) == 0


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    first = small_session(tmp_path / "a", revision=REVISION, uuid_extras=True)
    second = small_session(tmp_path / "b", revision=REVISION, uuid_extras=True)
    assert relative_files(first) == relative_files(second)
    for name in relative_files(first):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name

    plain = small_session(tmp_path / "c")  # seed 1 without UUIDs, to compare names directly
    other = small_session(tmp_path / "d", seed=2)
    for name in ("_ibl_trials.table.pqt", "_ibl_wheel.timestamps.npy", "_ibl_leftCamera.dlc.pqt",
                 "_ibl_passiveGabor.table.csv"):
        assert (plain / "alf" / name).read_bytes() != (other / "alf" / name).read_bytes(), name


def test_default_eid_is_derived_from_the_session_and_seed(tmp_path):
    path = small_session(tmp_path, cameras=(), passive=False, seed=5)
    eid = json.loads((path / "alyx_session.json").read_text())["session"]["id"]
    assert eid == str(uuid.uuid5(uuid.NAMESPACE_URL, "nwbridge-testing/cortexlab/KS055/2021-05-10/1/5"))


# --- trials ----------------------------------------------------------------------------------

ORDER = [  # (earlier, later, strictly)
    ("intervals_0", "stimOnTrigger_times", True), ("stimOnTrigger_times", "stimOn_times", True),
    ("stimOn_times", "goCueTrigger_times", True), ("goCueTrigger_times", "goCue_times", False),
    ("goCue_times", "firstMovement_times", True), ("firstMovement_times", "response_times", True),
    ("response_times", "feedback_times", False), ("feedback_times", "stimOffTrigger_times", True),
    ("stimOffTrigger_times", "stimOff_times", True), ("stimOff_times", "intervals_1", True),
]


@pytest.mark.parametrize(("earlier", "later", "strict"), ORDER)
def test_trial_events_are_in_task_order(trials, earlier, later, strict):
    a, b = trials[earlier].to_numpy(), trials[later].to_numpy()
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() >= len(trials) - 10
    assert np.all(a[both] < b[both]) if strict else np.all(a[both] <= b[both])


def test_trials_follow_each_other_inside_the_session(trials):
    assert np.all(trials["intervals_0"].to_numpy()[1:] > trials["intervals_1"].to_numpy()[:-1])
    assert trials["intervals_0"].iloc[0] > 0
    assert trials["intervals_1"].iloc[-1] < DURATION
    per_trial = (trials["intervals_1"].iloc[-1] - trials["intervals_0"].iloc[0]) / len(trials)
    assert 4.5 < per_trial < 9


def test_trial_dtypes_and_values(trials):
    assert trials["choice"].dtype == np.int64
    assert trials["feedbackType"].dtype == np.int64
    floats = trials.columns.drop(["choice", "feedbackType"])
    assert all(trials[name].dtype == np.float64 for name in floats)
    assert set(trials["choice"]) <= {-1, 0, 1}
    assert set(trials["feedbackType"]) == {-1, 1}
    rewarded = trials["feedbackType"] == 1
    assert np.all(trials["rewardVolume"][rewarded].between(1.5, 3.0))
    assert np.all(trials["rewardVolume"][~rewarded] == 0)
    assert trials["quiescencePeriod"].between(0.2, 0.8).all()


def test_contrast_is_on_exactly_one_side(trials):
    left, right = trials["contrastLeft"], trials["contrastRight"]
    assert np.all(left.isna() ^ right.isna())
    shown = left.fillna(right)
    assert set(shown) <= {1.0, 0.25, 0.125, 0.0625, 0.0}
    # A left stimulus is answered by a clockwise turn (choice +1).
    correct = np.where(left.notna(), 1, -1)
    went = trials["choice"] != 0
    assert np.array_equal(trials["feedbackType"][went] == 1, (trials["choice"] == correct)[went])


def test_nogo_trials_time_out_after_60_s(trials):
    nogo = trials[trials["choice"] == 0]
    assert len(nogo) >= 1
    assert nogo["firstMovement_times"].isna().all()
    assert (nogo["feedbackType"] == -1).all()
    np.testing.assert_allclose(nogo["response_times"] - nogo["stimOn_times"], 60.0)
    assert nogo["stimFreezeTrigger_times"].isna().all()


def test_extraction_gaps_as_in_real_sessions(trials):
    went = trials["choice"] != 0
    assert 1 <= trials["firstMovement_times"][went].isna().sum() <= 10
    assert trials["stimOff_times"].isna().sum() == 1


def test_probability_left_blocks(tmp_path):
    path = make_ibl_session(tmp_path, n_trials=1000, cameras=(), passive=False, seed=11)
    table = pd.read_parquet(path / "alf" / "_ibl_trials.table.pqt")
    p = table["probabilityLeft"].to_numpy()
    assert np.all(p[:90] == 0.5)
    assert set(p[90:]) == {0.2, 0.8}
    change = np.flatnonzero(np.diff(p[90:])) + 1
    lengths = np.diff(np.concatenate([[0], change]))  # every block but the last, cut short
    assert len(lengths) >= 8
    assert lengths.min() >= 20 and lengths.max() <= 100
    assert np.all(p[90:][change] != p[90:][change - 1])  # blocks alternate
    left = table["contrastLeft"].notna().to_numpy()
    assert left[p == 0.8].mean() > 0.7
    assert left[p == 0.2].mean() < 0.3


def test_bpod_intervals_are_the_trials_on_another_clock(session, trials):
    bpod = np.load(session / "alf" / "_ibl_trials.intervals_bpod.npy")
    fpga = trials[["intervals_0", "intervals_1"]].to_numpy()
    slope, offset = np.polyfit(fpga.ravel(), bpod.ravel(), 1)
    assert slope != 1 and abs(slope - 1) < 1e-4
    np.testing.assert_allclose(fpga.ravel() * slope + offset, bpod.ravel(), atol=1e-9)


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_legacy_layout_has_no_table(tmp_path):
    path = small_session(tmp_path, legacy_trials=True, cameras=())
    names = {p.name for p in (path / "alf").iterdir() if p.name.startswith("_ibl_trials.")}
    assert "_ibl_trials.table.pqt" not in names
    expected = {"intervals", "goCue_times", "response_times", "choice", "stimOn_times",
                "contrastLeft", "contrastRight", "feedback_times", "feedbackType", "rewardVolume",
                "probabilityLeft", "firstMovement_times", "stimOff_times", "goCueTrigger_times",
                "stimOnTrigger_times", "stimOffTrigger_times", "stimFreezeTrigger_times",
                "quiescencePeriod", "intervals_bpod"}
    assert names == {f"_ibl_trials.{name}.npy" for name in expected}
    trials = alfio.load_object(path / "alf", "trials")
    assert trials["intervals"].shape == (30, 2)
    assert trials["choice"].dtype == np.int64
    assert alfio.check_dimensions(trials) == 0


# --- wheel and licks -------------------------------------------------------------------------

def test_wheel_trace(wheel):
    position, times = wheel["wheel.position"], wheel["wheel.timestamps"]
    assert position.dtype == times.dtype == np.float64
    assert position.shape == times.shape and len(times) > 1000
    assert np.all(np.diff(times) > 0)
    assert times[0] >= 0 and times[-1] <= DURATION
    counts = position / STEP
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
    # Unwrapped: the trace moves by one encoder count at a time, never jumps by 2 pi.
    assert np.abs(np.diff(np.round(counts))).max() == 1


def test_wheel_moves_describe_the_trace(wheel):
    position, times = wheel["wheel.position"], wheel["wheel.timestamps"]
    intervals, peaks = wheel["wheelMoves.intervals"], wheel["wheelMoves.peakAmplitude"]
    assert intervals.shape == (len(peaks), 2)
    assert np.all(intervals[:, 0] < intervals[:, 1])
    assert np.all(intervals[1:, 0] > intervals[:-1, 1])
    first = np.searchsorted(times, intervals[:, 0], side="right") - 1
    last = np.searchsorted(times, intervals[:, 1], side="right") - 1
    for peak, i, j in zip(peaks, first, last):
        displacement = position[i:j + 1] - position[i]
        assert peak == pytest.approx(displacement[np.argmax(np.abs(displacement))])
    # The wheel is still outside the movements.
    moving = np.zeros(len(times), bool)
    for i, j in zip(first, last):
        moving[i + 1:j + 1] = True
    assert np.all(np.diff(position)[~moving[1:]] == 0)


def test_wheel_moves_with_the_choice(trials, wheel):
    intervals, peaks = wheel["wheelMoves.intervals"], wheel["wheelMoves.peakAmplitude"]
    for _, trial in trials[trials["choice"] != 0].iterrows():
        inside = (intervals[:, 0] > trial["stimOn_times"]) & (intervals[:, 1] <= trial["response_times"])
        assert inside.sum() == 1
        assert np.sign(peaks[inside][0]) == -trial["choice"]  # CW (+1) turns lower the position
        if np.isfinite(trial["firstMovement_times"]):
            assert intervals[inside, 0][0] == trial["firstMovement_times"]
    for _, trial in trials[trials["choice"] == 0].iterrows():
        during = (intervals[:, 1] > trial["stimOn_times"]) & (intervals[:, 0] < trial["response_times"])
        assert not during.any()
    assert len(peaks) > (trials["choice"] != 0).sum()  # plus spontaneous moves


def test_licks_follow_rewards(session, trials):
    licks = np.load(session / "alf" / "licks.times.npy")
    assert licks.dtype == np.float64 and np.all(np.diff(licks) >= 0)
    assert licks[0] > 0 and licks[-1] < DURATION
    for feedback in trials.loc[trials["feedbackType"] == 1, "feedback_times"]:
        burst = licks[(licks > feedback) & (licks <= feedback + 1.3)]
        assert len(burst) >= 4
        assert 1 / 10.5 < np.median(np.diff(burst)) < 1 / 7.5
    after_errors = trials.loc[trials["feedbackType"] == -1, "feedback_times"].to_numpy()
    counts = [np.sum((licks > t) & (licks <= t + 1.0)) for t in after_errors]
    assert np.mean(counts) < 1


# --- cameras ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["left", "right", "body"])
def test_camera_times_and_pose_tables(session, name):
    alf = session / "alf"
    times = np.load(alf / f"_ibl_{name}Camera.times.npy")
    assert times.dtype == np.float64 and np.all(np.diff(times) > 0)
    assert times[0] >= 0 and times[-1] <= DURATION
    assert times[-1] - times[0] > 0.99 * DURATION  # the whole session
    assert np.median(np.diff(times)) == pytest.approx(1 / FPS[name], rel=1e-3)

    parts = ["tail_start"] if name == "body" else [
        "nose_tip", "paw_l", "paw_r", "pupil_top_r", "pupil_bottom_r", "pupil_left_r",
        "pupil_right_r", "tongue_end_l", "tongue_end_r", "tube_top", "tube_bottom"]
    dlc = pd.read_parquet(alf / f"_ibl_{name}Camera.dlc.pqt")
    lp = pd.read_parquet(alf / f"_ibl_{name}Camera.lightningPose.pqt")
    assert 1 <= len(times) - len(dlc) <= 5  # the real quirk: more times than pose rows
    assert len(lp) == len(dlc)
    assert list(dlc.columns) == [f"{p}_{c}" for p in parts for c in ("x", "y", "likelihood")]
    extra = ("x_ens_median", "y_ens_median", "x_ens_var", "y_ens_var", "x_posterior_var",
             "y_posterior_var")
    assert set(lp.columns) == set(dlc.columns) | {f"{p}_{c}" for p in parts for c in extra}
    assert (dlc.dtypes == np.float64).all() and (lp.dtypes == np.float64).all()
    for part in parts:
        likelihood = dlc[f"{part}_likelihood"]
        assert likelihood.between(0, 1).all()
        assert np.array_equal(dlc[f"{part}_x"].isna(), likelihood < 0.9)
        assert np.array_equal(dlc[f"{part}_y"].isna(), likelihood < 0.9)
        assert lp[f"{part}_x"].notna().all()
        assert (lp[f"{part}_x_ens_var"] > 0).all()

    motion = np.load(alf / f"{name}Camera.ROIMotionEnergy.npy")
    assert motion.shape == times.shape and motion.dtype == np.float64
    roi = np.load(alf / f"{name}ROIMotionEnergy.position.npy")
    assert roi.shape == (4,) and roi.dtype == np.float64
    assert not (alf / f"_ibl_{name}Camera.ROIMotionEnergy.npy").exists()


@pytest.mark.parametrize("name", ["left", "right"])
def test_pupil_features(session, name):
    alf = session / "alf"
    features = pd.read_parquet(alf / f"_ibl_{name}Camera.features.pqt")
    dlc = pd.read_parquet(alf / f"_ibl_{name}Camera.dlc.pqt", columns=["nose_tip_x"])
    assert list(features.columns) == ["pupilDiameter_raw", "pupilDiameter_smooth"]
    assert len(features) == len(dlc)
    assert 0 < features["pupilDiameter_raw"].isna().mean() < 0.1
    assert features["pupilDiameter_smooth"].notna().all()
    assert 3 < features["pupilDiameter_smooth"].median() < 30
    assert not (alf / "_ibl_bodyCamera.features.pqt").exists()


def test_tongue_is_seen_while_licking(session):
    alf = session / "alf"
    times = np.load(alf / "_ibl_leftCamera.times.npy")
    dlc = pd.read_parquet(alf / "_ibl_leftCamera.dlc.pqt", columns=["tongue_end_l_likelihood"])
    licks = np.load(alf / "licks.times.npy")
    # The pose rows belong to the last frame times (the video lost its first frames).
    seen = times[len(times) - len(dlc):][dlc["tongue_end_l_likelihood"].to_numpy() >= 0.9]
    since_lick = seen - licks[np.searchsorted(licks, seen, side="right") - 1]
    assert len(seen) > 0 and since_lick.max() < 0.1


def test_videos_are_placeholder_mp4s(session):
    for name in FPS:
        data = (session / "raw_video_data" / f"_iblrig_{name}Camera.raw.mp4").read_bytes()
        assert data[4:8] == b"ftyp"


def test_camera_and_pose_selection(tmp_path):
    path = small_session(tmp_path, cameras=("body",), pose=("lightningPose",))
    names = {p.name for p in (path / "alf").iterdir()}
    assert "_ibl_bodyCamera.lightningPose.pqt" in names
    assert not any("dlc" in n or "leftCamera" in n or "rightCamera" in n for n in names)
    description = yaml.safe_load((path / "_ibl_experiment.description.yaml").read_text())
    assert list(description["devices"]["cameras"]) == ["body"]


# --- passive protocol ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def periods(session):
    return pd.read_csv(session / "alf" / "_ibl_passivePeriods.intervalsTable.csv", index_col=0)


def test_passive_periods_table(session, periods, trials):
    header = (session / "alf" / "_ibl_passivePeriods.intervalsTable.csv").read_text().splitlines()[0]
    assert header == ",passiveProtocol,spontaneousActivity,RFM,taskReplay"
    assert list(periods.index) == ["start", "stop"]
    start, stop = periods.loc["start"], periods.loc["stop"]
    assert start["passiveProtocol"] > trials["intervals_1"].iloc[-1]
    assert (start["passiveProtocol"] <= start["spontaneousActivity"] < stop["spontaneousActivity"]
            < start["RFM"] < stop["RFM"] < start["taskReplay"] < stop["taskReplay"]
            <= stop["passiveProtocol"] <= DURATION)
    # This session is too short for the full 300 s periods, so they shrink alike.
    lengths = stop - start
    assert 30 < lengths["spontaneousActivity"] < 300
    assert lengths["RFM"] == pytest.approx(lengths["spontaneousActivity"])


def test_full_passive_periods_when_there_is_time(tmp_path):
    path = small_session(tmp_path, duration_s=None, cameras=())
    periods = pd.read_csv(path / "alf" / "_ibl_passivePeriods.intervalsTable.csv", index_col=0)
    lengths = periods.loc["stop"] - periods.loc["start"]
    assert lengths["spontaneousActivity"] == pytest.approx(300)
    assert lengths["RFM"] == pytest.approx(300)
    assert lengths["taskReplay"] > 200


def test_passive_stims_are_nan_padded(session, periods):
    stims = pd.read_csv(session / "alf" / "_ibl_passiveStims.table.csv")
    assert list(stims.columns) == ["valveOn", "valveOff", "toneOn", "toneOff", "noiseOn", "noiseOff"]
    counts = stims.notna().sum()
    assert len(set(counts)) > 1 and counts.min() >= 1
    for kind in ("valve", "tone", "noise"):
        on, off = stims[f"{kind}On"].dropna(), stims[f"{kind}Off"].dropna()
        assert len(on) == len(off) and (off.to_numpy() > on.to_numpy()).all()
        assert stims[f"{kind}On"].isna().sum() == len(stims) - len(on)  # padding is at the end
        assert on.min() > periods.loc["start", "taskReplay"]
        assert off.max() < periods.loc["stop", "taskReplay"]


def test_passive_gabor_replays_a_real_protocol(session, periods):
    gabor = pd.read_csv(session / "alf" / "_ibl_passiveGabor.table.csv")
    assert list(gabor.columns) == ["start", "stop", "position", "contrast", "phase"]
    np.testing.assert_allclose(gabor["stop"] - gabor["start"], 0.3, atol=0.005)
    assert gabor["start"].min() > periods.loc["start", "taskReplay"]
    assert gabor["stop"].max() < periods.loc["stop", "taskReplay"]
    assert np.all(gabor["start"].to_numpy()[1:] > gabor["stop"].to_numpy()[:-1])
    source = resources.files("nwbridge.testing").joinpath("data", "passiveChoiceWorld_trials_fixtures.pqt")
    with source.open("rb") as handle:
        protocol = pd.read_parquet(handle)
    real = protocol[protocol["stim_type"] == "G"].sort_values(["session_id", "trial_num"])
    matches = [
        sid for sid, rows in real.groupby("session_id")
        if np.allclose(rows["stim_phase"].to_numpy()[: len(gabor)], gabor["phase"])
        and np.array_equal(rows["position"].to_numpy()[: len(gabor)], gabor["position"])
        and np.array_equal(rows["contrast"].to_numpy()[: len(gabor)], gabor["contrast"])
    ]
    assert len(matches) == 1


def test_receptive_field_map(session, periods):
    times = np.load(session / "alf" / "_ibl_passiveRFM.times.npy")
    frames = np.fromfile(session / "raw_passive_data" / "_iblrig_RFMapStim.raw.bin", dtype=np.uint8)
    assert frames.size == len(times) * 15 * 15
    frames = frames.reshape(len(times), 15, 15)
    assert set(np.unique(frames)) == {0, 128, 255}
    assert np.mean(frames != 128) < 0.05
    assert np.all(np.diff(times) > 0)
    assert times[0] > periods.loc["start", "RFM"] and times[-1] < periods.loc["stop", "RFM"]


# --- session length -----------------------------------------------------------------------------

def test_too_short_duration_raises_and_states_the_minimum(tmp_path):
    with pytest.raises(ValueError, match="too short for 30 trials and the passive protocol") as error:
        small_session(tmp_path / "a", duration_s=150, cameras=())
    minimum = float(re.search(r"at least ([0-9.]+) s", str(error.value)).group(1))
    with pytest.raises(ValueError):
        small_session(tmp_path / "b", duration_s=minimum - 0.5, cameras=())
    small_session(tmp_path / "c", duration_s=minimum + 0.5, cameras=())
    with pytest.raises(ValueError, match="too short for 30 trials"):
        small_session(tmp_path / "d", duration_s=100, passive=False)


def test_everything_is_inside_the_session(session):
    for path in (session / "alf").glob("*.npy"):
        if "times" in path.name or "timestamps" in path.name or "intervals" in path.name:
            if "bpod" in path.name:
                continue
            values = np.load(path)
            assert np.nanmin(values) >= 0 and np.nanmax(values) <= DURATION, path.name


# --- revisions, UUIDs, metadata ------------------------------------------------------------------

def test_revision_differs_detectably(session):
    alf = session / "alf"
    revised = alf / f"#{REVISION}#"
    names = {p.name for p in revised.iterdir()}
    assert "_ibl_trials.table.pqt" in names and "_ibl_wheel.position.npy" in names
    assert "licks.times.npy" not in names and "_ibl_trials.stimOff_times.npy" not in names
    old = pd.read_parquet(alf / "_ibl_trials.table.pqt")
    new = pd.read_parquet(revised / "_ibl_trials.table.pqt")
    np.testing.assert_allclose(new["stimOn_times"] - old["stimOn_times"], 0.001)
    pd.testing.assert_frame_equal(new.drop(columns="stimOn_times"), old.drop(columns="stimOn_times"))
    np.testing.assert_array_equal(np.load(revised / "_ibl_wheel.position.npy"),
                                  -np.load(alf / "_ibl_wheel.position.npy"))
    np.testing.assert_array_equal(np.load(revised / "_ibl_wheelMoves.peakAmplitude.npy"),
                                  -np.load(alf / "_ibl_wheelMoves.peakAmplitude.npy"))


def test_uuid_extras(tmp_path):
    plain = small_session(tmp_path / "plain", revision=REVISION, cameras=("body",))
    tagged = small_session(tmp_path / "tagged", revision=REVISION, cameras=("body",), uuid_extras=True)
    tagged_files = [p for p in (tagged / "alf").rglob("*") if p.is_file()]
    ids = set()
    for path in tagged_files:
        extra = ALFPath(path).parse_alf_path()["extra"]
        ids.add(str(uuid.UUID(extra)))
    assert len(ids) == len(tagged_files)
    assert sorted(ALFPath(p).without_uuid().relative_to(tagged).as_posix() for p in tagged_files) \
        == [name for name in relative_files(plain) if name.startswith("alf/")]
    # Only alf/ gets UUIDs.
    assert (tagged / "raw_passive_data" / "_iblrig_RFMapStim.raw.bin").exists()


def test_alyx_session_json(session):
    record = json.loads((session / "alyx_session.json").read_text())
    assert set(record) == {"session", "subject", "lab", "probe_insertions"}
    assert set(record["session"]) == {"id", "subject", "lab", "start_time", "number",
                                      "task_protocol", "projects", "users", "narrative"}
    assert record["session"]["start_time"].startswith("2021-05-10T")
    assert record["session"]["number"] == 1
    assert record["session"]["projects"] == ["ibl_neuropixel_brainwide_01"]
    assert "passiveChoiceWorld" in record["session"]["task_protocol"]
    assert record["subject"] == {"nickname": "KS055", "sex": "M", "birth_date": "2020-11-02",
                                 "species": "Mus musculus", "strain": "C57BL/6J", "genotype": [],
                                 "lab": "cortexlab", "description": ""}
    assert record["lab"] == {"name": "cortexlab", "institution": "University College London",
                             "timezone": "Europe/London"}


def test_alyx_metadata_options(tmp_path):
    path = small_session(tmp_path / "a", lab="mainenlab", sex=None, birth_date=None, cameras=(),
                         passive=False)
    record = json.loads((path / "alyx_session.json").read_text())
    assert "sex" not in record["subject"] and "birth_date" not in record["subject"]
    assert record["lab"]["timezone"] == "Europe/Lisbon"
    assert "passive" not in record["session"]["task_protocol"]
    assert not (small_session(tmp_path / "b", alyx_metadata=False, cameras=())
                / "alyx_session.json").exists()
    assert len(IBL_LABS) == 12


def test_experiment_description(session, tmp_path):
    description = yaml.safe_load((session / "_ibl_experiment.description.yaml").read_text())
    assert description["devices"]["cameras"]["left"] == {"collection": "raw_video_data",
                                                         "sync_label": "audio"}
    assert set(description["devices"]["neuropixel"]) == {"probe00", "probe01"}
    assert description["projects"] == ["ibl_neuropixel_brainwide_01"]
    assert [next(iter(task)) for task in description["tasks"]] == ["ephysChoiceWorld",
                                                                   "passiveChoiceWorld"]
    path = small_session(tmp_path, passive=False, cameras=())
    description = yaml.safe_load((path / "_ibl_experiment.description.yaml").read_text())
    assert [next(iter(task)) for task in description["tasks"]] == ["ephysChoiceWorld"]
    assert not (path / "alf" / "_ibl_passivePeriods.intervalsTable.csv").exists()


# --- arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{"cameras": ("top",)}, {"pose": ("sleap",)}, {"n_trials": 0},
                                    {"date": "10/05/2021"}, {"revision": "a/b"}, {"eid": "nope"}])
def test_invalid_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        small_session(tmp_path, **kwargs)


def test_refuses_to_write_over_a_session(tmp_path):
    small_session(tmp_path, cameras=(), passive=False)
    with pytest.raises(FileExistsError):
        small_session(tmp_path, cameras=(), passive=False)
