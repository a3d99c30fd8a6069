"""Synthetic but realistic Allen Visual Behavior Neuropixels (VBN) sessions, as AllenSDK writes them.

`make_vbn_session` writes ``ecephys_session_<id>.nwb`` (behaviour, stimuli, units, probes) and
one ``probe_<probe_id>.nwb`` per probe (LFP, current source density) with the layout, names,
extension types and quirks of the released files (see ``shared/SOURCES.md``). The Allen
extension specs are this project's own YAML written from the documented facts
(``data/allen/specs``); they are cached in the files, so a reader needs nothing but pynwb.

The session's metadata come from a real row of the VBN session table, its trials are
resampled from a real change-detection trials table, its eye-tracking values and units
columns follow real Allen tables (all shipped in ``data/allen``). Everything else is drawn
from one seed, vectorised: a default session takes about a second, an hour with six probes
and ~2,000 units (~55 M spikes) a minute or two.

Session clock: ephys starts at 0. The stimulus blocks follow AllenSDK's numbering: 0 active
change detection, 1 spontaneous, 2 Gabor receptive-field mapping, 3 spontaneous, 4 full-field
flashes, 5 passive replay of block 0; optotagging follows. Stimulus frames are 60 Hz.
"""

from __future__ import annotations

import ast
import datetime
import functools
import json
import uuid
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from hdmf.build import BuildManager
from pynwb import NWBHDF5IO, NWBFile, ProcessingModule, TimeSeries, get_type_map
from pynwb.base import TimeSeriesReferenceVectorData
from pynwb.epoch import TimeIntervals
from scipy import signal

from ..interfaces.tables import Column, build_table
from .allen_ephys import (PROBE_NAMES, add_probes, lfp_channel_numbers, make_probe_layouts, make_units,
                          stimulus_drive, units_table, make_probe_nwbfile)

__all__ = ["VbnSession", "make_vbn_session", "ALLEN_NAMESPACES"]

ALLEN_NAMESPACES = ("ndx-aibs-ecephys", "ndx-ellipse-eye-tracking", "ndx-aibs-behavior-ophys",
                    "ndx-aibs-stimulus-template")
_DATA = "data/allen"

# --- stimulus ---------------------------------------------------------------------------------
FRAME_RATE = 60.0
_FLASH_FRAMES, _IMAGE_FRAMES = 45, 15  # an image every 750 ms, shown 250 ms (real VB tables)
_FULL_FIELD_PERIOD_FRAMES = 120  # full-field flashes every 2 s
_IMAGE_SETS = {  # the eight images of each VBN image set (G and H share a few)
    "G": ("im012_r", "im036_r", "im044_r", "im047_r", "im078_r", "im083_r", "im104_r", "im111_r"),
    "H": ("im005_r", "im024_r", "im034_r", "im083_r", "im087_r", "im104_r", "im111_r", "im114_r"),
}
_GABOR = {"name": "gabor_20_deg_250ms", "contrast": 0.8, "spatial_frequency": 0.08, "temporal_frequency": 4.0,
          "positions": np.arange(-40.0, 41.0, 10.0), "orientations": np.array([0.0, 45.0, 90.0])}
_FLASH_NAME = "flash_250ms"
# Relative length of each part of the session: task, spont., Gabor, spont., flashes, replay, opto.
_BLOCK_WEIGHTS = {"task": 1.0, "spontaneous1": 0.012, "gabor": 0.26, "spontaneous3": 0.083, "flash": 0.083,
                  "replay": 1.0, "optotagging": 0.1}
_OMITTED_FRACTION = 0.05
_TEMPLATE_SHAPE = (32, 48)
# Opto stimuli: (stimulus_name, condition, duration s); levels in V.
_OPTO_CONDITIONS = (("pulse", "a single square pulse", 0.01), ("pulse", "a single square pulse", 0.005),
                    ("raised_cosine", "half-period of a cosine wave", 1.0))
_OPTO_LEVELS = np.array([0.6, 0.9, 1.2])
_WHEEL_RADIUS_CM = 6.5
_EYE_FPS = 60.0
# Presentation columns (AllenSDK sorts them by name) and their kind.
_PRESENTATION_COLUMNS = {
    "active": "bool", "color": "float", "contrast": "float", "duration": "float", "end_frame": "int",
    "flashes_since_change": "int", "image_name": "text", "is_change": "nullable_bool",
    "is_image_novel": "nullable_bool", "is_sham_change": "bool", "omitted": "nullable_bool",
    "orientation": "float", "phase": "float", "position_x": "float", "position_y": "float",
    "rewarded": "nullable_bool", "spatial_frequency": "float", "start_frame": "int", "stimulus_block": "int",
    "stimulus_name": "text", "temporal_frequency": "float", "trials_id": "int",
}
_TRIAL_OUTCOMES = ("hit", "false_alarm", "miss", "correct_reject", "aborted", "auto_rewarded")

_STREAMS = ("session", "trials", "stimuli", "running", "eye", "opto", "templates", "ephys", "lfp")


@dataclass(frozen=True)
class VbnSession:
    """What `make_vbn_session` wrote.

    Attributes
    ----------
    session_file : pathlib.Path
        ``<folder>/ecephys_session_<id>.nwb``.
    probe_files : dict of str to pathlib.Path
        Probe name -> ``<folder>/probe_<probe_id>.nwb`` (empty without LFP).
    ecephys_session_id, behavior_session_id : int
    probe_ids : dict of str to int
        Probe name -> Allen probe id.
    mouse_id : str
    session_type, image_set : str
        E.g. ``"EPHYS_1_images_G_3uL_reward"`` and ``"Natural_Images_Lum_Matched_set_ophys_G_2019"``.
    duration_s : float
        Length of the session clock (ephys recording).
    n_trials, n_units, n_spikes : int
    monitor_delay_s : float
        Display delay between a stimulus frame and its appearance on the monitor.
    lfp_channels : dict of str to numpy.ndarray
        Probe name -> channel numbers of its LFP (empty without LFP).
    unregistered_probes : tuple of str
        Probes whose channels have CCF (0, 0, 0) and no acronym.
    """

    session_file: Path
    probe_files: dict[str, Path]
    ecephys_session_id: int
    behavior_session_id: int
    probe_ids: dict[str, int]
    mouse_id: str
    session_type: str
    image_set: str
    duration_s: float
    n_trials: int
    n_units: int
    n_spikes: int
    monitor_delay_s: float
    lfp_channels: dict[str, np.ndarray]
    unregistered_probes: tuple[str, ...]


