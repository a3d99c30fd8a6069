"""Checking NWB files against the shared representation, and running nwbinspector on them.

:func:`check_file` reads the file with h5py: every NWB group carries its ``neurodata_type``
attribute, so the layout can be checked without building pynwb objects, which is much faster
for files with millions of spikes. :func:`inspect_file` runs nwbinspector's own checks with the
"dandi" configuration, as ``dandi validate`` does. :func:`check_files` does both and gives the
text ``nwbridge check`` prints.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from . import REPRESENTATION_VERSION, iter_objects, load_representation, name_pattern, presence_for, source_key

__all__ = [
    "PASS",
    "FAIL",
    "NOT_PRESENT",
    "EXTRA",
    "ObjectResult",
    "FileReport",
    "check_file",
    "file_kind",
    "inspect_file",
    "format_report",
    "check_files",
]

PASS = "pass"
FAIL = "fail"
NOT_PRESENT = "not present"
EXTRA = "extra"

# Groups whose children are the objects of a file (processing modules add one more level).
_CONTAINERS = ("acquisition", "intervals", "events", "stimulus/presentation", "stimulus/templates", "analysis",
               "scratch", "general/devices", "general/extracellular_ephys", "general/lab_meta_data",
               "general/optogenetics")
# Columns core NWB gives every table of these types: never "unknown" to the representation.
_CORE_COLUMNS = {"id", "tags", "tags_index", "timeseries", "timeseries_index", "duration", "annotation"}
# Ascending checks read this many values at a time, so a 100-million-spike column needs no 800 MB.
_CHUNK = 1 << 22
# Value checks on text columns read the whole column; beyond this they are skipped.
_MAX_VALUE_ROWS = 5_000_000
_FAILING_IMPORTANCES = ("ERROR", "PYNWB_VALIDATION", "CRITICAL")
_ISO_DURATION = re.compile(
    r"^P(?=\d|T\d)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)
_SPECIES = re.compile(r"^([A-Z][a-z]+ [a-z]+( [a-z]+)?|https?://purl\.obolibrary\.org/obo/NCBITaxon_\d+)$")


@dataclass
class ObjectResult:
    """The verdict on one object of a file (or one group of file-level metadata).

    Attributes
    ----------
    name : str
        Where the object is in the file (HDF5 path), or the representation's pattern
        (``processing/behavior/pose_{camera}``) for an object that is not present.
    status : str
        ``pass``, ``fail``, ``not present`` (optional and absent) or ``extra`` (in the file but
        unknown to the representation; never a failure).
    section : str
        Section of the representation (``trials``, ``behavior``, ...), ``metadata`` or ``extra``.
    neurodata_type : str, optional
        The type found in the file.
    messages : list of str
        Why it failed.
    notes : list of str
        Information that is not a failure (columns or series the representation does not list).
    """

    name: str
    status: str
    section: str = ""
    neurodata_type: str | None = None
    messages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class FileReport:
    """Conformance of one file to the representation, and nwbinspector's messages on it.

    Attributes
    ----------
    path : Path
    source : str or None
        ``ibl`` or ``allen`` (from the provenance JSON in ``source_script``), ``None`` if unknown.
    source_dataset : str or None
        As written in the provenance.
    file_kind : str or None
        ``processed`` or ``raw``.
    file_representation_version : str or None
        The representation version the file says it follows.
    checked_against : str
        The representation version this checker applied.
    results : list of ObjectResult
    warnings : list of str
        Doubts about how the file was checked (unknown kind, other representation version).
    inspector_messages : list or None
        nwbinspector's ``InspectorMessage`` objects; ``None`` when nwbinspector was not run.
    """

    path: Path
    source: str | None
    source_dataset: str | None
    file_kind: str | None
    file_representation_version: str | None
    checked_against: str
    results: list[ObjectResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inspector_messages: list | None = None

    @property
    def failures(self) -> list[ObjectResult]:
        """Results with status ``fail``."""
        return [result for result in self.results if result.status == FAIL]

    @property
    def extras(self) -> list[ObjectResult]:
        """Objects in the file that the representation does not know."""
        return [result for result in self.results if result.status == EXTRA]

    @property
    def conformance_ok(self) -> bool:
        """Whether no object failed."""
        return not self.failures

    @property
    def inspector_failures(self) -> list:
        """nwbinspector messages of importance CRITICAL, PYNWB_VALIDATION or ERROR."""
        return [message for message in self.inspector_messages or []
                if _importance_name(message) in _FAILING_IMPORTANCES]

    @property
    def ok(self) -> bool:
        """False on any conformance failure or any CRITICAL, PYNWB_VALIDATION or ERROR nwbinspector message."""
        return self.conformance_ok and not self.inspector_failures

    def result(self, name: str) -> ObjectResult:
        """The result for an object location (or metadata group name)."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"{name!r} is not in the report of {self.path.name}; have: "
                       + ", ".join(result.name for result in self.results))


