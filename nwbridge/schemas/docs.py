"""Documentation of the shared representation, generated from its YAML.

``python -m nwbridge.schemas.docs > docs/representation.md`` regenerates the committed page;
a test keeps the two equal, so the documentation cannot drift from what the checker enforces.
"""

from __future__ import annotations

import sys

from . import SOURCE_KEYS, load_representation, presence_for

__all__ = ["render_markdown"]

_DAGGER = "†"


def render_markdown(representation: dict) -> str:
    """The representation as a Markdown page.

    Parameters
    ----------
    representation : dict
        As returned by :func:`nwbridge.schemas.load_representation`.

    Returns
    -------
    str
        The page, ending with a newline.
    """
    rep = representation
    labels = {key: _source_short(key) for key in SOURCE_KEYS}
    out: list[str] = []
    out += [
        f"# {rep['title']} (v{rep['version']})",
        "",
        "<!-- Generated from nwbridge/schemas/representation.yaml by `python -m nwbridge.schemas.docs`."
        " Do not edit by hand. -->",
        "",
        _clean(rep["description"]),
        "",
        "Presence per source: **required** (in every file of that source), optional (written when the "
        "source session has the data), — (absent: the source has no such data). "
        f"{_DAGGER} marks a choice made where REPRESENTATION.md is silent; the reason follows the table.",
        "",
    ]
    out += _changelog(rep)
    out += _sources(rep)
    out += _files(rep)
    out += _conventions(rep)
    out += _metadata(rep, labels)
    for section in rep["sections"]:
        out += _section(rep, section, labels)
    out += _left_out(rep)
    out += _reference(rep)
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# parts of the page


def _changelog(rep: dict) -> list[str]:
    lines = ["## Changelog", ""]
    for entry in rep.get("changelog", []):
        lines.append(f"- **{entry['version']}**: {_clean(entry['changes'])}")
    return lines + [""]


def _left_out(rep: dict) -> list[str]:
    left_out = rep.get("left_out") or {}
    if not left_out:
        return []
    lines = ["## Deliberately not converted", ""]
    for key, entries in left_out.items():
        rows = [[_code_spans(_clean(entry["what"])), _code_spans(_clean(entry["why"]))] for entry in entries]
        lines += [f"### {rep['sources'][key]['label']}", "", *_table(["source", "why"], rows), ""]
    return lines


def _sources(rep: dict) -> list[str]:
    rows = [[f"`{key}`", f"`{source['source_dataset']}`", source["label"], f"`{source['session_id']}`",
             ", ".join(f"`{name}`" for name in source["native_ids"]), _clean(source["description"])]
            for key, source in rep["sources"].items()]
    return ["## Sources", "", *_table(["key", "source_dataset", "name", "session_id", "native ids", "what"], rows), ""]


def _files(rep: dict) -> list[str]:
    rows = []
    for kind, spec in rep["files"].items():
        if "pattern" not in spec:
            continue
        rows.append([f"`{kind}`", f"`{spec['pattern']}`", _code_or_dash(spec.get("marker")), _clean(spec["holds"])])
    names = rep["files"].get("session_names", {})
    lines = ["## Files of a session (DANDI layout)", "",
             *_table(["kind", "file", "name marker", "holds"], rows), ""]
    lines += [f"- `{{{name}}}`: {_clean(text)}" for name, text in names.items()]
    return lines + [""]


def _conventions(rep: dict) -> list[str]:
    conventions = rep["conventions"]
    lines = ["## Conventions", ""]
    lines.append(f"- Time columns end in `{conventions['time_column_suffix']}`: "
                 f"{_clean(conventions['time_column_rule'])}")
    prefixes = ", ".join(f"`{prefix}` ({_source_short(key)})" for key, prefix in conventions["source_prefixes"].items())
    lines.append(f"- Source prefixes {prefixes}: {_clean(conventions['prefix_rule'])}")
    kinds = ", ".join(f"`{kind}`" for kind in conventions["stimulus_kinds"])
    lines.append(f"- Stimulus tables are named `{conventions['presentation_tables']}`, kind one of {kinds}.")
    primary = ", ".join(f"`{camera}` ({_source_short(key)})" for key, camera in conventions["primary_camera"].items())
    lines.append(f"- Primary camera: {primary}. Suffix `{conventions['camera_suffix']}`: "
                 f"{_clean(conventions['camera_suffix_rule'])}")
    lines.append(f"- Suffix `{conventions['dlc_suffix']}`: {_clean(conventions['dlc_rule'])}")
    lines.append(f"- {_clean(conventions['sanitise'])}")
    lines += ["", "### Placeholders in names", ""]
    rows = []
    for name, spec in rep["placeholders"].items():
        cells = []
        for source in SOURCE_KEYS:
            values = spec.get("values", {}).get(source)
            pattern = spec.get("pattern", {}).get(source)
            examples = spec.get("examples", {}).get(source)
            if values:
                cells.append(", ".join(f"`{value}`" for value in values))
            elif pattern:
                cells.append(f"regex `{pattern}`" + (f" (e.g. {', '.join(f'`{e}`' for e in examples)})"
                                                     if examples else ""))
            else:
                cells.append("—")
        description = _clean(spec["description"])
        if spec.get("values_by_camera"):
            description += " " + "; ".join(f"`{camera}`: " + ", ".join(f"`{kp}`" for kp in keypoints)
                                           for camera, keypoints in spec["values_by_camera"].items())
        rows.append([f"`{{{name}}}`", *cells, description])
    lines += _table(["placeholder", *(_source_short(key) for key in SOURCE_KEYS), "meaning"], rows)
    return lines + [""]


