"""Errors raised by nwbridge.

Every error about a source names the file (or the metadata field) and says what is wrong
with it, so that a user converting hundreds of sessions can find and fix the one bad input.
"""

from __future__ import annotations

from pathlib import Path


class NwbridgeError(Exception):
    """Base class of every error nwbridge raises on purpose."""


class SourceFileError(NwbridgeError):
    """A source file is missing, unreadable or inconsistent with the rest of the session.

    Parameters
    ----------
    path : str or Path
        The file that is wrong (or, for a missing file, the path where it was expected).
    problem : str
        What is wrong with it, in plain words.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MissingSourceFileError(SourceFileError):
    """A file the conversion needs does not exist."""


class MissingMetadataError(NwbridgeError):
    """Metadata DANDI requires (subject sex, age, ...) could not be found in the sources.

    Parameters
    ----------
    missing : dict of str to str
        Maps each missing field (as ``Section.field``) to a hint on how to supply it.
    """

    def __init__(self, missing: dict[str, str]):
        self.missing = dict(missing)
        lines = [f"  - {field}: {hint}" for field, hint in self.missing.items()]
        super().__init__(
            "DANDI requires metadata that the session does not provide:\n"
            + "\n".join(lines)
            + "\nSupply it in a YAML or JSON file passed as `--metadata FILE` "
            "(Python: `metadata=` argument), for example:\n"
            "  Subject:\n    sex: F\n    date_of_birth: 2020-01-31"
        )
