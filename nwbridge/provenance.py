"""Identity and provenance of the files nwbridge writes.

Identifiers are derived, not drawn at random, so that converting the same session again gives
the same NWB ``identifier``; provenance goes into core NWB fields (``source_script``) as JSON,
so it needs no extension to read.
"""

from __future__ import annotations

import json
import re
import uuid

from . import __version__
from .schemas import REPRESENTATION_VERSION

__all__ = ["IBL_DATASET", "ALLEN_DATASET", "file_identifier", "provenance_record", "dandi_safe", "output_path"]

IBL_DATASET = "ibl-brainwide-map"
ALLEN_DATASET = "allen-visual-behavior-neuropixels"

# Fixed namespace so identifiers are stable across machines and nwbridge versions.
_IDENTIFIER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/nwbridge/nwbridge")


def file_identifier(source_dataset: str, session_id: str, file_kind: str) -> str:
    """Deterministic NWB identifier of one file of one session.

    Parameters
    ----------
    source_dataset : str
        ``ibl-brainwide-map`` or ``allen-visual-behavior-neuropixels``.
    session_id : str
        The source's session id (IBL eid, Allen ecephys_session_id).
    file_kind : str
        ``processed`` or ``raw``.
    """
    return str(uuid.uuid5(_IDENTIFIER_NAMESPACE, f"{source_dataset}/{session_id}/{file_kind}"))


def provenance_record(source_dataset: str, *, native_ids: dict, data_revision: str | None) -> str:
    """JSON text recording where a file came from and what wrote it (stored in ``source_script``)."""
    return json.dumps(
        {
            "converter": "nwbridge",
            "converter_version": __version__,
            "representation_version": REPRESENTATION_VERSION,
            "source_dataset": source_dataset,
            "native_ids": native_ids,
            "data_revision": data_revision,
        },
        sort_keys=True,
    )


def dandi_safe(text: str) -> str:
    """``text`` with every character DANDI forbids in a name part (anything but letters, digits, -) as ``-``."""
    return re.sub(r"[^A-Za-z0-9-]", "-", str(text))


def output_path(output_dir, *, subject: str, session: str, description: str, modalities: str):
    """``<output_dir>/sub-<subject>/sub-<subject>_ses-<session>_desc-<description>_<modalities>.nwb``."""
    from pathlib import Path

    subject = dandi_safe(subject)
    name = f"sub-{subject}_ses-{dandi_safe(session)}_desc-{description}_{modalities}.nwb"
    return Path(output_dir) / f"sub-{subject}" / name