# --------------------------------------------------------------------------------------------
# conformance


def check_file(path: str | Path, *, representation: dict | None = None) -> FileReport:
    """Check one NWB file against the shared representation.

    Parameters
    ----------
    path : str or Path
        An NWB (HDF5) file written by nwbridge.
    representation : dict, optional
        The representation to check against; by default :func:`load_representation`.

    Returns
    -------
    FileReport
        Without nwbinspector messages (see :func:`inspect_file`, :func:`check_files`).
    """
    path = Path(path)
    representation = representation or load_representation()
    report = FileReport(path=path, source=None, source_dataset=None, file_kind=None,
                        file_representation_version=None, checked_against=str(representation["version"]))
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        report.results.append(ObjectResult(name=str(path.name), status=FAIL, section="file",
                                           messages=[f"not a readable HDF5/NWB file ({error})"]))
        return report
    with handle:
        _Checker(handle, report, representation).run()
    return report


class _Checker:
    """One pass over one open file; holds what the checks of its objects share."""

    def __init__(self, handle: h5py.File, report: FileReport, representation: dict):
        self.file = handle
        self.report = report
        self.rep = representation
        self._parents: dict[str, str | None] | None = None

    # -- orchestration ------------------------------------------------------------------------
    def run(self) -> None:
        self._identify()
        self._check_metadata()
        candidates = self._candidates()
        claimed: set[str] = set()
        present_names: set[str] = set()
        pending_required_with = []
        for section, spec in iter_objects(self.rep):
            presence = presence_for(spec, source=self.report.source, file_kind=self.report.file_kind)
            if self.report.file_kind not in spec["files"]:
                continue
            pattern = self._compile(spec["location"], spec.get("placeholders"))
            matches = [name for name in candidates if pattern.fullmatch(name)]
            claimed.update(matches)
            if matches:
                present_names.add(spec["name"])
            if not matches:
                if presence == "required":
                    self._add(ObjectResult(spec["location"], FAIL, section["id"], messages=[
                        f"required for {self._source_label()} {self.report.file_kind} files, not in the file"]))
                elif presence == "optional":
                    pending_required_with.append((section, spec))
                continue
            for name in matches:
                result = ObjectResult(name, PASS, section["id"],
                                      neurodata_type=_attr(self.file[name], "neurodata_type"))
                if presence == "absent":
                    result.messages.append(f"the representation marks this object absent for {self._source_label()}"
                                           f" {self.report.file_kind} files")
                else:
                    self._check_object(self.file[name], spec, result)
                result.status = FAIL if result.messages else PASS
                self._add(result)
        for section, spec in pending_required_with:
            triggers = [name for name in spec.get("required_with", []) if name in present_names]
            if triggers:
                self._add(ObjectResult(spec["location"], FAIL, section["id"], messages=[
                    f"required when {', '.join(triggers)} is present, not in the file"]))
            else:
                self._add(ObjectResult(spec["location"], NOT_PRESENT, section["id"]))
        for name in candidates:
            if name not in claimed:
                self._add(ObjectResult(name, EXTRA, "extra", neurodata_type=_attr(self.file[name], "neurodata_type")))

    def _add(self, result: ObjectResult) -> None:
        self.report.results.append(result)

    def _source_label(self) -> str:
        if self.report.source is None:
            return "any source"
        return self.rep["sources"][self.report.source]["label"]

    # -- which source, which kind ---------------------------------------------------------------
    def _identify(self) -> None:
        report = self.report
        provenance = _read_text(self.file, "general/source_script")
        if provenance is not None:
            try:
                record = json.loads(provenance)
            except ValueError:
                record = None
            if isinstance(record, dict):
                report.source_dataset = record.get("source_dataset")
                report.source = source_key(report.source_dataset, representation=self.rep)
                report.file_representation_version = record.get("representation_version")
        if report.source is None:
            report.warnings.append("could not tell which source wrote the file (general/source_script has no "
                                   "provenance JSON naming a known source_dataset): objects required by only "
                                   "one source are treated as optional")
        if report.file_representation_version and report.file_representation_version != report.checked_against:
            report.warnings.append(f"the file follows representation {report.file_representation_version}; "
                                   f"checked against {report.checked_against}")
        report.file_kind, named = file_kind(self.file, report.path.name, representation=self.rep)
        if not named:
            report.warnings.append(f"file name has neither desc-processed nor desc-raw; checked as a "
                                   f"{report.file_kind} file from its content")

    # -- file-level metadata ----------------------------------------------------------------------
    def _check_metadata(self) -> None:
        groups: dict[str, ObjectResult] = {}
        locations = {"file": "file metadata", "provenance": "provenance (general/source_script)",
                     "subject": "subject (general/subject)"}
        for spec in self.rep["metadata"]:
            group = spec["group"]
            result = groups.setdefault(group, ObjectResult(locations.get(group, group), PASS, "metadata"))
            presence = presence_for(spec, source=self.report.source)
            value = _read_value(self.file, spec["path"])
            rule = spec.get("rule")
            if rule == "age_or_date_of_birth":
                problem = self._age_rule(spec, value)
            elif value is None or _is_empty(value):
                problem = f"{spec['name']} is not set" if presence == "required" else None
            elif presence == "absent":
                problem = f"{spec['name']} is marked absent for {self._source_label()}"
            else:
                problem = self._metadata_rule(spec, value)
            if problem:
                result.messages.append(problem)
        if "general/subject" not in self.file:
            groups["subject"].messages.insert(0, "the file has no subject (general/subject)")
        for result in groups.values():
            result.status = FAIL if result.messages else PASS
            self._add(result)

    def _metadata_rule(self, spec: dict, value) -> str | None:
        rule = spec.get("rule")
        name = spec["name"]
        text = _as_text(value)
        if rule == "session_id" and text.strip() in ("None", "none", "null", "nan", "NaN"):
            return f"session_id is the string {text.strip()!r}: it must be the source's session id"
        if rule == "timezone_aware":
            try:
                start = datetime.fromisoformat(text)
            except ValueError:
                return f"session_start_time {text!r} is not an ISO 8601 date and time"
            if start.tzinfo is None or start.tzinfo.utcoffset(start) is None:
                return f"session_start_time {text!r} has no time zone (it must be timezone-aware)"
            if start > datetime.now(timezone.utc):
                return f"session_start_time {text!r} is in the future"
        if rule == "deterministic_identifier":
            return self._identifier_rule(text)
        if rule == "provenance":
            return self._provenance_rule(spec, text)
        if rule == "species" and not _SPECIES.match(text):
            return f"species {text!r} is neither a Latin binomial (e.g. 'Mus musculus') nor an NCBITaxon URL"
        if spec.get("values") and text not in spec["values"]:
            return f"{name} {text!r} is not one of {', '.join(spec['values'])}"
        return None

    def _identifier_rule(self, identifier: str) -> str | None:
        from ..provenance import file_identifier

        session_id = _read_text(self.file, "general/session_id")
        if not (self.report.source_dataset and session_id and self.report.file_kind) or self.report.source is None:
            return None
        expected = file_identifier(self.report.source_dataset, session_id, self.report.file_kind)
        if identifier != expected:
            return (f"identifier {identifier!r} is not the deterministic one for this session and file kind "
                    f"({expected}, UUID5 of {self.report.source_dataset}/{session_id}/{self.report.file_kind})")
        return None

    def _provenance_rule(self, spec: dict, text: str) -> str | None:
        try:
            record = json.loads(text)
        except ValueError:
            return "source_script is not the provenance JSON (not valid JSON)"
        if not isinstance(record, dict):
            return "source_script is not the provenance JSON (not a JSON object)"
        missing = [key for key in spec.get("keys", []) if key not in record]
        if missing:
            return f"provenance JSON lacks {', '.join(missing)}"
        if self.report.source is None:
            known = ", ".join(source["source_dataset"] for source in self.rep["sources"].values())
            return f"provenance source_dataset {record.get('source_dataset')!r} is not one of {known}"
        return None

    def _age_rule(self, spec: dict, value) -> str | None:
        # Reported once, on `age`: DANDI needs one of the two, and each must be well formed.
        if spec["name"] == "age":
            date_of_birth = _read_text(self.file, "general/subject/date_of_birth")
            if (value is None or _is_empty(value)) and not date_of_birth:
                return "neither subject age nor date_of_birth is set (DANDI requires one)"
            if value is not None and not _is_empty(value):
                age = _as_text(value)
                if not all(_ISO_DURATION.match(part) for part in age.split("/") if part):
                    return f"subject age {age!r} is not an ISO 8601 duration (e.g. P90D)"
        elif value is not None and not _is_empty(value):
            try:
                birth = datetime.fromisoformat(_as_text(value))
            except ValueError:
                return f"date_of_birth {_as_text(value)!r} is not an ISO 8601 date"
            if birth.tzinfo is None:
                return f"date_of_birth {_as_text(value)!r} has no time zone"
        return None

    # -- objects ----------------------------------------------------------------------------------
    def _candidates(self) -> list[str]:
        found = []
        if "units" in self.file:
            found.append("units")
        for container in _CONTAINERS:
            group = self.file.get(container)
            if isinstance(group, h5py.Group):
                found += [f"{container}/{name}" for name, item in group.items() if _attr(item, "neurodata_type")]
        processing = self.file.get("processing")
        if isinstance(processing, h5py.Group):
            for module_name, module in processing.items():
                found.append(f"processing/{module_name}")
                if isinstance(module, h5py.Group):
                    found += [f"processing/{module_name}/{name}" for name, item in module.items()
                              if _attr(item, "neurodata_type")]
        return found

    def _compile(self, template: str, local: dict | None = None) -> re.Pattern:
        return name_pattern(template, source=self.report.source, representation=self.rep, placeholders=local)

    def _check_object(self, item, spec: dict, result: ObjectResult, *, prefix: str = "") -> None:
        messages = result.messages
        expected = spec.get("neurodata_type")
        actual = _attr(item, "neurodata_type")
        if expected and actual != expected and expected not in self._ancestry(actual):
            messages.append(f"{prefix}is a {actual or 'group without neurodata_type'}, expected {expected}")
            return
        for field_spec in spec.get("fields", []):
            level = presence_for(field_spec, source=self.report.source) if "presence" in field_spec else "required"
            if level == "required" and not _has_field(item, field_spec["path"]):
                messages.append(f"{prefix}lacks {field_spec['name']} ({field_spec['path']})")
        if spec.get("unit"):
            unit = _attr(item["data"], "unit") if "data" in item else None
            declared = self.rep["units"].get(spec["unit"], {})
            accepted = declared.get("accept", [spec["unit"]])
            if unit not in accepted:
                messages.append(f"{prefix}unit is {unit!r}, expected {declared.get('write', spec['unit'])!r} "
                                f"(accepted: {', '.join(repr(spelling) for spelling in accepted)})")
        data_dtype = _per_source(spec.get("data_dtype"), self.report.source)
        if data_dtype and "data" in item and item["data"].dtype.name != data_dtype:
            messages.append(f"{prefix}data are {item['data'].dtype.name}, expected {data_dtype}")
        if spec.get("sampling") == "regular":
            if "timestamps" in item or "starting_time" not in item or "rate" not in item["starting_time"].attrs:
                messages.append(f"{prefix}is not regularly sampled: expected starting_time with a rate, "
                                "and no timestamps")
        if spec.get("time_ascending") and isinstance(item, h5py.Group) and "timestamps" in item:
            position = _first_descent(item["timestamps"])
            if position is not None:
                messages.append(f"{prefix}timestamps are not ascending: element {position} "
                                f"({float(item['timestamps'][position])!r}) follows "
                                f"{float(item['timestamps'][position - 1])!r}")
        if spec.get("external_file") == "relative" and isinstance(item, h5py.Group) and "external_file" in item:
            for external in np.atleast_1d(item["external_file"][()]):
                external = _as_text(external)
                if os.path.isabs(external) or re.match(r"^[A-Za-z]:[\\/]", external):
                    messages.append(f"{prefix}external_file {external!r} is absolute; it must be relative "
                                    "to the NWB file")
        if spec.get("columns"):
            self._check_columns(item, spec, result, prefix=prefix)
        if spec.get("children"):
            self._check_children(item, spec, result, prefix=prefix)

    def _check_columns(self, table, spec: dict, result: ObjectResult, *, prefix: str) -> None:
        source = self.report.source
        colnames = [_as_text(name) for name in np.atleast_1d(table.attrs.get("colnames", []))]
        declared = {column["name"] for column in spec["columns"]}
        for column in spec["columns"]:
            name = column["name"]
            presence = presence_for(column, source=source)
            present = name in table and isinstance(table[name], h5py.Dataset)
            if not present:
                if presence == "required":
                    result.messages.append(f"{prefix}lacks required column {name!r}")
                continue
            if presence == "absent":
                result.messages.append(f"{prefix}has column {name!r}, which the representation marks absent for "
                                       f"{self._source_label()}")
                continue
            problem = _column_dtype_problem(table, name, _per_source(column.get("dtype"), source))
            if problem:
                result.messages.append(f"{prefix}column {name!r} {problem}")
                continue
            if column.get("ascending"):
                problem = _ascending_problem(table, name, per_row=column["ascending"] == "per_row")
                if problem:
                    result.messages.append(f"{prefix}column {name!r} {problem}")
            allowed = _allowed_values(column, source)
            if allowed is not None and table[name].shape[0] <= _MAX_VALUE_ROWS:
                found = {_as_text(value) for value in np.unique(table[name][()])}
                unexpected = sorted(found - set(allowed))
                if unexpected:
                    result.messages.append(
                        f"{prefix}column {name!r} has values not allowed for {self._source_label()}: "
                        f"{', '.join(repr(value) for value in unexpected[:5])} (allowed: {', '.join(allowed)})")
        prefixes = tuple(spec.get("column_prefixes", {}).values())
        unknown = [name for name in colnames
                   if name not in declared and name not in _CORE_COLUMNS and not name.startswith(prefixes or ("\0",))]
        if unknown:
            result.notes.append(f"{prefix}columns not in the representation: {', '.join(unknown)}")

    def _check_children(self, group, spec: dict, result: ObjectResult, *, prefix: str) -> None:
        claimed: set[str] = set()
        # Links (a pose table's skeleton, a shared timestamps vector) point elsewhere: not members.
        children = [name for name in group if not isinstance(group.get(name, getlink=True), h5py.SoftLink)
                    and _attr(group[name], "neurodata_type")]
        for child in spec["children"]:
            presence = presence_for(child, source=self.report.source)
            pattern = self._compile(child["name"], child.get("placeholders"))
            matches = [name for name in children if pattern.fullmatch(name) and name not in claimed]
            claimed.update(matches)
            if not matches:
                if presence == "required":
                    result.messages.append(f"{prefix}lacks required {child.get('neurodata_type', 'series')} "
                                           f"{child['name']!r}")
                continue
            for name in matches:
                if presence == "absent":
                    result.messages.append(f"{prefix}{name}: marked absent for {self._source_label()}")
                else:
                    self._check_object(group[name], child, result, prefix=f"{prefix}{name}: ")
        unknown = [name for name in children if name not in claimed]
        if unknown:
            result.notes.append(f"{prefix}series not in the representation: {', '.join(unknown)}")

    def _ancestry(self, neurodata_type: str | None) -> list[str]:
        """The type's ancestors, read from the specifications cached in the file."""
        if self._parents is None:
            self._parents = _cached_type_parents(self.file)
        chain = []
        current = self._parents.get(neurodata_type) if neurodata_type else None
        while current and current not in chain:
            chain.append(current)
            current = self._parents.get(current)
        return chain


