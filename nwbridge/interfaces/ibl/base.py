"""What every IBL interface shares: the session folder resolved by the ONE-api."""

from __future__ import annotations

from pathlib import Path

from neuroconv import BaseDataInterface
from neuroconv.utils import DeepDict
from pydantic import DirectoryPath

from .alf import AlfSession

__all__ = ["IblInterface"]


class IblInterface(BaseDataInterface):
    """Base of the IBL interfaces.

    Parameters
    ----------
    session_path : Path
        The session folder, ``<root>/<lab>/Subjects/<subject>/<date>/<number>``.
    revision : str, optional
        ALF revision to read; by default the newest revision of every dataset.
    verbose : bool, default: False
    """

    keywords = ("IBL", "International Brain Laboratory", "ALF")

    def __init__(self, session_path: DirectoryPath, *, revision: str | None = None, verbose: bool = False):
        super().__init__(verbose=verbose, session_path=session_path, revision=revision)
        self.session = AlfSession(Path(session_path), revision=revision)

    def get_metadata(self) -> DeepDict:
        """Modality interfaces add no file-level metadata: only the session interface does.

        neuroconv's default metadata carries a random identifier and its own provenance text;
        merged from every interface, they would overwrite the session's deterministic ones.
        """
        return DeepDict()

    @classmethod
    def is_available(cls, session: AlfSession) -> bool:
        """Whether the session holds the datasets this interface converts."""
        raise NotImplementedError
