"""The command line for Allen sessions: conversion with a summary, failures per session, options, generation."""

from __future__ import annotations

import json
import os
import re
import shutil

import h5py
import pytest
from click.testing import CliRunner
from pynwb import NWBHDF5IO

from nwbridge.cli import main
from nwbridge.testing import make_vbn_session


@pytest.fixture(scope="module")
def vbn(tmp_path_factory):
    """A small generated session (read-only: copy it to damage it)."""
    return make_vbn_session(tmp_path_factory.mktemp("vbn"), probes=("probeA", "probeB"), n_units_per_probe=5,
                            duration_s=120, lfp_channels=8, seed=3)


def copy_session(vbn, folder):
    folder.mkdir(parents=True)
    for path in (vbn.session_file, *vbn.probe_files.values()):
        shutil.copy(path, folder / path.name)
    return folder / vbn.session_file.name


def convert(*arguments):
    return CliRunner().invoke(main, ["convert", "allen", *map(str, arguments), "--no-progress"])


def nwb_files(folder):
    return sorted(path.name for path in folder.rglob("*.nwb"))


def stem(vbn):
    return f"sub-{vbn.mouse_id}_ses-{vbn.ecephys_session_id}"


def test_convert_writes_both_files_then_skips_them(vbn, tmp_path):
    output = tmp_path / "out"
    result = convert(vbn.session_file, "-o", output, "--release", "v0.5.0")
    assert result.exit_code == 0, result.output
    processed = output / f"sub-{vbn.mouse_id}" / f"{stem(vbn)}_desc-processed_behavior+ecephys.nwb"
    raw = output / f"sub-{vbn.mouse_id}" / f"{stem(vbn)}_desc-raw_ecephys.nwb"
    assert nwb_files(output) == sorted([processed.name, raw.name])
    summary = result.output[result.output.index("Summary"):]
    assert "written: 2 file(s)" in summary and str(processed) in summary and str(raw) in summary
    assert "skipped: 0" in summary and "failed:  0" in summary
    # What each file holds is described before the summary.
    assert re.search(r"acquisition/ElectricalSeriesLfpProbeA\s+ElectricalSeries\s+\d+x8 float32", result.output)
    assert re.search(r"units\s+Units\s+10 rows", result.output)
    with NWBHDF5IO(raw, "r") as io:
        assert json.loads(io.read().source_script)["data_revision"] == "v0.5.0"

    before = {path: path.stat().st_mtime_ns for path in (processed, raw)}
    again = convert(vbn.session_file, "-o", output)
    assert again.exit_code == 0, again.output
    assert "written: 0 file(s)" in again.output and "skipped: 1" in again.output
    assert "already exist" in again.output and str(vbn.session_file) in again.output
    assert {path: path.stat().st_mtime_ns for path in (processed, raw)} == before


def test_one_truncated_session_fails_the_others_are_written(vbn, tmp_path):
    broken = copy_session(vbn, tmp_path / "broken")
    os.truncate(broken, broken.stat().st_size // 2)
    output = tmp_path / "out"
    result = convert(broken, vbn.session_file, "-o", output)
    assert result.exit_code == 1
    summary = result.output[result.output.index("Summary"):]
    assert "written: 2 file(s)" in summary and "failed:  1" in summary and "skipped: 0" in summary
    failed = summary[summary.index("failed:"):]
    assert f"{broken}: {broken}: not a readable HDF5 file, truncated" in failed
    assert str(vbn.session_file) not in failed
    assert nwb_files(output) == sorted([f"{stem(vbn)}_desc-processed_behavior+ecephys.nwb",
                                        f"{stem(vbn)}_desc-raw_ecephys.nwb"])
    assert not list(output.rglob("*.partial")) and not list(output.rglob("*.staged"))


def test_no_lfp_writes_the_processed_file_only(vbn, tmp_path):
    result = convert(vbn.session_file, "-o", tmp_path / "out", "--no-lfp")
    assert result.exit_code == 0, result.output
    assert "written: 1 file(s)" in result.output
    assert nwb_files(tmp_path / "out") == [f"{stem(vbn)}_desc-processed_behavior+ecephys.nwb"]


def test_probe_file_chooses_the_lfp_of_one_session(vbn, tmp_path):
    result = convert(vbn.session_file, "-o", tmp_path / "out", "--probe-file", vbn.probe_files["probeB"])
    assert result.exit_code == 0, result.output
    (raw,) = (tmp_path / "out").rglob("*desc-raw_ecephys.nwb")
    with NWBHDF5IO(raw, "r") as io:
        assert list(io.read().acquisition) == ["ElectricalSeriesLfpProbeB"]

    two = convert(vbn.session_file, vbn.session_file, "-o", tmp_path / "two", "--probe-file",
                  vbn.probe_files["probeA"])
    assert two.exit_code == 2
    assert "Usage:" in two.output and "--probe-file belongs to one session" in two.output
    assert not (tmp_path / "two").exists()

    contradictory = convert(vbn.session_file, "-o", tmp_path / "three", "--no-lfp", "--probe-file",
                            vbn.probe_files["probeA"])
    assert contradictory.exit_code == 2 and "cannot be given with --probe-file" in contradictory.output
    assert not (tmp_path / "three").exists()


def test_metadata_file_supplies_the_missing_sex(vbn, tmp_path):
    session = copy_session(vbn, tmp_path / "src")
    with h5py.File(session, "r+") as file:
        del file["general/subject/sex"]
    refused = convert(session, "-o", tmp_path / "out", "--no-lfp")
    assert refused.exit_code == 1
    assert "failed:  1" in refused.output and "Subject.sex" in refused.output
    metadata = tmp_path / "metadata.yaml"
    metadata.write_text("Subject:\n  sex: M\n")
    accepted = convert(session, "-o", tmp_path / "out", "--no-lfp", "--metadata", metadata)
    assert accepted.exit_code == 0, accepted.output
    (path,) = (tmp_path / "out").rglob("*.nwb")
    with NWBHDF5IO(path, "r") as io:
        assert io.read().subject.sex == "M"


def test_generate_allen_prints_the_files_it_wrote(tmp_path):
    folder = tmp_path / "allen"
    result = CliRunner().invoke(main, ["generate", "allen", str(folder), "--probes", "probeA",
                                       "--units-per-probe", "5", "--duration", "120"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    session, probe = map(type(folder), lines)
    assert session == folder / "ecephys_session_1044385384.nwb"
    assert probe.parent == folder and re.fullmatch(r"probe_\d+\.nwb", probe.name)
    assert session.is_file() and probe.is_file()
    assert sorted(path.name for path in folder.iterdir()) == sorted([session.name, probe.name])
    with h5py.File(session, "r") as file:
        assert len(file["units/id"]) == 5
        assert list(file["general/devices"]) == ["probeA"]
        assert str(file["general/devices/probeA"].attrs["probe_id"]) == probe.stem.removeprefix("probe_")
