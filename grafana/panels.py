"""Building blocks shared by the dashboards: the datasource, queries, panel kinds.

Invariants: every query targets the provisioned Prometheus datasource by uid;
every rate window is ``$__rate_interval``; "up" style stats show words (Up /
Unreachable, In / Out of rotation), never a bare 0 or 1; ratios of counters map
NaN to "No traffic".
"""

from __future__ import annotations

from pathlib import Path

import yaml
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prom

HERE = Path(__file__).parent
DATASOURCES_FILE = HERE / "provisioning" / "datasources" / "prometheus.yaml"

# Percentiles drawn on latency / TTFT panels.
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)


def datasource_uid() -> str:
    """The uid of the provisioned Prometheus datasource (owned by its YAML file)."""
    sources = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]
    (source,) = [s for s in sources if s["type"] == "prometheus"]
    return source["uid"]


def datasource() -> common.DataSourceRef:
    return common.DataSourceRef(type_val="prometheus", uid=datasource_uid())


# -- queries -----------------------------------------------------------------


def query(expr: str, legend: str = "", ref_id: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .datasource(datasource())
        .expr(expr)
        .legend_format(legend or "__auto")
        .ref_id(ref_id)
    )


def table_query(expr: str, ref_id: str) -> prometheus.Dataquery:
    return query(expr, ref_id=ref_id).format(prom.PromQueryFormat.TABLE).instant()


def quantile_queries(histogram: str, selector: str, by: str, legend: str,
                     quantiles: tuple[float, ...] = QUANTILES) -> list:
    """One histogram_quantile query per quantile, over ``$__rate_interval``."""
    return [
        query(
            f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({histogram}_bucket{{{selector}}}[$__rate_interval])))",
            legend=f"{legend} p{round(q * 100)}",
            ref_id=chr(ord("A") + i),
        )
        for i, q in enumerate(quantiles)
    ]


def query_variable(name: str, label: str, metric: str, by: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(datasource())
        .query(f"label_values({metric}, {by})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


# -- value mappings ------------------------------------------------------------


def text_for(value: str, text: str, color: str) -> list[model.ValueMap]:
    """A mapping that shows ``text`` in ``color`` for ``value``."""
    return [model.ValueMap(options={value: model.ValueMappingResult(text=text, color=color)})]


def _special(match: model.SpecialValueMatch, text: str) -> model.SpecialValueMap:
    return model.SpecialValueMap(
        options=model.DashboardSpecialValueMapOptions(
            match=match, result=model.ValueMappingResult(text=text, color="text")
        )
    )


UP_MAPPINGS = [
    model.ValueMap(options={
        "1": model.ValueMappingResult(text="Up", color="green"),
        "0": model.ValueMappingResult(text="Unreachable", color="red"),
    })
]
# An upstream of the gateway: 0 is "taken out after failing", not unreachable for sure.
ROTATION_MAPPINGS = [
    model.ValueMap(options={
        "1": model.ValueMappingResult(text="In rotation", color="green"),
        "0": model.ValueMappingResult(text="Out of rotation", color="red"),
    })
]
NO_TRAFFIC = "No traffic"
NO_TRAFFIC_MAPPINGS = [_special(model.SpecialValueMatch.NULL_AND_NAN, NO_TRAFFIC)]


def steps(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


RED_GREEN = steps((None, "red"), (1, "green"))
GREEN_RED = steps((None, "green"), (1, "red"))


# -- panels ------------------------------------------------------------------


def _stat(title: str, description: str, *targets: prometheus.Dataquery) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .height(4)
        .span(4)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .text_mode(common.BigValueTextMode.AUTO)
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def up_stat(title: str, description: str, expr: str, legend: str, no_value: str,
            mappings: list[model.ValueMap] = UP_MAPPINGS) -> stat.Panel:
    """1/0 as words (Up/Unreachable unless ``mappings`` says others); ``no_value`` when
    the series is missing altogether."""
    return (
        _stat(title, description, query(expr, legend))
        .mappings(mappings)
        .thresholds(RED_GREEN)
        .no_value(no_value)
    )


def value_stat(
    title: str, description: str, expr: str, unit: str, thresholds: dashboard.ThresholdsConfig,
    legend: str = "",
) -> stat.Panel:
    return _stat(title, description, query(expr, legend)).unit(unit).thresholds(thresholds)


def traffic_stat(title: str, description: str, expr: str, unit: str) -> stat.Panel:
    """A rate or ratio that is NaN (0/0) or absent without canaries: shows "No traffic"."""
    return (
        _stat(title, description, query(expr))
        .unit(unit)
        .mappings(NO_TRAFFIC_MAPPINGS)
        .no_value(NO_TRAFFIC)
        .color_mode(common.BigValueColorMode.VALUE)
        .thresholds(steps((None, "text")))
    )


def graph(title: str, description: str, unit: str, targets: list, width: int = 12) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .height(8)
        .span(width)
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .mappings(NO_TRAFFIC_MAPPINGS)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def table_panel(title: str, description: str, targets: list, renames: dict[str, str],
                hidden: list[str], width: int = 12) -> table.Panel:
    """An instant table merged from ``targets`` (joined on their shared labels)."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .height(8)
        .span(width)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": dict.fromkeys(hidden, True),
                    "renameByName": renames,
                },
            )
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def row(title: str) -> dashboard.Row:
    return dashboard.Row(title)


def base_dashboard(title: str, uid: str, description: str) -> dashboard.Dashboard:
    """What every generated dashboard shares: tags, refresh, range, crosshair."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["foundry-local", "generated"])
        .editable()
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
