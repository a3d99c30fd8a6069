"""The shared representation as versioned data, and the checker of files against it.

The representation lives in ``representation.yaml`` (package data). :func:`load_representation`
returns it as plain Python data, normalised so that consumers (the checker, the documentation)
need not repeat YAML conventions: the shared columns of the stimulus tables are merged with each
kind's own columns, and a column or child of an object a source never writes is marked absent for
that source.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from importlib.resources import files

import yaml

__all__ = [
    "REPRESENTATION_VERSION",
    "PRESENCE_VALUES",
    "SOURCE_KEYS",
    "load_representation",
    "name_pattern",
    "presence_for",
    "iter_objects",
    "source_key",
]

PRESENCE_VALUES = ("required", "optional", "absent")
SOURCE_KEYS = ("ibl", "allen")

_RESOURCE = "representation.yaml"


@cache
def _load_raw() -> dict:
    text = files(__name__).joinpath(_RESOURCE).read_text(encoding="utf-8")
    # The C loader is several times faster; this module is imported by every nwbridge command.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)
    if not isinstance(data, dict) or "version" not in data:
        raise RuntimeError(f"nwbridge/schemas/{_RESOURCE} is damaged: no 'version' at its top level")
    return _normalise(data)


def load_representation() -> dict:
    """The shared representation, as data.

    Returns
    -------
    dict
        A fresh copy (callers may modify it) with the top-level keys of ``representation.yaml``:
        ``version``, ``sources``, ``presence``, ``dtypes``, ``units``, ``conventions``,
        ``placeholders``, ``files``, ``metadata`` and ``sections`` (each with ``objects``).
        Every object's ``columns`` already include the shared columns it inherits.
    """
    return copy.deepcopy(_load_raw())


def presence_for(entry: dict, *, source: str | None, file_kind: str | None = None) -> str:
    """The presence (``required``, ``optional`` or ``absent``) of an object, column or field.

    Parameters
    ----------
    entry : dict
        An object, child, column or metadata field of the representation.
    source : str or None
        ``ibl`` or ``allen``. ``None`` (source unknown) gives the weakest claim both sources
        agree on: ``required`` only when required for both, ``absent`` only when absent for both.
    file_kind : str, optional
        ``processed`` or ``raw``, for entries whose presence differs between the two files.
        An object that the file kind does not hold is ``absent``.

    Returns
    -------
    str
    """
    if file_kind is not None and "files" in entry and file_kind not in entry["files"]:
        return "absent"
    if source is None:
        values = {presence_for(entry, source=key, file_kind=file_kind) for key in SOURCE_KEYS}
        if values == {"required"}:
            return "required"
        if values == {"absent"}:
            return "absent"
        return "optional"
    value = entry.get("presence", {}).get(source, "absent")
    if isinstance(value, dict):
        if file_kind is None:
            # Without a file kind the strongest claim any file makes is the one to document.
            found = set(value.values())
            return next(level for level in PRESENCE_VALUES if level in found)
        value = value.get(file_kind, "absent")
    return value


def iter_objects(representation: dict):
    """Every object of the representation, with the section it belongs to.

    Yields
    ------
    section : dict
    obj : dict
    """
    for section in representation["sections"]:
        for obj in section["objects"]:
            yield section, obj


def name_pattern(template: str, *, source: str | None, representation: dict | None = None,
                 placeholders: dict | None = None) -> re.Pattern:
    """A regular expression matching the names a location or name template stands for.

    Parameters
    ----------
    template : str
        A location or name with ``{placeholders}``, e.g. ``processing/behavior/pose_{camera}``.
    source : str or None
        ``ibl`` or ``allen``: only that source's values are allowed; ``None`` allows any source's.
    representation : dict, optional
        By default the packaged one.
    placeholders : dict, optional
        Placeholder definitions overriding the representation's (an object's or child's own).

    Returns
    -------
    re.Pattern
        Use with ``fullmatch``. A placeholder with no value for the source matches nothing.
    """
    representation = representation or _load_raw()
    known = {**representation["placeholders"], **(placeholders or {})}
    sources = [source] if source else list(representation["sources"])
    regex = []
    for part in re.split(r"(\{[A-Za-z_]+\})", template):
        match = re.fullmatch(r"\{([A-Za-z_]+)\}", part)
        if not match:
            regex.append(re.escape(part))
            continue
        spec = known.get(match.group(1))
        if spec is None:
            raise KeyError(f"placeholder {{{match.group(1)}}} of {template!r} is not defined in the representation")
        alternatives = []
        for key in sources:
            alternatives += [re.escape(value) for value in spec.get("values", {}).get(key, [])]
            if spec.get("pattern", {}).get(key):
                alternatives.append(spec["pattern"][key])
        regex.append(f"(?:{'|'.join(alternatives) or '(?!)'})")
    return re.compile("".join(regex))


def source_key(source_dataset: str | None, *, representation: dict | None = None) -> str | None:
    """``ibl`` or ``allen`` for a provenance ``source_dataset`` value, ``None`` if unknown."""
    for key, source in (representation or _load_raw())["sources"].items():
        if source["source_dataset"] == source_dataset:
            return key
    return None


def _normalise(data: dict) -> dict:
    data = copy.deepcopy(data)
    problems = []
    for section in data["sections"]:
        for obj in section["objects"]:
            obj.setdefault("files", ["processed"])
            obj["columns"] = _merge_columns(obj.get("columns", []), obj.pop("kind_columns", []))
            for member in obj["columns"] + obj.get("children", []):
                _restrict_presence(member, obj)
            problems += _validate_entry(obj, f"object {obj['location']}")
            for column in obj["columns"]:
                problems += _validate_entry(column, f"column {obj['location']}.{column['name']}")
                if column.get("dtype") and _dtype_names(column["dtype"]) - set(data["dtypes"]):
                    problems.append(f"column {obj['location']}.{column['name']}: unknown dtype {column['dtype']!r}")
            for child in obj.get("children", []):
                problems += _validate_entry(child, f"child {obj['location']}/{child['name']}")
            for member in [obj] + obj.get("children", []):
                # Series units are checked against `units`, so each must be declared there.
                if member.get("unit") and member["unit"] not in data["units"]:
                    problems.append(f"{obj['location']} {member['name']}: unit {member['unit']!r} is not in `units`")
    for field in data["metadata"]:
        problems += _validate_entry(field, f"metadata {field['name']}")
    if problems:
        raise RuntimeError("nwbridge/schemas/representation.yaml is inconsistent:\n  " + "\n  ".join(problems))
    return data


def _merge_columns(shared: list[dict], own: list[dict]) -> list[dict]:
    # YAML anchors share one list between tables: copy it, so per-table edits stay per table.
    merged = [copy.deepcopy(column) for column in shared]
    names = [column["name"] for column in merged]
    for column in own:
        if column["name"] in names:
            merged[names.index(column["name"])] = copy.deepcopy(column)
        else:
            merged.append(copy.deepcopy(column))
            names.append(column["name"])
    return merged


def _restrict_presence(member: dict, obj: dict) -> None:
    # A column of a table the source never writes cannot be written either; saying so keeps
    # the documentation from listing Allen-only tables as having IBL columns.
    presence = member.setdefault("presence", {})
    for source in SOURCE_KEYS:
        if presence_for(obj, source=source) == "absent":
            presence[source] = "absent"
        presence.setdefault(source, "absent")


def _validate_entry(entry: dict, what: str) -> list[str]:
    problems = []
    for source, value in entry.get("presence", {}).items():
        if source not in SOURCE_KEYS:
            problems.append(f"{what}: unknown source {source!r}")
        values = value.values() if isinstance(value, dict) else [value]
        for level in values:
            if level not in PRESENCE_VALUES:
                problems.append(f"{what}: presence {level!r} for {source} is not one of {PRESENCE_VALUES}")
    return problems


def _dtype_names(dtype) -> set[str]:
    return set(dtype.values()) if isinstance(dtype, dict) else {dtype}


def _read_version() -> str:
    version = str(_load_raw()["version"])
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise RuntimeError(f"representation.yaml version {version!r} is not MAJOR.MINOR.PATCH")
    return version


REPRESENTATION_VERSION: str = _read_version()
"""Version of the shared representation this nwbridge writes and checks (from the YAML)."""
