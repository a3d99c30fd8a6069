"""``upload_dandiset`` and ``nwbridge dandi upload``, up to the network boundary (this machine has none).

HTTP is stopped at ``requests.Session.send``, the layer below dandi-cli's client: every request
dandi-cli makes is recorded there, answered for the server information and the API key check as
the archive would, and stopped at the first request that would touch the dandiset.
"""

from __future__ import annotations

import json
import shutil
from urllib.parse import unquote

import pytest
import requests
from click.testing import CliRunner
from pynwb import NWBHDF5IO
from support.dandi_files import allen_names, ibl_name

from nwbridge.cli import main
from nwbridge.dandi_upload import (
    DandiWorkflowError,
    MissingApiKeyError,
    UploadRefusedError,
    api_key_variable,
    organize_dandiset,
    plan_upload,
    resolve_instance,
    upload_dandiset,
)
from nwbridge.summary import human_size

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class NetworkBoundary(Exception):
    """Raised where a request would leave the machine (not a ConnectionError: dandi-cli would retry that)."""


@pytest.fixture
def organized(dandiset):
    assert organize_dandiset(dandiset, dandiset_id="000409").ok
    return dandiset


@pytest.fixture
def network(monkeypatch):
    """Record every HTTP request; answer /info/ and /auth/token/ as the archive does; stop at anything else."""
    from dandischema.models import get_schema_version

    monkeypatch.setenv("DANDI_NO_ET", "1")  # no version check against the internet
    requests_seen = []

    def send(session, request, **options):
        requests_seen.append(request)
        response = requests.Response()
        response.request, response.url = request, request.url
        if request.url.endswith("/api/info/"):
            api = request.url[: -len("/info/")]
            body = {"schema_version": get_schema_version(), "version": "0.4.0", "services": {"api": {"url": api}},
                    "cli-minimal-version": "0.1.0", "cli-bad-versions": []}
        elif request.url.endswith("/auth/token/") or request.url.endswith("/auth/token"):
            body = {}
        else:
            raise NetworkBoundary(f"{request.method} {request.url}")
        response.status_code = 200
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        return response

    monkeypatch.setattr(requests.Session, "send", send)
    return requests_seen


def test_instances_and_their_api_key_variables():
    assert resolve_instance("dandi").api == "https://api.dandiarchive.org/api"
    assert resolve_instance("https://sandbox.dandiarchive.org/").name == "dandi-sandbox"
    assert api_key_variable(resolve_instance("dandi")) == "DANDI_API_KEY"
    assert api_key_variable(resolve_instance("dandi-sandbox")) == "DANDI_SANDBOX_API_KEY"
    with pytest.raises(DandiWorkflowError, match="unknown DANDI instance 'dandy'"):
        resolve_instance("dandy")


