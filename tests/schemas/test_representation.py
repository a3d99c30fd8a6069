"""The representation as data: it loads, it names everything REPRESENTATION.md names, its docs are current."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from nwbridge.schemas import (
    PRESENCE_VALUES,
    REPRESENTATION_VERSION,
    SOURCE_KEYS,
    iter_objects,
    load_representation,
    name_pattern,
    presence_for,
    source_key,
)
from nwbridge.schemas.docs import render_markdown

ROOT = Path(__file__).parents[2]
# A copy of the project's reference text: tests read nothing outside the repository.
REFERENCE = ROOT / "tests" / "data" / "REPRESENTATION.md"
DOCS = ROOT / "docs" / "representation.md"

# Backticked text of REPRESENTATION.md that names no part of a file, and why.
NOT_NAMES = {
    "nwbridge check": "the command",
    "nwbridge/schemas/": "where the schema lives",
    "-": "the character allowed in DANDI names",
}
# Keys whose values are prose: a name found only there is not encoded as a name.
PROSE_KEYS = {"description", "note", "decided_here", "holds", "title", "changes", "source", "extra_columns",
              "time_column_rule", "prefix_rule", "camera_suffix_rule", "dlc_rule", "sanitise"}


@pytest.fixture(scope="module")
def representation() -> dict:
    return load_representation()


def _names(node, *, key: str | None = None) -> set[str]:
    """Every name the YAML encodes: keys, and values outside prose, with path segments split out."""
    names: set[str] = set()
    if isinstance(node, dict):
        for child_key, value in node.items():
            names.add(str(child_key))
            if child_key not in PROSE_KEYS:
                names |= _names(value, key=child_key)
    elif isinstance(node, list):
        for item in node:
            names |= _names(item, key=key)
    elif isinstance(node, str):
        names.add(node)
        names |= set(re.split(r"[/@]", node))
        # The placeholders of a name pattern (`{subject}` in the file names) are names too.
        names |= set(re.findall(r"\{\w+\}", node))
    return names


def _reference_tokens() -> list[str]:
    return sorted(set(re.findall(r"`([^`]+)`", REFERENCE.read_text(encoding="utf-8"))))


def test_yaml_is_package_data_and_loads():
    resource = files("nwbridge.schemas").joinpath("representation.yaml")
    assert resource.is_file()
    raw = yaml.safe_load(resource.read_text(encoding="utf-8"))
    assert str(raw["version"]) == REPRESENTATION_VERSION == "0.4.0"
    assert raw["changelog"][0]["version"] == REPRESENTATION_VERSION


def test_load_representation_returns_a_fresh_copy():
    mine = load_representation()
    mine["version"] = "changed"
    assert load_representation()["version"] == REPRESENTATION_VERSION


def test_every_backticked_name_of_the_reference_is_in_the_yaml(representation):
    raw_text = files("nwbridge.schemas").joinpath("representation.yaml").read_text(encoding="utf-8")
    names = _names(representation)
    lowered = {name.lower() for name in names}
    missing = []
    for token in _reference_tokens():
        if token in NOT_NAMES:
            continue
        if re.search(r"[<>=]=?\s|\s[<>=]", token):
            # A rule (`quality == 'good'`, `isi_violations < 0.5`): it must be stated verbatim.
            if token not in raw_text:
                missing.append(token)
        elif "<" in token:
            # `pose_<camera>` is written `pose_{camera}` in the YAML (placeholders compared case-blind).
            if re.sub(r"<(\w+)>", r"{\1}", token).lower() not in lowered:
                missing.append(token)
        elif re.fullmatch(r"[A-Z]\w+\.\w+", token):
            # `Units.resolution`: the type and the field.
            if not set(token.split(".")) <= names:
                missing.append(token)
        elif token.strip("/") not in names:
            missing.append(token)
    assert missing == [], f"REPRESENTATION.md names these, the YAML does not: {missing}"


def test_reference_behaviour_table_matches_objects(representation):
    # | what | object | unit | source |: type, name, unit and sources of each behavioural object.
    text = REFERENCE.read_text(encoding="utf-8")
    section = text[text.index("## Behaviour"):text.index("Cameras are named")]
    rows = [line for line in section.splitlines() if line.startswith("|") and "---" not in line][1:]
    objects = {obj["name"]: obj for _, obj in iter_objects(representation)}
    checked = 0
    for row in rows:
        _, cell, unit, sources = [part.strip() for part in row.strip("|").split("|")]
        tokens = re.findall(r"`([^`]+)`", cell)
        if len(tokens) < 2 or not tokens[1][0].islower():
            continue  # eye ellipses: a type and prose, no single object
        neurodata_type, name = tokens[0], re.sub(r"<(\w+)>", r"{\1}", tokens[1])
        obj = objects[name]
        assert obj["neurodata_type"] == neurodata_type, name
        if obj.get("unit"):
            assert obj["unit"] == unit, name
        expected = set(SOURCE_KEYS) if ("both" in sources or "Allen" in sources and "IBL" in sources) else \
            {"ibl"} if sources.startswith("IBL") else {"allen"}
        for source in expected:
            assert presence_for(obj, source=source) != "absent", (name, source)
        checked += 1
    assert checked >= 10


def test_names_decided_by_the_ibl_interfaces_are_encoded(representation):
    from nwbridge.interfaces.ibl.trials import COLUMN_ORDER, KNOWN_ATTRIBUTES, SHARED_DESCRIPTIONS

    trials = next(obj for _, obj in iter_objects(representation) if obj["name"] == "trials")
    columns = {column["name"] for column in trials["columns"] if presence_for(column, source="ibl") != "absent"}
    written = set(COLUMN_ORDER) | {name for name, _ in KNOWN_ATTRIBUTES.values()} | set(SHARED_DESCRIPTIONS)
    assert written - columns == set()


def test_objects_are_well_formed(representation):
    import ndx_pose  # noqa: F401  (registers the ndx-pose types)
    from pynwb import get_type_map

    type_map = get_type_map()

    def known(neurodata_type: str) -> bool:
        for namespace in ("core", "hdmf-common", "ndx-pose"):
            try:
                type_map.get_dt_container_cls(neurodata_type, namespace)
                return True
            except (KeyError, ValueError):
                continue
        return False

    locations = set()
    for _, obj in iter_objects(representation):
        assert obj["location"] not in locations, f"two objects at {obj['location']}"
        locations.add(obj["location"])
        for entry in [obj] + obj.get("children", []):
            assert known(entry["neurodata_type"]), entry["neurodata_type"]
        for member in [obj] + obj["columns"] + obj.get("children", []):
            for source in SOURCE_KEYS:
                assert presence_for(member, source=source, file_kind="processed") in PRESENCE_VALUES
        # Every placeholder of every name is defined, for every source.
        for source in SOURCE_KEYS:
            name_pattern(obj["location"], source=source, representation=representation)
            for child in obj.get("children", []):
                name_pattern(child["name"], source=source, representation=representation,
                             placeholders=child.get("placeholders"))
        names = [column["name"] for column in obj["columns"]]
        assert len(names) == len(set(names)), f"{obj['location']} repeats a column"
    object_names = {obj["name"] for _, obj in iter_objects(representation)}
    for _, obj in iter_objects(representation):
        assert set(obj.get("required_with", [])) <= object_names, obj["location"]


def test_time_columns_are_seconds(representation):
    for _, obj in iter_objects(representation):
        for column in obj["columns"]:
            if column["name"].endswith("_time"):
                assert column.get("unit") == "s" and column["dtype"] == "float", (obj["location"], column["name"])


def test_examples_match_their_patterns(representation):
    series = next(obj for _, obj in iter_objects(representation) if obj["neurodata_type"] == "ElectricalSeries")
    for source, examples in series["examples"].items():
        pattern = name_pattern(series["location"], source=source)
        for example in examples:
            assert pattern.fullmatch(f"acquisition/{example}"), example
        other = next(key for key in SOURCE_KEYS if key != source)
        assert not any(name_pattern(series["location"], source=other).fullmatch(f"acquisition/{example}")
                       for example in examples)
    for name, placeholder in representation["placeholders"].items():
        for source, examples in placeholder.get("examples", {}).items():
            assert all(re.fullmatch(placeholder["pattern"][source], example) for example in examples), name


def test_presence_rules(representation):
    objects = {obj["location"]: obj for _, obj in iter_objects(representation)}
    electrodes = objects["general/extracellular_ephys/electrodes"]
    assert presence_for(electrodes, source="ibl", file_kind="processed") == "required"
    assert presence_for(electrodes, source="ibl", file_kind="raw") == "required"
    assert presence_for(objects["units"], source="allen", file_kind="raw") == "absent"
    assert presence_for(objects["processing/behavior/running_speed"], source=None) == "optional"
    assert presence_for(objects["intervals/trials"], source=None) == "required"
    # A column of a table a source never writes is absent for that source, whatever the shared list says.
    natural = objects["intervals/natural_image_presentations"]
    assert {presence_for(column, source="ibl") for column in natural["columns"]} == {"absent"}
    assert source_key("ibl-brainwide-map") == "ibl"
    assert source_key("elsewhere") is None


def test_committed_docs_are_generated_from_the_yaml(representation):
    assert DOCS.read_text(encoding="utf-8") == render_markdown(representation), (
        "docs/representation.md is stale: run `python -m nwbridge.schemas.docs > docs/representation.md`")


def test_docs_mark_presence_and_decisions(representation):
    text = render_markdown(representation)
    assert f"(v{REPRESENTATION_VERSION})" in text.splitlines()[0]
    assert "| `wheel_position` | `processing/behavior/wheel_position` | SpatialSeries | rad (`radians`) | " \
           "**required** | — |" in text
    assert "`source_unit_id`†" in text