def make_vbn_session(folder, *, ecephys_session_id=1044385384, probes=("probeA", "probeB"),
                     n_units_per_probe=30, duration_s=300.0, lfp=True, lfp_channels=24, lfp_duration_s=None,
                     csd=True, templates=True, optotagging=True, waveforms=True, unregistered_probes=None,
                     drop_empty_presentation_columns=False, mouse_id=None, sex=None, age_in_days=None,
                     genotype=None, seed=0) -> VbnSession:
    """Write a realistic Allen Visual Behavior Neuropixels session: session file plus probe files.

    Parameters
    ----------
    folder : str or os.PathLike
        Where to write (created if needed).
    ecephys_session_id : int
        The session's id. Its row of the real VBN session table (or the first row, for an id
        not in it) gives the session type, image set, rig, date, mouse and the structures the
        probes cross.
    probes : sequence of str
        Probe names among ``probeA`` .. ``probeF``.
    n_units_per_probe : int
        Units per probe, every quality included (~20 % noise).
    duration_s : float
        Length of the recording (at least 60 s). The stimulus blocks and optotagging share it
        in the proportions of a real session (an hour: ~23 min of task, as much of replay).
    lfp : bool
        Write one probe file per probe with its LFP (float32 V, ~1250 Hz).
    lfp_channels : int
        LFP channels per probe: every ``384 // lfp_channels``-th channel (real files: 96).
    lfp_duration_s : float, optional
        Seconds of LFP from the start of the recording (default: all of it; an hour of 96
        channels is 1.7 GB per probe).
    csd : bool
        Add the current source density to the probe files.
    templates, optotagging : bool
        Write the image set's stimulus templates; run and write optotagging.
    waveforms : bool
        Write ``waveform_mean`` (82 samples x 384 channels per unit, float32; 250 MB for
        2,000 units).
    unregistered_probes : sequence of str, optional
        Probes without CCF registration: CCF (0, 0, 0) and an empty acronym on every channel.
        By default the last probe when there are two or more.
    drop_empty_presentation_columns : bool
        False (default): every ``*_presentations`` table has every presentation column, with
        ``"N/A"`` / NaN where the column does not apply to the stimulus. True: drop those
        columns, as AllenSDK's ``Presentations.to_nwb`` does for columns missing for a whole
        stimulus.
    mouse_id, sex, age_in_days, genotype : optional
        Override the session row's values.
    seed : int
        Seed of every random draw.

    Returns
    -------
    VbnSession
    """
    probes = tuple(sorted(probes))  # AllenSDK orders probes (and their units) by name
    _check_arguments(probes, n_units_per_probe, duration_s, lfp_channels, lfp_duration_s)
    if unregistered_probes is None:
        unregistered = probes[-1:] if len(probes) > 1 else ()
    else:
        unregistered = tuple(unregistered_probes)
    if set(unregistered) - set(probes):
        raise ValueError(f"unregistered_probes {unregistered} must be among probes {probes}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    duration = float(duration_s)

    row = _session_row(int(ecephys_session_id))
    meta = _session_metadata(row, int(ecephys_session_id), mouse_id=mouse_id, sex=sex, age_in_days=age_in_days,
                             genotype=genotype)
    rngs = dict(zip(_STREAMS, np.random.default_rng(seed).spawn(len(_STREAMS))))
    probe_ids = {name: meta["ecephys_session_id"] + 121_549 + PROBE_NAMES.index(name) for name in probes}
    session_file = folder / f"ecephys_session_{meta['ecephys_session_id']}.nwb"
    probe_files = {name: folder / f"probe_{probe_ids[name]}.nwb" for name in probes} if lfp else {}
    existing = [path for path in (session_file, *probe_files.values()) if path.exists()]
    if existing:
        raise FileExistsError(f"{existing[0]} exists; generate into an empty folder")

    plan = _plan_session(rngs["session"], duration, optotagging)
    task = _simulate_task(rngs["trials"], plan, meta)
    stimuli = _stimulus_tables(rngs["stimuli"], plan, task, meta)
    grid, drive, cumulative = stimulus_drive(*_flash_onsets(stimuli), duration)
    layouts = make_probe_layouts(rngs["ephys"], probes, probe_ids=probe_ids,
                                 channel_id_base=meta["ecephys_session_id"] + 4_950_000,
                                 acronyms=meta["structure_acronyms"], unregistered=set(unregistered))
    spikes = make_units(rngs["ephys"], layouts, int(n_units_per_probe), duration=duration, drive_grid=grid,
                        drive_cumulative=cumulative, unit_id_base=meta["ecephys_session_id"] + 5_120_000,
                        column_order=_units_column_order(), waveforms=waveforms)
    channels = lfp_channel_numbers(int(lfp_channels))
    classes = _classes()

    nwbfile = NWBFile(session_description=meta["session_type"], identifier=str(meta["ecephys_session_id"]),
                      session_start_time=meta["session_start_time"], institution="Allen Institute",
                      file_create_date=meta["session_start_time"] + datetime.timedelta(days=400))
    nwbfile.subject = _subject(classes, meta)
    _add_lab_meta_data(nwbfile, classes, meta, task)
    add_probes(nwbfile, layouts, classes, has_lfp=lfp)
    nwbfile.units = units_table(spikes)
    _add_stimulus(nwbfile, plan, stimuli, classes, meta, rngs["templates"] if templates else None,
                  drop_empty=drop_empty_presentation_columns)
    nwbfile.trials = _trials_table(task)
    _add_behavior(nwbfile, rngs["running"], rngs["eye"], plan, task, classes, duration)
    if optotagging:
        _add_optotagging(nwbfile, rngs["opto"], plan)
    _write(nwbfile, session_file)

    lfp_rngs = rngs["lfp"].spawn(len(probes))
    lfp_end = duration if lfp_duration_s is None else min(float(lfp_duration_s), duration)
    for layout, rng in zip(layouts, lfp_rngs):
        if lfp:
            probe_nwb = make_probe_nwbfile(rng, layout, classes, channels=channels, end_s=lfp_end, csd=csd,
                                         drive_grid=grid, drive=drive, session_start_time=meta["session_start_time"],
                                         subject=_subject(classes, meta))
            _add_lab_meta_data(probe_nwb, classes, meta, None)
            _write(probe_nwb, probe_files[layout.name])
    return VbnSession(
        session_file=session_file, probe_files=probe_files, ecephys_session_id=meta["ecephys_session_id"],
        behavior_session_id=meta["behavior_session_id"], probe_ids=probe_ids, mouse_id=meta["mouse_id"],
        session_type=meta["session_type"], image_set=meta["image_set"], duration_s=duration,
        n_trials=len(task["start_frame"]), n_units=spikes.unit_ids.size, n_spikes=int(spikes.times.size),
        monitor_delay_s=plan.delay, lfp_channels={name: channels.copy() for name in probe_files},
        unregistered_probes=tuple(unregistered))


# --- arguments, resources, metadata -----------------------------------------------------------

def _check_arguments(probes, n_units, duration_s, lfp_channels, lfp_duration_s):
    if not probes or len(set(probes)) != len(probes) or set(probes) - set(PROBE_NAMES):
        raise ValueError(f"probes must be distinct names among {PROBE_NAMES}, got {probes}")
    if int(n_units) < 1:
        raise ValueError(f"n_units_per_probe must be at least 1, got {n_units}")
    if not float(duration_s) >= 60.0:
        raise ValueError(f"duration_s must be at least 60 s, got {duration_s}")
    if not 1 <= int(lfp_channels) <= 384:
        raise ValueError(f"lfp_channels must be 1..384, got {lfp_channels}")
    if lfp_duration_s is not None and not float(lfp_duration_s) > 0:
        raise ValueError(f"lfp_duration_s must be positive, got {lfp_duration_s}")


def _resource(name: str):
    return resources.files("nwbridge.testing").joinpath(f"{_DATA}/{name}")


@functools.cache
def _classes() -> dict:
    """The Allen extension classes, from a private type map (pynwb's global one is left alone)."""
    type_map = get_type_map()
    for namespace in ALLEN_NAMESPACES:
        with resources.as_file(_resource(f"specs/{namespace}.namespace.yaml")) as path:
            type_map.load_namespaces(str(path))
    classes = {name: type_map.get_dt_container_cls(name, namespace) for namespace, names in (
        ("ndx-aibs-ecephys", ("EcephysProbe", "EcephysElectrodeGroup", "EcephysCSD")),
        ("ndx-ellipse-eye-tracking", ("EllipseSeries", "EllipseEyeTracking")),
        ("ndx-aibs-behavior-ophys", ("BehaviorSubject", "BehaviorMetadata", "BehaviorTaskParameters")),
        ("ndx-aibs-stimulus-template", ("StimulusTemplate",))) for name in names}
    classes["_type_map"] = type_map
    return classes


@functools.cache
def _units_column_order() -> list[str]:
    """The units columns of a real AllenSDK units table, in its order (ragged ones apart)."""
    with resources.as_file(_resource("vb_expected_units_table.pqt")) as path:
        columns = list(pd.read_parquet(path).columns)
    return [c for c in columns if c not in ("spike_times", "spike_amplitudes", "waveform_mean")]


def _session_row(ecephys_session_id: int) -> pd.Series:
    with resources.as_file(_resource("vbn_ecephys_sessions.csv")) as path:
        table = pd.read_csv(path)
    match = table[table["ecephys_session_id"] == ecephys_session_id]
    return (match if len(match) else table).iloc[0]


def _session_metadata(row, ecephys_session_id, *, mouse_id, sex, age_in_days, genotype) -> dict:
    genotype = str(row["genotype"]) if genotype is None else str(genotype)
    alleles = [part.split("/")[0] for part in genotype.split(";")]
    letter = str(row["image_set"])
    session_type = str(row["session_type"])
    same = int(row["ecephys_session_id"]) == ecephys_session_id
    return {
        "ecephys_session_id": ecephys_session_id,
        "behavior_session_id": int(row["behavior_session_id"]) if same else ecephys_session_id + 23_048,
        "session_type": session_type, "equipment_name": str(row["equipment_name"]),
        "project_code": str(row["project_code"]),
        "session_start_time": pd.Timestamp(row["date_of_acquisition"]).to_pydatetime(),
        "mouse_id": str(row["mouse_id"] if mouse_id is None else mouse_id),
        "sex": str(row["sex"] if sex is None else sex),
        "age_in_days": int(row["age_in_days"] if age_in_days is None else age_in_days),
        "genotype": genotype,
        "driver_line": [a for a in alleles if "Cre" in a],
        "reporter_line": next((a for a in alleles if a.startswith("Ai")), None),
        "structure_acronyms": list(ast.literal_eval(row["structure_acronyms"])),
        "image_names": _IMAGE_SETS[letter],
        "image_set": f"Natural_Images_Lum_Matched_set_ophys_{letter}_2019",
        "novel": str(row["experience_level"]) == "Novel",
        # "..._3uL_reward": earned rewards in mL, as the Allen files store volumes.
        "reward_volume": float(session_type.split("_")[-2].removesuffix("uL")) / 1000.0,
    }


def _subject(classes, meta):
    lines = {"driver_line": meta["driver_line"]} if meta["driver_line"] else {}
    if meta["reporter_line"]:
        lines["reporter_line"] = meta["reporter_line"]
    # No strain: the Allen files carry none.
    return classes["BehaviorSubject"](
        subject_id=meta["mouse_id"], age=f"P{meta['age_in_days']}D", genotype=meta["genotype"], sex=meta["sex"],
        species="Mus musculus", description="A visual behavior subject with a LabTracks ID", **lines)


def _add_lab_meta_data(nwbfile, classes, meta, task):
    nwbfile.add_lab_meta_data(classes["BehaviorMetadata"](
        name="metadata", project_code=meta["project_code"], behavior_session_id=meta["behavior_session_id"],
        stimulus_frame_rate=FRAME_RATE, equipment_name=meta["equipment_name"],
        behavior_session_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"vbn/{meta['behavior_session_id']}")),
        session_type=meta["session_type"]))
    if task is None:
        return
    with resources.as_file(_resource("task_parameters.json")) as path:
        params = json.loads(path.read_text())
    nwbfile.add_lab_meta_data(classes["BehaviorTaskParameters"](
        name="task_parameters", stimulus_distribution=params["stimulus_distribution"],
        auto_reward_volume=float(params["auto_reward_volume"]), stimulus_name=meta["image_set"],
        blank_duration_sec=np.array(params["blank_duration_sec"], dtype=float),
        omitted_flash_fraction=float(params["omitted_flash_fraction"]), task=params["task_type"],
        n_stimulus_frames=int(task["n_task_frames"]), stimulus=params["stimulus"], session_type=meta["session_type"],
        reward_volume=meta["reward_volume"], response_window_sec=np.array(params["response_window_sec"], dtype=float),
        stimulus_duration_sec=float(params["stimulus_duration_sec"])))


