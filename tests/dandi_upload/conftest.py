"""Converted sessions of both sources, as the DANDI workflow finds them after a conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.dandi_files import IBL_EID, IBL_SUBJECT, Converted

@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> Converted:
    """An IBL session with its three camera videos and an Allen session with LFP, converted (read-only)."""
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

