"""Fixtures of the IBL interface tests."""

from __future__ import annotations

import pytest

from nwbridge.testing import make_ibl_session


@pytest.fixture
def small_session(tmp_path):
    """A factory of short generated sessions (writable), made with the arguments given."""
    def _make(**kwargs):
        root = tmp_path / f"generated{len(list(tmp_path.glob('generated*')))}"
        return make_ibl_session(root, n_trials=5, duration_s=60, passive=False, seed=3, **kwargs)
    return _make
