"""Whole-session conversion of an Allen VBN session: naming, metadata, provenance, the raw LFP file,
conformance, bad input, atomic output and closed sources."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime

import h5py
import numpy as np
import pytest
from pynwb import NWBHDF5IO

import nwbridge
from nwbridge.converters.allen_session import convert_allen_session, find_probe_files
from nwbridge.errors import MissingMetadataError, MissingSourceFileError, SourceFileError
from nwbridge.interfaces.allen.source import _open_files
from nwbridge.provenance import ALLEN_DATASET, file_identifier
from nwbridge.schemas.checker import check_file, format_report, inspect_file
from nwbridge.testing import make_vbn_session

RELEASE = "visual-behavior-neuropixels-0.5.0"
# A Cre driver and a reporter, so the subject has driver_line and reporter_line attributes.
GENOTYPE = "Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt"
PROBES = ("probeA", "probeB")


@pytest.fixture(scope="module")
def vbn(tmp_path_factory):
    """A small generated session (read-only: copy it with `copy_session` to damage it)."""
    return make_vbn_session(tmp_path_factory.mktemp("vbn"), probes=PROBES, n_units_per_probe=10, duration_s=200,
                            lfp_channels=8, genotype=GENOTYPE, seed=4)


@pytest.fixture(scope="module")
def converted(vbn, tmp_path_factory):
    """(processed, raw) written by the default conversion (probe files discovered beside the session file)."""
    output = tmp_path_factory.mktemp("dandiset")
    written = convert_allen_session(vbn.session_file, output, release=RELEASE, progress=False)
    return written


def copy_session(vbn, folder):
    """The session file and probe files copied into ``folder``: (session file, {probe: probe file})."""
    folder.mkdir(parents=True, exist_ok=True)
    session = shutil.copy(vbn.session_file, folder / vbn.session_file.name)
    probes = {name: shutil.copy(path, folder / path.name) for name, path in vbn.probe_files.items()}
    return session, probes


def names(vbn, kind):
    stem = f"sub-{vbn.mouse_id}_ses-{vbn.ecephys_session_id}"
    return {"processed": f"{stem}_desc-processed_behavior+ecephys.nwb", "raw": f"{stem}_desc-raw_ecephys.nwb"}[kind]


def leftovers(folder):
    """Every file under ``folder`` (a folder that does not exist has none)."""
    if not folder.exists():
        return []
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------------------------------
# the files written


def test_writes_the_processed_and_raw_files_with_dandi_names(vbn, converted):
    processed, raw = converted
    assert processed.name == names(vbn, "processed")
    assert raw.name == names(vbn, "raw")
    assert processed.parent == raw.parent
    assert processed.parent.name == f"sub-{vbn.mouse_id}"
    # Nothing else: no temporary (.partial), staged or video file.
    assert leftovers(processed.parents[1]) == [f"sub-{vbn.mouse_id}/{names(vbn, 'processed')}",
                                               f"sub-{vbn.mouse_id}/{names(vbn, 'raw')}"]


@pytest.mark.parametrize("kind", ["processed", "raw"])
def test_both_files_conform_and_pass_nwbinspector(converted, kind):
    path = dict(zip(["processed", "raw"], converted))[kind]
    report = check_file(path)
    report.inspector_messages = inspect_file(path)
    assert (report.source, report.source_dataset, report.file_kind) == ("allen", ALLEN_DATASET, kind)
    assert report.warnings == [], format_report(report)
    assert report.failures == [], format_report(report)
    assert [result.name for result in report.results if result.status != "pass"] == [], format_report(report)
    assert report.inspector_failures == [], format_report(report)
    assert report.ok
    passed = {result.name for result in report.results if result.status == "pass"}
    expected = {"file metadata", "subject (general/subject)", "general/extracellular_ephys/electrodes",
                *(f"general/devices/{probe}" for probe in PROBES)}
    expected |= ({"units", "intervals/trials", "intervals/epochs", "processing/behavior/running_speed",
                  "events/licks", "events/rewards", "processing/behavior/pupil"} if kind == "processed" else
                 {"acquisition/ElectricalSeriesLfpProbeA", "acquisition/ElectricalSeriesLfpProbeB"})
    assert expected <= passed, format_report(report)


def test_every_object_of_the_processed_file_passes(converted):
    report = check_file(converted[0])
    assert [(result.name, result.status) for result in report.results if result.status != "pass"] == []


def test_file_metadata_and_provenance(vbn, converted):
    with h5py.File(vbn.session_file, "r") as source:
        subject = {name: text(source[f"general/subject/{name}"][()])
                   for name in ("subject_id", "sex", "age", "genotype", "species")}
        start = datetime.fromisoformat(text(source["session_start_time"][()]))
        assert "session_id" not in source["general"]  # the source has none: it is derived
    assert subject["genotype"] == GENOTYPE and subject["subject_id"] == vbn.mouse_id
    session_id = str(vbn.ecephys_session_id)
    identifiers = {}
    for kind, path in zip(["processed", "raw"], converted):
        with NWBHDF5IO(path, "r") as io:
            nwbfile = io.read()
            assert nwbfile.session_id == session_id
            identifiers[kind] = nwbfile.identifier
            assert nwbfile.identifier == file_identifier(ALLEN_DATASET, session_id, kind)
            assert nwbfile.session_start_time == start
            assert {name: getattr(nwbfile.subject, name) for name in subject} == subject
            provenance = json.loads(nwbfile.source_script)
            assert provenance["source_dataset"] == "allen-visual-behavior-neuropixels"
            assert provenance["data_revision"] == RELEASE
            assert provenance["converter_version"] == nwbridge.__version__
            assert provenance["representation_version"] == nwbridge.schemas.REPRESENTATION_VERSION
            native = provenance["native_ids"]
            assert native["ecephys_session_id"] == vbn.ecephys_session_id
            assert native["probe_ids"] == vbn.probe_ids
            assert native["behavior_session_id"] == vbn.behavior_session_id
    assert identifiers["processed"] != identifiers["raw"]


def test_subject_description_keeps_driver_and_reporter_lines(vbn, converted):
    with h5py.File(vbn.session_file, "r") as source:
        attributes = source["general/subject"].attrs
        driver = [text(line) for line in attributes["driver_line"]]
        reporter = text(attributes["reporter_line"])
    assert (driver, reporter) == (["Sst-IRES-Cre"], "Ai32(RCL-ChR2(H134R)_EYFP)")
    with NWBHDF5IO(converted[0], "r") as io:
        description = io.read().subject.description
    assert "Sst-IRES-Cre" in description and reporter in description


def test_reconversion_overwrites_with_the_same_identifiers_and_refuses_without_overwrite(vbn, converted, tmp_path):
    output = tmp_path / "dandiset"
    copies = []
    for path in converted:
        target = output / path.relative_to(path.parents[1])
        target.parent.mkdir(parents=True, exist_ok=True)
        copies.append(shutil.copy2(path, target))
    before = [(path.stat().st_mtime_ns, path.read_bytes()) for path in copies]
    with pytest.raises(FileExistsError, match="already exist") as error:
        convert_allen_session(vbn.session_file, output, release=RELEASE, progress=False)
    assert names(vbn, "processed") in str(error.value) and names(vbn, "raw") in str(error.value)
    assert [(path.stat().st_mtime_ns, path.read_bytes()) for path in copies] == before
    assert leftovers(output) == sorted(path.relative_to(output).as_posix() for path in copies)

    written = convert_allen_session(vbn.session_file, output, release=RELEASE, progress=False, overwrite=True)
    assert written == copies
    assert all(path.stat().st_mtime_ns > mtime for path, (mtime, _) in zip(written, before))
    for original, again in zip(converted, written):
        with NWBHDF5IO(original, "r") as a, NWBHDF5IO(again, "r") as b:
            assert a.read().identifier == b.read().identifier


# ------------------------------------------------------------------------------------------
# the raw file


def _electrodes(nwbfile):
    table = nwbfile.electrodes
    return {name: np.asarray(table[name].data[:]) for name in
            ("allen_channel_id", "group_name", "location", "x", "y", "z", "probe_channel")}


def test_raw_file_lfp_and_electrodes_match_the_processed_file(vbn, converted):
    processed_path, raw_path = converted
    with NWBHDF5IO(processed_path, "r") as p_io, NWBHDF5IO(raw_path, "r") as r_io:
        processed, raw = p_io.read(), r_io.read()
        assert sorted(raw.acquisition) == ["ElectricalSeriesLfpProbeA", "ElectricalSeriesLfpProbeB"]
        assert not any(name.startswith("ElectricalSeries") for name in processed.acquisition)
        ours, theirs = _electrodes(raw), _electrodes(processed)
        assert len(ours["allen_channel_id"]) > 0
        # A channel has the same row in both files, with the same values.
        shared = np.isin(theirs["allen_channel_id"], ours["allen_channel_id"])
        assert shared.sum() == len(ours["allen_channel_id"])
        for name in ("allen_channel_id", "group_name", "location", "probe_channel"):
            np.testing.assert_array_equal(ours[name], theirs[name][shared], err_msg=name)
        for name in ("x", "y", "z"):
            np.testing.assert_array_equal(ours[name], theirs[name][shared], err_msg=name)  # NaN == NaN here
        assert set(ours["location"]) - {"unknown"}  # some registered channels, not only unknown ones

        for probe, probe_file in vbn.probe_files.items():
            probe_id = vbn.probe_ids[probe]
            with h5py.File(probe_file, "r") as source:
                lfp = source[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
                channel_ids = source["general/extracellular_ephys/electrodes/id"][:][lfp["electrodes"][:]]
                data, timestamps = lfp["data"][:], lfp["timestamps"][:]
            series = raw.acquisition[f"ElectricalSeriesLfp{probe[0].upper()}{probe[1:]}"]
            rows = np.asarray(series.electrodes.data[:])
            np.testing.assert_array_equal(ours["allen_channel_id"][rows], channel_ids)
            assert set(ours["group_name"][rows]) == {probe}
            np.testing.assert_array_equal(ours["probe_channel"][rows], vbn.lfp_channels[probe])
            np.testing.assert_array_equal(series.data[:], data)
            np.testing.assert_array_equal(series.timestamps[:], timestamps)


def test_probe_files_choose_the_raw_file(vbn, tmp_path):
    session, probes = copy_session(vbn, tmp_path / "src")
    # A stray probe file of another session in the same folder is not picked up by default.
    shutil.copy(probes["probeA"], tmp_path / "src" / "probe_1.nwb")
    assert find_probe_files(session) == sorted([*probes.values(), tmp_path / "src" / "probe_1.nwb"])
    assert find_probe_files(session, probe_ids=vbn.probe_ids.values()) == sorted(probes.values())

    (processed,) = convert_allen_session(session, tmp_path / "none", probe_files=[], progress=False)
    assert processed.name == names(vbn, "processed")
    assert leftovers(tmp_path / "none") == [f"sub-{vbn.mouse_id}/{processed.name}"]

    processed, raw = convert_allen_session(session, tmp_path / "one", probe_files=[str(probes["probeB"])],
                                           progress=False)
    assert raw.name == names(vbn, "raw")
    with NWBHDF5IO(raw, "r") as io:
        assert list(io.read().acquisition) == ["ElectricalSeriesLfpProbeB"]

    # The raw file alone (a release's raw task), and refused when there is no LFP to write.
    (alone,) = convert_allen_session(session, tmp_path / "raw", processed=False, progress=False)
    assert leftovers(tmp_path / "raw") == [f"sub-{vbn.mouse_id}/{names(vbn, 'raw')}"]
    with NWBHDF5IO(alone, "r") as io:
        assert sorted(io.read().acquisition) == ["ElectricalSeriesLfpProbeA", "ElectricalSeriesLfpProbeB"]
    with pytest.raises(MissingSourceFileError, match="no LFP file"):
        convert_allen_session(session, tmp_path / "nothing", probe_files=[], processed=False, progress=False)


def test_default_probe_files_skip_other_sessions_files(vbn, tmp_path):
    session, probes = copy_session(vbn, tmp_path / "src")
    shutil.copy(probes["probeA"], tmp_path / "src" / "probe_1.nwb")
    processed, raw = convert_allen_session(session, tmp_path / "out", progress=False)
    with NWBHDF5IO(raw, "r") as io:
        assert sorted(io.read().acquisition) == ["ElectricalSeriesLfpProbeA", "ElectricalSeriesLfpProbeB"]


# ------------------------------------------------------------------------------------------
# bad input


def test_missing_session_file(tmp_path):
    missing = tmp_path / "ecephys_session_1.nwb"
    with pytest.raises(MissingSourceFileError) as error:
        convert_allen_session(missing, tmp_path / "out", progress=False)
    assert error.value.path == missing and str(missing) in str(error.value)
    assert not (tmp_path / "out").exists()


def test_truncated_session_file(vbn, tmp_path):
    session, _ = copy_session(vbn, tmp_path / "src")
    os.truncate(session, session.stat().st_size // 2)
    with pytest.raises(SourceFileError, match="truncated") as error:
        convert_allen_session(session, tmp_path / "out", progress=False)
    assert error.value.path == session and str(session) in str(error.value)
    assert leftovers(tmp_path / "out") == []


def test_truncated_probe_file_fails_and_leaves_no_file(vbn, tmp_path):
    session, probes = copy_session(vbn, tmp_path / "src")
    os.truncate(probes["probeB"], probes["probeB"].stat().st_size // 2)
    with pytest.raises(SourceFileError) as error:
        convert_allen_session(session, tmp_path / "out", progress=False)
    assert error.value.path == probes["probeB"] and str(probes["probeB"]) in str(error.value)
    assert str(probes["probeA"]) not in str(error.value)
    assert not list((tmp_path / "out").rglob("*.nwb")) and not list((tmp_path / "out").rglob("*.partial"))
    assert leftovers(tmp_path / "out") == []
    # Every source file was closed, also on failure.
    for path in (session, probes["probeA"]):
        with h5py.File(path, "r+"):
            pass


def test_probe_file_failing_while_written_leaves_neither_file_and_keeps_previous_ones(vbn, tmp_path):
    session, probes = copy_session(vbn, tmp_path / "src")
    probe_id = vbn.probe_ids["probeB"]
    output = tmp_path / "out"
    # The probe file is readable, but its LFP timestamps go back in time: found only when the raw
    # file is written, after the processed file.
    with h5py.File(probes["probeB"], "r+") as file:
        timestamps = file[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data/timestamps"]
        timestamps[100] = timestamps[50]
    with pytest.raises(SourceFileError, match="not increasing at sample 100") as error:
        convert_allen_session(session, output, progress=False)
    assert error.value.path == probes["probeB"]
    assert leftovers(output) == []

    # A conversion that overwrites finished files and fails keeps them whole.
    written = convert_allen_session(session, output, probe_files=[probes["probeA"]], progress=False)
    before = [path.read_bytes() for path in written]
    with pytest.raises(SourceFileError, match="not increasing"):
        convert_allen_session(session, output, overwrite=True, progress=False)
    assert [path.read_bytes() for path in written] == before
    assert leftovers(output) == sorted(path.relative_to(output).as_posix() for path in written)


def test_missing_probe_file_given_explicitly(vbn, tmp_path):
    missing = tmp_path / "probe_1044506935.nwb"
    with pytest.raises(SourceFileError) as error:
        convert_allen_session(vbn.session_file, tmp_path / "out", probe_files=[vbn.probe_files["probeA"], missing],
                              progress=False)
    assert isinstance(error.value, MissingSourceFileError)
    assert error.value.path == missing and str(missing) in str(error.value)
    assert leftovers(tmp_path / "out") == []


def test_missing_sex_stops_with_the_field_and_is_completed_by_metadata(vbn, tmp_path):
    session, _ = copy_session(vbn, tmp_path / "src")
    with h5py.File(session, "r+") as file:
        del file["general/subject/sex"]
    with pytest.raises(MissingMetadataError) as error:
        convert_allen_session(session, tmp_path / "out", progress=False)
    assert list(error.value.missing) == ["Subject.sex"]
    assert str(session) in error.value.missing["Subject.sex"]
    assert "--metadata FILE" in str(error.value)
    assert leftovers(tmp_path / "out") == []

    (path,) = convert_allen_session(session, tmp_path / "out", probe_files=[], progress=False,
                                    metadata={"Subject": {"sex": "M"}})
    with NWBHDF5IO(path, "r") as io:
        assert io.read().subject.sex == "M"

    metadata = tmp_path / "metadata.yaml"
    metadata.write_text("Subject:\n  sex: U\n")
    (path,) = convert_allen_session(session, tmp_path / "yaml", probe_files=[], progress=False, metadata=metadata)
    with NWBHDF5IO(path, "r") as io:
        subject = io.read().subject
        assert (subject.sex, subject.subject_id) == ("U", vbn.mouse_id)


# ------------------------------------------------------------------------------------------
# sources closed


def test_the_converter_closes_the_files_it_opened(vbn, converted):
    resolved = {str(path.resolve()) for path in (vbn.session_file, *vbn.probe_files.values())}
    assert not [key for key in _open_files if key[0] in resolved]
    for path in (vbn.session_file, *vbn.probe_files.values()):
        with h5py.File(path, "r+"):  # h5py refuses while the same process has the file open read-only
            pass


def test_a_session_file_pynwb_cannot_read_is_closed(vbn, tmp_path):
    session, _ = copy_session(vbn, tmp_path / "src")
    with h5py.File(session, "r+") as file:
        del file["session_start_time"]
    with pytest.raises(SourceFileError, match="not a readable NWB file"):
        convert_allen_session(session, tmp_path / "out", progress=False)
    with h5py.File(session, "r+"):
        pass
