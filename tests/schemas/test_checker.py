"""The checker's verdicts on small NWB files that conform to the representation or break it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
from hdmf.common import DynamicTable, DynamicTableRegion, VectorData
from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import PupilTracking, SpatialSeries
from pynwb.ecephys import ElectricalSeries
from pynwb.epoch import TimeIntervals
from pynwb.event import EventsTable, TimestampVectorData
from pynwb.file import Subject
from pynwb.image import ImageSeries
from pynwb.misc import Units

from nwbridge.interfaces.tables import Column, build_table
from nwbridge.provenance import ALLEN_DATASET, IBL_DATASET, file_identifier, provenance_record
from nwbridge.schemas import REPRESENTATION_VERSION, checker
from nwbridge.schemas.checker import (
    EXTRA,
    FAIL,
    NOT_PRESENT,
    PASS,
    FileReport,
    check_file,
    check_files,
    format_report,
    inspect_file,
)

EID = "3e7ae7c0-fe8b-487c-9354-036236fa1010"
ALLEN_SESSION = "1044385384"
START = datetime(2021, 5, 10, 13, 47, 8, tzinfo=timezone.utc)
N_TRIALS = 6


# ------------------------------------------------------------------------------------------
# building files


def _file_metadata(source_dataset: str, session_id: str, kind: str, *, subject: Subject) -> NWBFile:
    native = {"eid": session_id} if source_dataset == IBL_DATASET else {"ecephys_session_id": session_id}
    return NWBFile(
        session_description="test session",
        identifier=file_identifier(source_dataset, session_id, kind),
        session_start_time=START,
        session_id=session_id,
        institution="Test University",
        lab="testlab",
        experiment_description="A test of the representation checker.",
        related_publications=["doi:10.1101/2023.07.04.549627"],
        keywords=["test", "Neuropixels"],
        source_script=provenance_record(source_dataset, native_ids=native, data_revision=None),
        source_script_file_name="nwbridge",
        subject=subject,
    )


def _write(nwbfile: NWBFile, directory: Path, *, subject: str, session: str, kind: str) -> Path:
    modalities = "behavior+ecephys" if kind == "processed" else "ecephys"
    path = directory / f"sub-{subject}" / f"sub-{subject}_ses-{session}_desc-{kind}_{modalities}.nwb"
    path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(path, "w") as io:
        io.write(nwbfile)
    return path


def _table(table_class, name: str, columns: dict, **kwargs):
    """A table from ``{column: data}``; ``(data, ends)`` tuples are ragged columns."""
    built = []
    for column, data in columns.items():
        vector_class = TimestampVectorData if column == "timestamp" and table_class is EventsTable else VectorData
        if isinstance(data, tuple):
            built.append(Column(column, f"{column} (test)", np.asarray(data[0]), ends=data[1]))
        else:
            built.append(Column(column, f"{column} (test)", data, vector_class=vector_class))
    return build_table(table_class, name=name, description=f"{name} (test)", columns=built, **kwargs)


def _text(*values) -> np.ndarray:
    return np.array(values, dtype=object)


def ibl_trials_columns() -> dict:
    start = np.arange(N_TRIALS, dtype=float) * 10.0
    rewarded = np.array([True, False, True, True, False, True])
    choice = np.array([1.0, -1.0, -1.0, 1.0, 0.0, 1.0])
    feedback = start + 2.0
    return {
        "start_time": start,
        "stop_time": start + 8.0,
        "stimulus_onset_time": start + 0.5,
        "response_time": start + 1.5,
        "reward_time": np.where(rewarded, feedback, np.nan),
        "reward_volume_ul": np.where(rewarded, 1.5, 0.0),
        "is_rewarded": rewarded,
        "outcome": _text("correct", "incorrect", "correct", "correct", "no_go", "correct"),
        "go_cue_time": start + 0.55,
        "first_movement_time": start + 0.9,
        "feedback_time": feedback,
        "stimulus_offset_time": start + 3.0,
        "contrast_left": np.array([np.nan, 1.0, 0.25, np.nan, 0.0, np.nan]),
        "contrast_right": np.array([0.125, np.nan, np.nan, 1.0, np.nan, 0.0625]),
        "probability_left": np.full(N_TRIALS, 0.5),
        "choice": choice,
        "feedback_type": np.where(rewarded, 1.0, -1.0),
        "quiescence_period": np.full(N_TRIALS, 0.4),
        "stimulus_onset_trigger_time": start + 0.45,
    }


def make_ibl_processed(directory: Path, *, skip: frozenset = frozenset(), trials: dict | None = None,
                       session_id: str = EID, with_running_speed: bool = False,
                       extra_series: bool = False) -> Path:
    """An IBL processed file with every modality, conforming unless told otherwise.

    Parameters
    ----------
    skip : set of str
        Names of objects to leave out (``wheel_position``, ``Skeletons``, ...).
    trials : dict, optional
        Trial columns replacing (or, with value ``None``, removing) the conforming ones.
    session_id : str
        Written as ``session_id`` (and used for the identifier).
    with_running_speed : bool
        Add an Allen-only object.
    extra_series : bool
        Add a series the representation does not know.
    """
    subject = Subject(subject_id="SWC_043", species="Mus musculus", sex="M", age="P120D",
                      date_of_birth=datetime(2021, 1, 10, tzinfo=timezone.utc), strain="C57BL/6J")
    nwbfile = _file_metadata(IBL_DATASET, session_id, "processed", subject=subject)

    columns = ibl_trials_columns()
    for name, values in (trials or {}).items():
        if values is None:
            columns.pop(name)
        else:
            columns[name] = values
    nwbfile.trials = _table(TimeIntervals, "trials", columns)
    nwbfile.epochs = _table(TimeIntervals, "epochs", {
        "start_time": np.array([0.0, 70.0, 400.0, 700.0]),
        "stop_time": np.array([60.0, 390.0, 690.0, 900.0]),
        "protocol": _text("task", "spontaneous", "receptive_field_mapping", "task_replay"),
    })

    behavior = nwbfile.create_processing_module("behavior", "Behavioural data (test).")
    times = np.linspace(0.0, 60.0, 121)
    if "wheel_position" not in skip:
        behavior.add(SpatialSeries(name="wheel_position", data=np.cumsum(np.full(121, 0.01)), timestamps=times,
                                   unit="radians", reference_frame="wheel angle at session start", description="wheel"))
    behavior.add(TimeSeries(name="wheel_velocity", data=np.zeros(600), unit="radians/s", starting_time=0.0, rate=10.0,
                            description="wheel velocity"))
    behavior.add(_table(TimeIntervals, "wheel_movements", {
        "start_time": np.array([1.0, 5.0, 9.0]), "stop_time": np.array([1.5, 5.4, 9.8]),
        "peak_amplitude": np.array([0.2, -0.4, 0.1])}))
    behavior.add(PupilTracking(name="pupil", time_series=[
        TimeSeries(name="pupil_diameter", data=np.full(121, 20.0), unit="pixels", timestamps=times),
        TimeSeries(name="pupil_diameter_raw", data=np.full(121, 21.0), unit="pixels", timestamps=times),
        TimeSeries(name="pupil_diameter_right_camera", data=np.full(121, 19.0), unit="pixels", timestamps=times),
    ]))
    skeleton = Skeleton(name="skeleton_left_camera", nodes=["nose_tip", "paw_l"], edges=np.zeros((0, 2), "uint8"))
    behavior.add(Skeletons(skeletons=[skeleton]))
    behavior.add(PoseEstimation(
        name="pose_left_camera", description="Lightning Pose (test)", source_software="Lightning Pose",
        skeleton=skeleton, pose_estimation_series=[
            PoseEstimationSeries(name=part, data=np.ones((121, 2)), confidence=np.full(121, 0.9),
                                 reference_frame="top-left corner of the frame", timestamps=times, unit="pixels")
            for part in ("nose_tip", "paw_l")]))
    behavior.add(TimeSeries(name="motion_energy_left_camera", data=np.ones(121), unit="a.u.", timestamps=times,
                            description="motion energy"))
    behavior.add(_table(DynamicTable, "motion_energy_roi", {
        "camera": _text("left_camera"), "width": np.array([100]), "height": np.array([80]),
        "x": np.array([10]), "y": np.array([20])}))
    if with_running_speed:
        behavior.add(TimeSeries(name="running_speed", data=np.zeros(10), unit="cm/s", timestamps=np.arange(10.0)))
    if extra_series:
        behavior.add(TimeSeries(name="lick_piezo", data=np.zeros(10), unit="V", timestamps=np.arange(10.0)))

    nwbfile.add_events_table(_table(EventsTable, "licks", {"timestamp": np.array([1.2, 1.3, 11.9])}))
    # Rewards follow the conforming trials whatever was done to the trials table.
    conforming = ibl_trials_columns()
    rewarded = conforming["is_rewarded"]
    nwbfile.add_events_table(_table(EventsTable, "rewards", {
        "timestamp": conforming["feedback_time"][rewarded],
        "volume_ul": np.full(int(rewarded.sum()), 1.5), "auto_rewarded": np.zeros(int(rewarded.sum()), bool)}))

    nwbfile.add_acquisition(ImageSeries(name="video_left_camera", external_file=["videos/left_camera.mp4"],
                                        format="external", starting_frame=[0], timestamps=times,
                                        description="left camera"))
    nwbfile.add_time_intervals(_table(TimeIntervals, "gabor_presentations", {
        "start_time": np.array([700.0, 701.0]), "stop_time": np.array([700.3, 701.3]),
        "stimulus_type": _text("gabor", "gabor"), "stimulus_block": np.array([4, 4]),
        "is_passive": np.array([True, True]), "contrast": np.array([1.0, 0.5]),
        "position": np.array([-35.0, 35.0]), "phase": np.array([0.0, 1.57])}))
    nwbfile.add_time_intervals(_table(TimeIntervals, "task_replay_presentations", {
        "start_time": np.array([702.0, 703.0, 704.0]), "stop_time": np.array([702.1, 703.1, 704.5]),
        "stimulus_type": _text("valve", "tone", "noise"), "stimulus_block": np.array([4, 4, 4]),
        "is_passive": np.array([True, True, True])}))
    nwbfile.add_time_intervals(_table(TimeIntervals, "sparse_noise_presentations", {
        "start_time": np.array([400.0, 400.1, 400.2]), "stop_time": np.array([400.1, 400.2, 400.3]),
        "stimulus_type": _text("sparse_noise", "sparse_noise", "sparse_noise"),
        "stimulus_block": np.array([3, 3, 3]), "is_passive": np.array([True, True, True]),
        "frame_index": np.array([0, 1, 2])}))
    nwbfile.add_stimulus(ImageSeries(name="sparse_noise_frames", data=np.full((20, 15, 15), 128, np.uint8),
                                     unit="n/a", timestamps=400.0 + np.arange(20) / 10,
                                     description="sparse noise"))
    nwbfile.add_time_intervals(_table(TimeIntervals, "passive_periods", {
        "start_time": np.array([70.0, 70.0, 400.0, 700.0]), "stop_time": np.array([900.0, 390.0, 690.0, 900.0]),
        "period": _text("passiveProtocol", "spontaneousActivity", "RFM", "taskReplay")}))
    _electrode_columns(nwbfile)
    group = _add_probe(nwbfile, "probe00")
    _add_units(nwbfile, group, [[0.1, 0.5, 0.9], [0.2, 0.3]],
               source_unit_ids=["0a1b2c3d-0000-4000-8000-000000000001", "0a1b2c3d-0000-4000-8000-000000000002"],
               extra={"ibl_label": 1.0})
    path = _write(nwbfile, directory, subject="SWC-043", session=session_id, kind="processed")
    # The video is an external file beside the NWB file; nwbinspector checks that it exists.
    (path.parent / "videos").mkdir(exist_ok=True)
    (path.parent / "videos" / "left_camera.mp4").touch()
    return path


def _add_probe(nwbfile: NWBFile, probe: str, *, n_channels: int = 4, ids_from: int = 0):
    device = nwbfile.create_device(probe, description="Neuropixels 1.0")
    group = nwbfile.create_electrode_group(probe, description=f"{probe} (test)", location="brain", device=device)
    for channel in range(n_channels):
        nwbfile.add_electrode(group=group, location="CA1", x=7000.0, y=3000.0 + channel * 20, z=5000.0,
                              rel_x=16.0 * (channel % 2), rel_y=20.0 * channel, id=ids_from + channel,
                              brain_region_id=382, probe_channel=channel)
    return group


def _electrode_columns(nwbfile: NWBFile) -> None:
    nwbfile.add_electrode_column("brain_region_id", "Allen structure id (test)")
    nwbfile.add_electrode_column("probe_channel", "channel on the probe (test)")


def _add_units(nwbfile: NWBFile, group, spike_times: list, *, source_unit_ids: list[str], extra: dict) -> None:
    """Units on the probe of ``group``, one per list of spike times, with the shared columns and ``extra``."""
    nwbfile.units = Units(name="units", resolution=1 / 30000.0, description="units (test)")
    for name in ("probe", "peak_channel", "depth_um", "location", "firing_rate", "presence_ratio",
                 "amplitude_median_uv", "is_good", "source_unit_id", "source_cluster_id", *extra):
        nwbfile.units.add_column(name, f"{name} (test)")
    for index, times in enumerate(spike_times):
        nwbfile.units.add_unit(spike_times=times, electrodes=[index], electrode_group=group, probe=group.name,
                               peak_channel=index, depth_um=20.0 * index, location="CA1", firing_rate=3.0,
                               presence_ratio=0.95, amplitude_median_uv=80.0, is_good=True,
                               source_unit_id=source_unit_ids[index], source_cluster_id=index, **extra)


def make_allen_processed(directory: Path, *, spike_times: list | None = None) -> Path:
    """An Allen processed file with every required object."""
    subject = Subject(subject_id="527749", species="Mus musculus", sex="F", age="P160D",
                      genotype="Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt")
    nwbfile = _file_metadata(ALLEN_DATASET, ALLEN_SESSION, "processed", subject=subject)
    _electrode_columns(nwbfile)
    group = _add_probe(nwbfile, "probeA")
    spike_times = spike_times or [[0.1, 0.5, 0.9], [0.2, 0.3]]
    _add_units(nwbfile, group, spike_times, source_unit_ids=[str(951000000 + index) for index in range(len(spike_times))],
               extra={"allen_snr": 3.2})
    start = np.arange(4, dtype=float) * 6.0
    nwbfile.trials = _table(TimeIntervals, "trials", {
        "start_time": start, "stop_time": start + 5.0, "stimulus_onset_time": start + 2.0,
        "response_time": np.array([2.4, np.nan, 14.5, np.nan]) ,
        "reward_time": np.array([2.5, np.nan, np.nan, np.nan]),
        "reward_volume_ul": np.array([3.0, 0.0, 0.0, 0.0]), "is_rewarded": np.array([True, False, False, False]),
        "outcome": _text("hit", "miss", "false_alarm", "correct_reject"),
        "is_change": np.array([True, True, False, False]), "go": np.array([True, True, False, False]),
        "catch": np.array([False, False, True, True]),
        "initial_image_name": _text("im065", "im077", "im077", "im077"),
        "change_image_name": _text("im077", "im065", "im077", "im077"),
        "change_frame": np.array([120, 480, 840, 1200]), "change_time_no_display_delay": start + 1.98,
        "lick_times": (np.array([2.4, 2.6, 14.5]), np.array([2, 2, 3, 3])),
        "hit": np.array([True, False, False, False]), "false_alarm": np.array([False, False, True, False]),
        "miss": np.array([False, True, False, False]), "correct_reject": np.array([False, False, False, True]),
        "aborted": np.zeros(4, bool), "auto_rewarded": np.zeros(4, bool), "trial_length": np.full(4, 5.0)})
    nwbfile.epochs = _table(TimeIntervals, "epochs", {
        "start_time": np.array([0.0, 30.0]), "stop_time": np.array([25.0, 40.0]),
        "protocol": _text("task", "flash")})
    shared = {"stimulus_block": np.array([0, 0]), "is_passive": np.array([False, False])}
    nwbfile.add_time_intervals(_table(TimeIntervals, "natural_image_presentations", {
        "start_time": np.array([0.0, 0.75]), "stop_time": np.array([0.25, 1.0]),
        "stimulus_type": _text("natural_image", "natural_image"), **shared,
        "image_name": _text("im065", "omitted"), "is_change": np.array([False, False]),
        "omitted": np.array([False, True]), "active": np.array([True, True])}))
    passive = {"stimulus_block": np.array([2, 2]), "is_passive": np.array([True, True])}
    nwbfile.add_time_intervals(_table(TimeIntervals, "gabor_presentations", {
        "start_time": np.array([26.0, 26.25]), "stop_time": np.array([26.25, 26.5]),
        "stimulus_type": _text("gabor", "gabor"), **passive, "contrast": np.array([0.8, 0.8]),
        "position_x": np.array([-30.0, 0.0]), "position_y": np.array([10.0, 0.0]),
        "orientation": np.array([0.0, 45.0])}))
    nwbfile.add_time_intervals(_table(TimeIntervals, "flash_presentations", {
        "start_time": np.array([30.0, 32.0]), "stop_time": np.array([30.25, 32.25]),
        "stimulus_type": _text("flash", "flash"), **passive, "color": np.array([1.0, -1.0])}))
    nwbfile.add_time_intervals(_table(TimeIntervals, "spontaneous_presentations", {
        "start_time": np.array([25.0]), "stop_time": np.array([26.0]), "stimulus_type": _text("spontaneous"),
        "stimulus_block": np.array([1]), "is_passive": np.array([True])}))
    behavior = nwbfile.create_processing_module("behavior", "Behavioural data (test).")
    behavior.add(TimeSeries(name="running_speed", data=np.zeros(10), unit="cm/s", timestamps=np.arange(10.0)))
    nwbfile.add_events_table(_table(EventsTable, "licks", {"timestamp": np.array([2.4, 2.6, 14.5]),
                                                           "frame": np.array([143, 155, 869])}))
    nwbfile.add_events_table(_table(EventsTable, "rewards", {
        "timestamp": np.array([2.5]), "volume_ul": np.array([3.0]), "auto_rewarded": np.array([False])}))
    return _write(nwbfile, directory, subject="527749", session=ALLEN_SESSION, kind="processed")


def make_ibl_raw(directory: Path, *, dtype=np.int16) -> Path:
    """An IBL raw file: AP and LF bands of one probe."""
    subject = Subject(subject_id="SWC_043", species="Mus musculus", sex="M", age="P120D")
    nwbfile = _file_metadata(IBL_DATASET, EID, "raw", subject=subject)
    _electrode_columns(nwbfile)
    _add_probe(nwbfile, "probe00")
    region = nwbfile.create_electrode_table_region(list(range(4)), "all channels of probe00")
    for band, rate in (("Ap", 30000.0), ("Lf", 2500.0)):
        nwbfile.add_acquisition(ElectricalSeries(
            name=f"ElectricalSeries{band}Probe00", data=np.zeros((100, 4), dtype=dtype), electrodes=region,
            conversion=2.34e-6, starting_time=0.0, rate=rate))
    return _write(nwbfile, directory, subject="SWC-043", session=EID, kind="raw")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("representation_files")
    return {"ibl": make_ibl_processed(directory), "allen": make_allen_processed(directory),
            "ibl_raw": make_ibl_raw(directory)}


def _messages(report: FileReport, name: str) -> str:
    return "\n".join(report.result(name).messages)


# ------------------------------------------------------------------------------------------
# conforming files


def test_conforming_ibl_processed_file_passes(files):
    report = check_file(files["ibl"])
    assert report.source == "ibl" and report.file_kind == "processed"
    assert report.file_representation_version == REPRESENTATION_VERSION
    assert report.failures == [], format_report(report)
    assert report.ok and report.warnings == []
    assert report.result("intervals/trials").status == PASS
    assert report.result("processing/behavior/pose_left_camera").status == PASS
    assert report.result("processing/behavior/pupil").status == PASS
    assert report.result("acquisition/video_left_camera").status == PASS
    assert report.result("units").status == PASS
    assert report.extras == []
    # An ALF attribute beyond the listed columns is reported as information, never a failure.
    assert report.result("intervals/trials").notes == []


def test_conforming_allen_processed_file_passes(files):
    report = check_file(files["allen"])
    assert report.source == "allen"
    assert report.failures == [], format_report(report)
    assert report.result("units").status == PASS
    assert report.result("general/extracellular_ephys/electrodes").status == PASS
    assert report.result("general/devices/probeA").status == PASS
    # Allen columns the representation does not list are kept under their own names: noted only.
    assert "active" in report.result("intervals/natural_image_presentations").notes[0]


def test_conforming_ibl_raw_file_passes(files):
    report = check_file(files["ibl_raw"])
    assert report.file_kind == "raw"
    assert report.failures == [], format_report(report)
    assert report.result("acquisition/ElectricalSeriesApProbe00").status == PASS
    assert report.result("acquisition/ElectricalSeriesLfProbe00").status == PASS


def test_ibl_converter_output_conforms(ibl_session, tmp_path):
    # The representation encodes the names the IBL interfaces chose: their output must pass.
    import warnings

    from nwbridge import convert_ibl_session

    with warnings.catch_warnings():
        # The generated session has trimmed camera times on purpose; not this test's concern.
        warnings.simplefilter("ignore")
        [path] = convert_ibl_session(ibl_session, tmp_path, progress=False)
    report = check_file(path)
    assert report.source == "ibl" and report.file_kind == "processed"
    assert report.failures == [], format_report(report)
    assert report.extras == [], format_report(report)


def test_conforming_files_pass_nwbinspector(files):
    # The representation must not ask for anything DANDI's own checks reject.
    text, ok = check_files(list(files.values()))
    assert ok, text
    assert "nwbridge check: 3 file(s), 3 ok, 0 failed" in text


# ------------------------------------------------------------------------------------------
# broken files


def test_missing_required_object_fails(tmp_path):
    report = check_file(make_ibl_processed(tmp_path, skip=frozenset({"wheel_position"})))
    result = report.result("processing/behavior/wheel_position")
    assert result.status == FAIL
    assert result.messages == ["required for IBL Brain Wide Map processed files, not in the file"]
    assert not report.ok


def test_object_required_by_another_fails_when_missing(tmp_path):
    path = make_ibl_processed(tmp_path)
    with h5py.File(path, "r+") as handle:
        # pynwb will not write a pose table without its skeleton; another writer might.
        del handle["processing/behavior/Skeletons"]
    report = check_file(path)
    result = report.result("processing/behavior/Skeletons")
    assert result.status == FAIL
    assert "required when pose_{camera} is present" in result.messages[0]


def test_missing_required_column_fails(tmp_path):
    report = check_file(make_ibl_processed(tmp_path, trials={"feedback_type": None}))
    assert report.result("intervals/trials").status == FAIL
    assert "lacks required column 'feedback_type'" in _messages(report, "intervals/trials")


def test_wrong_column_dtype_fails(tmp_path):
    choice = _text("right", "left", "left", "right", "none", "right")
    report = check_file(make_ibl_processed(tmp_path, trials={"choice": choice, "is_rewarded": np.ones(N_TRIALS)}))
    messages = _messages(report, "intervals/trials")
    assert "column 'choice' is text (object), expected number" in messages
    assert "column 'is_rewarded' is float (float64), expected bool" in messages


def test_wrong_unit_fails(tmp_path):
    path = make_ibl_processed(tmp_path)
    with h5py.File(path, "r+") as handle:
        handle["processing/behavior/wheel_velocity/data"].attrs["unit"] = "deg/s"
        handle["processing/behavior/pupil/pupil_diameter/data"].attrs["unit"] = "mm"
    report = check_file(path)
    assert report.result("processing/behavior/wheel_velocity").messages == [
        "unit is 'deg/s', expected 'radians/s' (accepted: 'rad/s', 'radians/s', 'radians per second')"]
    assert "pupil_diameter: unit is 'mm', expected 'pixels'" in _messages(report, "processing/behavior/pupil")


def test_abbreviated_unit_is_accepted(tmp_path):
    path = make_ibl_processed(tmp_path)
    with h5py.File(path, "r+") as handle:
        handle["processing/behavior/wheel_position/data"].attrs["unit"] = "rad"
    assert check_file(path).result("processing/behavior/wheel_position").status == PASS


def test_session_id_none_fails(tmp_path):
    report = check_file(make_ibl_processed(tmp_path, session_id="None"))
    result = report.result("file metadata")
    assert result.status == FAIL
    assert "session_id is the string 'None': it must be the source's session id" in result.messages


def test_naive_start_time_fails(tmp_path):
    path = make_ibl_processed(tmp_path)
    with h5py.File(path, "r+") as handle:
        # pynwb adds a time zone to a naive time when writing; another writer might not.
        del handle["session_start_time"]
        handle.create_dataset("session_start_time", data="2021-05-10T13:47:08", dtype=h5py.string_dtype("ascii"))
    result = check_file(path).result("file metadata")
    assert result.status == FAIL
    assert result.messages == ["session_start_time '2021-05-10T13:47:08' has no time zone (it must be "
                               "timezone-aware)"]


def test_non_ascending_time_column_fails(tmp_path):
    start = np.array([0.0, 10.0, 5.0, 30.0, 40.0, 50.0])
    report = check_file(make_ibl_processed(tmp_path, trials={"start_time": start, "stop_time": start + 4}))
    assert "column 'start_time' is not ascending: row 2 (5.0) follows 10.0" in _messages(report, "intervals/trials")


@pytest.mark.parametrize("chunk", [1 << 22, 2, 3])
def test_spike_times_must_ascend_within_each_unit_only(tmp_path, monkeypatch, chunk):
    # Columns are read in chunks; tiny chunks put unit and chunk boundaries everywhere.
    monkeypatch.setattr(checker, "_CHUNK", chunk)
    # Unit 1 starts before unit 0 ends: fine. Unit 2 going backwards: not.
    good = check_file(make_allen_processed(tmp_path / "good", spike_times=[[0.1, 0.9], [0.2, 0.3], [0.1, 0.2]]))
    assert good.result("units").status == PASS
    bad = check_file(make_allen_processed(tmp_path / "bad", spike_times=[[0.1, 0.9], [0.2, 0.3], [0.4, 0.35]]))
    assert _messages(bad, "units") == "column 'spike_times' is not ascending within row 2: element 5 (0.35) follows 0.4"


def test_ascending_ignores_missing_values(tmp_path, monkeypatch):
    monkeypatch.setattr(checker, "_CHUNK", 2)
    start = np.array([0.0, np.nan, 20.0, np.nan, 40.0, 50.0])
    report = check_file(make_ibl_processed(tmp_path / "ok", trials={"start_time": start}))
    assert "start_time" not in _messages(report, "intervals/trials")
    start = np.array([0.0, 30.0, np.nan, 20.0, 40.0, 50.0])
    report = check_file(make_ibl_processed(tmp_path / "bad", trials={"start_time": start}))
    # A missing value never hides a descent across it.
    assert "column 'start_time' is not ascending: row 3 (20.0) follows 30.0" in _messages(report, "intervals/trials")


def test_text_values_outside_the_allowed_set_fail(tmp_path):
    outcome = _text("correct", "incorrect", "hit", "correct", "no_go", "correct")
    report = check_file(make_ibl_processed(tmp_path, trials={"outcome": outcome}))
    assert ("column 'outcome' has values not allowed for IBL Brain Wide Map: 'hit' (allowed: correct, "
            "incorrect, no_go)") in _messages(report, "intervals/trials")


def test_object_absent_for_the_source_fails_and_unknown_object_is_extra(tmp_path):
    report = check_file(make_ibl_processed(tmp_path, with_running_speed=True, extra_series=True))
    assert report.result("processing/behavior/running_speed").status == FAIL
    assert "absent for IBL Brain Wide Map" in _messages(report, "processing/behavior/running_speed")
    extra = report.result("processing/behavior/lick_piezo")
    assert extra.status == EXTRA and extra.neurodata_type == "TimeSeries"
    assert [result.name for result in report.failures] == ["processing/behavior/running_speed"]


def test_wrong_neurodata_type_and_raw_dtype_fail(tmp_path):
    report = check_file(make_ibl_raw(tmp_path, dtype=np.float32))
    assert report.result("acquisition/ElectricalSeriesApProbe00").messages == ["data are float32, expected int16"]
    path = make_ibl_processed(tmp_path / "processed")
    with h5py.File(path, "r+") as handle:
        handle["processing/behavior/wheel_position"].attrs["neurodata_type"] = "TimeSeries"
    assert check_file(path).result("processing/behavior/wheel_position").messages == [
        "is a TimeSeries, expected SpatialSeries"]


def test_identifier_must_be_deterministic(tmp_path):
    path = make_ibl_processed(tmp_path)
    with h5py.File(path, "r+") as handle:
        del handle["identifier"]
        handle.create_dataset("identifier", data="random-identifier", dtype=h5py.string_dtype())
    assert "is not the deterministic one" in _messages(check_file(path), "file metadata")


def test_missing_subject_fields_fail(tmp_path):
    path = make_ibl_processed(tmp_path)
    with h5py.File(path, "r+") as handle:
        del handle["general/subject/sex"], handle["general/subject/age"], handle["general/subject/date_of_birth"]
        handle["general/subject/species"][()] = "mouse"
    messages = check_file(path).result("subject (general/subject)").messages
    assert messages == ["species 'mouse' is neither a Latin binomial (e.g. 'Mus musculus') nor an NCBITaxon URL",
                        "sex is not set",
                        "neither subject age nor date_of_birth is set (DANDI requires one)"]


def test_unknown_source_is_a_warning_and_a_provenance_failure(tmp_path):
    path = make_ibl_processed(tmp_path)
    with h5py.File(path, "r+") as handle:
        handle["general/source_script"][()] = json.dumps({"source_dataset": "somewhere-else"})
    report = check_file(path)
    assert report.source is None and report.warnings
    assert "lacks converter" in _messages(report, "provenance (general/source_script)")


def test_not_an_nwb_file_fails(tmp_path):
    path = tmp_path / "sub-x_ses-y_desc-processed_behavior+ecephys.nwb"
    path.write_text("not HDF5")
    report = check_file(path)
    assert not report.ok and "not a readable HDF5/NWB file" in report.failures[0].messages[0]


# ------------------------------------------------------------------------------------------
# report text and nwbinspector


def test_format_report_lists_failures_and_extras(tmp_path):
    report = check_file(make_ibl_processed(tmp_path, skip=frozenset({"wheel_position"}), extra_series=True))
    text = format_report(report)
    assert "source: ibl-brainwide-map (ibl); file kind: processed" in text
    assert "FAIL         processing/behavior/wheel_position" in text
    assert "extra        processing/behavior/lick_piezo [TimeSeries]" in text
    assert "pass         units" in text
    assert "not present  processing/behavior/running_speed" not in text  # absent for IBL: not listed
    assert "nwbinspector: not run" in text
    assert text.rstrip().endswith("result: FAILED (1 object(s) do not conform)")


def test_nwbinspector_messages_have_importance(files, tmp_path):
    from nwbinspector import Importance, InspectorMessage

    path = make_ibl_processed(tmp_path)
    with h5py.File(path, "r+") as handle:
        # A subject sex DANDI does not accept: nwbinspector's dandi config makes it CRITICAL.
        handle["general/subject/sex"][()] = "male"
    messages = inspect_file(path)
    assert messages and all(isinstance(message, InspectorMessage) for message in messages)
    assert all(isinstance(message.importance, Importance) for message in messages)
    assert any(message.check_function_name == "check_subject_sex" and message.importance == Importance.CRITICAL
               for message in messages)

    text, ok = check_files([files["ibl"], path])
    assert not ok
    assert "nwbinspector (dandi config)" in text and "CRITICAL (" in text and "check_subject_sex" in text
    assert "nwbridge check: 2 file(s)" in text