# --------------------------------------------------------------------------------------------
# helpers on h5py objects


def file_kind(handle: h5py.File, file_name: str, *, representation: dict | None = None) -> tuple[str, bool]:
    """``processed`` or ``raw``, from the marker in the file's name, else from its content.

    Returns
    -------
    kind : str
    named : bool
        Whether the name told the kind (a renamed file is told by its content: continuous voltage
        in ``acquisition`` is what makes a raw file).
    """
    representation = representation or load_representation()
    for kind, spec in representation["files"].items():
        if spec.get("marker") and spec["marker"] in file_name:
            return kind, True
    has_voltage = any(_attr(item, "neurodata_type") == "ElectricalSeries"
                      for item in handle.get("acquisition", {}).values())
    return ("raw" if has_voltage else "processed"), False


def _attr(item, name: str):
    value = item.attrs.get(name) if item is not None else None
    return _as_text(value) if value is not None else None


def _as_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _as_text(value[()])
    return str(value)


def _is_empty(value) -> bool:
    if isinstance(value, np.ndarray):
        return value.size == 0 or all(not _as_text(element).strip() for element in value.ravel())
    return not _as_text(value).strip()


def _read_value(handle: h5py.File, path: str):
    """A dataset's value (or ``dataset@attribute``), ``None`` when absent."""
    dataset_path, _, attribute = path.partition("@")
    if dataset_path not in handle:
        return None
    item = handle[dataset_path]
    if attribute:
        return item.attrs.get(attribute)
    if not isinstance(item, h5py.Dataset):
        return None
    value = item[()]
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.size == 1:
        return value[0]
    return value


