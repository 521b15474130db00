"""What the integration scenarios share: placing orders, waiting, reading each service's tables."""

from __future__ import annotations

import asyncio
import functools
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import Engine

import fulfillment.contracts
import inventory.contracts
import notifications.contracts
import orders.contracts
import payments.contracts
from kit.avro_codec import SchemaStore
from kit.database import create_database_engine
from kit.envelope import header_map
from kit.settings import REPO_ROOT
from kit.testing.gateway import async_gateway_client
from kit.testing.pipeline import Pipeline, wait_until
from kit.testing.servers import kafkactl

SCHEMAS = SchemaStore.load(REPO_ROOT / "schemas")
CONSUMED_TOPICS = {
    "orders": orders.contracts.CONSUMES_TOPICS,
    "inventory": inventory.contracts.CONSUMES_TOPICS,
    "payments": payments.contracts.CONSUMES_TOPICS,
    "fulfillment": fulfillment.contracts.CONSUMES_TOPICS,
    "notifications": notifications.contracts.CONSUMES_TOPICS,
}
EVENT_TOPICS = (
    "orders.events",
    "orders.commands",
    "inventory.events",
    "payments.events",
    "fulfillment.events",
    "notifications.events",
)
PARTITIONS = {spec.name: spec.partitions for spec in kafkactl().load_topics()}

# Where an order can end; "settled" adds that it waits for no acknowledgement any more.
TERMINAL = frozenset({"COMPLETED", "CANCELLED", "RETURNED"})
# The goods reached the customer: what these orders hold has left the warehouse.
DELIVERED = frozenset({"COMPLETED", "RETURN_REQUESTED", "RETURNING", "RETURNED"})

TEST_CATALOG = """
[[item]]
sku = "T-MUG"
name = "Test mug"
unit_price = 1000
currency = "EUR"
low_stock_threshold = 0
stock = { "WH-A" = 400, "WH-B" = 400 }

[[item]]
sku = "T-TEE"
name = "Test tee"
unit_price = 2500
currency = "EUR"
low_stock_threshold = 0
stock = { "WH-A" = 1000 }

[[item]]
sku = "T-RARE"
name = "Rare test item"
unit_price = 9900
currency = "EUR"
low_stock_threshold = 0
stock = { "WH-A" = 1 }

# The mixed run's own SKUs, so its outcomes do not depend on what other scenarios sold.
[[item]]
sku = "T-MIX-CAP"
name = "Mixed-run cap"
unit_price = 1500
currency = "EUR"
low_stock_threshold = 0
stock = { "WH-A" = 2000, "WH-B" = 2000 }

[[item]]
sku = "T-MIX-SOCK"
name = "Mixed-run socks"
unit_price = 700
currency = "EUR"
low_stock_threshold = 0
stock = { "WH-B" = 4000 }

[[item]]
sku = "T-MIX-SCARCE"
name = "Mixed-run scarce lamp"
unit_price = 4200
currency = "EUR"
low_stock_threshold = 0
stock = { "WH-A" = 20, "WH-B" = 10 }
"""


def catalog_stock(catalog: str = TEST_CATALOG) -> Counter[str]:
    """Units per SKU the seed puts on the shelves, over every warehouse."""
    stock = Counter[str]()
    for item in tomllib.loads(catalog)["item"]:
        stock[item["sku"]] += sum(item.get("stock", {}).values())
    return stock


