"""Session and subject metadata of an IBL session.

The IBL keeps subject and session records in its Alyx database, not in the ALF files. A
session folder carries them as ``alyx_session.json`` (the ``session``, ``subject`` and ``lab``
records as Alyx returns them, see :data:`ALYX_METADATA_FILE`); anything still missing can be
supplied by the user's own metadata file.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from neuroconv import BaseDataInterface
from neuroconv.utils import DeepDict

from ...errors import SourceFileError
from ...provenance import IBL_DATASET, file_identifier, provenance_record
from .base import IblInterface

__all__ = ["ALYX_METADATA_FILE", "IBL_LABS", "IblSessionInterface", "read_alyx_metadata"]

ALYX_METADATA_FILE = "alyx_session.json"

# Institution and time zone of the 12 Brain Wide Map labs, used where the Alyx lab record is absent.
IBL_LABS = {
    "angelakilab": {"institution": "New York University", "timezone": "America/New_York"},
    "churchlandlab": {"institution": "Cold Spring Harbor Laboratory", "timezone": "America/New_York"},
    "churchlandlab_ucla": {"institution": "University of California, Los Angeles", "timezone": "America/Los_Angeles"},
    "cortexlab": {"institution": "University College London", "timezone": "Europe/London"},
    "danlab": {"institution": "University of California, Berkeley", "timezone": "America/Los_Angeles"},
    "hausserlab": {"institution": "University College London", "timezone": "Europe/London"},
    "hoferlab": {"institution": "Sainsbury Wellcome Centre", "timezone": "Europe/London"},
    "mainenlab": {"institution": "Champalimaud Centre for the Unknown", "timezone": "Europe/Lisbon"},
    "mrsicflogellab": {"institution": "Sainsbury Wellcome Centre", "timezone": "Europe/London"},
    "steinmetzlab": {"institution": "University of Washington", "timezone": "America/Los_Angeles"},
    "wittenlab": {"institution": "Princeton University", "timezone": "America/New_York"},
    "zadorlab": {"institution": "Cold Spring Harbor Laboratory", "timezone": "America/New_York"},
}

EXPERIMENT_DESCRIPTION = (
    "International Brain Laboratory Brain Wide Map. Head-fixed mice perform a visual decision task: "
    "a grating appears on the left or right screen and the mouse moves it to the centre by turning a "
    "wheel, for a water reward; the prior probability of the stimulus side changes in blocks. "
    "Neuropixels probes record across the brain; cameras film the face and body. After the task, a "
    "passive protocol (spontaneous activity, receptive-field mapping, task replay) is presented."
)
RELATED_PUBLICATIONS = ["doi:10.1101/2023.07.04.549627"]
KEYWORDS = ["International Brain Laboratory", "Brain Wide Map", "decision making", "Neuropixels",
            "mouse", "behavior", "visual discrimination"]


def read_alyx_metadata(session_path: Path) -> dict:
    """The Alyx records stored beside a session (empty when the file is absent)."""
    path = Path(session_path) / ALYX_METADATA_FILE
    if not path.is_file():
        return {}
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SourceFileError(path, f"not readable JSON ({error})") from error
    if not isinstance(records, dict):
        raise SourceFileError(path, "expected a JSON object with 'session', 'subject' and 'lab' records")
    return records


def _iso_age(birth: date, at: date) -> str:
    return f"P{(at - birth).days}D"


class IblSessionInterface(IblInterface):
    """NWB file and subject metadata of an IBL session: identity, provenance, subject, lab."""

    display_name = "IBL session metadata"

    @classmethod
    def is_available(cls, session) -> bool:
        return True

    def get_metadata(self) -> DeepDict:
        metadata = BaseDataInterface.get_metadata(self)
        records = read_alyx_metadata(self.session.session_path)
        alyx_session = records.get("session", {})
        alyx_subject = records.get("subject", {})
        lab_name = alyx_session.get("lab") or self.session.lab
        lab = {**IBL_LABS.get(lab_name, {}), **{k: v for k, v in records.get("lab", {}).items() if v}}

        eid = alyx_session.get("id")
        nwbfile = metadata["NWBFile"]
        nwbfile.update(
            session_description=(
                f"IBL session {self.session.subject} {self.session.date} #{self.session.number:03d}"
                + (f", task protocol {alyx_session['task_protocol']}" if alyx_session.get("task_protocol") else "")
            ),
            experiment_description=EXPERIMENT_DESCRIPTION,
            related_publications=RELATED_PUBLICATIONS,
            keywords=KEYWORDS,
            lab=lab_name,
            source_script_file_name="nwbridge",
            source_script=provenance_record(
                IBL_DATASET,
                native_ids={"eid": eid, "subject": self.session.subject, "date": self.session.date,
                            "number": self.session.number, "lab": lab_name},
                data_revision=self.session.revision,
            ),
        )
        if lab.get("institution"):
            nwbfile["institution"] = lab["institution"]
        if alyx_session.get("narrative"):
            nwbfile["notes"] = alyx_session["narrative"]
        if eid:
            nwbfile["session_id"] = eid
            nwbfile["identifier"] = file_identifier(IBL_DATASET, eid, "processed")
        else:
            # A random identifier would break reproducibility: the converter refuses without an eid.
            nwbfile.pop("identifier", None)
        start = alyx_session.get("start_time")
        if start:
            start_time = datetime.fromisoformat(start)
            if start_time.tzinfo is None and lab.get("timezone"):
                start_time = start_time.replace(tzinfo=ZoneInfo(lab["timezone"]))
            nwbfile["session_start_time"] = start_time

        subject = metadata["Subject"]
        subject.update(subject_id=self.session.subject, species=alyx_subject.get("species") or "Mus musculus")
        if alyx_subject.get("sex"):
            subject["sex"] = alyx_subject["sex"]
        if alyx_subject.get("strain"):
            subject["strain"] = alyx_subject["strain"]
        genotype = alyx_subject.get("genotype")
        if genotype:
            subject["genotype"] = "; ".join(genotype) if isinstance(genotype, list) else str(genotype)
        if alyx_subject.get("description"):
            subject["description"] = alyx_subject["description"]
        if alyx_subject.get("birth_date"):
            birth = date.fromisoformat(alyx_subject["birth_date"])
            tz = ZoneInfo(lab["timezone"]) if lab.get("timezone") else None
            subject["date_of_birth"] = datetime(birth.year, birth.month, birth.day, tzinfo=tz)
            if start:
                subject["age"] = _iso_age(birth, datetime.fromisoformat(start).date())
        return metadata

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        """Nothing beyond the metadata: the file-level fields are set when the file is made."""