def _read_text(handle: h5py.File, path: str) -> str | None:
    value = _read_value(handle, path)
    if value is None or isinstance(value, np.ndarray):
        return None
    return _as_text(value)


def _has_field(item, path: str) -> bool:
    name, _, attribute = path.partition("@")
    target = item
    if name:
        if not isinstance(item, h5py.Group) or name not in item:
            return False
        target = item[name]
    return not attribute or attribute in target.attrs


def _per_source(value, source: str | None):
    if isinstance(value, dict):
        return value.get(source) if source else None
    return value


def _allowed_values(column: dict, source: str | None) -> list[str] | None:
    values = column.get("values")
    if not values:
        return None
    if source:
        return values.get(source)
    return sorted({value for per_source in values.values() for value in per_source})


def _dtype_kind(dataset: h5py.Dataset) -> str:
    """The representation's dtype vocabulary for an HDF5 dataset."""
    if _attr(dataset, "neurodata_type") == "DynamicTableRegion":
        return "region"
    dtype = dataset.dtype
    if h5py.check_ref_dtype(dtype) is not None:
        return "reference"
    if h5py.check_string_dtype(dtype) is not None or dtype.kind in ("S", "U"):
        return "text"
    if dtype.kind == "b":
        return "bool"
    if dtype.kind in ("i", "u"):
        return "int"
    if dtype.kind == "f":
        return "float"
    if dtype.names and "idx_start" in dtype.names:
        return "region"
    return dtype.name