# --- session plan -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    frame_times: np.ndarray  # raw frame times (no display delay), one more than frames
    delay: float  # display delay
    blocks: dict[str, tuple[int, int]]  # block -> (first frame, number of frames)
    optotagging: tuple[float, float] | None  # seconds
    duration: float

    @property
    def stimulus_times(self) -> np.ndarray:
        """Times the frames appeared on the monitor (the stimulus timestamps of the file)."""
        return self.frame_times + self.delay


def _plan_session(rng, duration: float, optotagging: bool) -> _Plan:
    lead, tail = rng.uniform(4.0, 8.0), rng.uniform(3.0, 6.0)
    weights = dict(_BLOCK_WEIGHTS)
    opto_gap = 2.0 if optotagging else 0.0
    if not optotagging:
        weights.pop("optotagging")
    unit = (duration - lead - tail - opto_gap) / sum(weights.values())
    quantum = {"task": _FLASH_FRAMES, "gabor": _IMAGE_FRAMES, "flash": _FULL_FIELD_PERIOD_FRAMES}
    blocks, first = {}, 0
    for name in ("task", "spontaneous1", "gabor", "spontaneous3", "flash", "replay"):
        q = quantum.get(name, 1)
        n = blocks["task"][1] if name == "replay" else max(q, int(weights[name] * unit * FRAME_RATE) // q * q)
        blocks[name] = (first, n)
        first += n
    period = (1.0 + rng.uniform(-5e-5, 5e-5)) / FRAME_RATE
    frame_times = lead + np.arange(first + 1) * period + rng.normal(0.0, 2e-5, first + 1)
    opto = (frame_times[-1] + opto_gap, duration - tail) if optotagging else None
    return _Plan(frame_times=frame_times, delay=float(rng.uniform(0.019, 0.022)), blocks=blocks,
                 optotagging=opto, duration=duration)


# --- task -------------------------------------------------------------------------------------

@functools.cache
def _real_trials() -> dict[str, np.ndarray]:
    """The real change-detection trials, as offsets from each trial's anchor.

    The anchor is the change (or sham change) time for trials that reached it and the start
    for aborted trials; the real table's change times include the display delay.
    """
    with resources.as_file(_resource("vb_trials.pqt")) as path:
        table = pd.read_parquet(path)
    aborted = table["aborted"].to_numpy(bool)
    start = table["start_time"].to_numpy(float)
    anchor = np.where(aborted, start, table["change_time"].to_numpy(float))
    licks = [np.asarray(x, dtype=float) for x in table["lick_times"]]
    auto = table["auto_rewarded"].to_numpy(bool)
    # Sessions open with free (auto-rewarded) trials: keep the real opening, resample the rest.
    opening = np.flatnonzero(auto)[4] + 1 if auto.sum() >= 5 else 0
    return {
        "aborted": aborted, "auto_rewarded": auto, "go": table["go"].to_numpy(bool),
        "catch": table["catch"].to_numpy(bool), "is_change": table["stimulus_change"].to_numpy(bool),
        **{name: table[name].to_numpy(bool) for name in _TRIAL_OUTCOMES},
        "change_flash": np.where(aborted, 0, np.rint((anchor - start) / 0.75)).astype(np.int64),
        "stop": table["stop_time"].to_numpy(float) - anchor,
        "reward": table["reward_time"].to_numpy(float) - anchor,
        "licks": np.concatenate(licks) - np.repeat(anchor, [x.size for x in licks]),
        "lick_counts": np.array([x.size for x in licks]),
        "opening": np.arange(opening), "pool": np.flatnonzero(~auto & (np.arange(len(table)) >= opening)),
    }


def _flat_ranges(starts, counts) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for every (s, c)."""
    starts, counts = np.asarray(starts, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    return np.arange(int(counts.sum())) + np.repeat(starts - np.cumsum(np.r_[0, counts[:-1]]), counts)


def _simulate_task(rng, plan: _Plan, meta: dict) -> dict:
    """Trials of block 0 on the flash grid, resampled from the real trials, and their flashes."""
    real = _real_trials()
    first, n_frames = plan.blocks["task"]
    n_flashes = n_frames // _FLASH_FRAMES
    period = (plan.frame_times[-1] - plan.frame_times[0]) / (plan.frame_times.size - 1)
    rows = np.r_[real["opening"], rng.choice(real["pool"], size=n_flashes)][:n_flashes]
    aborted = real["aborted"][rows]
    # Real offsets are from the change as displayed: add our display delay to land on raw frames.
    shift = np.where(aborted, 0.0, plan.delay)
    anchor_off = _FLASH_FRAMES * real["change_flash"][rows]
    stop_off = np.maximum(anchor_off + np.rint((real["stop"][rows] + shift) / period).astype(np.int64), anchor_off + 1)
    # The next trial starts on the first flash after this one stopped.
    span = _FLASH_FRAMES * ((stop_off + _FLASH_FRAMES) // _FLASH_FRAMES)
    start_off = np.cumsum(np.r_[0, span[:-1]])
    fits = start_off + stop_off < n_frames
    n = int(np.argmin(fits)) if not fits.all() else rows.size
    rows, aborted, shift, anchor_off, stop_off = rows[:n], aborted[:n], shift[:n], anchor_off[:n], stop_off[:n]
    start_frame = first + start_off[:n]
    stop_frame = start_frame + stop_off
    anchor_frame = start_frame + anchor_off

    # Licks, rewards: real offsets from the anchor, on the stimulus frames (as the task logs them).
    counts = real["lick_counts"][rows]
    trial_of_lick = np.repeat(np.arange(n), counts)
    lick_offsets = real["licks"][_flat_ranges(np.cumsum(np.r_[0, real["lick_counts"]])[rows], counts)]
    lick_frames = np.clip(anchor_frame[trial_of_lick] + np.rint((lick_offsets + shift[trial_of_lick]) / period),
                          start_frame[trial_of_lick], stop_frame[trial_of_lick]).astype(np.int64)
    distinct = np.r_[True, np.diff(lick_frames) > 0]  # two licks in one frame are one lick
    lick_frames, trial_of_lick = lick_frames[distinct], trial_of_lick[distinct]
    lick_ends = np.cumsum(np.bincount(trial_of_lick, minlength=n))
    reward_offsets = real["reward"][rows]
    rewarded = np.isfinite(reward_offsets)
    reward_frame = np.clip(anchor_frame + np.rint(np.nan_to_num(reward_offsets + shift) / period).astype(np.int64),
                           start_frame, stop_frame)
    change_frame = np.where(aborted, -99, anchor_frame)
    first_after = np.searchsorted(lick_frames, anchor_frame)
    responded = ~aborted & (first_after < lick_ends)
    response_frame = np.where(responded, lick_frames[np.minimum(first_after, lick_frames.size - 1)] if lick_frames.size
                              else 0, -1)

    # Images: go and auto-rewarded trials change to another image of the set; catch trials do not.
    n_images = len(meta["image_names"])
    is_change = real["is_change"][rows]
    steps = rng.integers(1, n_images, n) * is_change
    initial = int(rng.integers(n_images))
    after = (initial + np.cumsum(steps)) % n_images
    before = (after - steps) % n_images

    # Flashes of block 0.
    flash = np.arange(n_flashes)
    change_flash = (anchor_frame[is_change] - first) // _FLASH_FRAMES
    sham_flash = (anchor_frame[real["catch"][rows]] - first) // _FLASH_FRAMES
    changes_so_far = np.searchsorted(change_flash, flash, side="right")
    image = (initial + np.r_[0, np.cumsum(steps[is_change])][changes_so_far]) % n_images
    protected = np.zeros(n_flashes, dtype=bool)
    for flashes in (change_flash, sham_flash):  # never omit a (sham) change or the flash before it
        protected[flashes] = protected[np.maximum(flashes - 1, 0)] = True
    omitted = ~protected & (flash > 0) & (rng.random(n_flashes) < _OMITTED_FRACTION)
    is_change_flash = np.zeros(n_flashes, dtype=bool)
    is_change_flash[change_flash] = True
    last_change = np.maximum.accumulate(np.where(is_change_flash, flash, 0))
    rewarded_flash = np.zeros(n_flashes, dtype=bool)
    rewarded_flash[(anchor_frame[is_change & rewarded] - first) // _FLASH_FRAMES] = True
    sham = np.zeros(n_flashes, dtype=bool)
    sham[sham_flash] = True
    names = np.array(meta["image_names"], dtype=object)
    other = set(_IMAGE_SETS["H" if meta["image_set"].endswith("G_2019") else "G"])
    novel_image = np.array([meta["novel"] and name not in other for name in names], dtype=float)
    times = plan.frame_times
    return {
        "rows": rows, "start_frame": start_frame, "stop_frame": stop_frame, "change_frame": change_frame,
        "start_time": times[start_frame], "stop_time": times[stop_frame],
        "initial_image_name": names[before], "change_image_name": names[after], "is_change": is_change,
        "change_time_no_display_delay": np.where(aborted, np.nan, times[anchor_frame]),
        **{name: real[name][rows] for name in ("go", "catch", *_TRIAL_OUTCOMES)},
        "response_time": np.where(responded, times[np.maximum(response_frame, 0)], np.nan),
        "reward_time": np.where(rewarded, times[reward_frame], np.nan),
        "reward_volume": np.where(real["hit"][rows], meta["reward_volume"],
                                  np.where(real["auto_rewarded"][rows], 0.005, 0.0)),
        "lick_frames": lick_frames, "lick_times": times[lick_frames], "lick_ends": lick_ends,
        "n_task_frames": n_frames,
        "flashes": {
            "start_frame": first + flash * _FLASH_FRAMES, "image_name": np.where(omitted, "omitted", names[image]),
            "omitted": omitted, "is_change": is_change_flash, "is_sham_change": sham, "rewarded": rewarded_flash,
            "is_image_novel": np.where(omitted, np.nan, novel_image[image]),
            "flashes_since_change": flash - last_change,
            "trials_id": np.searchsorted((start_frame - first) // _FLASH_FRAMES, flash, side="right") - 1,
        },
    }


# --- stimuli ----------------------------------------------------------------------------------

def _stimulus_tables(rng, plan: _Plan, task: dict, meta: dict) -> dict[str, dict[str, np.ndarray]]:
    """Columns of every stimulus's presentations (only those that apply to it), by stimulus name."""
    ts = plan.stimulus_times
    flashes = task["flashes"]
    replay_shift = plan.blocks["replay"][0] - plan.blocks["task"][0]
    n = flashes["start_frame"].size
    start_frame = np.r_[flashes["start_frame"], flashes["start_frame"] + replay_shift]
    omitted = np.r_[flashes["omitted"], flashes["omitted"]]
    start = ts[start_frame]
    # Omitted flashes have no end of their own: AllenSDK gives them 250 ms and the median length.
    stop = np.where(omitted, start + 0.25, ts[start_frame + _IMAGE_FRAMES])
    images = {
        "start_time": start, "stop_time": stop, "stimulus_block": np.repeat([0, 5], n),
        "stimulus_name": np.full(2 * n, meta["image_set"], dtype=object),
        "image_name": np.r_[flashes["image_name"], flashes["image_name"]].astype(object),
        "duration": stop - start, "start_frame": start_frame, "end_frame": start_frame + _IMAGE_FRAMES,
        "active": np.repeat([True, False], n),
        **{name: np.r_[flashes[name], flashes[name]] for name in (
            "is_change", "is_image_novel", "omitted", "is_sham_change", "rewarded", "flashes_since_change",
            "trials_id")},
    }

    first, n_frames = plan.blocks["gabor"]
    n_gabor = n_frames // _IMAGE_FRAMES
    grid = np.array(np.meshgrid(_GABOR["orientations"], _GABOR["positions"], _GABOR["positions"], indexing="ij"))
    grid = grid.reshape(3, -1).T  # orientation, position_x, position_y: 3 x 9 x 9 conditions
    order = np.concatenate([rng.permutation(len(grid)) for _ in range(n_gabor // len(grid) + 1)])[:n_gabor]
    gabor = _passive_rows(ts, first + np.arange(n_gabor) * _IMAGE_FRAMES, block=2, name=_GABOR["name"])
    gabor.update(orientation=grid[order, 0], position_x=grid[order, 1], position_y=grid[order, 2],
                 phase=np.zeros(n_gabor),
                 contrast=np.full(n_gabor, _GABOR["contrast"]),
                 spatial_frequency=np.full(n_gabor, _GABOR["spatial_frequency"]),
                 temporal_frequency=np.full(n_gabor, _GABOR["temporal_frequency"]))

    first, n_frames = plan.blocks["flash"]
    n_flash = n_frames // _FULL_FIELD_PERIOD_FRAMES
    flash = _passive_rows(ts, first + np.arange(n_flash) * _FULL_FIELD_PERIOD_FRAMES, block=4, name=_FLASH_NAME)
    flash["color"] = rng.permutation(np.resize([-1.0, 1.0], n_flash))

    # Spontaneous blocks: the gray screen from the end of one block to the start of the next.
    bounds = [(images["start_frame"][n - 1] + _IMAGE_FRAMES, gabor["start_frame"][0]),
              (gabor["end_frame"][-1], flash["start_frame"][0])]
    spont_start = np.array([b[0] for b in bounds])
    spontaneous = _passive_rows(ts, spont_start, block=np.array([1, 3]), name="spontaneous",
                                end_frame=np.array([b[1] for b in bounds]))
    return {meta["image_set"]: images, "spontaneous": spontaneous, _GABOR["name"]: gabor, _FLASH_NAME: flash}


def _passive_rows(ts, start_frame, *, block, name, end_frame=None) -> dict[str, np.ndarray]:
    end_frame = start_frame + _IMAGE_FRAMES if end_frame is None else end_frame
    n = start_frame.size
    return {"start_time": ts[start_frame], "stop_time": ts[end_frame],
            "stimulus_block": np.broadcast_to(block, n).copy(),
            "stimulus_name": np.full(n, name, dtype=object), "duration": ts[end_frame] - ts[start_frame],
            "start_frame": start_frame, "end_frame": end_frame, "active": np.zeros(n, dtype=bool),
            "is_sham_change": np.zeros(n, dtype=bool), "flashes_since_change": np.full(n, -99),
            "trials_id": np.full(n, -99)}


def _flash_onsets(stimuli: dict) -> tuple[np.ndarray, np.ndarray]:
    """Onsets of everything shown, and how strongly each drives visual neurons."""
    onsets, weights = [], []
    for name, table in stimuli.items():
        if name == "spontaneous":
            continue
        shown = ~table["omitted"].astype(bool) if "omitted" in table else np.ones(table["start_time"].size, bool)
        if "is_change" in table:  # a change drives harder than a repeat
            weight = np.where(table["is_change"].astype(bool), 2.0, 1.0)
        else:
            weight = np.full(shown.size, 1.5 if name == _FLASH_NAME else 0.7)
        onsets.append(table["start_time"][shown])
        weights.append(weight[shown])
    return np.concatenate(onsets), np.concatenate(weights)


def _presentation_table(name: str, columns: dict, timestamps: TimeSeries, *, drop_empty: bool) -> TimeIntervals:
    n = columns["start_time"].size
    vectors = [Column("start_time", "Start time of epoch, in seconds", columns["start_time"]),
               Column("stop_time", "Stop time of epoch, in seconds", columns["stop_time"])]
    for column, kind in _PRESENTATION_COLUMNS.items():
        values = columns.get(column)
        if values is None:
            if drop_empty:
                continue
            values = np.full(n, "N/A", dtype=object) if kind == "text" else np.full(n, np.nan)
        elif kind == "nullable_bool":  # pandas' nullable booleans: written as floats, NaN kept
            values = np.asarray(values, dtype=float)
        vectors.append(Column(column, _COLUMN_DESCRIPTIONS.get(column, "no description"), values))
    vectors.append(Column("tags", "user-defined tags", np.full(n, "stimulus_time_interval", dtype=object),
                          ends=np.arange(1, n + 1)))
    reference = np.zeros(n, dtype=[("idx_start", "<i4"), ("count", "<i4"), ("timeseries", object)])
    reference["idx_start"] = columns["start_frame"]
    reference["count"] = np.asarray(columns["end_frame"]) - np.asarray(columns["start_frame"])
    reference["timeseries"] = timestamps
    vectors.append(Column("timeseries", "index into a TimeSeries object", reference, ends=np.arange(1, n + 1),
                          vector_class=TimeSeriesReferenceVectorData))
    return build_table(TimeIntervals, name=f"{name}_presentations", columns=vectors,
                       description=f"Presentation times and stimuli details for '{name}' stimuli. \n"
                                   "Note: image_name references control_description in stimulus/templates")


_COLUMN_DESCRIPTIONS = {
    "stimulus_name": "Name of the stimulus", "stimulus_block": "Index of the stimulus block",
    "orientation": "Orientation of the grating (degrees)", "contrast": "Contrast of the stimulus",
    "spatial_frequency": "Spatial frequency (cycles/degree)", "temporal_frequency": "Temporal frequency (Hz)",
}


def _add_stimulus(nwbfile, plan, stimuli, classes, meta, template_rng, *, drop_empty):
    ts = plan.stimulus_times
    timestamps = TimeSeries(name="timestamps", data=ts, timestamps=ts, unit="s",
                            description="Timestamps of every stimulus frame as displayed on the monitor")
    module = ProcessingModule(name="stimulus", description="Stimulus Times processing")
    module.add(timestamps)
    nwbfile.add_processing_module(module)
    for name in sorted(stimuli):
        nwbfile.add_time_intervals(_presentation_table(name, stimuli[name], timestamps, drop_empty=drop_empty))
    if template_rng is not None:
        warped, unwarped = _template_images(template_rng, len(meta["image_names"]))
        nwbfile.add_stimulus_template(classes["StimulusTemplate"](
            name=meta["image_set"], data=warped, unwarped=unwarped,
            control=np.arange(len(meta["image_names"]), dtype=np.uint8),
            control_description=list(meta["image_names"]), unit="NA", format="raw",
            timestamps=np.zeros(len(meta["image_names"]))))


def _template_images(rng, n: int):
    """Natural-looking (1/f) images: warped for the monitor (uint8) and unwarped (float, NaN off-screen)."""
    h, w = _TEMPLATE_SHAPE
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(h, w))
    noise = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, h, w))) * amplitude).real
    lo, hi = noise.min(axis=(1, 2), keepdims=True), noise.max(axis=(1, 2), keepdims=True)
    unwarped = 255.0 * (noise - lo) / (hi - lo)
    # The spherical warp squeezes the image towards the centre: rows and columns further out.
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    radius = np.hypot(yy, xx)
    src_y = np.clip(np.rint((yy * (1 + 0.15 * radius ** 2) + 1) / 2 * (h - 1)), 0, h - 1).astype(int)
    src_x = np.clip(np.rint((xx * (1 + 0.15 * radius ** 2) + 1) / 2 * (w - 1)), 0, w - 1).astype(int)
    warped = np.rint(unwarped[:, src_y, src_x]).astype(np.uint8)
    unwarped[:, radius > 1.25] = np.nan  # corners the monitor never shows
    return warped, unwarped


