"""What the integration scenarios share: placing orders, waiting, reading each service's tables."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
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
"""


@dataclass
class PipelineClient:
    pipeline: Pipeline
    _engines: dict[str, Engine] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return self.pipeline.url("orders")

    def place(self, body: dict[str, Any]) -> dict[str, Any]:
        """Places one order, waiting first (bounded) for the catalog to reach the gateway."""

        def attempt() -> dict[str, Any] | None:
            response = httpx.post(f"{self.gateway}/v1/orders", json=body, timeout=10)
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
        async with httpx.AsyncClient(base_url=self.gateway, timeout=30) as http:

            async def one(body: dict[str, Any]) -> str:
                async with limit:
                    response = await http.post("/v1/orders", json=body)
                assert response.status_code == 202, response.text
                order_id: str = response.json()["order_id"]
                return order_id

            return list(await asyncio.gather(*(one(body) for body in bodies)))

    def order(self, order_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.gateway}/v1/orders/{order_id}", timeout=10)
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        return order

    def wait_terminal(
        self, order_ids: Iterable[str], timeout_s: float = 120
    ) -> dict[str, dict[str, Any]]:
        pending = set(order_ids)
        done: dict[str, dict[str, Any]] = {}

        def all_terminal() -> bool:
            for order_id in list(pending):
                order = self.order(order_id)
                if order["status"] in ("COMPLETED", "CANCELLED"):
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

    def stock(self) -> dict[str, tuple[int, int]]:
        rows = self.query(
            "inventory", "SELECT sku, SUM(on_hand), SUM(reserved) FROM stock_levels GROUP BY sku"
        )
        return {sku: (on_hand, reserved) for sku, on_hand, reserved in rows}


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
        try:
            event_type, payload = SCHEMAS.decode(record.value)
        except ValueError:
            continue
        events.append((event_type, payload, header_map(record.headers)))
    return events


async def lagging_groups(bootstrap: str) -> list[str]:
    """Where a service's group has not yet committed up to the end of a topic it reads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        every_partition = [
            TopicPartition(topic, p) for topic in EVENT_TOPICS for p in range(PARTITIONS[topic])
        ]
        consumer.assign(every_partition)
        lagging: list[str] = []
        for group, topics in CONSUMED_TOPICS.items():
            partitions = [tp for tp in every_partition if tp.topic in topics]
            if not partitions:
                return [f"{group}: no partitions known yet"]
            committed = await admin.list_consumer_group_offsets(group)
            ends = await consumer.end_offsets(partitions)
            for tp, end in ends.items():
                position = committed[tp].offset if tp in committed else 0
                if position < end:
                    lagging.append(f"{group} {tp.topic}[{tp.partition}] at {position} of {end}")
        return lagging
    finally:
        await consumer.stop()
        await admin.close()


async def wait_caught_up(bootstrap: str, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while lagging := await lagging_groups(bootstrap):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"consumer groups did not catch up: {lagging[:10]}")
        await asyncio.sleep(0.3)