def _metadata(rep: dict, labels: dict) -> list[str]:
    lines = ["## File-level metadata (both files)", ""]
    rows = []
    notes = []
    for spec in rep["metadata"]:
        name = f"`{spec['name']}`" + (_DAGGER if spec.get("decided_here") else "")
        if spec.get("decided_here"):
            notes.append((spec["name"], spec["decided_here"]))
        rule = spec.get("rule", "")
        if spec.get("values"):
            rule += " (" + ", ".join(f"`{value}`" for value in spec["values"]) + ")"
        if spec.get("keys"):
            rule += ": keys " + ", ".join(f"`{key}`" for key in spec["keys"])
        rows.append([name, spec["group"], f"`{spec['path']}`",
                     *(_presence_cell(spec, source) for source in SOURCE_KEYS), rule, _clean(spec["description"])])
    lines += _table(["field", "group", "HDF5 path", *labels.values(), "check", "description"], rows)
    return lines + [""] + _notes(notes)


def _section(rep: dict, section: dict, labels: dict) -> list[str]:
    lines = [f"## {section['title']}", ""]
    rows = []
    notes = []
    for obj in section["objects"]:
        name = f"`{obj['name']}`" + (_DAGGER if obj.get("decided_here") else "")
        if obj.get("decided_here"):
            notes.append((obj["name"], obj["decided_here"]))
        rows.append([name, f"`{obj['location']}`", obj.get("neurodata_type", ""), _unit(rep, obj.get("unit")),
                     *(_presence_cell(obj, source) for source in SOURCE_KEYS), ", ".join(obj["files"]),
                     _clean(obj.get("description", ""))])
    lines += _table(["object", "location", "neurodata type", "unit", *labels.values(), "file", "description"], rows)
    lines += [""] + _notes(notes)
    for obj in section["objects"]:
        lines += _object_detail(rep, obj, labels)
    return lines


def _object_detail(rep: dict, obj: dict, labels: dict) -> list[str]:
    has_detail = obj.get("columns") or obj.get("children") or obj.get("fields") or obj.get("source") or obj.get("note")
    if not has_detail:
        return []
    lines = [f"### `{obj['location']}` ({obj.get('neurodata_type', '')})", ""]
    for source in SOURCE_KEYS:
        if obj.get("source", {}).get(source):
            lines.append(f"- From {labels[source]}: {_code_spans(obj['source'][source])}")
    if obj.get("note"):
        lines.append(f"- Note: {_clean(obj['note'])}")
    if obj.get("sampling") == "regular":
        lines.append("- Regularly sampled: `starting_time` and `rate`, no `timestamps`.")
    if obj.get("time_ascending"):
        lines.append("- `timestamps` ascending.")
    if obj.get("data_dtype"):
        lines.append("- Data type: " + ", ".join(f"{labels[source]} `{dtype}`"
                                                for source, dtype in obj["data_dtype"].items()))
    if obj.get("external_file") == "relative":
        lines.append("- `external_file` relative to the NWB file.")
    for field in obj.get("fields", []):
        named = f" ({field['name']})" if field["name"] != field["path"] else ""
        if "presence" in field:
            need = "Has `{}`{} — ".format(field["path"], named) + ", ".join(
                f"{_presence_word(presence_for(field, source=source))} for {labels[source]}" for source in SOURCE_KEYS)
        else:
            need = f"Must have `{field['path']}`{named}"
        lines.append(f"- {need}" + (f": {_clean(field['description'])}" if field.get("description") else "."))
    if obj.get("required_with"):
        lines.append("- Required when any of " + ", ".join(f"`{name}`" for name in obj["required_with"])
                     + " is present.")
    for source, text in obj.get("extra_columns", {}).items():
        lines.append(f"- Other {labels[source]} columns: {_code_spans(text)}")
    if obj.get("column_prefixes"):
        lines.append("- Source-specific columns: " + ", ".join(
            f"`{prefix}*` ({labels[source]})" for source, prefix in obj["column_prefixes"].items()))
    lines.append("")
    notes = []
    if obj.get("columns"):
        rows = []
        for column in obj["columns"]:
            name = f"`{column['name']}`" + (_DAGGER if column.get("decided_here") else "")
            if column.get("decided_here"):
                notes.append((column["name"], column["decided_here"]))
            description = _clean(column.get("description", ""))
            if column.get("note"):
                description += f" Note: {_clean(column['note'])}"
            if column.get("ascending"):
                description += " Ascending" + (" within each row." if column["ascending"] == "per_row" else ".")
            if column.get("values"):
                description += " Values: " + "; ".join(
                    f"{labels[source]} " + ", ".join(f"`{value}`" for value in values)
                    for source, values in column["values"].items()) + "."
            if column.get("special_values"):
                description += " Special values: " + ", ".join(f"`{value}`" for value in column["special_values"]) + "."
            rows.append([name, _dtype_cell(column.get("dtype", "")), column.get("unit", ""),
                         *(_presence_cell(column, source) for source in SOURCE_KEYS),
                         *(_code_spans(column.get("source", {}).get(source, "")) for source in SOURCE_KEYS),
                         description])
        lines += _table(["column", "dtype", "unit", *labels.values(),
                         *(f"from {label}" for label in labels.values()), "description"], rows)
        lines.append("")
    if obj.get("children"):
        rows = []
        for child in obj["children"]:
            name = f"`{child['name']}`" + (_DAGGER if child.get("decided_here") else "")
            if child.get("decided_here"):
                notes.append((child["name"], child["decided_here"]))
            description = _clean(child.get("description", ""))
            placeholders = child.get("placeholders", {})
            for placeholder, spec in placeholders.items():
                values = "; ".join(f"{labels[source]} " + ", ".join(f"`{value}`" for value in values)
                                   for source, values in spec.get("values", {}).items())
                description += f" `{{{placeholder}}}`: {values}."
            if child.get("fields"):
                description += " Must have " + ", ".join(f"`{field['path']}`" for field in child["fields"]) + "."
            rows.append([name, child.get("neurodata_type", ""), _unit(rep, child.get("unit")),
                         *(_presence_cell(child, source) for source in SOURCE_KEYS),
                         *(_code_spans(child.get("source", {}).get(source, "")) for source in SOURCE_KEYS),
                         description])
        lines += _table(["series", "neurodata type", "unit", *labels.values(),
                         *(f"from {label}" for label in labels.values()), "description"], rows)
        lines.append("")
    return lines + _notes(notes)


