"""OrderPlaced v1 → v2 (+ sales_channel) with the real codec, the real services and the checker.

A "v1 release" is the shipped schemas/ without OrderPlaced.v2.avsc: what a service deployed
before v2 has on disk. The rules these tests hold up are in docs/ARCHITECTURE.md, "Schema
evolution".
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_reader
from pydantic import ValidationError
from sqlalchemy import select

from inventory.adapters.tables import ReservationRequest, StockLevel
from inventory.bootstrap import definition as inventory_definition
from inventory.settings import InventorySettings
from kit.avro_codec import HEADER_LENGTH, SchemaStore
from kit.consumer import HEADER_CONSUMER_GROUP, HEADER_REDRIVE_GROUP
from kit.envelope import Envelope
from kit.records import StoredRecord
from kit.settings import REPO_ROOT
from kit.testing import service_harness
from kit.testing.orders import order_body
from kit.testing.service_harness import ServiceHarness
from orders.adapters.tables import CatalogItem
from orders.domain.pricing import RequestedLine, ShippingPolicy
from orders.entrypoints.models import OrderIn
from orders.handlers.placing import PlaceOrder, place_order
from orders.testing import GatewayHarness

SHIPPED = REPO_ROOT / "schemas"
CHECKER = REPO_ROOT / "tools" / "schemas_check.py"
CURRENT = SchemaStore.load(SHIPPED)


@pytest.fixture
def v1_schemas(tmp_path: Path) -> Path:
    """The schema files of a release before OrderPlaced v2."""
    release = tmp_path / "schemas-v1"
    shutil.copytree(SHIPPED, release)
    (release / "orders" / "OrderPlaced.v2.avsc").unlink()
    return release


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # Decoding happens before any SQL: one backend proves it (the consumer's own tests run
    # on every backend).
    return f"sqlite:///{tmp_path / 'service.db'}"


def placed_v1(order_id: str) -> dict[str, Any]:
    """An OrderPlaced payload as a v1 producer builds it: no sales_channel."""
    return dict(service_harness.order_placed(order_id, (("T-MUG", 2),)).payload)


def test_order_placed_is_written_as_v2() -> None:
    latest = CURRENT.latest("OrderPlaced")

    data = CURRENT.encode("OrderPlaced", {**placed_v1("o-1"), "sales_channel": "app"})

    assert latest.version == 2
    assert data[2:HEADER_LENGTH] == latest.fingerprint
    assert CURRENT.decode(data)[1]["sales_channel"] == "app"


def test_order_placed_written_with_v1_reads_as_v2_with_the_web_channel(v1_schemas: Path) -> None:
    v1_store = SchemaStore.load(v1_schemas)
    data = v1_store.encode("OrderPlaced", placed_v1("o-1"))
    assert data[2:HEADER_LENGTH] == v1_store.latest("OrderPlaced").fingerprint  # really v1

    event_type, record = CURRENT.decode(data)

    assert event_type == "OrderPlaced"
    assert record.pop("sales_channel") == "web"
    assert record == v1_store.decode(data)[1]


def test_a_reader_on_v1_sees_v2_data_in_its_own_shape(v1_schemas: Path) -> None:
    v1_store = SchemaStore.load(v1_schemas)
    payload = placed_v1("o-1")
    data = CURRENT.encode("OrderPlaced", {**payload, "sales_channel": "pos"})
    writer, reader = CURRENT.latest("OrderPlaced"), v1_store.latest("OrderPlaced")

    # Avro's resolution with v2 as the writer's schema and v1 as the reader's.
    record = schemaless_reader(io.BytesIO(data[HEADER_LENGTH:]), writer.parsed, reader.parsed)
    assert isinstance(record, dict)

    assert record == v1_store.decode(v1_store.encode("OrderPlaced", payload))[1]
    assert "sales_channel" not in record


# -- the orders service writes it ------------------------------------------------------------


def place(harness: GatewayHarness, sales_channel: str | None = None) -> dict[str, Any]:
    command = PlaceOrder(
        order_id=str(uuid.uuid4()),
        client_id="shop-1",
        customer_id="c-1",
        customer_email="c@example.com",
        customer_name="C",
        shipping_address=order_body([("T-MUG", 1)])["shipping_address"],
        lines=(RequestedLine("T-MUG", 1),),
        payment_token="tok_visa",
    )
    if sales_channel is not None:
        command = replace(command, sales_channel=sales_channel)
    harness.run(
        lambda uow: place_order(uow, command, ShippingPolicy(499, 10_000), timedelta(minutes=1))
    )
    return harness.payloads("OrderPlaced")[-1]


def test_the_orders_service_puts_the_requested_channel_in_order_placed(database_url: str) -> None:
    with GatewayHarness(database_url) as orders:
        orders.add(
            CatalogItem(
                sku="T-MUG",
                name="Mug",
                unit_price=1000,
                currency="EUR",
                active=True,
                updated_at=datetime.now(UTC),
            )
        )

        assert place(orders, sales_channel="marketplace")["sales_channel"] == "marketplace"
        assert place(orders)["sales_channel"] == "web"


def test_the_order_request_defaults_the_channel_to_web_and_refuses_free_text() -> None:
    body = order_body([("T-MUG", 1)])

    assert OrderIn.model_validate(body).sales_channel == "web"
    assert OrderIn.model_validate({**body, "sales_channel": "app"}).sales_channel == "app"
    with pytest.raises(ValidationError, match="sales_channel"):
        OrderIn.model_validate({**body, "sales_channel": "Web Shop"})


# -- consumers ---------------------------------------------------------------------------------


class Inventory(ServiceHarness):
    """The inventory service (which knows nothing of sales_channel) with a given schemas/."""

    def __init__(self, database_url: str, schemas_dir: Path) -> None:
        settings = InventorySettings(database_url=database_url, schemas_dir=schemas_dir)
        super().__init__(settings, inventory_definition(settings))

    def consume(self, *records: StoredRecord) -> tuple[int, int]:
        """(handled, dead-lettered) of one batch from orders.events."""
        outcome = self.runtime.batch_processor().process(records)
        return outcome.handled, outcome.dead_lettered

    def decided(self) -> dict[str, str]:
        with self.session() as session:
            return {r.order_id: r.outcome for r in session.scalars(select(ReservationRequest))}

    def dead_letters(self) -> list[Any]:
        outbox = self.runtime.outbox
        with self.runtime.engine.connect() as connection:
            query = select(outbox).where(outbox.c.topic == "orders.events.dlq")
            return list(connection.execute(query))


@pytest.fixture
def mugs(database_url: str) -> str:
    """The database of an inventory holding mugs, shared by its releases before and after v2."""
    inventory = Inventory(database_url, SHIPPED)
    with inventory.session() as session, session.begin():
        session.add(StockLevel(sku="T-MUG", warehouse="WH-A", on_hand=10, reserved=0))
    inventory.close()
    return database_url


def order_placed_record(payload: dict[str, Any], store: SchemaStore, offset: int) -> StoredRecord:
    envelope = Envelope("OrderPlaced", payload["order_id"], payload, payload["order_id"])
    return service_harness.record_of(envelope, store, "orders.events", offset)


@pytest.fixture
def v1_inventory(mugs: str, v1_schemas: Path) -> Iterator[Inventory]:
    """Inventory as deployed before v2."""
    service = Inventory(mugs, v1_schemas)
    yield service
    service.close()


@pytest.fixture
def inventory(mugs: str) -> Iterator[Inventory]:
    """Inventory deployed with v2's file; its code is the same."""
    service = Inventory(mugs, SHIPPED)
    yield service
    service.close()


