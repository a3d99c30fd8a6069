"""Fixtures of the Allen interface tests: one generated VBN session, read-only, shared by the tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def vbn_session(tmp_path_factory):
    """A small generated VBN session (``nwbridge.testing.VbnSession``): do not modify its files."""
    from nwbridge.testing import make_vbn_session

    return make_vbn_session(tmp_path_factory.mktemp("vbn"), seed=3)


@pytest.fixture(scope="session")
def vbn_source(vbn_session):
    """The session file opened as the interfaces open it (``nwbridge.interfaces.allen.source.AllenFile``)."""
    from nwbridge.interfaces.allen.source import close_allen_files, open_allen_file

    yield open_allen_file(vbn_session.session_file)
    close_allen_files()


@pytest.fixture(scope="session")
def vbn_raw(vbn_session):
    """The session file read with plain h5py, to compare the converted values with the source's own."""
    import h5py

    with h5py.File(vbn_session.session_file, "r") as file:
        yield file
