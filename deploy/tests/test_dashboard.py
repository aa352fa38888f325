"""The Grafana dashboard (deploy/chart/modelgate/dashboards/modelgate.json) queries only
what exists: every PromQL expression parses (PyPI `promql-parser`, bindings of the
promql-parser crate), every metric it names is one the filter or the controller exports
(the tables in filter/README.md and deploy/README.md, the sources of truth) or one of
Istio's standard metrics, and every
label it filters or groups by is one those metrics carry. The chart ships it as a
ConfigMap for Grafana's sidecar when asked to."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser as promql
import pytest

import chart

DASHBOARD = chart.CHART / "dashboards" / "modelgate.json"
FILTER_README = chart.REPO / "filter" / "README.md"
DEPLOY_README = chart.REPO / "deploy" / "README.md"

# Istio's standard metrics (Istio docs, "Istio Standard Metrics"), as Prometheus names
# them: HTTP/gRPC requests, durations and sizes, and TCP. Histograms come as
# _bucket (with `le`), _sum and _count.
ISTIO_HISTOGRAMS = ("istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes")
ISTIO_COUNTERS = (
    "istio_requests_total",
    "istio_request_messages_total",
    "istio_response_messages_total",
    "istio_tcp_sent_bytes_total",
    "istio_tcp_received_bytes_total",
    "istio_tcp_connections_opened_total",
    "istio_tcp_connections_closed_total",
)
# The labels Istio puts on each of them.
ISTIO_LABELS = frozenset(
    """reporter source_workload source_workload_namespace source_principal source_app
    source_version source_canonical_service source_canonical_revision source_cluster
    destination_workload destination_workload_namespace destination_principal
    destination_app destination_version destination_service destination_service_name
    destination_service_namespace destination_canonical_service
    destination_canonical_revision destination_cluster request_protocol response_code
    grpc_response_status response_flags connection_security_policy""".split()
)

# Grafana's built-in interval variables, which PromQL cannot parse inside a range: any
# duration stands for them.
GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range")


def metric_table(readme: Path) -> dict[str, frozenset[str]]:
    """metric -> its labels, from the table under `## Metrics` in a README."""
    text = readme.read_text()
    section = text.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    metrics = {}
    for m in re.finditer(r"^\| `(modelgate_[a-z_]+)` \| (?:counter|gauge|histogram) \|([^|]*)\|", section, re.M):
        labels = re.sub(r"\([^)]*\)", "", m.group(2))
        metrics[m.group(1)] = frozenset(re.findall(r"`([a-z_]+)`", labels))
    assert metrics, f"no metric table in {readme}'s Metrics section"
    return metrics


def filter_metrics() -> dict[str, frozenset[str]]:
    """The filter's metrics (filter/README.md)."""
    return metric_table(FILTER_README)


def controller_metrics() -> dict[str, frozenset[str]]:
    """The controller's metrics (deploy/README.md)."""
    metrics = metric_table(DEPLOY_README)
    assert all(name.startswith("modelgate_controller_") for name in metrics), metrics
    return metrics


def known_metrics() -> dict[str, frozenset[str]]:
    """Every metric the dashboard may query, with its labels."""
    known = dict(filter_metrics())
    known.update(controller_metrics())
    for name in ISTIO_COUNTERS:
        known[name] = ISTIO_LABELS
    for name in ISTIO_HISTOGRAMS:
        known[f"{name}_bucket"] = ISTIO_LABELS | {"le"}
        known[f"{name}_sum"] = ISTIO_LABELS
        known[f"{name}_count"] = ISTIO_LABELS
    return known


def load_dashboard() -> dict:
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys in {keys}"
        return dict(pairs)

    return json.loads(DASHBOARD.read_text(), object_pairs_hook=no_duplicates)


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' collapsed panels included; rows themselves left out."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    return [
        (f"panel {p['title']!r} target {t['refId']}", t["expr"])
        for p in panels(dashboard)
        for t in p["targets"]
    ]