# --- trials and behaviour ---------------------------------------------------------------------

_TRIAL_COLUMNS = {
    "initial_image_name": "Name of the image shown at the start of the trial",
    "change_image_name": "Name of the image shown after the change (the initial image if there was none)",
    "is_change": "Whether the image changed in the trial",
    "change_time_no_display_delay": "Time of the (sham) change frame, without the monitor display delay (s)",
    "go": "Go trial: an image change", "catch": "Catch trial: a sham change, the image stays",
    "lick_times": "Times of the licks in the trial (s)",
    "response_time": "Time of the first lick after the (sham) change (s)",
    "reward_time": "Time of reward delivery (s)", "reward_volume": "Volume of water delivered (mL)",
    "hit": "Lick in the response window of a go trial", "false_alarm": "Lick in the response window of a catch trial",
    "miss": "No lick in the response window of a go trial",
    "correct_reject": "No lick in the response window of a catch trial",
    "aborted": "Trial aborted by a lick before the change", "auto_rewarded": "Free reward at the change",
    "change_frame": "Stimulus frame of the (sham) change; -99 when there was none",
    "trial_length": "Duration of the trial (s)",
}


def _trials_table(task: dict) -> TimeIntervals:
    columns = [Column("start_time", "Start time of epoch, in seconds", task["start_time"]),
               Column("stop_time", "Stop time of epoch, in seconds", task["stop_time"])]
    for name, description in _TRIAL_COLUMNS.items():
        if name == "lick_times":
            columns.append(Column(name, description, task["lick_times"], ends=task["lick_ends"]))
            continue
        values = task["stop_time"] - task["start_time"] if name == "trial_length" else task[name]
        columns.append(Column(name, description, values))
    return build_table(TimeIntervals, name="trials", description="Change-detection trials", columns=columns)


