"""What every Allen interface shares: the session NWB file, opened once."""

from __future__ import annotations

from pathlib import Path

from neuroconv import BaseDataInterface
from neuroconv.utils import DeepDict
from pydantic import FilePath

from .source import AllenFile, open_allen_file

__all__ = ["AllenInterface"]


class AllenInterface(BaseDataInterface):
    """Base of the Allen Visual Behavior Neuropixels interfaces.

    Parameters
    ----------
    session_nwb : Path
        The AllenSDK-written session file, ``ecephys_session_<id>.nwb``.
    verbose : bool, default: False
    """

    keywords = ("Allen Institute", "Visual Behavior Neuropixels", "change detection")

    def __init__(self, session_nwb: FilePath, *, verbose: bool = False):
        super().__init__(verbose=verbose, session_nwb=str(session_nwb))
        self.session_nwb = Path(session_nwb)

    @property
    def source(self) -> AllenFile:
        """The open session file (shared with the other interfaces of this process)."""
        return open_allen_file(self.session_nwb)

    def get_metadata(self) -> DeepDict:
        """Modality interfaces add no file-level metadata: only the session interface does.

        neuroconv's default metadata carries a random identifier; merged from every interface, it
        would overwrite the session's deterministic one.
        """
        return DeepDict()

    @classmethod
    def is_available(cls, source: AllenFile) -> bool:
        """Whether the session file holds what this interface converts."""
        raise NotImplementedError