def _reference(rep: dict) -> list[str]:
    lines = ["## Reference", "", "### Column types", ""]
    lines += _table(["dtype", "meaning"], [[f"`{name}`", _clean(text)] for name, text in rep["dtypes"].items()])
    lines += ["", "### Units of series", "",
              "nwbridge writes the spelling under 'written as' in a series' `unit` attribute; the checker accepts "
              "every spelling listed.", ""]
    lines += _table(["unit", "written as", "accepted"],
                    [[name, f"`{spec['write']}`", ", ".join(f"`{spelling}`" for spelling in spec["accept"])]
                     for name, spec in rep["units"].items()])
    lines += ["", "### Presence", ""]
    lines += [f"- `{name}`: {_clean(text)}" for name, text in rep["presence"].items()]
    return lines + [""]


# --------------------------------------------------------------------------------------------
# cells


def _source_short(key: str) -> str:
    return {"ibl": "IBL", "allen": "Allen"}.get(key, key)


def _presence_cell(entry: dict, source: str) -> str:
    value = entry.get("presence", {}).get(source, "absent")
    if isinstance(value, dict):
        return ", ".join(f"{_presence_word(level)} ({kind})" for kind, level in value.items())
    return _presence_word(presence_for(entry, source=source))


def _presence_word(level: str) -> str:
    return {"required": "**required**", "optional": "optional", "absent": "—"}[level]


def _dtype_cell(dtype) -> str:
    if isinstance(dtype, dict):
        return ", ".join(f"{_source_short(source)} {value}" for source, value in dtype.items())
    return dtype


def _unit(rep: dict, unit: str | None) -> str:
    if not unit:
        return ""
    written = rep["units"].get(unit, {}).get("write")
    return f"{unit} (`{written}`)" if written and written != unit else unit


def _code_or_dash(value) -> str:
    return f"`{value}`" if value else "—"


def _code_spans(text: str) -> str:
    # Source names (ALF attributes, file names) read best as code when they are a single token.
    text = " ".join(str(text).split())
    if text and " " not in text and "`" not in text:
        return f"`{text}`"
    return _clean(text)


def _clean(text) -> str:
    """Text on one line, with ``<name>`` outside code spans escaped so Markdown does not take it for HTML."""
    parts = " ".join(str(text).split()).split("`")
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    # A pipe inside a cell would end it: escaped here, once, for every table.
    lines += ["| " + " | ".join(" ".join(str(cell).split()).replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return lines


def _notes(notes: list[tuple[str, str]]) -> list[str]:
    if not notes:
        return []
    return [f"{_DAGGER} `{name}`: {_clean(reason)}" + "  " for name, reason in notes][:-1] + \
        [f"{_DAGGER} `{notes[-1][0]}`: {_clean(notes[-1][1])}", ""]


def main() -> None:
    """Write the page to standard output."""
    sys.stdout.write(render_markdown(load_representation()))


if __name__ == "__main__":
    main()