def test_a_consumer_with_the_v2_file_but_code_older_than_the_field_handles_v2(
    inventory: Inventory,
) -> None:
    v2 = order_placed_record({**placed_v1("o-2"), "sales_channel": "app"}, CURRENT, 1)

    assert inventory.consume(v2) == (1, 0)
    assert inventory.decided() == {"o-2": "reserved"}


def test_a_consumer_without_the_v2_file_dead_letters_v2_and_handles_it_after_deploy_and_redrive(
    v1_inventory: Inventory, inventory: Inventory, v1_schemas: Path
) -> None:
    v1_store = SchemaStore.load(v1_schemas)
    v2 = order_placed_record({**placed_v1("o-new"), "sales_channel": "app"}, CURRENT, 1)
    v1 = order_placed_record(placed_v1("o-old"), v1_store, 2)

    # The batch carries on past the message it cannot read; nothing crashes.
    assert v1_inventory.consume(v2, v1) == (1, 1)
    assert v1_inventory.decided() == {"o-old": "reserved"}
    (dead,) = v1_inventory.dead_letters()
    reason = dict(dead.headers)
    assert reason["dlq.error.type"] == "DecodeError"
    fingerprint = CURRENT.latest("OrderPlaced").fingerprint.hex()
    assert reason["dlq.error.message"] == f"unknown schema fingerprint {fingerprint}"
    assert dead.value == v2.value

    # Deploy the release with v2's file, then re-drive the dead letter to its topic, for the
    # group that failed on it (as `pipeline dlq redrive` does).
    headers = [(k, v.encode()) for k, v in dead.headers]
    redrive = [*headers, (HEADER_REDRIVE_GROUP, reason[HEADER_CONSUMER_GROUP].encode())]
    redriven = StoredRecord("orders.events", 0, 3, dead.message_key.encode(), dead.value, redrive)

    assert inventory.consume(redriven) == (1, 0)
    assert inventory.decided() == {"o-old": "reserved", "o-new": "reserved"}


# -- the checker refuses an incompatible v3 --------------------------------------------------


def v3(change: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(CURRENT.latest("OrderPlaced").path.read_text())
    fields = schema["fields"]
    if change == "new field without a default":
        fields.append({"name": "gift_wrap", "type": "boolean", "doc": "Wrap it."})
    elif change == "changed type":
        channel = next(f for f in fields if f["name"] == "sales_channel")
        channel["type"] = "int"
        del channel["default"]  # "web" is no int
    return schema


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "new field without a default",
            [
                "v1 -> v3 is not backward compatible",
                "v2 -> v3 is not backward compatible",
                "reader_field_missing_default_value",
                "(gift_wrap)",
            ],
        ),
        (
            "changed type",
            [
                "v2 -> v3 is not backward compatible",
                "v2 -> v3 is not forward compatible",
                "type_mismatch",
                "(sales_channel)",
            ],
        ),
    ],
)
def test_make_schemas_check_refuses_an_incompatible_v3(
    tmp_path: Path, change: str, expected: list[str]
) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(SHIPPED, schemas)
    (schemas / "orders" / "OrderPlaced.v3.avsc").write_text(json.dumps(v3(change), indent=2))

    run = subprocess.run(
        [sys.executable, str(CHECKER), "--schemas-dir", str(schemas)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 1, run.stdout + run.stderr
    assert "OrderPlaced.v3.avsc" in run.stdout
    for text in expected:
        assert text in run.stdout
