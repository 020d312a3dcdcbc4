"""Provisioning files and generated dashboards are what Grafana accepts.

Dashboards: the SDK's JSON schemas (grafana_schema/, see its README) for the
document, each panel's options and custom field config, and each Prometheus
query; plus a round trip through the pinned SDK's typed model. Provisioning:
a strict schema of the keys Grafana's provisioning docs define, and the facts
that tie the files together (datasource uid, dashboard path, scrape interval).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as sdk_dashboard

from tests.unit.observability import promql_sources as src

SCHEMAS = Path(__file__).parent / "grafana_schema"
PROVISIONING = src.REPO / "grafana" / "provisioning"
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"  # compose mounts grafana/dashboards here

DASHBOARDS = src.dashboards()


def schema(name: str, definition: str | None = None) -> dict:
    doc = json.loads((SCHEMAS / f"{name}.jsonschema.json").read_text())
    if definition is not None:
        doc = {**doc, "$ref": f"#/definitions/{definition}"}
    return doc


def validate(instance: object, against: dict, where: str) -> None:
    errors = sorted(jsonschema.Draft7Validator(against).iter_errors(instance), key=str)
    assert not errors, f"{where}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )


def panels() -> list[tuple[str, dict]]:
    return [(f"{name}: {p['title']}", p) for name, d in DASHBOARDS.items() for p in d["panels"]
            if p["type"] != "row"]


# -- dashboards ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_matches_the_sdk_schema(name: str) -> None:
    validate(DASHBOARDS[name], schema("dashboard"), name)


@pytest.mark.parametrize(("where", "panel"), panels(), ids=[w for w, _ in panels()])
def test_panel_options_match_their_plugin_schema(where: str, panel: dict) -> None:
    validate(panel["options"], schema(panel["type"], "Options"), f"{where} options")
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
    if custom is not None:
        validate(custom, schema(panel["type"], "FieldConfig"), f"{where} custom field config")


@pytest.mark.parametrize(("where", "panel"), panels(), ids=[w for w, _ in panels()])
def test_panel_queries_match_the_prometheus_schema(where: str, panel: dict) -> None:
    assert panel["targets"], f"{where}: no queries"
    for target in panel["targets"]:
        validate(target, schema("prometheus"), f"{where} query {target['refId']}")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_round_trips_through_the_sdk_model(name: str) -> None:
    model = sdk_dashboard.Dashboard.from_json(DASHBOARDS[name])
    assert json.loads(JSONEncoder().encode(model)) == DASHBOARDS[name]


def test_schema_rejects_an_unknown_panel_key() -> None:
    broken = json.loads(json.dumps(DASHBOARDS["foundry-local.json"]))
    broken["panels"][1]["colour"] = "red"
    with pytest.raises(AssertionError, match="colour"):
        validate(broken, schema("dashboard"), "broken")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_do_not_overlap(name: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in DASHBOARDS[name]["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, f"{panel['title']} runs off the grid"
        for cell in ((x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])):
            assert cell not in taken, f"{panel['title']} overlaps {taken[cell]}"
            taken[cell] = panel["title"]


# -- provisioning --------------------------------------------------------------

_DATASOURCES = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "datasources"],
    "properties": {
        "apiVersion": {"const": 1},
        "datasources": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["name", "uid", "type", "access", "url"],
            "properties": {
                "name": {"type": "string"}, "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
                "type": {"const": "prometheus"}, "access": {"enum": ["proxy", "direct"]},
                "url": {"type": "string", "pattern": "^https?://"}, "isDefault": {"type": "boolean"},
                "editable": {"type": "boolean"}, "orgId": {"type": "integer"},
                "jsonData": {"type": "object", "additionalProperties": False, "properties": {
                    "timeInterval": {"type": "string"}, "httpMethod": {"enum": ["GET", "POST"]},
                }},
            },
        }},
    },
}

_PROVIDERS = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "providers"],
    "properties": {
        "apiVersion": {"const": 1},
        "providers": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "type", "options"],
            "properties": {
                "name": {"type": "string"}, "orgId": {"type": "integer"}, "folder": {"type": "string"},
                "folderUid": {"type": "string"}, "type": {"const": "file"},
                "disableDeletion": {"type": "boolean"}, "allowUiUpdates": {"type": "boolean"},
                "updateIntervalSeconds": {"type": "integer", "minimum": 10},
                "options": {"type": "object", "additionalProperties": False, "required": ["path"],
                            "properties": {"path": {"type": "string"},
                                           "foldersFromFilesStructure": {"type": "boolean"}}},
            },
        }},
    },
}


def load(kind: str) -> dict[str, dict]:
    files = sorted((PROVISIONING / kind).glob("*.y*ml"))
    assert files, f"no provisioning files in grafana/provisioning/{kind}"
    return {f.name: yaml.safe_load(f.read_text()) for f in files}


def test_only_datasource_and_dashboard_provisioning_exist() -> None:
    kinds = {p.name for p in PROVISIONING.iterdir()}
    assert kinds == {"datasources", "dashboards"}, "other provisioning kinds need a schema here"


@pytest.mark.parametrize(("kind", "strict"), [("datasources", _DATASOURCES), ("dashboards", _PROVIDERS)])
def test_provisioning_files_are_strictly_valid(kind: str, strict: dict) -> None:
    for name, doc in load(kind).items():
        validate(doc, strict, f"grafana/provisioning/{kind}/{name}")


def test_provider_reads_the_mounted_dashboards_read_only() -> None:
    (doc,) = load("dashboards").values()
    (provider,) = doc["providers"]
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    assert provider["allowUiUpdates"] is False, "UI edits would drift from the generated files"


def _datasource() -> dict:
    (doc,) = load("datasources").values()
    (source,) = doc["datasources"]
    return source


def test_every_dashboard_reference_uses_the_provisioned_datasource_uid() -> None:
    uid = _datasource()["uid"]
    refs: list[tuple[str, dict]] = []

    def collect(where: str, node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict):
                refs.append((where, node["datasource"]))
            for value in node.values():
                collect(where, value)
        elif isinstance(node, list):
            for value in node:
                collect(where, value)

    for name, dashboard in DASHBOARDS.items():
        collect(name, dashboard)
    assert refs
    wrong = [(w, r) for w, r in refs if r != {"type": "prometheus", "uid": uid}]
    assert not wrong, f"datasource refs not pointing at uid {uid!r}: {wrong[:3]}"


def test_datasource_interval_equals_the_scrape_interval() -> None:
    interval = _datasource()["jsonData"]["timeInterval"]
    assert f"{src.scrape_interval_seconds()}s" == interval, (
        "grafana datasource timeInterval must equal prometheus.yml scrape_interval"
    )
