"""Session and subject metadata of an Allen Visual Behavior Neuropixels session."""

from __future__ import annotations

from neuroconv import BaseDataInterface
from neuroconv.utils import DeepDict

from ...provenance import ALLEN_DATASET, file_identifier, provenance_record
from .base import AllenInterface

__all__ = ["AllenSessionInterface", "EXPERIMENT_DESCRIPTION"]

LAB = "Allen Institute MindScope Program"
INSTITUTION = "Allen Institute"
EXPERIMENT_DESCRIPTION = (
    "Allen Institute Visual Behavior Neuropixels. Head-fixed, water-restricted mice perform a visual "
    "change-detection task: natural images flash every 750 ms (250 ms on, 500 ms grey) and the mouse "
    "licks when the image changes, for a water reward; some expected flashes are omitted. Up to six "
    "Neuropixels probes record the visual cortex, thalamus and midbrain. After the task: receptive-field "
    "mapping with Gabor patches, full-field flashes, a passive replay of the task's images, and "
    "optotagging of genetically defined cell types."
)
RELATED_PUBLICATIONS = ["doi:10.48324/dandi.000713"]
KEYWORDS = ["Allen Institute", "Visual Behavior Neuropixels", "change detection", "Neuropixels", "mouse",
            "behavior", "visual cortex", "natural images"]


def _attribute(container, name: str):
    value = getattr(container, name, None) if container is not None else None
    if isinstance(value, bytes):
        value = value.decode()
    return value


class AllenSessionInterface(AllenInterface):
    """NWB file and subject metadata of an Allen VBN session: identity, provenance, subject."""

    display_name = "Allen session metadata"

    def __init__(self, session_nwb, *, release: str | None = None, verbose: bool = False):
        """
        Parameters
        ----------
        session_nwb : Path
        release : str, optional
            The data release the file comes from (e.g. the cache manifest version), recorded in the
            provenance; the file itself does not say.
        verbose : bool, default: False
        """
        super().__init__(session_nwb, verbose=verbose)
        self.source_data["release"] = release
        self.release = release

    @classmethod
    def is_available(cls, source) -> bool:
        return True

    def get_metadata(self) -> DeepDict:
        metadata = BaseDataInterface.get_metadata(self)
        source = self.source
        nwbfile = source.nwbfile
        # AllenSDK stores the ecephys_session_id as the identifier and sets no session_id.
        session_id = str(nwbfile.identifier)
        behavior = nwbfile.lab_meta_data.get("metadata") if nwbfile.lab_meta_data else None
        session_type = _attribute(behavior, "session_type") or nwbfile.session_description
        native_ids = {"ecephys_session_id": int(session_id) if session_id.isdigit() else session_id,
                      "probe_ids": {name: int(probe_id) for name, probe_id in self._probe_ids().items()}}
        for name in ("behavior_session_id", "behavior_session_uuid", "project_code", "equipment_name"):
            value = _attribute(behavior, name)
            if value is not None:
                native_ids[name] = value.item() if hasattr(value, "item") else value
        metadata["NWBFile"].update(
            session_id=session_id,
            identifier=file_identifier(ALLEN_DATASET, session_id, "processed"),
            session_description=f"Allen Visual Behavior Neuropixels session {session_id}, {session_type}",
            session_start_time=nwbfile.session_start_time,
            institution=nwbfile.institution or INSTITUTION,
            lab=LAB,
            experiment_description=EXPERIMENT_DESCRIPTION,
            related_publications=RELATED_PUBLICATIONS,
            keywords=KEYWORDS,
            source_script_file_name="nwbridge",
            source_script=provenance_record(ALLEN_DATASET, native_ids=native_ids, data_revision=self.release),
        )
        subject = nwbfile.subject
        if subject is not None:
            fields = {name: _attribute(subject, name) for name in ("subject_id", "species", "sex", "age", "genotype",
                                                                   "description", "strain")}
            metadata["Subject"].update({name: value for name, value in fields.items() if value})
            lines = [f"{name.replace('_', ' ')}: {', '.join(_listed(_attribute(subject, name)))}"
                     for name in ("driver_line", "reporter_line") if _listed(_attribute(subject, name))]
            if lines:
                # The Allen subject's driver and reporter lines have no core field: kept in the description.
                metadata["Subject"]["description"] = "; ".join(
                    [fields["description"]] * bool(fields.get("description")) + lines)
        return metadata

    def _probe_ids(self) -> dict[str, int]:
        found = {}
        for name, device in self.source.nwbfile.devices.items():
            probe_id = getattr(device, "probe_id", None)
            if probe_id is not None:
                found[name] = probe_id
        return found

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        """Nothing beyond the metadata: the file-level fields are set when the file is made."""


def _listed(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [item.decode() if isinstance(item, bytes) else str(item) for item in value]
