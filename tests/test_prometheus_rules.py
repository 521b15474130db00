"""The Prometheus config, rules and rule tests load in promtool, and every alert has a runbook."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
RUNBOOK_BASE = "https://github.com/order-pipeline/order-pipeline/blob/main/docs/OPERATIONS.md#"

# The recording rules dashboards and alerts were written against, in parallel: renaming one
# or changing what it computes breaks them silently, so it has to fail here first.
AGREED_RECORDING_RULES = {
    "pipeline:orders_placed:rate1m": "sum(rate(orders_placed_total[1m]))",
    "pipeline:orders_completed:rate1m": "sum(rate(orders_completed_total[1m]))",
    "pipeline:orders_cancelled:rate1m": "sum by (reason) (rate(orders_cancelled_total[1m]))",
    "pipeline:order_e2e_seconds:p50_5m": (
        "histogram_quantile(0.50, sum by (le) (rate(order_placed_to_completed_seconds_bucket[5m])))"
    ),
    "pipeline:order_e2e_seconds:p99_5m": (
        "histogram_quantile(0.99, sum by (le) (rate(order_placed_to_completed_seconds_bucket[5m])))"
    ),
    "pipeline:http_requests:rate1m": (
        "sum by (job, route, status) (rate(pipeline_http_requests_total[1m]))"
    ),
    "pipeline:order_processing_seconds:p50_5m": (
        "histogram_quantile(0.50, sum by (le) "
        "(rate(order_placed_to_fulfilling_seconds_bucket[5m])))"
    ),
    "pipeline:order_processing_seconds:p99_5m": (
        "histogram_quantile(0.99, sum by (le) "
        "(rate(order_placed_to_fulfilling_seconds_bucket[5m])))"
    ),
    "pipeline:http_server_errors:ratio_rate5m": (
        '(sum by (job) (rate(pipeline_http_requests_total{status=~"5.."}[5m]))'
        " or sum by (job) (rate(pipeline_http_requests_total[5m])) * 0)"
        " / sum by (job) (rate(pipeline_http_requests_total[5m]))"
    ),
    "pipeline:messages_consumed:rate1m": (
        "sum by (job, topic, outcome) (rate(pipeline_messages_consumed_total[1m]))"
    ),
    "pipeline:messages_published:rate1m": (
        "sum by (job, topic) (rate(pipeline_messages_published_total[1m]))"
    ),
    "pipeline:consumer_lag:sum": "sum by (job, topic) (pipeline_consumer_lag)",
    "pipeline:handler_duration_seconds:p99_5m": (
        "histogram_quantile(0.99, sum by (job, event_type, le)"
        " (rate(pipeline_handler_duration_seconds_bucket[5m])))"
    ),
    "pipeline:saga_compensations:rate5m": "sum by (reason) (rate(saga_compensations_total[5m]))",
    "pipeline:compensation_ratio:rate15m": (
        "sum(rate(saga_compensations_total[15m])) / sum(rate(orders_placed_total[15m]))"
    ),
    "pipeline:payment_decline_ratio:rate5m": (
        'sum(rate(payments_attempts_total{outcome!="captured"}[5m]))'
        " / sum(rate(payments_attempts_total[5m]))"
    ),
    "pipeline:revenue_amount:rate1m": "sum by (currency) (rate(orders_revenue_amount_total[1m]))",
    "pipeline:average_order_value_amount:5m": (
        "sum by (currency) (increase(orders_revenue_amount_total[5m]))"
        " / scalar(sum(increase(orders_completed_total[5m])))"
    ),
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> Iterator[dict[str, Any]]:
    for group in load_yaml(path)["groups"]:
        yield from group["rules"]


def alerts() -> list[dict[str, Any]]:
    return list(rules(PROMETHEUS / "rules" / "alerts.yml"))


def alert_names() -> list[str]:
    return [alert["alert"] for alert in alerts()]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def alert_runbook_anchors() -> list[str]:
    """Anchors of the `###` sections under `## Alerts` (fenced code blocks skipped)."""
    anchors: list[str] = []
    in_alerts = in_fence = False
    for line in OPERATIONS.read_text().splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif in_fence:
            continue
        elif line.startswith("## "):
            in_alerts = line.strip() == "## Alerts"
        elif in_alerts and line.startswith("### "):
            anchors.append(github_anchor(line[4:]))
    return anchors


def alert_rule_cases() -> Iterator[dict[str, Any]]:
    for test_file in sorted((PROMETHEUS / "tests").glob("*.yml")):
        for test in load_yaml(test_file)["tests"]:
            yield from test.get("alert_rule_test", [])


def normalized(expr: str) -> str:
    return " ".join(expr.split())


def test_promtool_accepts_the_config_and_rules_and_every_rule_test_passes() -> None:
    result = subprocess.run(
        ["bash", str(PROMETHEUS / "check.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config, rules and rule tests OK" in result.stdout


def test_the_agreed_recording_rules_keep_their_names_and_expressions() -> None:
    recorded = {
        rule["record"]: normalized(rule["expr"])
        for rule in rules(PROMETHEUS / "rules" / "recording.yml")
    }
    for name, expr in AGREED_RECORDING_RULES.items():
        assert recorded.get(name) == normalized(expr), name


@pytest.mark.parametrize("alert", alerts(), ids=alert_names())
def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook(
    alert: dict[str, Any],
) -> None:
    assert alert["labels"]["severity"] in {"page", "ticket"}
    annotations = alert["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"].startswith(RUNBOOK_BASE)


def test_every_runbook_url_points_at_a_section_under_alerts_in_operations_md() -> None:
    sections = alert_runbook_anchors()
    for alert in alerts():
        anchor = alert["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE)
        assert anchor == github_anchor(alert["alert"]), alert["alert"]
        assert anchor in sections, f"{alert['alert']}: no '### {alert['alert']}' in ## Alerts"


def test_every_runbook_section_belongs_to_an_alert() -> None:
    assert sorted(alert_runbook_anchors()) == sorted(github_anchor(n) for n in alert_names())


def test_every_alert_has_a_firing_case_and_a_quiet_case_in_the_rule_tests() -> None:
    cases = list(alert_rule_cases())
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    for name in alert_names():
        assert name in firing, f"{name} never fires in deploy/prometheus/tests"
        assert name in quiet, f"{name} is never shown to stay quiet in deploy/prometheus/tests"