def _column_dtype_problem(table: h5py.Group, name: str, expected: str | None) -> str | None:
    if not expected:
        return None
    ragged = f"{name}_index" in table
    wants_ragged = expected.startswith("ragged ")
    base = expected.removeprefix("ragged ")
    found = _dtype_kind(table[name])
    described = f"{'ragged ' if ragged else ''}{found} ({table[name].dtype})"
    if wants_ragged != ragged:
        return f"is {described}, expected {expected}"
    if base == "number":
        ok = found in ("int", "float")
    elif base in ("float", "int", "bool", "text", "reference", "region"):
        ok = found == base
    else:
        ok = table[name].dtype.name == base
    return None if ok else f"is {described}, expected {expected}"


def _first_descent(dataset: h5py.Dataset, *, row_starts: np.ndarray | None = None) -> int | None:
    """Index of the first element smaller than the one before it (NaN ignored), or ``None``."""
    previous = None
    total = dataset.shape[0] if dataset.shape else 0
    for begin in range(0, total, _CHUNK):
        values = np.asarray(dataset[begin:begin + _CHUNK], dtype=np.float64)
        if values.ndim != 1:
            return None
        if previous is not None:
            values = np.concatenate([[previous], values])
            offset = begin - 1
        else:
            offset = begin
        # NaNs are carried over so a missing value never hides a descent across it.
        filled = _forward_fill(values)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(np.diff(filled) < 0) + 1 + offset
        if row_starts is not None and bad.size:
            bad = bad[~np.isin(bad, row_starts)]
        if bad.size:
            return int(bad[0])
        previous = filled[-1]
    return None


