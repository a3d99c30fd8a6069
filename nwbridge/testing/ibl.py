"""Synthetic but realistic IBL Brain Wide Map sessions, written as ALF files in a ONE cache.

`make_ibl_session` writes every behavioural dataset of an ephysChoiceWorld session plus its
passive protocol, with the names, dtypes, shapes and quirks of the real files (see
``shared/SOURCES.md``). Everything is vectorised, so that an hour-long session takes a
second or two (mostly spent writing its ~700 MB of pose tables), and everything is drawn
from one seed, so that a session is byte-identical from run to run.

Conventions followed (the IBL's): ``choice`` is -1 for a counter-clockwise (CCW) turn and
+1 for a clockwise (CW) turn, a left stimulus is answered by a CW turn, and the wheel
position grows for CCW turns, so a trial's wheel displacement has the sign of ``-choice``.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

# The labs the Alyx records of a generated session describe: the same table the converter falls back on.
from ..interfaces.ibl.session import IBL_LABS
from .ibl_ephys import check_ephys_arguments, write_probes
from .ibl_raw import check_raw_arguments, check_raw_duration, write_raw_ephys

__all__ = ["IBL_LABS", "make_ibl_session"]


# --- task ---------------------------------------------------------------------------------
_CONTRASTS = np.array([1.0, 0.25, 0.125, 0.0625, 0.0])
# Each signed contrast is equally likely; zero contrast is one value shared by both sides.
_CONTRAST_WEIGHTS = np.array([2.0, 2.0, 2.0, 2.0, 1.0]) / 9.0
_UNBIASED_TRIALS = 90
_BLOCK_MIN, _BLOCK_MAX, _BLOCK_SCALE = 20, 100, 60.0
_NOGO_RATE = 0.02
_MISSED_MOVEMENT_RATE = 0.02
_NOGO_TIMEOUT_S = 60.0
_REWARD_VOLUMES_UL = np.array([1.5, 2.0, 2.5, 3.0])

_TABLE_COLUMNS = (
    "intervals_0", "intervals_1", "goCue_times", "response_times", "choice", "stimOn_times",
    "contrastLeft", "contrastRight", "feedback_times", "feedbackType", "rewardVolume",
    "probabilityLeft", "firstMovement_times",
)
_LOOSE_ATTRIBUTES = (
    "stimOff_times", "goCueTrigger_times", "stimOnTrigger_times", "stimOffTrigger_times",
    "stimFreezeTrigger_times", "quiescencePeriod",
)

# --- wheel --------------------------------------------------------------------------------
_WHEEL_STEP = 2 * np.pi / 1024  # one encoder count, radians
# 35 deg of stimulus travel at 4 deg/mm on a 31 mm radius wheel
_RESPONSE_THRESHOLD_RAD = 8.75 / 31.0
# Minimum-jerk profile, tabulated so that its inverse is one np.interp call.
_MJ_T = np.linspace(0.0, 1.0, 4097)
_MJ_S = _MJ_T**3 * (10 - 15 * _MJ_T + 6 * _MJ_T**2)

# --- cameras --------------------------------------------------------------------------------
_CAMERA_FPS = {"left": 60.0, "right": 150.0, "body": 30.0}
_FRAME_SIZE = {"left": (1280.0, 1024.0), "right": (640.0, 512.0), "body": (640.0, 512.0)}
# width, height, x, y of the motion-energy region of interest, px
_ROI = {"left": (320.0, 256.0, 320.0, 560.0), "right": (160.0, 128.0, 160.0, 280.0),
        "body": (200.0, 120.0, 220.0, 340.0)}
_FACE_PARTS = ("nose_tip", "paw_l", "paw_r", "pupil_top_r", "pupil_bottom_r", "pupil_left_r",
               "pupil_right_r", "tongue_end_l", "tongue_end_r", "tube_top", "tube_bottom")
_BODY_PARTS = ("tail_start",)
# Where each part sits in the left camera's frame, as fractions of the frame size.
_PART_ANCHORS = {
    "nose_tip": (0.30, 0.42), "paw_l": (0.48, 0.86), "paw_r": (0.62, 0.84),
    "pupil": (0.55, 0.38), "tongue_end_l": (0.36, 0.60), "tongue_end_r": (0.39, 0.62),
    "tube_top": (0.40, 0.55), "tube_bottom": (0.40, 0.63), "tail_start": (0.50, 0.72),
}
_LIKELIHOOD_THRESHOLD = 0.9
_POSE_ESTIMATORS = ("dlc", "lightningPose")
# An ISO-BMFF 'ftyp' box (isom, minor 0x200, compatible isom/iso2) and an empty 'free' box.
_MP4_PLACEHOLDER = (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
                    b"\x00\x00\x00\x08free")

# --- passive protocol -------------------------------------------------------------------
_PASSIVE_FIXTURE = "passiveChoiceWorld_trials_fixtures.pqt"
_SPONTANEOUS_S = 300.0
_RFM_S = 300.0
_MIN_PERIOD_S = 5.0  # shortest spontaneous / RFM period when a short session shrinks them
_PERIOD_GAP_S = 1.0
_PASSIVE_OVERHEAD_S = 0.5 + _PERIOD_GAP_S + _PERIOD_GAP_S + 0.5
_RFM_FPS = 60.0
_RFM_GRID = 15
_RFM_HOLD_FRAMES = 6  # each sparse-noise pattern stays up for 100 ms
# seconds each replayed event lasts: Gabor patch, valve opening, tone, white noise
_EVENT_DURATION_S = {"G": 0.3, "V": 0.06, "T": 0.1, "N": 0.5}

# New streams go at the end: the first ones stay as they were.
_STREAMS = ("session", "trials", "passive", "wheel", "licks", "cameras", "uuids", "ephys", "raw")


def make_ibl_session(root, *, lab="cortexlab", subject="KS055", date="2021-05-10", number=1,
                     eid=None, n_trials=400, duration_s=None, cameras=("left", "right", "body"),
                     pose=("dlc", "lightningPose"), passive=True, revision=None,
                     legacy_trials=False, uuid_extras=False, videos=False, alyx_metadata=True,
                     sex="M", birth_date="2020-11-02", probes=("probe00", "probe01"), probe_type="3B",
                     n_units=None, n_spikes=None, sorter="pykilosort", cluster_dtype=None,
                     raw_ephys=False, raw_duration_s=None, raw_format="cbin", seed=0) -> Path:
    """Write a realistic IBL Brain Wide Map session in the ONE cache layout.

    The session goes to ``<root>/<lab>/Subjects/<subject>/<date>/<NNN>/`` and holds the
    trials, wheel, wheel movements, licks, cameras (times, DLC and Lightning Pose tables,
    pupil features, motion energy), the passive protocol, the Neuropixels probes (spike
    sorting, channels and electrode sites with their brain regions, SpikeGLX metadata and
    clock mapping; see `nwbridge.testing.ibl_ephys`; optionally their raw data, see
    `nwbridge.testing.ibl_raw`), the experiment description and,
    optionally, the session's Alyx metadata. The session clock runs from 0 to
    ``duration_s``: the task starts a few seconds in, the passive protocol follows it.

    Parameters
    ----------
    root : str or os.PathLike
        The ONE cache root.
    lab, subject, date : str
        Lab name, subject nickname and session date (``YYYY-MM-DD``).
    number : int
        Session number of the day, written zero-padded to three digits.
    eid : str or uuid.UUID, optional
        The session's experiment id. By default a UUID5 of the lab, subject, date, number
        and seed.
    n_trials : int
        Number of task trials (about 6 s each on average, a 60 s no-go timeout included).
    duration_s : float, optional
        Session length in seconds. By default the task plus the full passive protocol
        (300 s spontaneous activity, 300 s receptive-field mapping and the task replay) plus
        a few seconds. A shorter session shrinks the passive protocol to fit.
    cameras : sequence of {"left", "right", "body"}
        Cameras to write (60, 150 and 30 Hz).
    pose : sequence of {"dlc", "lightningPose"}
        Pose estimators to write a table for, for every camera.
    passive : bool
        Whether to run the passive protocol after the task.
    revision : str, optional
        If given (e.g. ``"2024-05-06"``), also write a revised copy of the trials and wheel
        datasets into ``alf/#<revision>#/``, with stimOn times 1 ms later and the wheel
        turned the other way, and of every probe's ``clusters.metrics.pqt`` into its sorting
        collection's ``#<revision>#/``, with some ``label`` values changed, so that a reader
        taking the newest revision is detectable.
    legacy_trials : bool
        Write every trials attribute as its own ``.npy`` (older sessions) instead of
        ``_ibl_trials.table.pqt`` plus loose attributes.
    uuid_extras : bool
        Insert a dataset UUID as an extra part in every file name under ``alf/``.
    videos : bool
        Also write placeholder raw videos (an MP4 ``ftyp`` box, no frames).
    alyx_metadata : bool
        Write ``alyx_session.json``, the session, subject and lab records Alyx would give.
    sex, birth_date : str or None
        Subject metadata for ``alyx_session.json``; None leaves the key out.
    probes : sequence of str
        Probe insertions to write, named ``probe00`` .. ``probe99`` (the number is the
        SpikeGLX ``imec<N>`` index); empty for a behaviour-only session. Each gets its spike
        sorting, channels, electrode sites, SpikeGLX ``.ap.meta`` / ``.lf.meta`` and
        ``.timestamps.npy``, a record in ``alyx_session.json`` (``probe_insertions``) and an
        entry in the experiment description.
    probe_type : {"3B", "3A", "NP2.1", "NP2.4", "NP2.4-1shank"}
        Neuropixels generation, whose real SpikeGLX metadata (shipped with the package) gives
        the channel geometry. An NP2.4 is split, as the IBL does, into one insertion per shank
        (``probe00a`` .. ``probe00d``, each with its own collections); ``"NP2.4-1shank"`` is
        a one-shank NP2.4, which the IBL's splitting names ``probe00a``.
    n_units : int, optional
        Clusters per insertion (default 60), one or two of which have no spikes at all.
    n_spikes : int, optional
        Spikes per insertion, exactly. By default the clusters' firing rates (log-normal,
        median 2 Hz) times the recording length.
    sorter : {"pykilosort", "iblsorter", ""}
        Spike sorter folder: the sorting goes to ``alf/<probe>/<sorter>/``, or with ``""``
        directly to ``alf/<probe>/`` (older sessions).
    cluster_dtype : numpy dtype, optional
        dtype of ``spikes.clusters``: ``np.uint16`` or ``np.uint32``. By default uint16 when
        there are fewer than 65536 clusters, as in IBL files, else uint32.
    raw_ephys : bool
        Also write every probe's raw SpikeGLX data next to its metas: the AP band and the LF
        band (2.5 kHz; for NP2 probes the one the IBL's NP2 converter extracts), int16,
        ``nSavedChans`` channels with the sync word last. They hold ~10 µV rms noise, the
        sorted spikes (each cluster's template at its spikes' samples, AP band), LFP-like
        1/f and theta activity shared by neighbouring channels (LF band, and the full-band AP
        of NP2 probes) and a 1 Hz square wave on bit 6 of the sync word, following the
        ``.timestamps.npy`` clock. The metas' ``fileSizeBytes``, ``fileTimeSecs`` and
        ``fileSHA1`` are set to match the data. Made ~1 s chunk by chunk on up to four
        threads, in a few hundred MB whatever the duration: 100 s of an NP1 probe (AP and LF bands,
        compressed to ~1 GB) take ~11 s on two cores.
    raw_duration_s : float, optional
        Seconds of raw data per probe, from its first sample; at most the session's length. By
        default the whole recording, which starts before the session clock's zero and ends
        after the session (an hour of AP band is 83 GB uncompressed).
    raw_format : {"cbin", "bin"}
        ``"cbin"``: mtscomp-compressed ``.cbin`` plus its ``.ch`` header, as the IBL releases
        them (~1 s chunks, time difference, deflate); ``"bin"``: plain SpikeGLX ``.bin``.
    seed : int
        Seed of every random draw.

    Returns
    -------
    pathlib.Path
        The session folder.

    Raises
    ------
    ValueError
        If an argument is invalid, or ``duration_s`` is too short for ``n_trials`` trials
        (plus a minimal passive protocol when ``passive``).
    FileExistsError
        If the session folder already holds files: two generated sessions mixed in one
        folder would be inconsistent.
    """
    date = _check_date(date)
    cameras, pose = tuple(cameras), tuple(pose)
    _check_arguments(lab, subject, number, n_trials, duration_s, cameras, pose, revision)
    ephys = check_ephys_arguments(probes, probe_type, n_units, n_spikes, sorter, cluster_dtype)
    raw = check_raw_arguments(raw_ephys, raw_duration_s, raw_format)
    number, n_trials = int(number), int(n_trials)
    eid = _check_eid(eid) if eid is not None else str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"nwbridge-testing/{lab}/{subject}/{date}/{number}/{seed}"))
    session_path = Path(root) / lab / "Subjects" / subject / date / f"{number:03d}"
    if session_path.exists() and any(session_path.iterdir()):
        raise FileExistsError(f"{session_path} already holds files; generate into an empty root")

    # One independent stream per part, so that e.g. dropping a camera leaves the trials as they are.
    rngs = dict(zip(_STREAMS, np.random.default_rng(seed).spawn(len(_STREAMS))))
    task_start = rngs["session"].uniform(3.0, 8.0)
    lead_s, tail_s = rngs["session"].uniform(2.0, 5.0, size=2)
    task = _simulate_task(rngs["trials"], n_trials, task_start)
    replay = _replay_sequence(rngs["passive"]) if passive else None
    plan, duration = _plan_session(task.end, replay, duration_s, lead_s, tail_s, n_trials)
    check_raw_duration(raw, duration)

    wheel = _simulate_wheel(rngs["wheel"], task, duration)
    valve_on = plan.events["on"][plan.events["kind"] == "V"] if plan is not None else np.empty(0)
    rewarded = task.trials["feedback_times"][task.trials["feedbackType"] == 1]
    licks = _simulate_licks(rngs["licks"], np.concatenate([rewarded, valve_on]), duration)

    alf = session_path / "alf"
    alf.mkdir(parents=True, exist_ok=True)
    _write_trials(alf, task.trials, legacy=legacy_trials)
    _save_npy(alf / "_ibl_wheel.position.npy", wheel.position)
    _save_npy(alf / "_ibl_wheel.timestamps.npy", wheel.timestamps)
    _save_npy(alf / "_ibl_wheelMoves.intervals.npy", wheel.move_intervals)
    _save_npy(alf / "_ibl_wheelMoves.peakAmplitude.npy", wheel.peak_amplitude)
    _save_npy(alf / "licks.times.npy", licks)
    camera_rngs = dict(zip(_CAMERA_FPS, rngs["cameras"].spawn(len(_CAMERA_FPS))))
    for name in cameras:
        _write_camera(camera_rngs[name], session_path, name, duration, pose, wheel, licks, videos)
    if plan is not None:
        _write_passive(rngs["passive"], session_path, plan)
    if revision is not None:
        _write_revision(alf / f"#{revision}#", task.trials, wheel, legacy=legacy_trials)
    insertions = write_probes(rngs["ephys"], session_path, ephys, duration=duration, eid=eid,
                              revision=revision)
    if raw is not None:  # reads the spike sorting: before the UUID extras rename it
        write_raw_ephys(rngs["raw"], session_path, [insertion["name"] for insertion in insertions],
                        ephys.sorter, raw)
    if uuid_extras:
        _add_uuid_extras(rngs["uuids"], alf)

    _write_experiment_description(session_path, cameras, passive,
                                  [insertion["name"] for insertion in insertions])
    if alyx_metadata:
        _write_alyx_metadata(rngs["session"], session_path, eid=eid, lab=lab, subject=subject,
                             date=date, number=number, passive=passive, sex=sex,
                             birth_date=birth_date, probe_insertions=insertions)
    return session_path


# --- arguments ------------------------------------------------------------------------------

def _check_date(date) -> str:
    try:
        return datetime.date.fromisoformat(str(date)).isoformat()
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}") from None


def _check_eid(eid) -> str:
    try:
        return str(uuid.UUID(str(eid)))
    except ValueError:
        raise ValueError(f"eid must be a UUID, got {eid!r}") from None


def _check_arguments(lab, subject, number, n_trials, duration_s, cameras, pose, revision):
    for what, value in (("lab", lab), ("subject", subject)):
        if not value or not re.fullmatch(r"[\w.-]+", str(value)):
            raise ValueError(f"{what} must be a non-empty folder name, got {value!r}")
    if not 0 <= int(number) <= 999:
        raise ValueError(f"number must be 0..999 (three digits in the path), got {number}")
    if int(n_trials) < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if duration_s is not None and not float(duration_s) > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    unknown = sorted(set(cameras) - set(_CAMERA_FPS))
    if unknown or len(set(cameras)) != len(cameras):
        raise ValueError(f"cameras must be distinct names among {sorted(_CAMERA_FPS)}, got {cameras}")
    unknown = sorted(set(pose) - set(_POSE_ESTIMATORS))
    if unknown or len(set(pose)) != len(pose):
        raise ValueError(f"pose must be distinct names among {list(_POSE_ESTIMATORS)}, got {pose}")
    if revision is not None and not re.fullmatch(r"[\w.-]+", str(revision)):
        raise ValueError(f"revision must be a folder-safe name such as '2024-05-06', got {revision!r}")


# --- task -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Task:
    trials: dict[str, np.ndarray]
    move_onset: np.ndarray  # true onset of each trial's response movement (NaN for no-go)
    end: float


def _simulate_task(rng, n: int, start: float) -> _Task:
    """Draw ``n`` trials of ephysChoiceWorld starting at ``start`` seconds."""
    p_left = _probability_left(rng, n)
    stim_left = rng.random(n) < p_left
    contrast = rng.choice(_CONTRASTS, size=n, p=_CONTRAST_WEIGHTS)
    correct_choice = np.where(stim_left, 1, -1).astype(np.int64)
    # A psychometric curve; at zero contrast the mouse can only follow the block prior.
    p_correct = np.where(contrast > 0, 0.5 + 0.47 * (1 - np.exp(-contrast / 0.07)),
                         np.where(stim_left, p_left, 1 - p_left))
    choice = np.where(rng.random(n) < p_correct, correct_choice, -correct_choice)
    nogo = rng.random(n) < _NOGO_RATE
    if n >= 10 and not nogo.any():
        nogo[rng.integers(n)] = True
    choice[nogo] = 0
    feedback_type = np.where(choice == correct_choice, 1, -1).astype(np.int64)
    reward = np.where(feedback_type == 1, rng.choice(_REWARD_VOLUMES_UL), 0.0)

    # Event times relative to each trial's start.
    quiescence = rng.uniform(0.2, 0.8, n)
    # Moving during the quiescent period restarts it, so the stimulus often comes later.
    stim_on_trigger = quiescence + rng.exponential(0.5, n) + rng.uniform(0.01, 0.05, n)
    stim_on = stim_on_trigger + rng.uniform(0.01, 0.05, n)  # screen latency
    # At least 3 ms, so that stimOn shifted by 1 ms in a revision still precedes it.
    go_cue_trigger = stim_on + rng.uniform(0.003, 0.01, n)
    go_cue = go_cue_trigger + rng.uniform(0.0, 0.002, n)
    move_onset = go_cue + np.clip(rng.lognormal(np.log(0.3), 0.8, n), 0.08, 20.0)
    movement = np.clip(rng.lognormal(np.log(0.35), 0.5, n), 0.08, 3.0)
    response = np.where(nogo, stim_on + _NOGO_TIMEOUT_S, move_onset + movement)
    feedback = response + rng.uniform(0.0, 0.003, n)
    stim_freeze = np.where(nogo, np.nan, response + rng.uniform(0.0005, 0.003, n))
    # The stimulus stays up 1 s after a reward, 2 s after an error.
    stim_off_trigger = feedback + np.where(feedback_type == 1, 1.0, 2.0) + rng.uniform(0.001, 0.01, n)
    stim_off = stim_off_trigger + rng.uniform(0.01, 0.05, n)
    stop = stim_off + rng.uniform(1.0, 2.0, n)
    gap = rng.uniform(0.02, 0.1, n)
    starts = start + np.concatenate([[0.0], np.cumsum(stop[:-1] + gap[:-1])])

    # Real extractions miss a few movement onsets and the odd stimulus offset.
    first_movement = np.where(nogo, np.nan, move_onset + starts)
    missed = ~nogo & (rng.random(n) < _MISSED_MOVEMENT_RATE)
    if n >= 20 and not missed.any():
        missed[rng.choice(np.flatnonzero(~nogo))] = True
    first_movement[missed] = np.nan
    stim_off_times = stim_off + starts
    stim_off_times[rng.integers(n)] = np.nan

    intervals = np.column_stack([starts, stop + starts])
    drift = 1 + rng.uniform(1e-5, 3e-5)
    trials = {
        "intervals": intervals,
        "goCue_times": go_cue + starts,
        "response_times": response + starts,
        "choice": choice.astype(np.int64),
        "stimOn_times": stim_on + starts,
        "contrastLeft": np.where(stim_left, contrast, np.nan),
        "contrastRight": np.where(stim_left, np.nan, contrast),
        "feedback_times": feedback + starts,
        "feedbackType": feedback_type,
        "rewardVolume": reward,
        "probabilityLeft": p_left,
        "firstMovement_times": first_movement,
        "stimOff_times": stim_off_times,
        "goCueTrigger_times": go_cue_trigger + starts,
        "stimOnTrigger_times": stim_on_trigger + starts,
        "stimOffTrigger_times": stim_off_trigger + starts,
        "stimFreezeTrigger_times": stim_freeze + starts,
        "quiescencePeriod": quiescence,
        # Bpod's own clock: it starts near the first trial and drifts by tens of ppm.
        "intervals_bpod": (intervals - starts[0]) * drift + rng.uniform(0.0, 0.5),
    }
    return _Task(trials=trials, move_onset=np.where(nogo, np.nan, move_onset + starts),
                 end=float(intervals[-1, 1]))


def _probability_left(rng, n: int) -> np.ndarray:
    """90 unbiased trials, then alternating 0.2 / 0.8 blocks of 20-100 trials."""
    p = np.full(n, 0.5)
    n_biased = n - _UNBIASED_TRIALS
    if n_biased <= 0:
        return p
    # Block lengths: an exponential (scale 60) truncated to [20, 100], by its inverse CDF.
    u = rng.random(n_biased // _BLOCK_MIN + 1)
    span = 1 - np.exp(-(_BLOCK_MAX - _BLOCK_MIN) / _BLOCK_SCALE)
    lengths = np.rint(_BLOCK_MIN - _BLOCK_SCALE * np.log1p(-u * span)).astype(np.int64)
    block = np.searchsorted(np.cumsum(lengths), np.arange(n_biased), side="right")
    p[_UNBIASED_TRIALS:] = np.where((block + rng.integers(2)) % 2 == 0, 0.2, 0.8)
    return p


def _write_trials(alf: Path, trials: dict[str, np.ndarray], *, legacy: bool) -> None:
    if legacy:
        for name, values in trials.items():
            _save_npy(alf / f"_ibl_trials.{name}.npy", values)
        return
    _save_table(alf / "_ibl_trials.table.pqt", _trials_table(trials))
    for name in (*_LOOSE_ATTRIBUTES, "intervals_bpod"):
        _save_npy(alf / f"_ibl_trials.{name}.npy", trials[name])


def _trials_table(trials: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    columns = {"intervals_0": trials["intervals"][:, 0], "intervals_1": trials["intervals"][:, 1]}
    columns.update((name, trials[name]) for name in _TABLE_COLUMNS[2:])
    return columns


# --- session timeline ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Replay:
    """The task-replay events of one real passive protocol, times relative to its start."""

    events: dict[str, np.ndarray]  # kind, on, off, contrast, position, phase
    length: float  # the whole replay, s
    min_length: float  # the shortest prefix that still has every kind of event, s


@dataclass(frozen=True)
class _PassivePlan:
    periods: dict[str, tuple[float, float]]
    events: dict[str, np.ndarray]  # replayed events, absolute times


@functools.lru_cache(maxsize=1)
def _passive_protocol() -> pd.DataFrame:
    # Read from the package, never from a checkout's shared folder, so installs work too.
    source = resources.files("nwbridge.testing").joinpath("data", _PASSIVE_FIXTURE)
    with source.open("rb") as handle:
        return pd.read_parquet(handle)


def _replay_sequence(rng) -> _Replay:
    """Pick one of the real passive protocols and lay its events out in time."""
    table = _passive_protocol()
    session_ids = np.unique(table["session_id"].to_numpy())
    rows = table[table["session_id"] == session_ids[rng.integers(len(session_ids))]]
    rows = rows.sort_values("trial_num")
    kind = np.asarray(rows["stim_type"], dtype="U1")
    nominal = np.select([kind == k for k in _EVENT_DURATION_S], list(_EVENT_DURATION_S.values()))
    duration = nominal + rng.uniform(0.0, 0.004, len(kind))
    # Each event waits its delay after the previous one ended.
    on = np.cumsum(rows["stim_delay"].to_numpy()) + np.cumsum(duration) - duration
    off = on + duration
    events = {"kind": kind, "on": on, "off": off,
              "contrast": rows["contrast"].to_numpy(dtype=float),
              "position": rows["position"].to_numpy(dtype=float),
              "phase": rows["stim_phase"].to_numpy(dtype=float)}
    # Shortest prefix with 3 Gabor patches and 2 of each other kind, so that a shrunk replay
    # still fills every column of the passive tables.
    needed = {"G": 3, "V": 2, "T": 2, "N": 2}
    last = max(np.flatnonzero(kind == k)[count - 1] for k, count in needed.items())
    return _Replay(events=events, length=float(off[-1]) + 0.5, min_length=float(off[last]) + 0.5)


def _plan_session(task_end, replay, duration_s, lead_s, tail_s, n_trials):
    """Fit the passive protocol after the task and return it with the session length."""
    if replay is None:
        needed = task_end + tail_s
        if duration_s is None:
            return None, needed
        if duration_s < needed:
            raise ValueError(f"duration_s={duration_s:g} is too short for {n_trials} trials: "
                             f"they need at least {needed:.1f} s with this seed")
        return None, float(duration_s)

    start = task_end + lead_s
    full = _SPONTANEOUS_S + _RFM_S + replay.length
    if duration_s is None or duration_s >= start + _PASSIVE_OVERHEAD_S + full + tail_s:
        spontaneous, rfm, replay_length = _SPONTANEOUS_S, _RFM_S, replay.length
    else:
        budget = duration_s - tail_s - start - _PASSIVE_OVERHEAD_S
        # Shrink all three periods alike, but keep enough replay for every kind of event.
        replay_length = max(replay.length * budget / full, replay.min_length)
        spontaneous = rfm = (budget - replay_length) / 2
        if spontaneous < _MIN_PERIOD_S:
            needed = start + _PASSIVE_OVERHEAD_S + 2 * _MIN_PERIOD_S + replay.min_length + tail_s
            raise ValueError(
                f"duration_s={duration_s:g} is too short for {n_trials} trials and the passive "
                f"protocol: they need at least {needed:.1f} s with this seed (or pass passive=False)")

    periods = {}
    t = start + 0.5
    for name, length in (("spontaneousActivity", spontaneous), ("RFM", rfm),
                         ("taskReplay", replay_length)):
        periods[name] = (t, t + length)
        t += length + _PERIOD_GAP_S
    periods["passiveProtocol"] = (start, periods["taskReplay"][1] + 0.5)

    replay_start = periods["taskReplay"][0]
    keep = replay.events["off"] <= replay_length - 0.5
    events = {k: v[keep] for k, v in replay.events.items()}
    events["on"] = events["on"] + replay_start
    events["off"] = events["off"] + replay_start
    duration = periods["passiveProtocol"][1] + tail_s if duration_s is None else float(duration_s)
    return _PassivePlan(periods=periods, events=events), duration


# --- wheel and licks ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Wheel:
    timestamps: np.ndarray
    position: np.ndarray
    move_intervals: np.ndarray
    peak_amplitude: np.ndarray


def _simulate_wheel(rng, task: _Task, duration: float) -> _Wheel:
    """Encoder samples for the trial responses plus small spontaneous moves."""
    trials = task.trials
    moved = trials["choice"] != 0
    n_moved = int(moved.sum())
    trial_onset = task.move_onset[moved]
    trial_offset = trials["response_times"][moved] - rng.uniform(0.001, 0.005, n_moved)
    trial_amp = -trials["choice"][moved] * rng.uniform(1.0, 1.3, n_moved) * _RESPONSE_THRESHOLD_RAD

    # Spontaneous moves in some inter-trial intervals (after feedback, before the next trial's
    # quiescent period) and now and then before the task and after it.
    window_start = trials["feedback_times"] + 0.15
    window_stop = np.append(trials["intervals"][1:, 0] - 0.05, trials["intervals"][-1, 1])
    pick = (rng.random(len(window_start)) < 0.3) & (window_stop - window_start > 0.6)
    iti = _moves_in_windows(rng, window_start[pick], window_stop[pick])
    before = _moves_in_slots(rng, 0.5, trials["intervals"][0, 0] - 0.5)
    after = _moves_in_slots(rng, task.end + 0.5, duration - 0.5)
    spont_onset = np.concatenate([iti[0], before[0], after[0]])
    spont_offset = np.concatenate([iti[1], before[1], after[1]])
    spont_amp = rng.choice([-1.0, 1.0], len(spont_onset)) * rng.uniform(0.02, 0.2, len(spont_onset))

    onset = np.concatenate([trial_onset, spont_onset])
    offset = np.concatenate([trial_offset, spont_offset])
    amp = np.concatenate([trial_amp, spont_amp])
    order = np.argsort(onset, kind="stable")
    onset, offset, amp = onset[order], offset[order], amp[order]

    # Work in encoder counts so that every position is an exact multiple of one step.
    steps = np.maximum(1, np.rint(np.abs(amp) / _WHEEL_STEP)).astype(np.int64)
    counts = np.sign(amp).astype(np.int64) * steps
    after_move = np.cumsum(counts)
    before_move = after_move - counts
    move_t, move_c = _encoder_samples(onset, offset, counts, before_move)
    still_t, still_c = _still_samples(rng, onset, offset, after_move, duration)

    t = np.concatenate([still_t, onset, move_t])
    c = np.concatenate([still_c, before_move, move_c])
    order = np.argsort(t, kind="stable")
    t, c = t[order], c[order]
    keep = np.concatenate([[True], np.diff(t) > 0])
    return _Wheel(timestamps=t[keep], position=c[keep] * _WHEEL_STEP,
                  move_intervals=np.column_stack([onset, offset]),
                  peak_amplitude=counts * _WHEEL_STEP)


def _moves_in_windows(rng, start: np.ndarray, stop: np.ndarray):
    """One 0.1-0.4 s move inside each window (windows must be longer than 0.6 s)."""
    length = rng.uniform(0.1, 0.4, len(start))
    onset = start + rng.random(len(start)) * (stop - start - length - 0.1)
    return onset, onset + length


def _moves_in_slots(rng, start: float, stop: float, slot: float = 20.0):
    """About one move per ``slot`` seconds between ``start`` and ``stop``."""
    n = max(0, int((stop - start) // slot))
    slot_start = start + slot * np.arange(n)
    return _moves_in_windows(rng, slot_start, slot_start + slot)


def _encoder_samples(onset, offset, counts, before_move):
    """The time of every encoder count along minimum-jerk movements."""
    steps = np.abs(counts)
    move = np.repeat(np.arange(len(steps)), steps)
    k = np.arange(steps.sum()) - np.repeat(np.cumsum(steps) - steps, steps) + 1
    # A count is registered when the trajectory crosses the middle of the next step.
    tau = np.interp((k - 0.5) / steps[move], _MJ_S, _MJ_T)
    t = onset[move] + tau * (offset - onset)[move]
    return t, before_move[move] + np.sign(counts)[move] * k


def _still_samples(rng, onset, offset, after_move, duration):
    """Sparse samples of an unmoving wheel, as the encoder stream has between movements."""
    gaps = rng.uniform(0.3, 1.5, int(duration / 0.3) + 2)
    t = 0.01 + np.concatenate([[0.0], np.cumsum(gaps)])
    t = t[t < duration - 0.01]
    last = np.searchsorted(onset, t, side="right") - 1
    inside = (last >= 0) & (t <= offset[np.maximum(last, 0)] + 1e-3)
    t, last = t[~inside], last[~inside]
    return t, np.where(last >= 0, after_move[np.maximum(last, 0)], 0)


def _simulate_licks(rng, triggers: np.ndarray, duration: float) -> np.ndarray:
    """8-10 Hz bursts of 4-9 licks after each reward, plus sparse spontaneous licks."""
    n_licks = rng.integers(4, 10, len(triggers))
    first = triggers + rng.uniform(0.08, 0.25, len(triggers))
    interval = 1.0 / rng.uniform(8.0, 10.0, n_licks.sum())
    elapsed = np.cumsum(interval) - interval
    burst_start = np.cumsum(n_licks) - n_licks
    times = np.repeat(first, n_licks) + elapsed - np.repeat(elapsed[burst_start], n_licks)
    spontaneous = rng.uniform(0.0, duration, rng.poisson(0.02 * duration))
    times = np.sort(np.concatenate([times, spontaneous]))
    return times[(times > 0) & (times < duration)]


# --- cameras ---------------------------------------------------------------------------------

class _Noise:
    """Standard-normal noise vectors of one length, cut from a shared pool.

    An hour of 150 Hz pose needs ~10^8 noise values; drawing them fresh dominates the run
    time, while rolling a 64k pool by a random offset is ~30x cheaper and still looks like
    independent sensor noise at every scale the tests and the converter care about.
    """

    def __init__(self, rng, n: int):
        self._rng, self._n = rng, n
        self._pool = rng.standard_normal(1 << 16)

    def __call__(self, scale: float = 1.0) -> np.ndarray:
        shifted = np.roll(self._pool, int(self._rng.integers(len(self._pool))))
        return np.resize(shifted, self._n) * scale


def _camera_times(rng, fps: float, duration: float) -> np.ndarray:
    """Frame times spanning the session: a slightly-off nominal rate, jitter, a dropped frame or two."""
    period = (1 + rng.uniform(-5e-5, 5e-5)) / fps
    start = rng.uniform(0.02, 0.3)
    n = int((duration - 0.05 - start) / period)
    times = start + np.arange(n) * period + rng.uniform(-0.05, 0.05, n) * period
    dropped = np.unique(rng.integers(1, n - 1, n // 20000)) if n > 2 else np.empty(0, np.int64)
    return np.delete(times, dropped)


def _occluded(rng, n: int, fps: float, every_s: float, mean_s: float) -> np.ndarray:
    """Frames hidden in short stretches (blinks, a paw behind the wheel...)."""
    count = max(1, rng.poisson(n / fps / every_s))
    start = rng.integers(0, n, count)
    stop = np.minimum(n, start + 1 + rng.geometric(1 / max(1.0, mean_s * fps), count))
    edges = np.bincount(start, minlength=n + 1) - np.bincount(stop, minlength=n + 1)
    return np.cumsum(edges[:n]) > 0


def _interp_knots(rng, t: np.ndarray, every_s: float, scale: float) -> np.ndarray:
    """A slow, bounded random signal: Gaussian knots every ``every_s`` seconds, interpolated."""
    knots_t = np.arange(-every_s, t[-1] + 2 * every_s, every_s)
    return np.interp(t, knots_t, rng.normal(0.0, scale, len(knots_t)))


def _pose_truth(rng, noise: _Noise, name: str, t: np.ndarray, wheel: _Wheel, licks: np.ndarray):
    """Underlying ``(x, y, likelihood)`` of every body part of one camera, px."""
    width, height = _FRAME_SIZE[name]
    scale = width / 1280.0
    fps = _CAMERA_FPS[name]
    n = len(t)

    def anchor(part):
        fx, fy = _PART_ANCHORS[part]
        # The right camera films the other side of the face: mirror it.
        return ((1 - fx) if name == "right" else fx) * width, fy * height

    def likelihood(hidden):
        return np.where(hidden, np.minimum(0.85, np.abs(noise(0.3))),
                        1 - np.minimum(0.09, np.abs(noise(0.01))))

    head_x, head_y = _interp_knots(rng, t, 0.5, 3 * scale), _interp_knots(rng, t, 0.5, 2 * scale)
    if name == "body":
        x0, y0 = anchor("tail_start")
        hidden = _occluded(rng, n, fps, 60.0, 0.5)
        return {"tail_start": (x0 + 3 * head_x + noise(scale), y0 + 3 * head_y + noise(scale),
                               likelihood(hidden))}

    truth = {}
    x0, y0 = anchor("nose_tip")
    truth["nose_tip"] = (x0 + head_x + noise(0.5 * scale), y0 + head_y + noise(0.5 * scale),
                         likelihood(_occluded(rng, n, fps, 120.0, 0.2)))
    # Paws follow the last half second of wheel turning.
    turn = np.interp(t, wheel.timestamps, wheel.position) - np.interp(t - 0.5, wheel.timestamps,
                                                                         wheel.position)
    side = -1.0 if name == "right" else 1.0
    for part in ("paw_l", "paw_r"):
        x0, y0 = anchor(part)
        truth[part] = (x0 + side * 120 * scale * turn + noise(1.5 * scale),
                       y0 + 20 * scale * np.abs(turn) + noise(1.5 * scale),
                       likelihood(_occluded(rng, n, fps, 30.0, 0.5)))
    cx, cy = anchor("pupil")
    radius = (8.0 + _interp_knots(rng, t, 2.0, 1.5)).clip(4.0) * scale
    blink = _occluded(rng, n, fps, 20.0, 0.15)
    for part, (dx, dy) in {"pupil_top_r": (0, -1), "pupil_bottom_r": (0, 1),
                           "pupil_left_r": (-1, 0), "pupil_right_r": (1, 0)}.items():
        truth[part] = (cx + head_x + dx * radius + noise(0.3 * scale),
                       cy + head_y + dy * radius + noise(0.3 * scale),
                       likelihood(blink | _occluded(rng, n, fps, 90.0, 0.2)))
    # The tongue is only out for a moment after each lick.
    last = np.searchsorted(licks, t, side="right") - 1
    tongue_out = (last >= 0) & (t - licks[np.maximum(last, 0)] < 0.06) if len(licks) else np.zeros(n, bool)
    for part in ("tongue_end_l", "tongue_end_r"):
        x0, y0 = anchor(part)
        truth[part] = (x0 + head_x + noise(2 * scale), y0 + head_y + noise(2 * scale),
                       likelihood(~tongue_out))
    for part in ("tube_top", "tube_bottom"):
        x0, y0 = anchor(part)
        truth[part] = (x0 + noise(0.2 * scale), y0 + noise(0.2 * scale),
                       likelihood(_occluded(rng, n, fps, 300.0, 0.2)))
    return truth


def _dlc_table(noise: _Noise, truth) -> dict[str, np.ndarray]:
    columns = {}
    for part, (x, y, likelihood) in truth.items():
        # IBL's DLC tables blank the coordinates the network is unsure of.
        unsure = likelihood < _LIKELIHOOD_THRESHOLD
        columns[f"{part}_x"] = np.where(unsure, np.nan, x + noise(0.3))
        columns[f"{part}_y"] = np.where(unsure, np.nan, y + noise(0.3))
        columns[f"{part}_likelihood"] = likelihood
    return columns


def _lightning_pose_table(noise: _Noise, truth) -> dict[str, np.ndarray]:
    columns = {}
    for part, (x, y, likelihood) in truth.items():
        x_lp, y_lp = x + noise(0.25), y + noise(0.25)
        columns[f"{part}_x"] = x_lp
        columns[f"{part}_y"] = y_lp
        columns[f"{part}_likelihood"] = np.clip(likelihood + noise(0.01), 0.0, 1.0)
        columns[f"{part}_x_ens_median"] = x_lp + noise(0.2)
        columns[f"{part}_y_ens_median"] = y_lp + noise(0.2)
        # Ensemble members disagree more where the part is hard to see.
        spread = 1.0 + 20.0 * (1.0 - likelihood)
        x_var = (spread * (0.3 + np.abs(noise(0.3)))) ** 2
        y_var = (spread * (0.3 + np.abs(noise(0.3)))) ** 2
        columns[f"{part}_x_ens_var"] = x_var
        columns[f"{part}_y_ens_var"] = y_var
        columns[f"{part}_x_posterior_var"] = 0.6 * x_var
        columns[f"{part}_y_posterior_var"] = 0.6 * y_var
    return columns


def _pupil_features(dlc: dict[str, np.ndarray], fps: float) -> dict[str, np.ndarray]:
    """Raw pupil diameter from the DLC pupil points, and a NaN-free smoothed version."""
    vertical = dlc["pupil_bottom_r_y"] - dlc["pupil_top_r_y"]
    horizontal = dlc["pupil_right_r_x"] - dlc["pupil_left_r_x"]
    n_valid = np.isfinite(vertical).astype(int) + np.isfinite(horizontal)
    total = np.nan_to_num(vertical) + np.nan_to_num(horizontal)
    raw = np.divide(total, n_valid, out=np.full(len(total), np.nan), where=n_valid > 0)
    frames = np.arange(len(raw))
    finite = np.isfinite(raw)
    filled = np.interp(frames, frames[finite], raw[finite]) if finite.any() else np.zeros(len(raw))
    window = max(1, int(fps / 4)) | 1
    padded = np.pad(filled, window // 2, mode="edge")
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    smooth = (cumulative[window:] - cumulative[:-window]) / window
    return {"pupilDiameter_raw": raw, "pupilDiameter_smooth": smooth}


def _motion_energy(noise: _Noise, t: np.ndarray, wheel: _Wheel, name: str) -> np.ndarray:
    """Per-frame motion energy in the ROI, higher while the wheel (and so the paws) moves."""
    onset, offset = wheel.move_intervals[:, 0], wheel.move_intervals[:, 1]
    last = np.searchsorted(onset, t, side="right") - 1
    moving = (last >= 0) & (t <= offset[np.maximum(last, 0)])
    width, height = _ROI[name][:2]
    baseline = 0.05 * width * height
    return baseline * (1.0 + np.abs(noise(0.3)) + 2.0 * moving)


def _write_camera(rng, session_path: Path, name: str, duration: float, pose, wheel: _Wheel,
                  licks: np.ndarray, videos: bool) -> None:
    alf = session_path / "alf"
    fps = _CAMERA_FPS[name]
    times = _camera_times(rng, fps, duration)
    _save_npy(alf / f"_ibl_{name}Camera.times.npy", times)
    noise = _Noise(rng, len(times))
    _save_npy(alf / f"{name}Camera.ROIMotionEnergy.npy", _motion_energy(noise, times, wheel, name))
    _save_npy(alf / f"{name}ROIMotionEnergy.position.npy", np.array(_ROI[name], dtype=np.float64))

    # As in real pre-GPIO sessions, the video lost its first few frames: the pose tables are a few
    # rows shorter than the camera times, and their rows belong to the LAST frame times.
    n_pose = len(times) - int(rng.integers(1, 6))
    noise = _Noise(rng, n_pose)
    truth = _pose_truth(rng, noise, name, times[len(times) - n_pose:], wheel, licks)
    dlc = _dlc_table(noise, truth)
    if "dlc" in pose:
        _save_table(alf / f"_ibl_{name}Camera.dlc.pqt", dlc)
    if name != "body":
        _save_table(alf / f"_ibl_{name}Camera.features.pqt", _pupil_features(dlc, fps))
    del dlc
    if "lightningPose" in pose:
        _save_table(alf / f"_ibl_{name}Camera.lightningPose.pqt", _lightning_pose_table(noise, truth))
    if videos:
        video = session_path / "raw_video_data" / f"_iblrig_{name}Camera.raw.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        video.write_bytes(_MP4_PLACEHOLDER)


# --- passive protocol ----------------------------------------------------------------------

def _write_passive(rng, session_path: Path, plan: _PassivePlan) -> None:
    alf = session_path / "alf"
    periods = pd.DataFrame(
        {name: list(plan.periods[name])
         for name in ("passiveProtocol", "spontaneousActivity", "RFM", "taskReplay")},
        index=["start", "stop"])
    periods.to_csv(alf / "_ibl_passivePeriods.intervalsTable.csv")  # index -> empty first header cell

    events = plan.events
    gabor = events["kind"] == "G"
    pd.DataFrame({"start": events["on"][gabor], "stop": events["off"][gabor],
                  "position": events["position"][gabor], "contrast": events["contrast"][gabor],
                  "phase": events["phase"][gabor]}).to_csv(alf / "_ibl_passiveGabor.table.csv",
                                                          index=False)
    _passive_stims(rng, events).to_csv(alf / "_ibl_passiveStims.table.csv", index=False)

    times, frames = _rfm_stimulus(rng, *plan.periods["RFM"])
    _save_npy(alf / "_ibl_passiveRFM.times.npy", times)
    raw = session_path / "raw_passive_data"
    raw.mkdir(parents=True, exist_ok=True)
    frames.tofile(raw / "_iblrig_RFMapStim.raw.bin")


def _passive_stims(rng, events: dict[str, np.ndarray]) -> pd.DataFrame:
    """Valve, tone and noise on/off times; like the real table, columns of unequal length are NaN-padded."""
    kinds = {"valve": "V", "tone": "T", "noise": "N"}
    on = {name: events["on"][events["kind"] == k] for name, k in kinds.items()}
    off = {name: events["off"][events["kind"] == k] for name, k in kinds.items()}
    # The audio sync misses the odd sound, so tone and noise come out shorter.
    drop = {"valve": 0, "tone": 1, "noise": 1}
    counts = {name: len(on[name]) - drop[name] for name in kinds}
    if len(set(counts.values())) == 1:
        drop["noise"] += 1
    columns = {}
    for name in kinds:
        n_drop = min(drop[name], len(on[name]) - 1)
        missed = rng.choice(len(on[name]), n_drop, replace=False) if n_drop > 0 else []
        columns[f"{name}On"] = pd.Series(np.delete(on[name], missed))
        columns[f"{name}Off"] = pd.Series(np.delete(off[name], missed))
    return pd.DataFrame(columns)


def _rfm_stimulus(rng, start: float, stop: float):
    """Sparse-noise frame times and 15 x 15 frames (grey, with a few black and white squares)."""
    period = (1 + rng.uniform(-1e-4, 1e-4)) / _RFM_FPS
    first = start + 0.05
    n = max(1, int((stop - 0.05 - first) / period))
    times = first + np.arange(n) * period + rng.uniform(-0.05, 0.05, n) * period
    n_patterns = -(-n // _RFM_HOLD_FRAMES)
    squares = _RFM_GRID * _RFM_GRID
    lit = rng.random((n_patterns, squares)) < 3.0 / squares
    white = rng.random((n_patterns, squares)) < 0.5
    patterns = np.where(lit, np.where(white, 255, 0), 128).astype(np.uint8)
    frames = patterns[np.arange(n) // _RFM_HOLD_FRAMES]  # n x 225, i.e. n x 15 x 15 in C order
    return times, np.ascontiguousarray(frames)


# --- revision, UUIDs, metadata -------------------------------------------------------------------

def _write_revision(folder: Path, trials: dict[str, np.ndarray], wheel: _Wheel, *, legacy: bool) -> None:
    """A detectably different copy of the trials and wheel datasets (only some of them)."""
    folder.mkdir(parents=True, exist_ok=True)
    shifted = trials["stimOn_times"] + 0.001
    if legacy:
        _save_npy(folder / "_ibl_trials.stimOn_times.npy", shifted)
    else:
        _save_table(folder / "_ibl_trials.table.pqt", _trials_table({**trials, "stimOn_times": shifted}))
    _save_npy(folder / "_ibl_wheel.position.npy", -wheel.position)
    _save_npy(folder / "_ibl_wheel.timestamps.npy", wheel.timestamps)
    _save_npy(folder / "_ibl_wheelMoves.intervals.npy", wheel.move_intervals)
    _save_npy(folder / "_ibl_wheelMoves.peakAmplitude.npy", -wheel.peak_amplitude)


def _add_uuid_extras(rng, alf: Path) -> None:
    """Rename ``obj.attr.ext`` to ``obj.attr.<uuid>.ext`` for every file under ``alf``."""
    for path in sorted(p for p in alf.rglob("*") if p.is_file()):
        dataset_id = uuid.UUID(bytes=rng.bytes(16), version=4)
        stem, extension = path.name.rsplit(".", 1)
        path.rename(path.with_name(f"{stem}.{dataset_id}.{extension}"))


def _write_experiment_description(session_path: Path, cameras, passive: bool, probes) -> None:
    devices = {}
    if cameras:
        devices["cameras"] = {name: {"collection": "raw_video_data", "sync_label": "audio"}
                              for name in cameras}
    if probes:
        devices["neuropixel"] = {probe: {"collection": f"raw_ephys_data/{probe}", "sync_label": "imec_sync"}
                                 for probe in probes}
    tasks = [{"ephysChoiceWorld": {"collection": "raw_behavior_data", "sync_label": "bpod"}}]
    if passive:
        tasks.append({"passiveChoiceWorld": {"collection": "raw_passive_data", "sync_label": "bpod"}})
    description = {
        "devices": devices,
        "procedures": ["Behavior training/tasks", "Ephys recording with acute probe(s)"],
        "projects": ["ibl_neuropixel_brainwide_01"],
        "sync": {"nidq": {"collection": "raw_ephys_data", "extension": "bin",
                          "acquisition_software": "spikeglx"}},
        "tasks": tasks,
        "version": "1.0.0",
    }
    with open(session_path / "_ibl_experiment.description.yaml", "w", encoding="utf-8") as handle:
        yaml.safe_dump(description, handle, sort_keys=False)


def _write_alyx_metadata(rng, session_path: Path, *, eid, lab, subject, date, number, passive,
                         sex, birth_date, probe_insertions) -> None:
    seconds = rng.uniform(9 * 3600, 17 * 3600)
    start = datetime.datetime.fromisoformat(date) + datetime.timedelta(seconds=float(seconds))
    protocol = "_iblrig_tasks_ephysChoiceWorld6.6.2"
    if passive:
        protocol += "/_iblrig_tasks_passiveChoiceWorld6.6.2"
    subject_record = {"nickname": subject, "sex": sex, "birth_date": birth_date,
                      "species": "Mus musculus", "strain": "C57BL/6J", "genotype": [], "lab": lab,
                      "description": ""}
    # Missing metadata is left out, not null, as the converter must report it.
    subject_record = {k: v for k, v in subject_record.items() if v is not None}
    record = {
        "session": {"id": eid, "subject": subject, "lab": lab,
                    "start_time": start.isoformat(timespec="microseconds"), "number": int(number),
                    "task_protocol": protocol, "projects": ["ibl_neuropixel_brainwide_01"],
                    "users": ["test_user"], "narrative": ""},
        "subject": subject_record,
        "lab": {"name": lab, **IBL_LABS.get(lab, {})},
        # As Alyx's insertions endpoint lists them (id = the probe insertion's pid).
        "probe_insertions": list(probe_insertions),
    }
    text = json.dumps(record, indent=2) + "\n"
    (session_path / "alyx_session.json").write_text(text, encoding="utf-8")


# --- writers ---------------------------------------------------------------------------------------

def _save_npy(path: Path, values: np.ndarray) -> None:
    np.save(path, np.asarray(values), allow_pickle=False)


def _save_table(path: Path, columns: dict[str, np.ndarray]) -> None:
    # Via pandas for its schema metadata: ONE's parquet loader fails on a table without any.
    table = pa.Table.from_pandas(pd.DataFrame(columns, copy=False), preserve_index=False)
    # Float columns hardly repeat or compress: encoding and compressing them would only cost time.
    pq.write_table(table, path, use_dictionary=False, compression="none")