def problem_type(response: httpx.Response) -> str:
    """The last segment of a problem+json `type`, e.g. "cancel-too-late"."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    kind: str = response.json()["type"]
    return kind.rsplit("/", 1)[-1]


@dataclass
class PipelineClient:
    pipeline: Pipeline
    _engines: dict[str, Engine] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return self.pipeline.url("orders")

    @functools.cached_property
    def http(self) -> httpx.Client:
        """The gateway as storefront client `storefront-1` sees it (API key, Idempotency-Key)."""
        return self.pipeline.gateway()

    def async_http(self, **options: Any) -> httpx.AsyncClient:
        return async_gateway_client(self.gateway, self.pipeline.api_key(), **options)

    def wait_catalog(self, timeout_s: float = 60) -> None:
        """Until the orders service knows every seeded SKU (inventory publishes them at start)."""
        skus = set(catalog_stock())

        def known() -> bool:
            return skus <= {sku for (sku,) in self.query("orders", "SELECT sku FROM catalog_items")}

        wait_until(known, timeout_s, "the catalog to reach the orders service")

    def place(self, body: dict[str, Any]) -> dict[str, Any]:
        """Places one order, waiting first (bounded) for the catalog to reach the gateway."""

        def attempt() -> dict[str, Any] | None:
            response = self.http.post("/v1/orders", json=body)
            if response.status_code == 422 and "unknown SKU" in response.text:
                return None  # the catalog copy has not arrived yet
            assert response.status_code == 202, response.text
            order: dict[str, Any] = response.json()
            return order

        return wait_until(attempt, 60, "the gateway to accept an order")

    async def place_concurrently(
        self, bodies: Sequence[dict[str, Any]], concurrency: int = 50
    ) -> list[str]:
        limit = asyncio.Semaphore(concurrency)
        async with self.async_http() as http:

            async def one(body: dict[str, Any]) -> str:
                async with limit:
                    response = await http.post("/v1/orders", json=body)
                assert response.status_code == 202, response.text
                order_id: str = response.json()["order_id"]
                return order_id

            return list(await asyncio.gather(*(one(body) for body in bodies)))

    def order(self, order_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/orders/{order_id}")
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        return order

    def cancel(self, order_id: str) -> httpx.Response:
        return self.http.post(f"/v1/orders/{order_id}/cancel")

    def request_return(
        self, order_id: str, lines: Sequence[tuple[str, int]], reason: str = "changed my mind"
    ) -> httpx.Response:
        body = {
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
            "reason": reason,
        }
        return self.http.post(f"/v1/orders/{order_id}/returns", json=body)

    def receive_return(
        self, return_id: str, lines: Sequence[tuple[str, int]] | None = None
    ) -> httpx.Response:
        """The warehouse records a parcel; without `lines`, exactly what the label authorized."""
        body = (
            None
            if lines is None
            else {"lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines]}
        )
        return httpx.post(
            f"{self.pipeline.url('fulfillment')}/v1/returns/{return_id}/received",
            json=body,
            timeout=10,
        )

    def warehouse_return(self, return_id: str) -> httpx.Response:
        return httpx.get(f"{self.pipeline.url('fulfillment')}/v1/returns/{return_id}", timeout=10)

    def wait_order(
        self,
        order_id: str,
        condition: Callable[[dict[str, Any]], bool],
        what: str,
        timeout_s: float = 60,
    ) -> dict[str, Any]:
        """The order as soon as `condition` holds for it."""

        def attempt() -> dict[str, Any] | None:
            order = self.order(order_id)
            return order if condition(order) else None

        return wait_until(attempt, timeout_s, f"order {order_id} to be {what}", interval_s=0.1)

    def wait_status(self, order_id: str, *statuses: str, timeout_s: float = 60) -> dict[str, Any]:
        return self.wait_order(
            order_id, lambda o: o["status"] in statuses, " or ".join(statuses), timeout_s
        )

    def wait_awaiting(
        self, order_id: str, status: str, awaiting: Iterable[str], timeout_s: float = 60
    ) -> dict[str, Any]:
        """The order once it is in `status` waiting for exactly the `awaiting` acknowledgements."""
        expected = sorted(awaiting)
        return self.wait_order(
            order_id,
            lambda o: o["status"] == status and sorted(o["awaiting"]) == expected,
            f"{status} awaiting {expected}",
            timeout_s,
        )

    def wait_settled(
        self, order_ids: Iterable[str], timeout_s: float = 120
    ) -> dict[str, dict[str, Any]]:
        """Every order terminal and waiting for no acknowledgement."""
        pending = set(order_ids)
        done: dict[str, dict[str, Any]] = {}

        def all_settled() -> bool:
            for order_id in list(pending):
                order = self.order(order_id)
                if order["status"] in TERMINAL and not order["awaiting"]:
                    done[order_id] = order
                    pending.discard(order_id)
            return not pending

        try:
            wait_until(all_settled, timeout_s, "orders to settle", interval_s=0.2)
        except TimeoutError as error:
            stuck = [self.order(o) for o in sorted(pending)[:10]]
            described = [f"{o['order_id']} {o['status']} awaiting {o['awaiting']}" for o in stuck]
            raise TimeoutError(f"{len(pending)} orders did not settle: {described}") from error
        return done

    def wait_terminal(
        self, order_ids: Iterable[str], timeout_s: float = 120
    ) -> dict[str, dict[str, Any]]:
        pending = set(order_ids)
        done: dict[str, dict[str, Any]] = {}

        def all_terminal() -> bool:
            for order_id in list(pending):
                order = self.order(order_id)
                if order["status"] in TERMINAL:
                    done[order_id] = order
                    pending.discard(order_id)
            return not pending

        wait_until(all_terminal, timeout_s, f"{len(pending)} orders to finish", interval_s=0.5)
        return done

    def query(self, service: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Reads a service's own database (SQLite or PostgreSQL), as its operator could.

        `?` placeholders are turned into the driver's own style."""
        engine = self._engines.get(service)
        if engine is None:
            engine = self._engines[service] = create_database_engine(
                self.pipeline.database_urls[service]
            )
        if engine.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        with engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(sql, tuple(params))]

    def execute(self, service: str, sql: str, *params: Any) -> None:
        """Writes to a service's database: only for tests that prove a check notices damage."""
        self.query(service, "SELECT 1")  # the engine, created once
        engine = self._engines[service]
        if engine.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        with engine.begin() as connection:
            connection.exec_driver_sql(sql, tuple(params))

    def stock(self) -> dict[str, tuple[int, int]]:
        rows = self.query(
            "inventory", "SELECT sku, SUM(on_hand), SUM(reserved) FROM stock_levels GROUP BY sku"
        )
        return {sku: (on_hand, reserved) for sku, on_hand, reserved in rows}