def _add_behavior(nwbfile, running_rng, eye_rng, plan: _Plan, task: dict, classes, duration: float):
    times = plan.frame_times
    licks = ProcessingModule(name="licking", description="Licking behavior processing module")
    licks.add(TimeSeries(name="licks", data=task["lick_frames"], timestamps=task["lick_times"], unit="N/A",
                         description="Timestamps and stimulus presentation frame indices for lick events"))
    nwbfile.add_processing_module(licks)
    rewarded = np.isfinite(task["reward_time"])
    rewards = ProcessingModule(name="rewards", description="Licking behavior processing module")
    volume = TimeSeries(name="volume", data=task["reward_volume"][rewarded], timestamps=task["reward_time"][rewarded],
                        unit="mL")
    rewards.add(volume)
    # The Allen files say "mL" for the boolean series too.
    rewards.add(TimeSeries(name="autorewarded", data=task["auto_rewarded"][rewarded], timestamps=volume, unit="mL"))
    nwbfile.add_processing_module(rewards)

    speed, unfiltered, dx = _running(running_rng, times.size)
    running = ProcessingModule(name="running", description="Running speed processing module")
    speed_series = TimeSeries(name="speed", data=speed, timestamps=times, unit="cm/s",
                              description="Running speed, low-pass filtered")
    running.add(speed_series)
    running.add(TimeSeries(name="speed_unfiltered", data=unfiltered, timestamps=speed_series, unit="cm/s",
                           description="Running speed, unfiltered"))
    running.add(TimeSeries(name="dx", data=dx, timestamps=speed_series, unit="cm",
                           description="Running wheel angular change, computed during data collection"))
    nwbfile.add_processing_module(running)
    v_in = np.full(times.size, 4.99) + running_rng.normal(0.0, 0.002, times.size)
    v_sig = (np.cumsum(dx) % 360.0) / 360.0 * v_in
    nwbfile.add_acquisition(TimeSeries(name="v_sig", data=v_sig, timestamps=speed_series, unit="V",
                                       description="Voltage signal from the running wheel encoder"))
    nwbfile.add_acquisition(TimeSeries(name="v_in", data=v_in, timestamps=speed_series, unit="V",
                                       description="The theoretical maximum voltage that the running wheel encoder "
                                                   "will reach prior to \"wrapping\"."))
    nwbfile.add_acquisition(_eye_tracking(eye_rng, classes, duration, np.interp(
        np.arange(0, duration, 1.0), times, speed)))