def _forward_fill(values: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    if not missing.any():
        return values
    index = np.where(~missing, np.arange(values.size), 0)
    np.maximum.accumulate(index, out=index)
    filled = values[index]
    return filled  # leading NaNs stay NaN; comparisons with NaN are never "descending"


def _ascending_problem(table: h5py.Group, name: str, *, per_row: bool) -> str | None:
    dataset = table[name]
    if per_row and f"{name}_index" in table:
        ends = np.asarray(table[f"{name}_index"][()], dtype=np.int64)
        position = _first_descent(dataset, row_starts=ends[:-1])
        if position is None:
            return None
        row = int(np.searchsorted(ends, position, side="right"))
        return (f"is not ascending within row {row}: element {position} ({float(dataset[position])!r}) follows "
                f"{_previous_defined(dataset, position)!r}")
    position = _first_descent(dataset)
    if position is None:
        return None
    return (f"is not ascending: row {position} ({float(dataset[position])!r}) follows "
            f"{_previous_defined(dataset, position)!r}")


def _previous_defined(dataset: h5py.Dataset, position: int) -> float:
    # Descents are found across missing values, so name the value actually descended from.
    window = np.asarray(dataset[max(0, position - _CHUNK):position], dtype=np.float64)
    defined = window[~np.isnan(window)]
    return float(defined[-1]) if defined.size else float("nan")


def _cached_type_parents(handle: h5py.File) -> dict[str, str | None]:
    """``neurodata_type -> parent type`` from every namespace cached in the file."""
    parents: dict[str, str | None] = {}

    def walk(spec: dict) -> None:
        if "neurodata_type_def" in spec:
            parents.setdefault(spec["neurodata_type_def"], spec.get("neurodata_type_inc"))
        for key in ("groups", "datasets"):
            for child in spec.get(key, []) or []:
                walk(child)

    specifications = handle.get("specifications")
    if not isinstance(specifications, h5py.Group):
        return parents
    for namespace in specifications.values():
        for version in namespace.values():
            for name, dataset in version.items():
                if name == "namespace" or not isinstance(dataset, h5py.Dataset):
                    continue
                try:
                    walk(json.loads(_as_text(dataset[()])))
                except (ValueError, TypeError):
                    continue
    return parents


# --------------------------------------------------------------------------------------------
# nwbinspector


def _importance_name(message) -> str:
    importance = getattr(message, "importance", None)
    return getattr(importance, "name", str(importance))


def inspect_file(path: str | Path) -> list:
    """nwbinspector's checks on one file, with the "dandi" configuration.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of nwbinspector.InspectorMessage
        Every message, including PyNWB validation errors. If nwbinspector itself fails, one
        message of importance ERROR says so, since the file could not be vouched for.
    """
    import nwbinspector

    path = Path(path)
    try:
        config = nwbinspector.load_config("dandi")
        return [message for message in nwbinspector.inspect_nwbfile(nwbfile_path=path, config=config)
                if message is not None]
    except Exception as error:  # nwbinspector raises many kinds on unreadable files; report, don't crash
        return [nwbinspector.InspectorMessage(
            message=f"nwbinspector could not inspect the file: {type(error).__name__}: {error}",
            importance=nwbinspector.Importance.ERROR, check_function_name="inspect_nwbfile",
            file_path=str(path))]


# --------------------------------------------------------------------------------------------
# text


_STATUS_LABELS = {PASS: "pass", FAIL: "FAIL", NOT_PRESENT: "not present", EXTRA: "extra"}
_IMPORTANCE_ORDER = ["ERROR", "PYNWB_VALIDATION", "CRITICAL", "BEST_PRACTICE_VIOLATION", "BEST_PRACTICE_SUGGESTION"]


def format_report(report: FileReport, *, verbose: bool = False) -> str:
    """The text ``nwbridge check`` prints for one file.

    Parameters
    ----------
    report : FileReport
    verbose : bool, default: False
        Also give the notes of objects that passed (columns and series the representation
        does not list); the notes of failed objects are always given.

    Returns
    -------
    str
    """
    lines = [f"{report.path}"]
    source = (f"{report.source_dataset} ({report.source})" if report.source
              else f"unknown ({report.source_dataset!r})" if report.source_dataset else "unknown")
    lines.append(f"  source: {source}; file kind: {report.file_kind}; representation: file says "
                 f"{report.file_representation_version or '?'}, checked against {report.checked_against}")
    for warning in report.warnings:
        lines.append(f"  warning: {warning}")
    counts = {status: sum(result.status == status for result in report.results) for status in _STATUS_LABELS}
    lines.append(f"  conformance: {counts[PASS]} pass, {counts[FAIL]} fail, {counts[NOT_PRESENT]} not present, "
                 f"{counts[EXTRA]} extra")
    width = max(len(label) for label in _STATUS_LABELS.values())
    for result in report.results:
        kind = f" [{result.neurodata_type}]" if result.neurodata_type and result.status == EXTRA else ""
        lines.append(f"    {_STATUS_LABELS[result.status]:<{width}}  {result.name}{kind}")
        for message in result.messages:
            lines.append(f"    {'':<{width}}    - {message}")
        if verbose or result.status == FAIL:
            for note in result.notes:
                lines.append(f"    {'':<{width}}    note: {note}")
    if report.inspector_messages is None:
        lines.append("  nwbinspector: not run")
    else:
        lines.append(f"  nwbinspector (dandi config): {len(report.inspector_messages)} message(s)")
        grouped: dict[str, list] = {}
        for message in report.inspector_messages:
            grouped.setdefault(_importance_name(message), []).append(message)
        for importance in _IMPORTANCE_ORDER + sorted(set(grouped) - set(_IMPORTANCE_ORDER)):
            messages = grouped.get(importance)
            if not messages:
                continue
            lines.append(f"    {importance} ({len(messages)})")
            for message in messages:
                where = message.location or message.object_name or ""
                check = f"{message.check_function_name}: " if message.check_function_name else ""
                lines.append(f"      - {check}{message.message}" + (f"  [{where}]" if where else ""))
    verdict = "OK" if report.ok else "FAILED"
    reasons = []
    if report.failures:
        reasons.append(f"{len(report.failures)} object(s) do not conform")
    if report.inspector_failures:
        reasons.append(f"{len(report.inspector_failures)} nwbinspector message(s) of importance "
                       f"{'/'.join(_FAILING_IMPORTANCES)}")
    lines.append(f"  result: {verdict}" + (f" ({'; '.join(reasons)})" if reasons else ""))
    return "\n".join(lines)


def check_files(paths, *, inspect: bool = True, verbose: bool = False) -> tuple[str, bool]:
    """Check files against the representation (and with nwbinspector); the CLI's ``nwbridge check``.

    Parameters
    ----------
    paths : iterable of str or Path
    inspect : bool, default: True
        Also run nwbinspector (the slow part).
    verbose : bool, default: False
        Give the notes of passing objects too.

    Returns
    -------
    text : str
        The report of every file, then a summary line.
    ok : bool
        True when every file is ok (see :attr:`FileReport.ok`).
    """
    representation = load_representation()
    blocks = []
    reports = []
    for path in paths:
        report = check_file(path, representation=representation)
        if inspect and Path(path).is_file():
            report.inspector_messages = inspect_file(path)
        reports.append(report)
        blocks.append(format_report(report, verbose=verbose))
    failed = [report for report in reports if not report.ok]
    summary = (f"nwbridge check: {len(reports)} file(s), {len(reports) - len(failed)} ok, {len(failed)} failed "
               f"(representation {REPRESENTATION_VERSION})")
    return "\n\n".join(blocks + [summary]), not failed