def variable_queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(variable, selector, label) of every `label_values(selector, label)` variable."""
    out = []
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*([a-z_]+)\)", query.strip())
        assert m, f"variable {var['name']}: only label_values(selector, label) is checked here: {query}"
        out.append((var["name"], m.group(1), m.group(2)))
    return out


def parse(expr: str):
    for interval in GRAFANA_INTERVALS:
        expr = expr.replace(interval, "5m")
    return promql.parse(expr)


def selectors(node) -> list:
    """Every vector selector of an expression, depth first."""
    if isinstance(node, promql.VectorSelector):
        return [node]
    if isinstance(node, promql.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql.BinaryExpr):
        return selectors(node.lhs) + selectors(node.rhs)
    if isinstance(node, promql.Call):
        return [s for arg in node.args for s in selectors(arg)]
    if isinstance(node, (promql.AggregateExpr, promql.ParenExpr, promql.UnaryExpr, promql.SubqueryExpr)):
        inner = selectors(node.expr)
        if isinstance(node, promql.AggregateExpr) and node.param is not None:
            inner += selectors(node.param)
        return inner
    return []


def aggregations(node) -> list:
    """Every aggregation of an expression, depth first."""
    found = []
    if isinstance(node, promql.AggregateExpr):
        found.append(node)
    for child in ("lhs", "rhs", "expr", "param"):
        value = getattr(node, child, None)
        if value is not None and not isinstance(value, (str, int, float)):
            found += aggregations(value)
    if isinstance(node, promql.Call):
        for arg in node.args:
            found += aggregations(arg)
    return found


def metric_name(selector) -> str | None:
    if selector.name:
        return selector.name
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__" and str(matcher.op).endswith("Equal"):
            return matcher.value
    return None


def problems_of(where: str, expr: str, known: dict[str, frozenset[str]]) -> list[str]:
    """What is wrong with one expression: a parse error, an unknown metric, a label the
    metric does not carry (filtered on, or grouped by)."""
    try:
        tree = parse(expr)
    except ValueError as e:
        return [f"{where}: does not parse: {e}: {expr}"]
    problems = []
    for selector in selectors(tree):
        name = metric_name(selector)
        if name not in known:
            problems.append(f"{where}: {name!r} is neither a filter metric (filter/README.md) nor an Istio standard metric")
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name != "__name__" and matcher.name not in known[name]:
                problems.append(f"{where}: {name} has no label {matcher.name!r}")
    for agg in aggregations(tree):
        if agg.modifier is None or "Exclude" in str(agg.modifier.type):
            continue
        available = set()
        for selector in selectors(agg.expr):
            available |= known.get(metric_name(selector), frozenset())
        for label in agg.modifier.labels:
            if label not in available:
                problems.append(f"{where}: groups by {label!r}, which none of its metrics carries")
    return problems


def test_the_dashboard_is_grafana_json_with_described_panels():
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"]
    names = {v["name"] for v in dashboard["templating"]["list"]}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        assert panel["title"] and panel["description"], panel.get("title")
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} queries nothing"
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {i[1:] for i in GRAFANA_INTERVALS}
            assert used <= names, f"panel {panel['title']!r} uses undefined variables {used - names}"


def test_every_expression_parses_and_queries_only_exported_metrics():
    dashboard = load_dashboard()
    known = known_metrics()
    exprs = expressions(dashboard)
    assert len(exprs) >= 10
    problems = [p for where, expr in exprs for p in problems_of(where, expr, known)]
    for name, selector, label in variable_queries(dashboard):
        problems += problems_of(f"variable {name}", selector, known)
        for s in selectors(parse(selector)):
            if label not in known.get(metric_name(s), frozenset()):
                problems.append(f"variable {name}: {metric_name(s)} has no label {label!r}")
    assert not problems, "\n".join(problems)


def test_the_dashboard_shows_what_the_filter_exports():
    """Each filter metric appears in some panel: a new metric without a panel is noticed."""
    queried = {metric_name(s) for _, expr in expressions(load_dashboard()) for s in selectors(parse(expr))}
    missing = set(filter_metrics()) - queried
    assert not missing, f"filter metrics without a panel: {sorted(missing)}"
    assert {"istio_requests_total", "istio_request_duration_milliseconds_bucket"} <= queried


@pytest.mark.parametrize(
    "expr, complaint",
    [
        ('sum(rate(modelgate_request_total[5m]))', "'modelgate_request_total' is neither"),
        ('sum(rate(modelgate_requests_total{decisions="denied"}[5m]))', "has no label 'decisions'"),
        ('sum by (predictor) (rate(modelgate_requests_total[5m]))', "groups by 'predictor'"),
        ('sum by (model (rate(modelgate_requests_total[5m]))', "does not parse"),
        ('histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_seconds_bucket[5m])))', "is neither"),
    ],
)
def test_the_checks_catch_a_wrong_query(expr, complaint):
    problems = problems_of("probe", expr, known_metrics())
    assert any(complaint in p for p in problems), problems


def test_the_filter_readme_table_is_read():
    metrics = filter_metrics()
    assert metrics["modelgate_requests_total"] == {"model", "decision", "reason"}
    assert metrics["modelgate_routed_total"] == {"model", "predictor", "reason"}
    assert metrics["modelgate_config_loads_total"] == {"result"}


def test_the_controller_table_is_what_the_controller_registers():
    """deploy/README.md's table against controller/src/metrics.rs (counters gain `_total`)."""
    source = (chart.REPO / "controller" / "src" / "metrics.rs").read_text()
    registered = {f"modelgate_controller_{name}" for name in re.findall(r'register\(\s*"([a-z_]+)"', source)}
    documented = {name.removesuffix("_total") for name in controller_metrics()}
    assert registered and documented == registered, (sorted(documented), sorted(registered))
    assert controller_metrics()["modelgate_controller_predictor_traffic"] == {"model", "predictor"}


def dashboard_config_maps(objects: list[dict]) -> list[dict]:
    return [o for o in chart.find(objects, "ConfigMap") if "modelgate.json" in o.get("data", {})]


def test_the_chart_ships_the_dashboard_only_when_asked():
    assert dashboard_config_maps(chart.render()) == []
    objects = chart.render({"grafanaDashboard": {"enabled": True}})
    [config_map] = dashboard_config_maps(objects)
    assert config_map["metadata"]["name"] == f"{chart.RELEASE}-dashboard"
    assert config_map["metadata"]["namespace"] == chart.NAMESPACE
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["modelgate.json"]) == load_dashboard()
    chart.validate_all([config_map])


def test_the_dashboard_goes_where_the_sidecar_looks():
    objects = chart.render(chart.values_all())
    [config_map] = dashboard_config_maps(objects)
    values = chart.values_all()["grafanaDashboard"]
    assert config_map["metadata"]["namespace"] == values["namespace"]
    for key, value in values["labels"].items():
        assert config_map["metadata"]["labels"][key] == value
    assert config_map["metadata"]["annotations"] == values["annotations"]


def test_the_readme_shows_a_rendering_of_it():
    readme = (chart.REPO / "README.md").read_text()
    image = Path("deploy/dashboard-demo.png")
    assert str(image) in readme
    assert (chart.REPO / image).stat().st_size < 200_000