def _ar1(rng, n: int, tau_samples: float) -> np.ndarray:
    """Unit-variance AR(1) noise with the given correlation time."""
    a = np.exp(-1.0 / tau_samples)
    return signal.lfilter([np.sqrt(1 - a * a)], [1.0, -a], rng.standard_normal(n))


def _running(rng, n: int):
    """Running speed in bouts (cm/s): unfiltered, filtered, and the wheel's angular steps (deg)."""
    state = _ar1(rng, n, 8.0 * FRAME_RATE)
    true_speed = 35.0 / (1.0 + np.exp(-4.0 * (state - 0.3))) + 2.0 * _ar1(rng, n, 0.5 * FRAME_RATE)
    unfiltered = true_speed + rng.normal(0.0, 2.5, n)
    speed = signal.filtfilt(*signal.butter(3, 10.0, fs=FRAME_RATE), unfiltered)
    dx = unfiltered / FRAME_RATE / (2 * np.pi * _WHEEL_RADIUS_CM) * 360.0
    return speed, unfiltered, dx


@functools.cache
def _real_eye() -> pd.DataFrame:
    with resources.as_file(_resource("vb_eye_tracking_table.pqt")) as path:
        table = pd.read_parquet(path)
    return table[~table["likely_blink"]].describe()


def _eye_tracking(rng, classes, duration: float, speed_per_second: np.ndarray):
    """Ellipse fits of the eye, pupil and corneal reflection at ~60 Hz, with blinks (pixels)."""
    real = _real_eye()
    start = rng.uniform(0.5, 2.0)
    n = int((duration - 1.0 - start) * _EYE_FPS)
    t = start + np.arange(n) * (1.0 + rng.uniform(-1e-4, 1e-4)) / _EYE_FPS + rng.normal(0.0, 1e-4, n)
    slow = _ar1(rng, n, 20 * _EYE_FPS)
    # The pupil dilates with arousal, which follows running.
    run = np.interp(t, np.arange(speed_per_second.size), speed_per_second) / 30.0
    radius = real.loc["50%", "pupil_width"] * np.exp(0.15 * slow + 0.15 * np.clip(run, 0, 1.5))
    parts = {}
    for part, prefix in (("eye", "eye"), ("pupil", "pupil"), ("corneal_reflection", "cr")):
        center = np.column_stack([real.loc["mean", f"{prefix}_center_{axis}"]
                                  + real.loc["std", f"{prefix}_center_{axis}"] * _ar1(rng, n, 2 * _EYE_FPS)
                                  for axis in ("x", "y")])
        if part == "pupil":
            width, height = radius, radius * rng.uniform(0.93, 0.99)
            area = np.pi * np.maximum(width, height) ** 2  # the pupil's area is that of its circle
        else:
            width = real.loc["mean", f"{prefix}_width"] + real.loc["std", f"{prefix}_width"] * _ar1(rng, n, _EYE_FPS)
            height = real.loc["mean", f"{prefix}_height"] + real.loc["std", f"{prefix}_height"] * _ar1(rng, n, _EYE_FPS)
            area = np.pi * width * height
        angle = real.loc["mean", f"{prefix}_phi"] + real.loc["std", f"{prefix}_phi"] * rng.standard_normal(n)
        parts[part] = {"data": center, "width": width, "height": height, "angle": angle, "area": area}
    # Blinks: 100-200 ms every ~12 s, dilated by two frames each side as AllenSDK does.
    blink = np.zeros(n, dtype=bool)
    onsets = np.flatnonzero(rng.random(n) < 1.0 / (12.0 * _EYE_FPS))
    lengths = rng.integers(6, 13, onsets.size)
    for shift in range(-2, 15):
        idx = onsets + shift
        blink[idx[(idx >= 0) & (idx < n) & (shift < lengths + 2)]] = True
    series = {}
    for part, values in parts.items():
        area_raw = values["area"] * np.where(blink, rng.uniform(0.2, 0.6, n), 1.0)  # the lid hides part of it
        area = np.where(blink, np.nan, values["area"])
        # Fits fail on blinks for the eye and the pupil; the corneal reflection's stay.
        shape = {k: (values[k] if part == "corneal_reflection" else np.where(blink, np.nan, values[k]))
                 for k in ("width", "height", "angle")}
        series[part] = classes["EllipseSeries"](
            name=f"{part}_tracking", reference_frame="nose", data=values["data"], area=area, area_raw=area_raw,
            timestamps=t if part == "eye" else series["eye"], **shape)  # unit: SpatialSeries' "meters", in pixels
    likely_blink = TimeSeries(name="likely_blink", data=blink, timestamps=series["eye"], unit="N/A",
                              description="blinks")
    return classes["EllipseEyeTracking"](eye_tracking=series["eye"], pupil_tracking=series["pupil"],
                                         corneal_reflection_tracking=series["corneal_reflection"],
                                         likely_blink=likely_blink)