def test_dry_run_lists_assets_sizes_and_archive_paths(converted, organized, monkeypatch):
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    with NWBHDF5IO(organized / ibl_name(), "r") as io:
        acquisition = io.read().acquisition
        object_ids = {camera: acquisition[f"video_{camera}_camera"].object_id for camera in ("left", "right", "body")}
    processed, raw = allen_names(converted)
    folder = ibl_name()[: -len(".nwb")]
    assets = sorted([ibl_name(), processed, raw, *(f"{folder}/{object_id}_external_file_0.mp4"
                                                   for object_id in object_ids.values())])
    sizes = [human_size((organized / path).stat().st_size) for path in assets]
    width = max(len(size) for size in sizes + ["size"])
    expected = "\n".join([
        "Dry run: nothing is uploaded.",
        f"From: {organized}",
        "To: dandiset 000409 (draft) on dandi (https://api.dandiarchive.org/api)",
        "API key: DANDI_API_KEY is NOT set (a real upload would stop here)",
        "Assets the archive already has: skip",
        f"  {'size'.rjust(width)}  archive path",
        *(f"  {size.rjust(width)}  dandi://dandi/000409@draft/{path}" for size, path in zip(sizes, assets)),
        f"6 asset(s), {human_size(sum((organized / path).stat().st_size for path in assets))}",
    ])

    report = upload_dandiset(organized, dry_run=True)
    assert report.text == expected
    assert not report.uploaded and report.validation.ok

    result = CliRunner().invoke(main, ["dandi", "upload", str(organized), "--dry-run", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert result.output == expected + "\n"


def test_a_missing_api_key_stops_before_anything_else(organized, monkeypatch):
    import nwbridge.dandi_upload.upload as upload_module

    monkeypatch.delenv("DANDI_SANDBOX_API_KEY", raising=False)
    monkeypatch.setattr(upload_module, "validate_dandiset", lambda *a, **k: pytest.fail("validated without a key"))
    with pytest.raises(MissingApiKeyError) as caught:
        upload_dandiset(organized, instance="dandi-sandbox")
    assert caught.value.variable == "DANDI_SANDBOX_API_KEY"
    assert "export DANDI_SANDBOX_API_KEY=<your key>" in str(caught.value)

    result = CliRunner().invoke(main, ["dandi", "upload", str(organized), "--instance", "dandi-sandbox"])
    assert result.exit_code == 2
    assert "no API key for dandi-sandbox" in result.output and "DANDI_SANDBOX_API_KEY" in result.output


def test_validation_errors_block_the_upload(converted, organized, monkeypatch, network):
    monkeypatch.setenv("DANDI_API_KEY", "0123456789abcdef")
    misplaced = organized / "extras" / "notes.nwb"
    misplaced.parent.mkdir()
    shutil.copy(organized / allen_names(converted)[1], misplaced)

    with pytest.raises(UploadRefusedError) as caught:
        upload_dandiset(organized)
    assert "nothing was uploaded" in str(caught.value) and "extras/notes.nwb" in str(caught.value)
    assert network == []  # refused before any request

    dry = upload_dandiset(organized, dry_run=True)
    assert "a real upload would be refused" in dry.text

    result = CliRunner().invoke(main, ["dandi", "upload", str(organized), "--no-progress"])
    assert result.exit_code == 1
    assert "upload refused" in result.output and "DANDI.NON_DANDI_FOLDERNAME" in result.output
    assert network == []


def test_upload_reaches_the_archive_with_the_key_from_the_environment(organized, monkeypatch, network):
    monkeypatch.setenv("DANDI_API_KEY", "0123456789abcdef")

    with pytest.raises(DandiWorkflowError, match=r"upload to dandi \(https://api.dandiarchive.org/api\) failed"):
        upload_dandiset(organized, jobs=2)

    api = "https://api.dandiarchive.org/api/"
    archive = [request for request in network if request.url.startswith(api)]
    # Anything else is dandi-cli asking for its own newest version after a failure.
    assert {request.url for request in network if request not in archive} <= {
        "https://rig.mit.edu/et/projects/dandi/dandi-cli"}
    token_checks = [request for request in archive if "/auth/token" in request.url]
    assert token_checks and token_checks[0].headers["Authorization"] == "token 0123456789abcdef"
    # Then dandi-cli asks the draft of the dandiset named in dandiset.yaml for each asset, by its path: the boundary.
    lookups = [request for request in archive if "/assets/?path=" in request.url]
    prefix = f"{api}dandisets/000409/versions/draft/assets/?path="
    assert all(request.url.startswith(prefix) for request in lookups)
    assert sorted(unquote(request.url[len(prefix):]) for request in lookups) == [
        asset.path for asset in plan_upload(organized)]
    assert all(request.headers["Authorization"] == "token 0123456789abcdef" for request in lookups)
    # Nothing was changed locally by the failed attempt.
    assert organize_dandiset(organized).organized == []


def test_upload_options_are_checked(organized):
    with pytest.raises(ValueError, match="existing must be one of"):
        upload_dandiset(organized, existing="sometimes", dry_run=True)
    (organized / "dandiset.yaml").unlink()
    with pytest.raises(DandiWorkflowError, match="no dandiset.yaml"):
        upload_dandiset(organized, dry_run=True)
