"""End-to-end benchmark: the five services on a real broker, driven at fixed offered loads.

One run, all on this machine:

1. starts its own Kafka broker (from the Maven jars, fresh temp dir) and the five services
   (fresh temp dir, SQLite, a catalog seed with 10,000,000 units per SKU so nothing runs out),
   and waits until a probe order has gone all the way to COMPLETED;
2. for each offered rate (open loop: sends are scheduled at fixed intervals and never wait
   for earlier responses), POSTs orders for ``--duration`` seconds, waits a bounded drain
   for them to finish, then reads every accepted order once and takes its latency from the
   order's own ``placed_at`` / ``completed_at``; meanwhile it samples CPU (utime+stime) and
   RSS of every service process, the broker JVM and itself from /proc;
3. stops the services and runs Kafka's own ProducerPerformance and ConsumerPerformance
   against the same broker on a ``bench.perf`` topic, to put the pipeline's event rate next
   to what the broker takes from a plain producer;
4. prints tables and writes everything to a JSON file.

Everything it starts is stopped again, on errors and Ctrl-C too; ``--time-limit`` bounds
the whole run. See docs/BENCHMARKS.md.

Usage: python tools/bench.py [--rates 50,100,200,400] [--duration 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kit.settings import REPO_ROOT
from kit.testing.gateway import async_gateway_client
from kit.testing.orders import order_body
from kit.testing.pipeline import SERVICES, Pipeline, wait_until
from kit.testing.servers import kafkactl

BENCH_SKUS = ("BENCH-MUG", "BENCH-TEE", "BENCH-CAP", "BENCH-SOCKS")
BENCH_STOCK = 10_000_000
PERF_TOPIC = "bench.perf"
PERF_PARTITIONS = 6
POOL_SIZE = 8  # connections per httpx client of the load
PERF_RUNS = (
    ("producer_warmup", "ProducerPerformance warm-up"),
    ("producer", "ProducerPerformance acks=all"),
    ("consumer_warmup", "ConsumerPerformance warm-up"),
    ("consumer", "ConsumerPerformance"),
)
BROKER = "kafka-broker"
CLIENT = "bench-client"
OTHER = "other (not ours)"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Counters and gauges read from every service's /metrics (summed over their labels).
WATCHED_METRICS = (
    "pipeline_messages_published_total",
    "pipeline_messages_consumed_total",
    "pipeline_consumer_lag",
    "pipeline_outbox_backlog_rows",
    "orders_placed_total",
    "orders_completed_total",
    "orders_cancelled_total",
)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- the orders


def bench_catalog(stock: int = BENCH_STOCK) -> str:
    """A catalog seed (inventory's TOML format) where no order can run out of stock."""
    return "".join(
        f'[[item]]\nsku = "{sku}"\nname = "Bench item {n}"\nunit_price = {1000 + 250 * n}\n'
        f'currency = "EUR"\nlow_stock_threshold = 0\nstock = {{ "WH-A" = {stock} }}\n\n'
        for n, sku in enumerate(BENCH_SKUS)
    )


def bench_order(n: int) -> dict[str, Any]:
    first, second = BENCH_SKUS[n % 4], BENCH_SKUS[(n // 4 + 1 + n) % 4]
    lines = [(first, 1)] if first == second else [(first, 1), (second, 1 + n % 2)]
    body: dict[str, Any] = order_body(lines, customer=f"bench-{n % 500}")
    return body


# ---------------------------------------------------------------- processes via /proc


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; the fields after it may not.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_mib(pid: int, key: str) -> float | None:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM), in MiB."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return None


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent not idle (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = values[3], values[4]
    # user nice system idle iowait irq softirq steal: steal (the hypervisor gave the core to
    # someone else) counts as busy; guest time is already inside user/nice.
    return (sum(values[:8]) - idle - iowait) / CLK_TCK


@dataclass
class CpuWindow:
    """CPU seconds of each watched process (and of the whole machine) over one interval."""

    pids: dict[str, int]
    started: float = 0.0
    start_cpu: dict[str, float] = field(default_factory=dict)
    start_busy: float = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.start_busy = machine_busy_seconds()
        self.start_cpu = {n: c for n, p in self.pids.items() if (c := cpu_seconds(p)) is not None}

    def cores(self) -> dict[str, float]:
        """Cores used (CPU-seconds per second) per process, plus everything else on the host."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        used: dict[str, float] = {}
        for name, pid in self.pids.items():
            now = cpu_seconds(pid)
            if now is not None and name in self.start_cpu:
                used[name] = round((now - self.start_cpu[name]) / elapsed, 3)
        busy = (machine_busy_seconds() - self.start_busy) / elapsed
        used[OTHER] = round(max(0.0, busy - sum(used.values())), 3)
        return used


@dataclass
class RssTracker:
    pids: dict[str, int]
    peak_mib: dict[str, float] = field(default_factory=dict)

    def sample(self) -> None:
        for name, pid in self.pids.items():
            rss = status_mib(pid, "VmRSS")
            if rss is not None:
                self.peak_mib[name] = round(max(rss, self.peak_mib.get(name, 0.0)), 1)

    async def run(self, interval_s: float = 0.5) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def tracking_rss(pids: dict[str, int]) -> AsyncIterator[RssTracker]:
    tracker = RssTracker(pids)
    task = asyncio.create_task(tracker.run())
    try:
        yield tracker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        tracker.sample()


# ------------------------------------------------------------------------- statistics


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 4)

    return {
        "count": len(ordered),
        "p50": r(percentile(ordered, 50)),
        "p95": r(percentile(ordered, 95)),
        "p99": r(percentile(ordered, 99)),
        "max": r(ordered[-1] if ordered else None),
        "mean": r(sum(ordered) / len(ordered) if ordered else None),
    }


def parse_time(value: str | None) -> float | None:
    """An API timestamp as epoch seconds; naive ones are UTC (how the services store them)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def hop_gaps(timeline: Sequence[Mapping[str, Any]]) -> list[tuple[str, float]]:
    """(event type, seconds since the event before it) along an order's timeline.

    Each gap is one hop of the saga: the previous event's outbox relay, the broker, the next
    service's consumer and its handler, up to the moment that handler emitted its event.
    """
    events = sorted(
        (t, entry["event_type"])
        for entry in timeline
        if (t := parse_time(entry.get("occurred_at"))) is not None
    )
    return [(name, t - before) for (before, _), (t, name) in itertools.pairwise(events)]


# ----------------------------------------------------------------------- the services


@dataclass(frozen=True)
class Scrape:
    """WATCHED_METRICS of one service (summed over labels) and when its answer arrived."""

    at: float  # time.monotonic()
    values: dict[str, float]

    def rate(self, earlier: Scrape, name: str) -> float:
        return (self.values[name] - earlier.values[name]) / max(self.at - earlier.at, 1e-9)


async def scrape(
    http: httpx.AsyncClient, pipeline: Pipeline, services: Sequence[str] = SERVICES
) -> dict[str, Scrape]:
    """Reads /metrics of `services` concurrently (each answer keeps its own arrival time)."""

    async def one(service: str) -> tuple[str, Scrape]:
        response = await http.get(pipeline.url(service) + "/metrics", follow_redirects=True)
        response.raise_for_status()
        sums: dict[str, float] = dict.fromkeys(WATCHED_METRICS, 0.0)
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name in sums:
                    sums[sample.name] += sample.value
        return service, Scrape(time.monotonic(), sums)

    return dict(await asyncio.gather(*(one(s) for s in services)))


def finished_orders(scrapes: Mapping[str, Scrape]) -> float:
    orders = scrapes["orders"].values
    return orders["orders_completed_total"] + orders["orders_cancelled_total"]


def open_orders(scrapes: Mapping[str, Scrape]) -> int:
    return int(scrapes["orders"].values["orders_placed_total"] - finished_orders(scrapes))


def wait_for_first_order(pipeline: Pipeline, body: dict[str, Any], timeout_s: float) -> str:
    """POSTs a probe order until the catalog has reached the gateway, then waits for COMPLETED."""
    http = pipeline.gateway()

    def place() -> str | None:
        response = http.post("/v1/orders", json=body)
        if response.status_code == 422 and "unknown SKU" in response.text:
            return None  # the catalog copy has not arrived yet
        if response.status_code != 202:
            raise RuntimeError(f"probe order refused: {response.status_code} {response.text}")
        order_id: str = response.json()["order_id"]
        return order_id

    def completed() -> bool:
        status = http.get(f"/v1/orders/{order_id}").json()["status"]
        if status == "CANCELLED":
            raise RuntimeError(f"probe order {order_id} was cancelled")
        return bool(status == "COMPLETED")

    with http:
        order_id = wait_until(place, timeout_s, "the gateway to accept a probe order", 0.25)
        wait_until(completed, timeout_s, f"probe order {order_id} to complete", 0.2)
    return order_id


BENCH_ENV = {
    "STOCK_DEADLINE": "PT1H",
    "PAYMENT_DEADLINE": "PT1H",
    "SHIPMENT_DEADLINE": "PT1H",
    "RATE_LIMIT": "1000000/second",
    "MAX_OPEN_ORDERS_PER_CUSTOMER": "1000000",
    "MAX_QUANTITY_PER_SKU": "100000000",
}

# -------------------------------------------------------------------------- rate step


@dataclass
class Sent:
    scheduled: float  # loop time the send was due; latencies count from here
    sent_at: float  # loop time the task was started (after any scheduling lag)
    responded_at: float | None = None
    status: int | None = None
    error: str | None = None
    order_id: str | None = None


@dataclass
class StepResult:
    offered_per_s: float
    duration_s: float
    sent: int
    send_rate_per_s: float
    max_send_lag_ms: float
    max_in_flight: int
    accepted: int
    accepted_in_window: int
    accepted_per_s: float
    errors: dict[str, int]
    post_latency_s: dict[str, float | None]
    backlog_at_start: int
    drained: bool
    drain_s: float
    unfinished_at_drain_end: int | None
    fetched: int
    completed: int
    cancelled: int
    completed_per_s: float | None
    completion_span_s: float | None
    latency_s: dict[str, float | None]
    latency_from_send_s: dict[str, float | None]
    hop_latency_s: dict[str, dict[str, float | None]]
    events_published_per_s: float
    events_consumed_per_s: float
    events_per_order: float | None
    per_service_published_per_s: dict[str, float]
    per_service_consumed_per_s: dict[str, float]
    consumer_lag_at_window_end: dict[str, int]
    outbox_backlog_at_window_end: dict[str, int]
    metrics_read_delay_s: dict[str, float]
    cores: dict[str, float]
    cores_incl_drain: dict[str, float]
    peak_rss_mib: dict[str, float]
    loadavg_1m_at_end: float


async def wait_for_orders(
    http: httpx.AsyncClient,
    pipeline: Pipeline,
    done: Callable[[Mapping[str, Scrape]], bool],
    deadline: float,
) -> tuple[bool, Mapping[str, Scrape] | None]:
    """Polls the gateway's counters until `done` or the (monotonic) deadline; never raises."""
    last: Mapping[str, Scrape] | None = None
    while True:
        with contextlib.suppress(httpx.HTTPError):
            last = await scrape(http, pipeline, ["orders"])
            if done(last):
                return True, last
        if time.monotonic() >= deadline:
            return False, last
        await asyncio.sleep(0.25)


async def fetch_orders(
    http: httpx.AsyncClient, order_ids: Sequence[str], concurrency: int, timeout_s: float
) -> dict[str, dict[str, Any]]:
    """GETs each order once, `concurrency` at a time, for at most `timeout_s` overall."""
    limit = asyncio.Semaphore(concurrency)

    async def one(order_id: str) -> dict[str, Any] | None:
        async with limit:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await http.get(f"/v1/orders/{order_id}")
                if response.status_code == 200:
                    order: dict[str, Any] = response.json()
                    return order
        return None

    tasks = [asyncio.create_task(one(order_id)) for order_id in order_ids]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout_s)
    orders: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task.done() and (order := task.result()) is not None:
            orders[order["order_id"]] = order
        else:
            task.cancel()
    return orders


@dataclass
class Offered:
    """What the open-loop sender did: one record per scheduled request."""

    t0: float  # loop time of the first send
    t0_wall: float  # the same moment, epoch seconds
    records: list[Sent] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    last_send: float = 0.0
    max_lag_s: float = 0.0
    max_in_flight: int = 0


async def offer_load(
    clients: Sequence[httpx.AsyncClient],
    bodies: Sequence[dict[str, Any]],
    rate: float,
    args: argparse.Namespace,
) -> Offered:
    """Open loop: POSTs bodies[i] at t0 + i/rate, never waiting for earlier responses.

    At most --connections requests are in flight; the others wait on an asyncio.Semaphore
    (which costs nothing, unlike queueing in httpx's pool). Each request gets
    --request-timeout from its scheduled time, queueing included. Returns once the last
    request is sent; its tasks are still running.
    """
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(args.connections)
    in_flight = 0
    offered = Offered(t0=loop.time(), t0_wall=time.time())

    async def send(record: Sent, body: dict[str, Any], http: httpx.AsyncClient) -> None:
        nonlocal in_flight
        try:
            async with asyncio.timeout_at(record.scheduled + args.request_timeout), slots:
                in_flight += 1
                offered.max_in_flight = max(offered.max_in_flight, in_flight)
                try:
                    response = await http.post("/v1/orders", json=body)
                finally:
                    in_flight -= 1
        except TimeoutError:
            record.error = "timeout"
        except httpx.HTTPError as exc:
            record.error = type(exc).__name__
        else:
            record.status = response.status_code
            if response.status_code == 202:
                record.order_id = response.json()["order_id"]
            else:
                record.error = f"HTTP {response.status_code}"
        record.responded_at = loop.time()

    for i, body in enumerate(bodies):
        target = offered.t0 + i / rate
        if (delay := target - loop.time()) > 0:
            await asyncio.sleep(delay)
        now = loop.time()
        offered.max_lag_s = max(offered.max_lag_s, now - target)
        record = Sent(scheduled=target, sent_at=now)
        offered.records.append(record)
        http = clients[i % len(clients)]
        offered.tasks.append(asyncio.create_task(send(record, body, http)))
    offered.last_send = loop.time()
    return offered


def completion_stats(
    orders: Mapping[str, Mapping[str, Any]],
    offered: Offered,
    deadline_wall: float,
) -> dict[str, Any]:
    """Completed count, rate and latencies of the orders that completed by `deadline_wall`."""
    scheduled_wall = {
        r.order_id: offered.t0_wall + (r.scheduled - offered.t0) for r in offered.records
    }
    latencies: list[float] = []
    from_send: list[float] = []
    hops: dict[str, list[float]] = {}
    completions: list[float] = []
    for order_id, order in orders.items():
        done_at = parse_time(order.get("completed_at"))
        placed_at = parse_time(order.get("placed_at"))
        if order["status"] != "COMPLETED" or done_at is None or placed_at is None:
            continue
        if done_at > deadline_wall:
            continue  # finished after the drain: not counted
        completions.append(done_at)
        latencies.append(done_at - placed_at)
        from_send.append(done_at - scheduled_wall[order_id])
        for event_type, gap in hop_gaps(order.get("timeline") or []):
            hops.setdefault(event_type, []).append(gap)
    span = (max(completions) - offered.t0_wall) if completions else None
    return {
        "completed": len(completions),
        "cancelled": sum(1 for o in orders.values() if o["status"] == "CANCELLED"),
        "completed_per_s": round(len(completions) / span, 1) if span else None,
        "completion_span_s": round(span, 2) if span else None,
        "latency_s": latency_summary(latencies),
        "latency_from_send_s": latency_summary(from_send),
        "hop_latency_s": {name: latency_summary(gaps) for name, gaps in hops.items()},
    }


def load_clients(gateway: str, api_key: str, args: argparse.Namespace) -> list[httpx.AsyncClient]:
    """Small pools rather than one big one for the load.

    httpcore scans every pooled connection (a poll() each) on every request event, so one
    pool of 64 made this process use 0.3-0.5 of the 2 cores the pipeline runs on; pools of
    POOL_SIZE connections keep it at a fraction of that.
    """
    limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    return [
        async_gateway_client(gateway, api_key, limits=limits, timeout=args.request_timeout)
        for _ in range(max(1, math.ceil(args.connections / POOL_SIZE)))
    ]


async def run_step(
    pipeline: Pipeline,
    pids: dict[str, int],
    rate: float,
    args: argparse.Namespace,
    first_n: int,
) -> StepResult:
    loop = asyncio.get_running_loop()  # its clock is time.monotonic(), as every deadline here
    gateway = pipeline.url("orders")
    async with contextlib.AsyncExitStack() as stack:
        api_key = pipeline.api_key()
        clients = [await stack.enter_async_context(c) for c in load_clients(gateway, api_key, args)]
        # Metrics and GETs get their own client so they never queue behind the load.
        side = await stack.enter_async_context(
            async_gateway_client(
                gateway, api_key, limits=httpx.Limits(max_connections=8), timeout=60
            )
        )
        rss = await stack.enter_async_context(tracking_rss(pids))
        settled, _ = await wait_for_orders(
            side, pipeline, lambda m: open_orders(m) <= 0, loop.time() + args.settle
        )
        backlog = 0 if settled else open_orders(await scrape(side, pipeline, ["orders"]))
        if backlog:
            log(f"  {backlog} orders of earlier steps still open; starting anyway")
        count = max(1, round(rate * args.duration))
        bodies = [bench_order(first_n + i) for i in range(count)]
        before = await scrape(side, pipeline)

        window, long_window = CpuWindow(pids), CpuWindow(pids)
        window.start()
        long_window.start()
        offered = await offer_load(clients, bodies, rate, args)
        window_end = offered.t0 + args.duration
        await asyncio.sleep(max(0.0, window_end - loop.time()))
        cores = window.cores()
        at_window_end = await scrape(side, pipeline)
        log(f"  window over; waiting for responses and the drain (up to {args.drain:g}s)")

        # Every request ends by its own deadline; late 202s still count as accepted.
        await asyncio.wait(offered.tasks, timeout=args.request_timeout + 5)
        for task in offered.tasks:
            task.cancel()
        accepted = [r for r in offered.records if r.order_id is not None]
        target_finished = finished_orders(before) + len(accepted)
        drained, after_drain = await wait_for_orders(
            side, pipeline, lambda m: finished_orders(m) >= target_finished, window_end + args.drain
        )
        drain_end = loop.time()
        cores_incl_drain = long_window.cores()
        after = at_window_end
        with contextlib.suppress(httpx.HTTPError):
            after = await scrape(side, pipeline)
        # One read per accepted order, after the drain: no polling while the load runs.
        orders = await fetch_orders(
            side, [r.order_id for r in accepted if r.order_id], args.fetch_concurrency,
            args.fetch_timeout,
        )  # fmt: skip

    records = offered.records
    in_window = [r for r in accepted if r.responded_at is not None and r.responded_at <= window_end]
    post_latencies = [r.responded_at - r.scheduled for r in accepted if r.responded_at is not None]
    errors = Counter(r.error or "no response" for r in records if r.order_id is None)

    def window_rate(metric: str) -> dict[str, float]:
        return {s: round(at_window_end[s].rate(before[s], metric), 1) for s in SERVICES}

    def window_end_value(metric: str) -> dict[str, int]:
        return {s: int(at_window_end[s].values[metric]) for s in SERVICES}

    published = window_rate("pipeline_messages_published_total")
    consumed = window_rate("pipeline_messages_consumed_total")
    published_in_step = sum(
        after[s].values["pipeline_messages_published_total"]
        - before[s].values["pipeline_messages_published_total"]
        for s in SERVICES
    )
    finished_in_step = finished_orders(after) - finished_orders(before)
    sent_span = offered.last_send - offered.t0
    return StepResult(
        offered_per_s=rate,
        duration_s=args.duration,
        sent=len(records),
        send_rate_per_s=round((len(records) - 1) / sent_span, 1) if sent_span > 0 else rate,
        max_send_lag_ms=round(offered.max_lag_s * 1000, 1),
        max_in_flight=offered.max_in_flight,
        accepted=len(accepted),
        accepted_in_window=len(in_window),
        accepted_per_s=round(len(in_window) / args.duration, 1),
        errors=dict(errors),
        post_latency_s=latency_summary(post_latencies),
        backlog_at_start=backlog,
        drained=drained,
        drain_s=round(max(0.0, drain_end - window_end), 2),
        unfinished_at_drain_end=max(0, int(target_finished - finished_orders(after_drain)))
        if after_drain
        else None,
        fetched=len(orders),
        **completion_stats(orders, offered, offered.t0_wall + (drain_end - offered.t0)),
        events_published_per_s=round(sum(published.values()), 1),
        events_consumed_per_s=round(sum(consumed.values()), 1),
        events_per_order=round(published_in_step / finished_in_step, 2)
        if finished_in_step
        else None,
        per_service_published_per_s=published,
        per_service_consumed_per_s=consumed,
        consumer_lag_at_window_end=window_end_value("pipeline_consumer_lag"),
        outbox_backlog_at_window_end=window_end_value("pipeline_outbox_backlog_rows"),
        metrics_read_delay_s={s: round(at_window_end[s].at - window_end, 2) for s in SERVICES},
        cores=cores,
        cores_incl_drain=cores_incl_drain,
        peak_rss_mib=dict(rss.peak_mib),
        loadavg_1m_at_end=round(os.getloadavg()[0], 2),
    )


# --------------------------------------------------------------- Kafka's perf tools

PRODUCER_RESULT = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99.9th"
)


def parse_producer_performance(output: str) -> dict[str, float]:
    matches = list(PRODUCER_RESULT.finditer(output))
    if not matches:
        raise RuntimeError(f"no final ProducerPerformance line in:\n{output[-2000:]}")
    m = matches[-1]
    return {
        "records": int(m["records"]),
        "records_per_s": float(m["rps"]),
        "mb_per_s": float(m["mbps"]),
        "avg_latency_ms": float(m["avg"]),
        "max_latency_ms": float(m["max"]),
        "p50_ms": int(m["p50"]),
        "p95_ms": int(m["p95"]),
        "p99_ms": int(m["p99"]),
        "p999_ms": int(m["p999"]),
    }


def parse_consumer_performance(output: str) -> dict[str, float]:
    """The CSV-ish result: a header line starting with start.time, then one line of values."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if line.startswith("start.time"):
            keys = [k.strip() for k in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            row = dict(zip(keys, values, strict=False))
            return {
                "mb": float(row["data.consumed.in.MB"]),
                "mb_per_s": float(row["MB.sec"]),
                "records": int(row["data.consumed.in.nMsg"]),
                "records_per_s": float(row["nMsg.sec"]),
                "rebalance_ms": float(row["rebalance.time.ms"]),
                "fetch_ms": float(row["fetch.time.ms"]),
                "fetch_records_per_s": float(row["fetch.nMsg.sec"]),
            }
    raise RuntimeError(f"no ConsumerPerformance result in:\n{output[-2000:]}")


async def run_java_tool(
    main_class: str, tool_args: Sequence[str], broker_pid: int | None, timeout_s: float
) -> tuple[str, dict[str, float]]:
    """Runs a Kafka main class with the cached jars; returns its output and CPU use."""
    ctl = kafkactl()
    cmd = [
        ctl.check_java(),
        f"-Dlog4j2.configurationFile={ctl.TOOLS_LOG4J2_CONFIG}",
        "-cp",
        str(ctl.fetch() / "*"),
        main_class,
        *tool_args,
    ]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    broker_before = cpu_seconds(broker_pid) if broker_pid else None
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    watched = {"tool": process.pid, **({BROKER: broker_pid} if broker_pid else {})}
    try:
        async with tracking_rss(watched) as rss:
            out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    elapsed = time.monotonic() - started
    broker_after = cpu_seconds(broker_pid) if broker_pid else None
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{main_class} exited with {process.returncode}:\n{text[-3000:]}")
    # The tool is our only child that exits meanwhile (the services were stopped before).
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tool_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    usage = {"wall_s": round(elapsed, 2), "tool_cores": round(tool_cpu / elapsed, 3)}
    if "tool" in rss.peak_mib:
        usage["tool_peak_rss_mib"] = rss.peak_mib["tool"]
    if broker_before is not None and broker_after is not None:
        usage["broker_cores"] = round((broker_after - broker_before) / elapsed, 3)
        usage["broker_peak_rss_mib"] = rss.peak_mib.get(BROKER, 0.0)
    return text, usage


async def create_perf_topic(bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if PERF_TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(PERF_TOPIC, PERF_PARTITIONS, 1)])
    finally:
        await admin.close()
    # ListOffsets is answered only by an acting leader: once it is, producers find leaders.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(PERF_TOPIC, p) for p in range(PERF_PARTITIONS)]
        await asyncio.wait_for(consumer.end_offsets(partitions), 60)
    finally:
        await consumer.stop()


async def kafka_perf(
    bootstrap: str, broker_pid: int | None, args: argparse.Namespace
) -> dict[str, Any]:
    await create_perf_topic(bootstrap)
    results: dict[str, Any] = {"topic": PERF_TOPIC, "partitions": PERF_PARTITIONS}

    async def producer(records: int) -> dict[str, Any]:
        tool_args = [
            "--topic", PERF_TOPIC, "--num-records", str(records),
            "--record-size", str(args.record_size), "--throughput", "-1",
            "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
        ]  # fmt: skip
        text, usage = await run_java_tool(
            "org.apache.kafka.tools.ProducerPerformance", tool_args, broker_pid, args.perf_timeout
        )
        return {**parse_producer_performance(text), **usage}

    async def consumer(records: int) -> dict[str, Any]:
        tool_args = [
            "--bootstrap-server", bootstrap, "--topic", PERF_TOPIC,
            "--messages", str(records), "--group", f"bench-{uuid.uuid4()}", "--timeout", "30000",
        ]  # fmt: skip
        text, usage = await run_java_tool(
            "org.apache.kafka.tools.ConsumerPerformance", tool_args, broker_pid, args.perf_timeout
        )
        return {**parse_consumer_performance(text), **usage}

    if args.perf_warmup:
        log(f"ProducerPerformance warm-up: {args.perf_warmup} records")
        results["producer_warmup"] = await producer(args.perf_warmup)
    log(f"ProducerPerformance: {args.perf_records} records of {args.record_size} B, acks=all")
    results["producer"] = await producer(args.perf_records)
    if args.perf_warmup:
        log(f"ConsumerPerformance warm-up: {args.perf_warmup} records")
        results["consumer_warmup"] = await consumer(args.perf_warmup)
    log(f"ConsumerPerformance: {args.perf_records} records")
    results["consumer"] = await consumer(args.perf_records)
    return results


# ---------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


Column = tuple[str, Callable[[Mapping[str, Any]], object]]

RATE_COLUMNS: list[Column] = [
    ("offered/s", lambda s: s["offered_per_s"]),
    ("sent/s", lambda s: s["send_rate_per_s"]),
    ("accepted/s", lambda s: s["accepted_per_s"]),
    ("errors", lambda s: sum(s["errors"].values())),
    ("completed/s", lambda s: s["completed_per_s"]),
    ("e2e p50", lambda s: ms(s["latency_s"]["p50"])),
    ("e2e p95", lambda s: ms(s["latency_s"]["p95"])),
    ("e2e p99", lambda s: ms(s["latency_s"]["p99"])),
    ("e2e max", lambda s: ms(s["latency_s"]["max"])),
    ("POST p50", lambda s: ms(s["post_latency_s"]["p50"])),
    ("POST p99", lambda s: ms(s["post_latency_s"]["p99"])),
    ("events/s", lambda s: s["events_published_per_s"]),
]
DETAIL_COLUMNS: list[Column] = [
    ("offered/s", lambda s: s["offered_per_s"]),
    ("accepted", lambda s: s["accepted"]),
    ("in window", lambda s: s["accepted_in_window"]),
    ("errors", lambda s: ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "0"),
    ("drain s", lambda s: s["drain_s"]),
    ("unfinished", lambda s: s["unfinished_at_drain_end"]),
    ("completed", lambda s: s["completed"]),
    ("span s", lambda s: s["completion_span_s"]),
    ("events/order", lambda s: s["events_per_order"]),
    ("send->done p50", lambda s: ms(s["latency_from_send_s"]["p50"])),
    ("send->done p99", lambda s: ms(s["latency_from_send_s"]["p99"])),
    ("send lag ms", lambda s: s["max_send_lag_ms"]),
    ("backlog at start", lambda s: s["backlog_at_start"]),
]
PERF_COLUMNS: list[Column] = [
    ("records", lambda r: r["records"]),
    ("records/s", lambda r: r["records_per_s"]),
    ("MB/s", lambda r: r["mb_per_s"]),
    ("tool cores", lambda r: r["tool_cores"]),
    ("broker cores", lambda r: r.get("broker_cores")),
    ("tool RSS", lambda r: r.get("tool_peak_rss_mib")),
    ("broker RSS", lambda r: r.get("broker_peak_rss_mib")),
    ("wall s", lambda r: r["wall_s"]),
]


def columns_table(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> str:
    return table([h for h, _ in columns], [[get(row) for _, get in columns] for row in rows])


def report(results: Mapping[str, Any]) -> str:
    steps: list[dict[str, Any]] = results["steps"]
    machine, code = results["machine"], results["code"]
    dirty = f" + {len(code['modified'])} modified files" if code["modified"] else ""
    parts = [
        f"Benchmark {results['started_at']} on {machine['cpu_count']} cores "
        f"({machine['cpu_model']}), Kafka {machine['kafka_version']}, "
        f"commit {code['commit']}{dirty}",
        "",
        "Offered load (latencies in ms; e2e = the order's placed_at -> completed_at):",
        columns_table(RATE_COLUMNS, steps),
    ]
    if steps:
        names = list(steps[0]["cores"])
        cpu_rows = [
            [
                name,
                *(s["cores"].get(name) for s in steps),
                None if name == OTHER else max(s["peak_rss_mib"].get(name, 0.0) for s in steps),
            ]
            for name in names
        ]
        lag_rows = [
            [s["offered_per_s"], *(s["consumer_lag_at_window_end"][n] for n in SERVICES)]
            for s in steps
        ]
        parts += [
            "",
            "CPU cores used in each sending window (CPU-s per s), peak RSS over all steps (MiB):",
            table(["process", *(f"@{s['offered_per_s']:g}/s" for s in steps), "RSS"], cpu_rows),
            "",
            "Consumer lag at the end of each sending window (messages behind, all partitions):",
            table(["offered/s", *SERVICES], lag_rows),
            "",
            "Per step details:",
            columns_table(DETAIL_COLUMNS, steps),
        ]
        hop_names = list(dict.fromkeys(h for s in steps for h in s["hop_latency_s"]))
        hop_rows = [
            [
                name,
                *(
                    f"{ms(hop.get('p50'))} / {ms(hop.get('p99'))}"
                    for s in steps
                    for hop in [s["hop_latency_s"].get(name, {})]
                ),
            ]
            for name in hop_names
        ]
        parts += [
            "",
            "Saga hops (ms since the previous event on the order's timeline, p50 / p99):",
            table(["event", *(f"@{s['offered_per_s']:g}/s" for s in steps)], hop_rows),
        ]
    perf = results.get("kafka_perf") or {}
    runs = [(name, perf[key]) for key, name in PERF_RUNS if key in perf]
    if runs:
        parts += [
            "",
            f"Kafka perf tools on the same broker ({PERF_TOPIC}, {PERF_PARTITIONS} partitions, "
            f"{results['args']['record_size']} B records, services stopped):",
            table(
                ["run", *(h for h, _ in PERF_COLUMNS)],
                [[name, *(get(run) for _, get in PERF_COLUMNS)] for name, run in runs],
            ),
        ]
        if producer := perf.get("producer"):
            parts.append(
                f"ProducerPerformance latency: avg {producer['avg_latency_ms']:g} ms, "
                f"p50 {producer['p50_ms']} ms, p99 {producer['p99_ms']} ms, "
                f"max {producer['max_latency_ms']:g} ms"
            )
        if consumer := perf.get("consumer"):
            parts.append(
                f"ConsumerPerformance: {consumer['fetch_records_per_s']:,.0f} records/s "
                f"excluding the {consumer['rebalance_ms']:g} ms group join"
            )
    if summary := results.get("summary"):
        parts += ["", summary["text"]]
    if results.get("error"):
        parts += ["", f"ERROR: {results['error']}"]
    return "\n".join(parts)


def summarise(results: dict[str, Any]) -> None:
    steps = results["steps"]
    if not steps:
        return
    best = max(steps, key=lambda s: s["events_published_per_s"])
    best_completed = max(steps, key=lambda s: s["completed_per_s"] or 0.0)
    summary: dict[str, Any] = {
        "best_step_offered_per_s": best["offered_per_s"],
        "pipeline_events_per_s": best["events_published_per_s"],
        "max_completed_orders_per_s": best_completed["completed_per_s"],
    }
    text = (
        f"Pipeline: at most {best_completed['completed_per_s']} completed orders/s "
        f"(offered {best_completed['offered_per_s']:g}/s); {best['events_published_per_s']:,.0f} "
        f"events/s published at offered {best['offered_per_s']:g}/s"
    )
    producer = (results.get("kafka_perf") or {}).get("producer")
    if producer:
        fraction = best["events_published_per_s"] / producer["records_per_s"]
        summary["producer_perf_records_per_s"] = producer["records_per_s"]
        summary["pipeline_fraction_of_broker"] = round(fraction, 4)
        text += (
            f", i.e. {fraction:.1%} of the {producer['records_per_s']:,.0f} records/s "
            "ProducerPerformance pushed through the same broker"
        )
    summary["text"] = text + "."
    results["summary"] = summary


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_mib = meminfo_mib("MemTotal")
    java = "unknown"
    with contextlib.suppress(Exception):
        proc = subprocess.run(
            [kafkactl().java_executable(), "-version"], capture_output=True, text=True, timeout=30
        )
        java = (proc.stderr or proc.stdout).splitlines()[0]
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_mib": mem_mib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": java,
        "kafka_version": kafkactl().kafka_version(),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def code_version() -> dict[str, Any]:
    """The commit measured and the files that differed from it (the services run from here)."""

    def git(*git_args: str) -> str:
        proc = subprocess.run(
            ["git", *git_args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
        )
        return proc.stdout.rstrip() if proc.returncode == 0 else ""

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        status = git("status", "--porcelain", "--untracked-files=no")
        return {
            "commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "modified": [line[3:] for line in status.splitlines()],
        }
    return {"commit": "unknown", "modified": []}


def meminfo_mib(key: str) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


# ------------------------------------------------------------------------------ main


async def measure(
    pipeline: Pipeline,
    bootstrap: str,
    broker_pid: int | None,
    args: argparse.Namespace,
    results: dict[str, Any],
    deadline: float,
) -> None:
    pids = {**pipeline.pids(), CLIENT: os.getpid()}
    if broker_pid:
        pids[BROKER] = broker_pid
    first_n = 0
    if args.warmup > 0:
        log(f"warm-up (not measured): {args.warmup_rate:g} orders/s for {args.warmup:g}s")
        warmup_args = argparse.Namespace(**{**vars(args), "duration": args.warmup})
        warm = await run_step(pipeline, pids, args.warmup_rate, warmup_args, first_n)
        first_n += warm.sent
        results["warmup"] = dataclasses.asdict(warm)
    # A step rarely needs all of its bounds; the perf tools need about a minute.
    step_budget = args.duration + args.drain + args.settle + args.fetch_timeout / 4
    perf_budget = 60.0 if args.perf_records > 0 else 0.0
    for rate in args.rates:
        if time.monotonic() + step_budget + perf_budget > deadline:
            log(f"skipping {rate:g}/s and later: not enough time left (--time-limit)")
            results["skipped_rates"] = [r for r in args.rates if r >= rate]
            break
        log(f"step: {rate:g} orders/s offered for {args.duration:g}s")
        step = await run_step(pipeline, pids, rate, args, first_n)
        first_n += step.sent
        results["steps"].append(dataclasses.asdict(step))
        log(
            f"  accepted {step.accepted_per_s}/s, completed {step.completed_per_s}/s, "
            f"e2e p50 {ms(step.latency_s['p50'])} ms p99 {ms(step.latency_s['p99'])} ms, "
            f"errors {sum(step.errors.values())}, unfinished {step.unfinished_at_drain_end}"
        )
    results["final_vmhwm_mib"] = {
        name: status_mib(pid, "VmHWM") for name, pid in pids.items() if name != CLIENT
    }
    if args.perf_records <= 0:
        return
    log("stopping the services before Kafka's perf tools")
    pipeline.stop()
    results["kafka_perf"] = await kafka_perf(bootstrap, broker_pid, args)


def rates(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("give positive rates, e.g. 50,100,200,400")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark the order pipeline end to end on a real Kafka broker.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--rates", type=rates, default=rates("50,100,200,400"), help="offered orders/s, a step each"
    )
    add("--duration", type=float, default=20.0, help="seconds of sending per step")
    add("--warmup", type=float, default=10.0, help="unmeasured warm-up seconds; 0: none")
    add("--warmup-rate", type=float, default=20.0, help="orders/s of the warm-up")
    add("--drain", type=float, default=30.0, help="max s after a window for its orders to finish")
    add("--settle", type=float, default=30.0, help="max s before a step for earlier orders")
    add("--connections", type=int, default=64, help="max requests in flight (pool size)")
    add("--request-timeout", type=float, default=30.0, help="per request, s")
    add("--fetch-concurrency", type=int, default=16, help="GETs at once when reading orders")
    add("--fetch-timeout", type=float, default=120.0, help="bound on reading a step's orders, s")
    add("--perf-records", type=int, default=300_000, help="per Kafka perf tool; 0 skips them")
    add("--perf-warmup", type=int, default=50_000, help="warm-up records per perf tool; 0: none")
    add("--record-size", type=int, default=300, help="ProducerPerformance record bytes")
    add("--perf-timeout", type=float, default=180.0, help="per perf tool run, s")
    add("--time-limit", type=float, default=900.0, help="whole run, s; steps that won't fit skip")
    add("--out", type=Path, default=None, help="JSON file (bench-results/bench-<time>.json)")
    add("--keep-work-dir", action="store_true", help="keep broker data and service logs")
    return parser


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_everything(pipeline: Pipeline | None, broker: Any) -> None:
    """Services first (they flush to the broker), then the broker; a second Ctrl-C kills."""
    try:
        if pipeline is not None:
            try:
                pipeline.stop()
            except KeyboardInterrupt:
                pipeline.stop(kill=True)
    finally:
        if broker is not None:
            try:
                broker.stop()
            except KeyboardInterrupt:
                broker.stop(timeout=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    deadline = started + args.time_limit
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out or REPO_ROOT / "bench-results" / f"bench-{stamp}.json"
    work_dir = Path(tempfile.mkdtemp(prefix="order-pipeline-bench-"))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(),
        "code": code_version(),
        "work_dir": str(work_dir),
        "steps": [],
    }
    ctl = kafkactl()
    broker: Any = None
    pipeline: Pipeline | None = None
    failed = False
    with sigterm_as_interrupt():
        try:
            controller_port, port = ctl.free_ports(2)
            broker = ctl.EmbeddedBroker(
                work_dir / "kafka", port=port, controller_port=controller_port, heap="768m"
            )
            log(f"starting Kafka in {work_dir / 'kafka'}")
            bootstrap: str = broker.start()
            ctl.create_topics(bootstrap)
            broker_pid: int | None = broker.status().pid
            seed = work_dir / "bench-catalog.toml"
            seed.write_text(bench_catalog())
            pipeline = Pipeline(
                work_dir / "pipeline",
                bootstrap,
                # Overloaded steps queue minutes of backlog: the saga's deadlines would cancel
                # the tail and mix compensation into a capacity measurement, and one bench
                # client offers far more than a storefront's limits allow.
                env={"CATALOG_SEED_PATH": str(seed), **BENCH_ENV},
            )
            log(f"starting the five services (logs in {pipeline.work_dir})")
            pipeline.start()
            probe = wait_for_first_order(pipeline, bench_order(0), 90)
            log(f"probe order {probe} completed; the pipeline is warm")
            results["setup_s"] = round(time.monotonic() - started, 1)
            remaining = deadline - time.monotonic()
            asyncio.run(
                asyncio.wait_for(
                    measure(pipeline, bootstrap, broker_pid, args, results, deadline), remaining
                )
            )
        except KeyboardInterrupt:
            failed = True
            results["error"] = "interrupted"
            log("interrupted; stopping everything")
        except Exception as exc:
            failed = True
            if isinstance(exc, TimeoutError) and time.monotonic() >= deadline:
                results["error"] = f"--time-limit of {args.time_limit:g}s reached"
            else:
                results["error"] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            log(f"failed: {results['error']}")
        finally:
            stop_everything(pipeline, broker)
    results["total_s"] = round(time.monotonic() - started, 1)
    summarise(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"\nresults: {out}")
    if failed or args.keep_work_dir:
        log(f"work dir kept: {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