def _add_optotagging(nwbfile, rng, plan: _Plan):
    start, stop = plan.optotagging
    onsets = start + np.cumsum(rng.uniform(1.5, 2.5, int((stop - start) / 1.5) + 1))
    condition = rng.integers(len(_OPTO_CONDITIONS), size=onsets.size)
    durations = np.array([c[2] for c in _OPTO_CONDITIONS])[condition]
    keep = onsets + durations < stop
    onsets, condition, durations = onsets[keep], condition[keep], durations[keep]
    series = TimeSeries(name="optotagging", data=durations, timestamps=onsets, unit="seconds")
    module = ProcessingModule(name="optotagging", description="optogenetic stimulution data")
    module.add(series)
    n = onsets.size
    reference = np.zeros(n, dtype=[("idx_start", "<i4"), ("count", "<i4"), ("timeseries", object)])
    reference["idx_start"], reference["count"], reference["timeseries"] = np.arange(n), 1, series
    module.add(build_table(TimeIntervals, name="optogenetic_stimulation", description="optogenetic stimulation",
                           columns=[
        Column("start_time", "Start time of epoch, in seconds", onsets),
        Column("stop_time", "Stop time of epoch, in seconds", onsets + durations),
        Column("condition", "no description", np.array([_OPTO_CONDITIONS[c][1] for c in condition], dtype=object)),
        Column("level", "no description", _OPTO_LEVELS[rng.integers(_OPTO_LEVELS.size, size=n)]),
        Column("stimulus_name", "no description", np.array([_OPTO_CONDITIONS[c][0] for c in condition], dtype=object)),
        Column("duration", "no description", durations),
        Column("tags", "user-defined tags", np.full(n, "optical_stimulation", dtype=object), ends=np.arange(1, n + 1)),
        Column("timeseries", "index into a TimeSeries object", reference, ends=np.arange(1, n + 1),
               vector_class=TimeSeriesReferenceVectorData)]))
    nwbfile.add_processing_module(module)


def _write(nwbfile: NWBFile, path: Path) -> None:
    with warnings.catch_warnings():
        # EllipseEyeTracking extends core EyeTracking, which wants unnamed SpatialSeries; its named
        # EllipseSeries are what the Allen files hold (a known wart of the real extension).
        warnings.filterwarnings("ignore", message=".*missing required value for attribute 'spatial_series'")
        with NWBHDF5IO(path, "w", manager=BuildManager(_classes()["_type_map"])) as io:
            io.write(nwbfile)
