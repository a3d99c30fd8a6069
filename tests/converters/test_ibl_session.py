"""Whole-session conversion: naming, metadata, provenance, atomic output, bad input."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from pynwb import NWBHDF5IO

import nwbridge
from nwbridge.errors import MissingMetadataError, SourceFileError
from nwbridge.provenance import file_identifier
from nwbridge.testing import make_ibl_session


@pytest.fixture(scope="module")
def converted(tmp_path_factory, ibl_session):
    output = tmp_path_factory.mktemp("dandiset")
    return ibl_session, nwbridge.convert_ibl_session(ibl_session, output, progress=False)


def alyx(session_path):
    return json.loads((session_path / "alyx_session.json").read_text())


def test_output_is_named_for_dandi_and_nothing_partial_remains(converted):
    session_path, written = converted
    eid = alyx(session_path)["session"]["id"]
    assert len(written) == 1
    path = written[0]
    assert path.name == f"sub-KS055_ses-{eid}_desc-processed_behavior+ecephys.nwb"
    assert path.parent.name == "sub-KS055"
    assert sorted(p.name for p in path.parent.iterdir() if p.suffix != ".mp4" and p.is_file()) == [path.name]


def test_file_metadata_comes_from_alyx(converted):
    session_path, (path,) = converted
    records = alyx(session_path)
    with NWBHDF5IO(path, "r") as io:
        nwbfile = io.read()
        assert nwbfile.session_id == records["session"]["id"]
        assert nwbfile.identifier == file_identifier("ibl-brainwide-map", records["session"]["id"], "processed")
        expected_start = datetime.fromisoformat(records["session"]["start_time"]).replace(
            tzinfo=ZoneInfo(records["lab"]["timezone"]))
        assert nwbfile.session_start_time == expected_start
        assert nwbfile.institution == records["lab"]["institution"]
        assert nwbfile.lab == "cortexlab"
        subject = nwbfile.subject
        assert (subject.subject_id, subject.sex, subject.species) == ("KS055", records["subject"]["sex"],
                                                                      "Mus musculus")
        birth = datetime.fromisoformat(records["subject"]["birth_date"]).date()
        assert subject.date_of_birth.date() == birth
        assert subject.age == f"P{(expected_start.date() - birth).days}D"
        provenance = json.loads(nwbfile.source_script)
        assert provenance["source_dataset"] == "ibl-brainwide-map"
        assert provenance["native_ids"]["eid"] == records["session"]["id"]
        assert provenance["converter_version"] == nwbridge.__version__
        assert provenance["representation_version"] == nwbridge.schemas.REPRESENTATION_VERSION


def test_behaviour_lands_in_the_file(converted):
    session_path, (path,) = converted
    with NWBHDF5IO(path, "r") as io:
        nwbfile = io.read()
        table = pd.read_parquet(session_path / "alf" / "_ibl_trials.table.pqt")
        np.testing.assert_array_equal(nwbfile.trials["start_time"].data[:], table["intervals_0"])
        behavior = nwbfile.processing["behavior"]
        np.testing.assert_array_equal(behavior["wheel_position"].data[:],
                                      np.load(session_path / "alf" / "_ibl_wheel.position.npy"))
        np.testing.assert_array_equal(nwbfile.get_events_table("licks")["timestamp"].data[:],
                                      np.load(session_path / "alf" / "licks.times.npy"))


def test_reconversion_gives_the_same_identifier_and_refuses_to_overwrite(converted, tmp_path):
    session_path, (first,) = converted
    with pytest.raises(FileExistsError, match="already exists"):
        nwbridge.convert_ibl_session(session_path, first.parents[1], progress=False)
    (second,) = nwbridge.convert_ibl_session(session_path, tmp_path, progress=False)
    with NWBHDF5IO(first, "r") as a, NWBHDF5IO(second, "r") as b:
        assert a.read().identifier == b.read().identifier


def test_missing_sex_stops_with_the_field_and_how_to_supply_it(tmp_path):
    session = make_ibl_session(tmp_path / "src", n_trials=10, duration_s=300, seed=2, passive=False, cameras=(),
                               sex=None)
    with pytest.raises(MissingMetadataError) as error:
        nwbridge.convert_ibl_session(session, tmp_path / "out", progress=False)
    assert "Subject.sex" in str(error.value) and "--metadata FILE" in str(error.value)
    assert "alyx_session.json" in str(error.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.nwb*"))
    # Supplying it completes the conversion.
    (path,) = nwbridge.convert_ibl_session(session, tmp_path / "out", progress=False,
                                           metadata={"Subject": {"sex": "F"}})
    with NWBHDF5IO(path, "r") as io:
        assert io.read().subject.sex == "F"


def test_missing_birth_date_and_alyx_file(tmp_path):
    session = make_ibl_session(tmp_path / "src", n_trials=10, duration_s=300, seed=2, passive=False, cameras=(),
                               alyx_metadata=False)
    with pytest.raises(MissingMetadataError) as error:
        nwbridge.convert_ibl_session(session, tmp_path / "out", progress=False)
    for field in ("NWBFile.session_id", "NWBFile.session_start_time", "Subject.sex",
                  "Subject.age or Subject.date_of_birth"):
        assert field in error.value.missing


def test_truncated_file_fails_and_leaves_no_output(tmp_path):
    session = make_ibl_session(tmp_path / "src", n_trials=10, duration_s=300, seed=4, passive=False, cameras=())
    wheel = session / "alf" / "_ibl_wheel.timestamps.npy"
    wheel.write_bytes(wheel.read_bytes()[:-64])
    with pytest.raises(SourceFileError, match=r"_ibl_wheel\.timestamps\.npy: truncated"):
        nwbridge.convert_ibl_session(session, tmp_path / "out", progress=False)
    assert not list(tmp_path.joinpath("out").rglob("*")) or not list(tmp_path.joinpath("out").rglob("*.nwb*"))


def test_failed_overwrite_keeps_the_finished_file(tmp_path):
    session = make_ibl_session(tmp_path / "src", n_trials=10, duration_s=300, seed=5, passive=False, cameras=())
    (path,) = nwbridge.convert_ibl_session(session, tmp_path / "out", progress=False)
    before = path.read_bytes()
    (session / "alf" / "licks.times.npy").write_bytes(b"not a numpy file")
    with pytest.raises(SourceFileError, match=r"licks\.times\.npy: not a readable \.npy file"):
        nwbridge.convert_ibl_session(session, tmp_path / "out", progress=False, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_missing_required_file(tmp_path):
    session = make_ibl_session(tmp_path / "src", n_trials=10, duration_s=300, seed=6, passive=False, cameras=())
    (session / "alf" / "_ibl_wheel.timestamps.npy").unlink()
    with pytest.raises(SourceFileError, match=r"_ibl_wheel\.timestamps\.npy: required wheel dataset not found"):
        nwbridge.convert_ibl_session(session, tmp_path / "out", progress=False)
    assert not list(tmp_path.joinpath("out").rglob("*.nwb*"))
