"""The examples run as documented."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_convert_ibl_session_example(tmp_path, capsys):
    from nwbridge.testing import make_ibl_session

    session = make_ibl_session(tmp_path / "src", n_trials=40, duration_s=600, seed=9, cameras=())
    example = runpy.run_path(str(EXAMPLES / "convert_ibl_session.py"))
    path = example["main"](session, tmp_path / "out")
    output = capsys.readouterr().out
    assert path.exists() and f"{path.name}: 40 trials" in output
    assert "correct" in output and "licks in the second after a reward" in output
