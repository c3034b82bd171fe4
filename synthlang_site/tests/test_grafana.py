"""The Grafana dashboard charts only metrics that GET /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import proxy.metrics  # noqa: F401 - registers the synthlang_* families before /metrics is read

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "synthlang-dashboard.json"

# Words of PromQL that look like identifiers but are not metric names.
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_LABEL_VALUES = re.compile(r"label_values\(\s*([^,()]+?)\s*,\s*[A-Za-z_]\w*\s*\)")
_IDENTIFIER = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)\b(?!\s*\()")

# What a family's samples are called in the exposition (and so in PromQL).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


def metric_names_in(expr: str) -> set[str]:
    """Metric names used by a PromQL expression (or a Grafana ``label_values`` query)."""
    expr = _LABEL_VALUES.sub(r"\1", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers, before their strings are blanked
    expr = _STRING.sub(" ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range selectors: [5m], [$__rate_interval]
    expr = _LABEL_LIST.sub(" ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    return {name for name in _IDENTIFIER.findall(expr) if name.lower() not in _KEYWORDS}


def _exprs(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_exprs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_exprs(item))
    return found


def _queries(dashboard: dict) -> list[str]:
    """Every panel expression and every templating variable's Prometheus query."""
    queries = _exprs(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue  # a "datasource" variable's query names a plugin, not a metric
        query = variable.get("query")
        queries.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
    return queries


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _exposed(client) -> tuple[set[str], dict[str, str]]:
    """Every sample name /metrics can expose, and each family's type."""
    response = client.get("/metrics")
    assert response.status_code == 200
    names: set[str] = set()
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        types[family.name] = family.type
        # A labelled family with no observations yet has no samples, only its TYPE
        # line: the names follow from the type.
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names, types


def test_the_extractor_finds_metric_names_and_nothing_else():
    expr = (
        'histogram_quantile(0.99, sum by (le, provider) (rate(a_seconds_bucket{job=~"$job",'
        ' status=~"5.."}[$__rate_interval]))) / on(instance) group_left sum(b_total offset 5m)'
        ' > bool 0.5 and label_values(c_total{x="y"}, instance)'
    )
    assert metric_names_in(expr) == {"a_seconds_bucket", "b_total", "c_total"}
    assert metric_names_in("label_values(d_total, job)") == {"d_total"}


def test_the_dashboard_is_valid_grafana_json_with_queries():
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"]
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 15
    assert all(metric_names_in(expr) for expr in exprs)


@pytest.mark.django_db
def test_every_metric_the_dashboard_queries_is_exposed_by_metrics(client):
    exposed, _ = _exposed(client)
    used = set().union(*(metric_names_in(query) for query in _queries(_dashboard())))

    assert used, "no metric names found in the dashboard"
    missing = sorted(used - exposed)
    assert not missing, f"the dashboard queries metrics /metrics does not expose: {missing}"
    # The check has teeth: a family's bare name is not a sample name.
    assert "synthlang_requests" not in exposed
    assert "synthlang_upstream_latency_seconds" not in exposed


@pytest.mark.django_db
def test_every_proxy_metric_has_a_panel(client):
    _, types = _exposed(client)
    families = {name for name, kind in types.items() if name.startswith("synthlang_")}
    families = {name for name in families if not name.endswith("_created")}
    used = set().union(*(metric_names_in(query) for query in _queries(_dashboard())))
    charted = {
        family
        for family in families
        if any(
            name.startswith(family) and name[len(family) :] in _SUFFIXES.get(types[family], ("",))
            for name in used
        )
    }
    assert charted == families
