"""The command line: conversion of several sessions with a summary, failures reported per session."""

from __future__ import annotations

import re

import numpy as np
from click.testing import CliRunner

from nwbridge.cli import main
from nwbridge.testing import make_ibl_session


def test_convert_several_sessions_one_broken(tmp_path):
    good = make_ibl_session(tmp_path / "src", subject="KS055", n_trials=10, duration_s=300, seed=1, passive=False,
                            cameras=())
    broken = make_ibl_session(tmp_path / "src", subject="KS056", n_trials=10, duration_s=300, seed=2, passive=False,
                              cameras=())
    np.save(broken / "alf" / "_ibl_wheel.position.npy", np.zeros(3))
    output = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", "ibl", str(broken), str(good), "-o", str(output), "--no-progress"])
    assert result.exit_code == 1
    assert "written: 1 file(s)" in result.output
    assert "failed:  1" in result.output
    assert re.search(r"_ibl_wheel\.(position|timestamps)\.npy: has \d+ wheel rows but .* has \d+", result.output)
    assert len(list(output.rglob("*.nwb"))) == 1 and list(output.rglob("sub-KS055/*.nwb"))
    assert not list(output.rglob("*.partial"))

    again = CliRunner().invoke(main, ["convert", "ibl", str(good), "-o", str(output), "--no-progress"])
    assert again.exit_code == 0
    assert "skipped: 1" in again.output and "already exists" in again.output


def test_metadata_file_supplies_missing_fields(tmp_path):
    session = make_ibl_session(tmp_path / "src", n_trials=10, duration_s=300, seed=3, passive=False, cameras=(),
                               sex=None, birth_date=None)
    metadata = tmp_path / "metadata.yaml"
    metadata.write_text("Subject:\n  sex: M\n  date_of_birth: 2021-01-05\n")
    runner = CliRunner()
    refused = runner.invoke(main, ["convert", "ibl", str(session), "-o", str(tmp_path / "out"), "--no-progress"])
    assert refused.exit_code == 1
    assert "Subject.sex" in refused.output and "Subject.age or Subject.date_of_birth" in refused.output
    accepted = runner.invoke(main, ["convert", "ibl", str(session), "-o", str(tmp_path / "out"), "--no-progress",
                                    "--metadata", str(metadata)])
    assert accepted.exit_code == 0, accepted.output
    assert "written: 1 file(s)" in accepted.output
    assert "intervals/trials" in accepted.output  # the description of what was written
    from pynwb import NWBHDF5IO

    (path,) = list((tmp_path / "out").rglob("*.nwb"))
    with NWBHDF5IO(path, "r") as io:
        subject = io.read().subject
        assert subject.sex == "M"
        # A plain date is midnight in the lab's time zone (London, GMT in January).
        assert subject.date_of_birth.isoformat() == "2021-01-05T00:00:00+00:00"


def test_check_passes_a_converted_file_and_fails_a_broken_one(tmp_path):
    import shutil

    import h5py

    session = make_ibl_session(tmp_path / "src", n_trials=10, duration_s=300, seed=4, cameras=("left",))
    runner = CliRunner()
    result = runner.invoke(main, ["convert", "ibl", str(session), "-o", str(tmp_path / "out"), "--no-progress"])
    (converted,) = list((tmp_path / "out").rglob("*.nwb"))
    result = runner.invoke(main, ["check", str(converted)])
    assert result.exit_code == 0, result.output
    assert "intervals/trials" in result.output and "nwbinspector" in result.output

    broken = tmp_path / converted.name
    shutil.copy(converted, broken)
    with h5py.File(broken, "r+") as file:
        del file["general/session_id"]
        file["general/session_id"] = "None"
    result = runner.invoke(main, ["check", str(broken), str(converted)])
    assert result.exit_code == 1
    assert "session_id" in result.output