class ServiceControl:
    """Stops, starts and reconfigures services of the shared pipeline for one scenario.

    `restore()` (the `services` fixture calls it whatever the outcome) starts every service
    the scenario left stopped and restarts those it reconfigured with their defaults, so the
    next scenario finds the pipeline as the session built it."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._stopped: set[str] = set()
        self._reconfigured: set[str] = set()

    def stop(self, service: str, *, kill: bool = False) -> None:
        self._stopped.add(service)
        self.pipeline.stop(service, kill=kill)

    def start(self, service: str) -> None:
        self.pipeline.start(service)
        self._stopped.discard(service)

    def restart(
        self, service: str, env: dict[str, str] | None = None, *, kill: bool = False
    ) -> None:
        """Restarts `service` with `env` over the defaults (kept until `restore`)."""
        self._reconfigured.add(service)
        self.pipeline.restart(service, env=env, kill=kill)
        self._stopped.discard(service)

    def restore(self) -> None:
        for service in sorted(self._reconfigured):
            self.pipeline.restart(service)
        for service in sorted(self._stopped - self._reconfigured):
            if not self.pipeline.running(service):
                self.pipeline.start(service)
        self._stopped.clear()
        self._reconfigured.clear()


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of a topic from the start, without joining any consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS[topic])]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, start in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, start)
        records: list[Any] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


def decoded_events(records: Iterable[Any]) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    events = []
    for record in records:
        if record.value is None:  # a dead-letter release record (`pipeline dlq purge`)
            continue
        try:
            event_type, payload = SCHEMAS.decode(record.value)
        except ValueError:
            continue
        events.append((event_type, payload, header_map(record.headers)))
    return events


async def lagging_groups(bootstrap: str) -> list[str]:
    """Where a service's group has not yet committed up to the end of a topic it reads."""
    lagging, _ = await consumer_positions(bootstrap)
    return lagging


async def consumer_positions(bootstrap: str) -> tuple[list[str], dict[str, int]]:
    """Where groups lag behind, and the end offset of every pipeline topic's partition.

    The ends are read once, before the groups' offsets: a group is reported lagging if it
    had not committed what the topic held when this call began."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        every_partition = [
            TopicPartition(topic, p) for topic in EVENT_TOPICS for p in range(PARTITIONS[topic])
        ]
        consumer.assign(every_partition)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(every_partition)
        lagging: list[str] = []
        for group, topics in CONSUMED_TOPICS.items():
            partitions = [tp for tp in every_partition if tp.topic in topics]
            if not partitions:
                return [f"{group}: no partitions known yet"], {}
            committed = await admin.list_consumer_group_offsets(group)
            for tp in partitions:
                position = committed[tp].offset if tp in committed else 0
                if position < ends[tp]:
                    lagging.append(
                        f"{group} {tp.topic}[{tp.partition}] at {position} of {ends[tp]}"
                    )
        return lagging, {f"{tp.topic}[{tp.partition}]": end for tp, end in ends.items()}
    finally:
        await consumer.stop()
        await admin.close()


async def wait_caught_up(bootstrap: str, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while lagging := await lagging_groups(bootstrap):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"consumer groups did not catch up: {lagging[:10]}")
        await asyncio.sleep(0.3)
