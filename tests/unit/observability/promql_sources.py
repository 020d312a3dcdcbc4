"""Every PromQL expression the stack ships, ready to parse or to run.

Sources: recording and alerting rules (prometheus/rules/*.yml), dashboard
targets and dashboard variables (grafana/dashboards/*.json). Grafana macros and
template variables are substituted the way Grafana would for "All" selected, so
the result is plain PromQL. Shared by the unit tests (parse, names) and the
integration test (run against a live Prometheus).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

REPO = Path(__file__).resolve().parents[3]
RULES_DIR = REPO / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
PROMETHEUS_YML = REPO / "prometheus" / "prometheus.yml"

_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Expression:
    source: str  # where it lives, for failure messages
    raw: str  # as written in the file
    promql: str  # macros and variables substituted


def scrape_interval_seconds() -> int:
    text = yaml.safe_load(PROMETHEUS_YML.read_text())["global"]["scrape_interval"]
    return int(promql_parser.parse_duration(text).total_seconds())


def grafana_macros() -> dict[str, str]:
    """Values Grafana gives its macros at a 15 s datasource interval (timeInterval)."""
    step = scrape_interval_seconds()
    return {
        # max(interval + scrape interval, 4 x scrape interval); the floor dominates.
        "__rate_interval": f"{4 * step}s",
        "__interval": f"{step}s",
        "__range": "1h",
    }


def substitute(text: str, variables: dict[str, str], source: str) -> str:
    values = {**grafana_macros(), **variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"{source}: unknown variable ${name} in {text!r}")
        return values[name]

    return _VARIABLE.sub(replace, text)


# -- rules ---------------------------------------------------------------------


def rule_groups() -> list[dict]:
    return [g for f in sorted(RULES_DIR.glob("*.yml")) for g in yaml.safe_load(f.read_text())["groups"]]


def rules() -> list[dict]:
    return [r for g in rule_groups() for r in g["rules"]]


def recording_rule_names() -> frozenset[str]:
    return frozenset(r["record"] for r in rules() if "record" in r)


def alerts() -> list[dict]:
    return [r for r in rules() if "alert" in r]


def _rule_expression(rule: dict) -> Expression:
    name = rule.get("record") or rule["alert"]
    return Expression(f"rule {name} {rule.get('labels', {})}", rule["expr"], rule["expr"])


def rule_expressions() -> list[Expression]:
    return [_rule_expression(r) for r in rules()]


def recording_rule_expressions() -> list[Expression]:
    return [_rule_expression(r) for r in rules() if "record" in r]


# -- dashboards ----------------------------------------------------------------


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def _panels(dashboard: dict) -> list[dict]:
    flat = []
    for panel in dashboard.get("panels", []):
        flat.append(panel)
        flat.extend(panel.get("panels", []))  # collapsed rows nest their panels
    return flat


def _all_values(dashboard: dict) -> dict[str, str]:
    return {v["name"]: v.get("allValue") or ".*" for v in dashboard["templating"].get("list", [])}


def dashboard_target_expressions() -> list[Expression]:
    out = []
    for name, dashboard in dashboards().items():
        variables = _all_values(dashboard)
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                source = f"{name}: panel {panel['title']!r} query {target['refId']}"
                raw = target["expr"]
                out.append(Expression(source, raw, substitute(raw, variables, source)))
    return out


def dashboard_variable_selectors() -> list[Expression]:
    """The series selector inside each ``label_values(selector, label)`` variable."""
    out = []
    for name, dashboard in dashboards().items():
        variables = _all_values(dashboard)
        for variable in dashboard["templating"].get("list", []):
            if variable["type"] != "query":
                continue
            source = f"{name}: variable ${variable['name']}"
            match = _LABEL_VALUES.match(variable["query"])
            if match is None:
                raise ValueError(f"{source}: only label_values(selector, label) is supported")
            raw = match["selector"]
            out.append(Expression(source, raw, substitute(raw, variables, source)))
    return out


def all_expressions() -> list[Expression]:
    return rule_expressions() + dashboard_target_expressions() + dashboard_variable_selectors()


# -- names ---------------------------------------------------------------------


def series_names(promql: str) -> set[str]:
    """Metric names a parsed expression selects (``name{...}`` or ``{__name__="..."}``)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    names.add(m.value)

    promql_parser.walk(promql_parser.parse(promql), visit)
    return names
