"""Fixtures shared by the whole suite."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from support.dandi_files import IBL_EID, IBL_SUBJECT, Converted
from pynwb import NWBHDF5IO, NWBFile

from nwbridge.writing import write_nwbfile_atomically

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The real IBL and Allen files copied into the project (provenance in tests/data/README.md)."""
    return DATA


@pytest.fixture(scope="session")
def ibl_session(tmp_path_factory) -> Path:
    """A small generated IBL session with every behavioural modality (read-only: do not modify)."""
    from nwbridge.testing import make_ibl_session

    root = tmp_path_factory.mktemp("ibl_root")
    return make_ibl_session(root, n_trials=60, duration_s=900, seed=7)


@pytest.fixture
def roundtrip(tmp_path):
    """Add interfaces to a new NWB file, write it, and return it read back with pynwb.

    Usage: ``nwbfile = roundtrip(interface_a, interface_b)``.
    """
    handles = []

    def _roundtrip(*interfaces, **conversion_options):
        nwbfile = NWBFile(session_description="test", identifier="test",
                          session_start_time=datetime(2021, 5, 10, 13, 0, tzinfo=timezone.utc))
        for interface in interfaces:
            interface.add_to_nwbfile(nwbfile, metadata=None, **conversion_options)
        path = write_nwbfile_atomically(nwbfile, tmp_path / f"roundtrip{len(handles)}.nwb")
        io = NWBHDF5IO(path, mode="r")
        handles.append(io)
        return io.read()

    yield _roundtrip
    for io in handles:
        io.close()


@pytest.fixture
def empty_session(tmp_path) -> Path:
    """An empty IBL session folder in the ONE cache layout, with its Alyx metadata, to fill with ALF files."""
    import json

    session = tmp_path / "cortexlab" / "Subjects" / "KS055" / "2021-05-10" / "001"
    (session / "alf").mkdir(parents=True)
    (session / "alyx_session.json").write_text(json.dumps({
        "session": {"id": "4ecb5d24-f5cc-402c-be28-9d0f7cb14b3a", "subject": "KS055", "lab": "cortexlab",
                    "start_time": "2021-05-10T13:47:08.512305", "number": 1},
        "subject": {"nickname": "KS055", "sex": "F", "birth_date": "2020-11-02", "species": "Mus musculus"},
        "lab": {"name": "cortexlab", "institution": "University College London", "timezone": "Europe/London"},
    }))
    return session


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> Converted:
    """For the DANDI workflow: an IBL session with its three camera videos and an Allen session with LFP, converted (read-only)."""
    from nwbridge.converters.allen_session import convert_allen_session
    from nwbridge.converters.ibl_session import convert_ibl_session
    from nwbridge.testing import make_ibl_session, make_vbn_session

    root = tmp_path_factory.mktemp("dandi_sources")
    session = make_ibl_session(root / "ibl", subject=IBL_SUBJECT, eid=IBL_EID, videos=True, n_trials=40,
                               duration_s=600, passive=False, probes=("probe00",), n_units=20, seed=3)
    vbn = make_vbn_session(root / "allen" / "1044385384", probes=("probeA", "probeB"), n_units_per_probe=10,
                           duration_s=200, lfp_channels=8, lfp_duration_s=20)
    folder = tmp_path_factory.mktemp("converted") / "dandiset"
    (ibl_processed,) = convert_ibl_session(session, folder, progress=False)
    allen_processed, allen_raw = sorted(convert_allen_session(vbn.session_file, folder, progress=False),
                                        key=lambda path: "desc-raw" in path.name)
    videos = {camera: session / "raw_video_data" / f"_iblrig_{camera}Camera.raw.mp4"
              for camera in ("left", "right", "body")}
    return Converted(folder=folder, ibl_processed=ibl_processed, allen_processed=allen_processed,
                     allen_raw=allen_raw, allen_mouse=str(vbn.mouse_id), allen_session="1044385384", videos=videos)


@pytest.fixture
def dandiset(converted, tmp_path) -> Path:
    """A private copy of the converted folder, to organize, break and upload."""
    copy = tmp_path / "dandiset"
    shutil.copytree(converted.folder, copy)
    return copy

