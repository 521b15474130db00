"""Every panel of every shipped dashboard shows data, through a real Prometheus.

A real Prometheus (Debian's package) scrapes the running pipeline with the shipped recording
and alert rules; orders go through every kind of ending (delivered, declined, out of stock,
cancelled, returned); then each panel query — exactly as the dashboard JSON has it, Grafana
variables filled in — is sent to Prometheus' HTTP API. An error or an empty result fails.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import httpx
import pytest

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline, wait_until
from kit.testing.prometheus import Prometheus, PrometheusQueryError, running_prometheus
from tests.integration.helpers import PipelineClient
from tests.integration.kpi_process import KpiProcess
from tools.dashboards import load_dashboards, panel_queries, to_promql

SCRAPE_INTERVAL_S = 1.0
# Wide enough to hold every scrape of the run, so rates see the whole of it.
RATE_INTERVAL = "5m"


def drive_every_ending(client: PipelineClient) -> list[str]:
    """Orders that end delivered, declined, out of stock, cancelled and returned."""
    delivered = [
        client.place(order_body([("T-MUG", 1)], customer=f"dash-{n}"))["order_id"] for n in range(5)
    ]
    declined = client.place(order_body([("T-TEE", 1)], token="tok_chargeDeclined"))["order_id"]
    short = client.place(order_body([("T-RARE", 5)], customer="dash-short"))["order_id"]
    cancelled = client.place(order_body([("T-MUG", 1)], customer="dash-cancel"))["order_id"]
    assert client.cancel(cancelled).status_code == 202
    returned = delivered[0]
    client.wait_settled([returned])
    response = client.request_return(returned, [("T-MUG", 1)], "changed my mind")
    assert response.status_code == 202, response.text
    return_id = response.json()["return_id"]
    client.wait_order(
        returned, lambda o: o["returns"][0]["status"] == "label_issued", "given a return label"
    )
    assert client.receive_return(return_id).status_code == 202
    orders = [*delivered, declined, short, cancelled]
    final = client.wait_settled(orders)
    assert final[returned]["status"] == "RETURNED"
    assert final[declined]["status"] == final[short]["status"] == "CANCELLED"
    return orders


def has_data(prometheus: Prometheus, promql: str) -> bool:
    return any(not math.isnan(float(sample["value"][1])) for sample in prometheus.query(promql))


@pytest.mark.timeout(900)  # its own waits add up to more than the default 300 s
@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
def test_every_panel_query_of_every_dashboard_returns_data(
    pipeline: Pipeline, client: PipelineClient, tmp_path: Path
) -> None:
    kpis = KpiProcess(pipeline.bootstrap, "orders.events", tmp_path / "kpis")
    kpis.start()
    targets = {job: f"127.0.0.1:{port}" for job, port in pipeline.ports.items()}
    targets["kpis"] = f"127.0.0.1:{kpis.port}"
    with (
        running_prometheus(tmp_path / "prometheus", targets, interval_s=SCRAPE_INTERVAL_S) as (
            prometheus
        ),
        contextlib.closing(kpis),
    ):
        wait_until(
            lambda: (
                set(prometheus.targets_up()) == set(targets)
                and all(prometheus.targets_up().values())
            ),
            30,
            "every service to be scraped",
        )
        drive_every_ending(client)
        queries = [
            (query, to_promql(query.expr, rate_interval=RATE_INTERVAL))
            for dashboard in load_dashboards()
            for query in panel_queries(dashboard)
        ]
        assert len(queries) >= 40, "fewer panel queries than the four dashboards hold"

        def empty_panels() -> list[str]:
            missing = []
            for query, promql in queries:
                try:
                    if not has_data(prometheus, promql):
                        missing.append(f"{query.dashboard} / {query.panel}: {promql}")
                except PrometheusQueryError as error:
                    pytest.fail(f"{query.dashboard} / {query.panel} does not run: {error}")
            return missing

        # Rules evaluate and the KPI window closes a little after the orders settle: wait for
        # it, and name the panels still empty at the deadline.
        empty: list[str] = []
        busy_minutes: set[int] = set()

        def all_panels_show_data() -> bool:
            # The KPI panels show the last closed minute: one with an order placed in it,
            # however long the orders above took.
            if (minute := int(time.time() // 60)) not in busy_minutes:
                busy_minutes.add(minute)
                client.place(order_body([("T-MUG", 1)], customer="dash-minute"))
            empty[:] = empty_panels()
            return not empty

        try:
            wait_until(all_panels_show_data, 240, "every panel to show data", interval_s=2)
        except TimeoutError:
            kpi_metrics = httpx.get(f"{kpis.url}/metrics", timeout=5).text
            pytest.fail(
                "panels without data:\n"
                + "\n".join(empty)
                + "\n\nkpis /metrics:\n"
                + "\n".join(line for line in kpi_metrics.splitlines() if line.startswith("kpi_"))
            )
