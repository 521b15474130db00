"""The Grafana dashboards: Grafana's own linter, what every panel must carry, queries that
Prometheus can run and that read only cataloged metrics, provisioning, and the renderer."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, start_http_server

from kit.testing.pipeline import wait_until
from kit.testing.prometheus import running_prometheus
from tools.dashboards import (
    DASHBOARDS_DIR,
    Dashboard,
    PanelQuery,
    UnknownVariableError,
    dashboard_files,
    duration_seconds,
    load_dashboards,
    metric_names,
    panel_queries,
    panels,
    to_promql,
)
from tools.render_dashboards import (
    PrometheusQueryRange,
    QueryError,
    Series,
    Window,
    format_value,
    legend,
    render_dashboard,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
LINT_SH = GRAFANA_DIR / "lint.sh"
LINT_EXCEPTIONS = DASHBOARDS_DIR / ".lint"
METRICS_MD = REPO_ROOT / "docs" / "METRICS.md"
RECORDING_RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "recording.yml"
EXPECTED_FILES = {"pipeline-overview.json", "saga.json", "messaging.json", "business.json"}

# The recording rules as agreed for issue 5, for when recording.yml is not there (yet).
AGREED_RECORDING_RULES = {
    "pipeline:orders_placed:rate1m": "sum(rate(orders_placed_total[1m]))",
    "pipeline:orders_completed:rate1m": "sum(rate(orders_completed_total[1m]))",
    "pipeline:orders_cancelled:rate1m": "sum by (reason) (rate(orders_cancelled_total[1m]))",
    "pipeline:order_e2e_seconds:p50_5m": "histogram_quantile(0.50, sum by (le) "
    "(rate(order_placed_to_completed_seconds_bucket[5m])))",
    "pipeline:order_e2e_seconds:p99_5m": "histogram_quantile(0.99, sum by (le) "
    "(rate(order_placed_to_completed_seconds_bucket[5m])))",
    "pipeline:http_requests:rate1m": "sum by (job, route, status) "
    "(rate(pipeline_http_requests_total[1m]))",
    "pipeline:http_server_errors:ratio_rate5m": "sum by (job) "
    '(rate(pipeline_http_requests_total{status=~"5.."}[5m])) / sum by (job) '
    "(rate(pipeline_http_requests_total[5m]))",
    "pipeline:messages_consumed:rate1m": "sum by (job, topic, outcome) "
    "(rate(pipeline_messages_consumed_total[1m]))",
    "pipeline:messages_published:rate1m": "sum by (job, topic) "
    "(rate(pipeline_messages_published_total[1m]))",
    "pipeline:consumer_lag:sum": "sum by (job, topic) (pipeline_consumer_lag)",
    "pipeline:handler_duration_seconds:p99_5m": "histogram_quantile(0.99, sum by "
    "(job, event_type, le) (rate(pipeline_handler_duration_seconds_bucket[5m])))",
    "pipeline:saga_compensations:rate5m": "sum by (reason) (rate(saga_compensations_total[5m]))",
    "pipeline:compensation_ratio:rate15m": "sum(rate(saga_compensations_total[15m])) / "
    "sum(rate(orders_placed_total[15m]))",
    "pipeline:payment_decline_ratio:rate5m": 'sum(rate(payments_attempts_total{outcome!="captured"}'
    "[5m])) / sum(rate(payments_attempts_total[5m]))",
    "pipeline:revenue_amount:rate1m": "sum by (currency) (rate(orders_revenue_amount_total[1m]))",
    "pipeline:average_order_value_amount:5m": "sum by (currency) "
    "(increase(orders_revenue_amount_total[5m])) / "
    "scalar(sum(increase(orders_completed_total[5m])))",
}
# Series Prometheus makes itself rather than scraping them from a service.
PROMETHEUS_SERIES = {"up"}

DASHBOARDS = load_dashboards()
QUERIES = [query for dashboard in DASHBOARDS for query in panel_queries(dashboard)]


PANELS = [
    pytest.param(panel, id=f"{d['uid']}/{panel.get('title', panel.get('id'))}")
    for d in DASHBOARDS
    for panel in panels(d)
]


def _recording_rules() -> dict[str, str]:
    if not RECORDING_RULES.exists():
        return AGREED_RECORDING_RULES
    groups = yaml.safe_load(RECORDING_RULES.read_text())["groups"]
    return {
        rule["record"]: str(rule["expr"])
        for group in groups
        for rule in group["rules"]
        if "record" in rule
    }


def _cataloged_metrics() -> set[str]:
    """Names from the tables of docs/METRICS.md; a histogram exports three series."""
    names = set()
    for name, kind in re.findall(
        r"^\| `([a-zA-Z_:][\w:]*)` \| (\w+) \|", METRICS_MD.read_text(), re.M
    ):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


# --- Grafana's dashboard-linter --------------------------------------------------------


def _require_linter_toolchain() -> None:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cached = cache / "order-pipeline" / "bin" / "dashboard-linter"
    if shutil.which("go") is None and not cached.exists():
        pytest.fail(
            "Go is needed to build Grafana's dashboard-linter (tools/dashboard-linter): "
            "install Go >= 1.23 from https://go.dev/dl/ and put `go` on PATH"
        )


def test_dashboards_pass_grafanas_dashboard_linter() -> None:
    _require_linter_toolchain()
    lint = subprocess.run([str(LINT_SH)], capture_output=True, text=True, timeout=280)

    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert {line.split("/")[-1] for line in lint.stdout.splitlines()} >= EXPECTED_FILES


def test_the_linter_fails_a_panel_without_description(tmp_path: Path) -> None:
    _require_linter_toolchain()
    dashboard = json.loads((DASHBOARDS_DIR / "saga.json").read_text())
    victim = panels(dashboard)[0]
    victim["description"] = ""
    broken = tmp_path / "saga.json"
    broken.write_text(json.dumps(dashboard))

    lint = subprocess.run([str(LINT_SH), str(broken)], capture_output=True, text=True, timeout=280)

    assert lint.returncode != 0
    assert f"panel '{victim['title']}' has missing title or description" in lint.stderr


def test_lint_exceptions_name_only_targets_that_read_recording_rules() -> None:
    config = yaml.safe_load(LINT_EXCEPTIONS.read_text())
    assert set(config) == {"exclusions"}, "warnings would pass --strict silently"
    targets = {
        (str(d["title"]), str(panel["title"]), index): target["expr"]
        for d in DASHBOARDS
        for panel in panels(d)
        for index, target in enumerate(panel.get("targets", []))
    }
    for rule, excepted in config["exclusions"].items():
        assert rule in {"target-job-rule", "target-instance-rule"}, rule
        assert excepted["reason"].strip(), f"{rule} needs a reason"
        assert excepted["entries"], f"{rule} without entries would except every target"
        for entry in excepted["entries"]:
            # The linter reads `targetidx` only; `targetIdx` is silently ignored.
            assert set(entry) == {"dashboard", "panel", "targetidx"}, entry
            key = (entry["dashboard"], entry["panel"], int(entry["targetidx"]))
            assert key in targets, f"{rule}: no such target {key}"
            assert any(":" in name for name in metric_names(targets[key])), (
                f"{rule}: {key} reads raw metrics; give it the job/instance matchers instead"
            )


# --- what every dashboard and panel carries ------------------------------------------------


def test_the_four_dashboards_are_there_with_stable_uids() -> None:
    assert {path.name for path in dashboard_files()} == EXPECTED_FILES
    uids = [d["uid"] for d in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids), uids


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: str(d["uid"]))
def test_dashboard_settings(dashboard: Dashboard) -> None:
    assert dashboard["title"]
    assert "order-pipeline" in dashboard["tags"]
    assert dashboard["time"] == {"from": "now-30m", "to": "now"}
    assert dashboard["refresh"] == "10s"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["id"] is None, "an id would clash with the importing Grafana's own"


@pytest.mark.parametrize("panel", PANELS)
def test_every_panel_has_a_description_a_unit_and_the_datasource_variable(
    panel: dict[str, Any],
) -> None:
    assert panel.get("description", "").strip(), "no description"
    assert panel["fieldConfig"]["defaults"].get("unit"), "no unit"
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert panel["targets"], "no queries"
    for target in panel["targets"]:
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert target["refId"]


# --- the queries ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_every_query_becomes_plain_promql(query: PanelQuery) -> None:
    promql = to_promql(query.expr)

    assert "$" not in promql
    assert "[[" not in promql


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    # promtool parses rule expressions with Prometheus' own parser.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Prometheus (Debian: apt-get install prometheus)"
    rules = [
        {"record": f"dashboard:query_{index}", "expr": to_promql(query.expr)}
        for index, query in enumerate(QUERIES)
    ]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))

    check = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )

    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_queries_read_only_cataloged_metrics_and_recording_rules(query: PanelQuery) -> None:
    known = _cataloged_metrics() | set(_recording_rules()) | PROMETHEUS_SERIES

    assert metric_names(query.expr), "no metric found"
    assert metric_names(query.expr) <= known, metric_names(query.expr) - known


@pytest.mark.parametrize("query", [q for q in QUERIES if ":" in q.expr], ids=str)
def test_job_matchers_only_on_recording_rules_that_keep_job(query: PanelQuery) -> None:
    rules = _recording_rules()
    for name in metric_names(query.expr) & set(rules):
        keeps_job = re.search(r"\bby \((?:[^)]*\b)?job\b", rules[name]) is not None
        filtered = re.search(re.escape(name) + r'\{job=~"\$job"\}', query.expr) is not None
        # A matcher on a label the rule drops would empty the panel; one missing where the
        # rule keeps job would ignore the dashboard's Job filter.
        assert filtered == keeps_job, f"{name}: keeps job={keeps_job}, filtered={filtered}"


def test_the_catalog_and_recording_rules_are_read() -> None:
    # Guards the two tests above against passing because nothing was parsed.
    assert {"orders_placed_total", "pipeline_consumer_lag", "kpi_orders_per_minute"} <= (
        _cataloged_metrics()
    )
    assert "pipeline_handler_duration_seconds_bucket" in _cataloged_metrics()
    assert "pipeline:orders_placed:rate1m" in _recording_rules()


# --- tools/dashboards.py -----------------------------------------------------------------


def test_to_promql_fills_every_form_of_grafana_variable() -> None:
    expr = (
        'sum(rate(x{job=~"$job",instance=~"${instance}"}[$__rate_interval])) '
        '+ y{job=~"${job:regex}"}[[__interval]] + z[$__range] + $__range_s + $__interval_ms'
    )

    promql = to_promql(expr, rate_interval="20s", job="orders", instance=".+", interval="5s")

    assert promql == (
        'sum(rate(x{job=~"orders",instance=~".+"}[20s])) '
        '+ y{job=~"orders"}5s + z[30m] + 1800 + 5000'
    )


def test_to_promql_refuses_a_variable_it_has_no_value_for() -> None:
    with pytest.raises(UnknownVariableError, match=r"\$shard"):
        to_promql('x{shard="$shard"}')


def test_durations_are_promql_durations() -> None:
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("500ms") == 0.5
    with pytest.raises(ValueError, match="not a PromQL duration"):
        duration_seconds("5 minutes")


def test_panel_queries_cover_panels_inside_collapsed_rows_and_skip_hidden_targets() -> None:
    dashboard: Dashboard = {
        "title": "D",
        "panels": [
            {"type": "stat", "title": "top", "targets": [{"refId": "A", "expr": "a"}]},
            {
                "type": "row",
                "title": "collapsed",
                "collapsed": True,
                "panels": [
                    {
                        "type": "timeseries",
                        "title": "inside",
                        "targets": [
                            {"refId": "A", "expr": "b"},
                            {"refId": "B", "expr": "c", "hide": True},
                        ],
                    }
                ],
            },
        ],
    }

    assert panel_queries(dashboard) == [
        PanelQuery("D", "top", "A", "a"),
        PanelQuery("D", "inside", "A", "b"),
    ]


def test_metric_names_ignore_functions_labels_durations_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{job=~"$job"}[5m]))) '
        "/ on (job) group_left (x) b offset 1h and time() > 1e3 * pipeline:c:rate1m"
    )

    assert metric_names(expr) == {"a_bucket", "b", "pipeline:c:rate1m"}


# --- provisioning ------------------------------------------------------------------------


def test_the_provisioned_datasource_is_the_dashboards_default() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/datasources/prometheus.yaml").read_text()
    )
    (datasource,) = provisioned["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://127.0.0.1:9090"
    for dashboard in DASHBOARDS:
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["current"]["value"] == datasource["uid"]


def test_the_dashboard_provider_reads_the_dashboards_folder() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/dashboards/order-pipeline.yaml").read_text()
    )
    (provider,) = provisioned["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "${ORDER_PIPELINE_DASHBOARDS}"


# --- tools/render_dashboards.py ----------------------------------------------------------


def _fake_prometheus(promql: str, start: float, end: float, step: float) -> list[Series]:
    """Two series for per-job queries, one otherwise; nothing for DLQ queries; a refusal
    for the payment decline ratio."""
    if "pipeline_dlq_messages" in promql:
        return []
    if "payment_decline_ratio" in promql:
        raise QueryError("bad_data: pretend the rule is broken")
    times = [start + i * step for i in range(int((end - start) // step) + 1)]
    jobs = ["orders", "payments"] if "by (job)" in promql else [""]
    return [
        Series({"job": job} if job else {}, times, [1 + math.sin(t / 100) for t in times])
        for job in jobs
    ]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_renderer_draws_a_dashboard_as_one_png(tmp_path: Path) -> None:
    (overview,) = [d for d in DASHBOARDS if d["uid"] == "pipeline-overview"]
    window = Window(end=1_700_000_000, minutes=15, scrape_interval=5)

    result = render_dashboard(overview, _fake_prometheus, window)
    result.save(tmp_path / "overview.png")

    width, height = _png_size(tmp_path / "overview.png")
    assert width == 1920
    assert height > 600
    texts = [text.get_text() for text in result.figure.texts]
    assert "Order funnel (selected range)" in texts
    assert "Dead-lettered messages held" in texts
    assert "no data" in texts  # the DLQ stat
    assert result.failures == []


def test_the_renderer_reports_queries_prometheus_refuses() -> None:
    (business,) = [d for d in DASHBOARDS if d["uid"] == "pipeline-business"]
    window = Window(end=1_700_000_000, minutes=15, scrape_interval=5)

    result = render_dashboard(business, _fake_prometheus, window)

    assert result.failures == ["Payment decline ratio / A: bad_data: pretend the rule is broken"]
    assert "query failed" in [text.get_text() for text in result.figure.texts]


def test_the_render_window_follows_grafanas_rate_interval() -> None:
    window = Window(end=1_000_000, minutes=15, scrape_interval=5)

    assert window.step == 5
    assert window.rate_interval == "20s"
    assert Window(end=1_000_000, minutes=120, scrape_interval=5).rate_interval == "35s"
    assert window.promql("rate(x[$__rate_interval]) + y[$__range]") == "rate(x[20s]) + y[15m]"


def test_values_are_formatted_in_the_panels_unit() -> None:
    assert format_value(0.25, "s") == "250 ms"
    assert format_value(90, "s") == "1.5 min"
    assert format_value(0.125, "percentunit") == "12.5%"
    assert format_value(1234.5, "currencyEUR") == "€1.23 K"
    assert format_value(2, "ops") == "2 ops/s"
    assert format_value(math.nan, "short") == "NaN"


def test_legends_fill_labels_like_grafana() -> None:
    assert legend("{{job}} {{ topic }}/{{partition}}", {"job": "orders", "topic": "t"}) == (
        "orders t/"
    )
    assert legend("__auto", {"__name__": "up", "job": "orders"}) == "job=orders"


def test_every_panel_query_runs_on_a_real_prometheus(tmp_path: Path) -> None:
    # Data or not is tests/integration/test_dashboard_queries.py's business (it runs the
    # pipeline); here Prometheus scrapes one fake "orders" so the HTTP path and every query's
    # acceptance are checked by the real thing, in seconds.
    registry = CollectorRegistry()
    Counter("orders_placed", "orders accepted", registry=registry).inc(3)
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        targets = {"orders": f"127.0.0.1:{server.server_port}"}
        with (
            # An int: the helper writes f"{interval_s}s" and Prometheus refuses "1.0s".
            running_prometheus(tmp_path / "prometheus", targets, interval_s=1) as prometheus,
            httpx.Client(timeout=10) as client,
        ):
            wait_until(
                lambda: prometheus.targets_up().get("orders", False), 30, "orders to be scraped"
            )
            window = Window(end=time.time(), minutes=5, scrape_interval=1)
            query = PrometheusQueryRange(client, prometheus.url)

            (up,) = query('up{job="orders"}', window.start, window.end, window.step)
            assert up.labels == {"__name__": "up", "job": "orders", "instance": targets["orders"]}
            assert up.values[-1] == 1
            with pytest.raises(QueryError, match="parse error"):
                query("sum(", window.start, window.end, window.step)
            for dashboard in DASHBOARDS:
                assert render_dashboard(dashboard, query, window).failures == []
    finally:
        server.shutdown()
        server.server_close()
