"""An order's trace: records in time order, the saga's entries under the records they are about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert

from orders.adapters.tables import OrdersBase, TimelineEntry
from pipeline_cli.kafka_io import epoch_ms, iso_time
from pipeline_cli.trace import (
    SagaEntry,
    merge,
    read_saga_timeline,
    saga_says,
    summarize,
    table,
    topics_to_read,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(
    event_type: str, event_id: str, at_ms: int, topic: str, producer: str, **payload: Any
) -> dict[str, Any]:
    return {
        "topic": topic,
        "partition": 0,
        "offset": at_ms,
        "timestamp": iso_time(epoch_ms(T0) + at_ms),
        "key": "order-1",
        "headers": {"event_id": event_id, "event_type": event_type, "producer": producer},
        "event_type": event_type,
        "payload": {"order_id": "order-1", **payload},
    }


def entry(
    event_type: str, event_id: str, at_ms: int, status: str, note: str | None = None
) -> SagaEntry:
    return SagaEntry(event_id, event_type, "x", T0 + timedelta(milliseconds=at_ms), status, note)


PLACED = record("OrderPlaced", "e-placed", 0, "orders.events", "orders", total=1499)
RESERVED = record("StockReserved", "e-reserved", 40, "inventory.events", "inventory")
CAPTURED = record("PaymentCaptured", "e-captured", 90, "payments.events", "payments")


def test_records_come_in_time_order_each_followed_by_what_the_saga_did_with_it() -> None:
    timeline = [
        entry("OrderPlaced", "e-placed", 1, "PENDING"),
        entry("StockReserved", "e-reserved", 41, "RESERVED"),
        entry("PaymentCaptured", "e-captured", 91, "PAID"),
    ]
    rows = merge([CAPTURED, PLACED, RESERVED], timeline)
    shown = [
        (row.kind, row.record["event_type"] if row.record else row.entry and row.entry.event_type)
        for row in rows
    ]
    assert shown == [
        ("kafka", "OrderPlaced"),
        ("saga", "OrderPlaced"),
        ("kafka", "StockReserved"),
        ("saga", "StockReserved"),
        ("kafka", "PaymentCaptured"),
        ("saga", "PaymentCaptured"),
    ]
    assert all(row.matched for row in rows if row.kind == "saga")


def test_saga_inputs_that_are_no_message_fall_in_by_their_time() -> None:
    cancel = entry("CustomerCancel", "internal-1", 60, "COMPENSATING")
    rows = merge([CAPTURED, PLACED, RESERVED], [cancel])
    assert [row.entry or (row.record and row.record["event_type"]) for row in rows] == [
        "OrderPlaced",
        "StockReserved",
        cancel,
        "PaymentCaptured",
    ]
    assert not rows[2].matched


def test_a_message_published_twice_carries_the_saga_entry_once() -> None:
    again = {**RESERVED, "offset": 999, "timestamp": iso_time(epoch_ms(T0) + 500)}
    rows = merge([RESERVED, again], [entry("StockReserved", "e-reserved", 41, "RESERVED")])
    assert [row.kind for row in rows] == ["kafka", "saga", "kafka"]


def test_the_saga_says_what_it_did_in_one_line() -> None:
    assert saga_says(entry("StockReserved", "e", 0, "RESERVED")) == "StockReserved → RESERVED"
    assert (
        saga_says(entry("ShipmentDelivered", "e", 0, "COMPLETED", "already COMPLETED"))
        == "ShipmentDelivered ignored: already COMPLETED"
    )
    assert (
        saga_says(entry("OrderCompleted", "e", 0, "COMPLETED"))
        == "OrderCompleted sent, order COMPLETED"
    )
    assert (
        saga_says(entry("RefundPayment", "e", 0, "COMPENSATING", "re-sent, attempt 2"))
        == "RefundPayment sent, order COMPENSATING (re-sent, attempt 2)"
    )
    assert (
        saga_says(entry("NotificationSent", "e", 0, "PAID", "for the timeline"))
        == "NotificationSent noted, order PAID"
    )


def test_a_payload_summary_is_one_line_without_the_order_id_times_or_nested_records() -> None:
    placed = record(
        "OrderPlaced",
        "e",
        0,
        "orders.events",
        "orders",
        lines=[{"sku": "T-MUG", "quantity": 2}, {"sku": "T-TEE", "quantity": 1}],
        total=4500,
        placed_at="2025-03-01T12:00:00+00:00",
        shipping_address={"city": "Berlin"},
        region=None,
        tags=["a", "b"],
    )
    assert summarize(placed) == "lines=T-MUG:2,T-TEE:1 total=4500 tags=[2 items]"
    assert summarize(placed, width=12) == "lines=T-MUG…"
    garbage = {**placed, "decode_error": "DecodeError: bad marker"}
    del garbage["payload"]
    assert summarize(garbage) == "undecodable: DecodeError: bad marker"
    dead = {**garbage, "headers": {"dlq.consumer.group": "payments", "dlq.error.message": "boom"}}
    assert summarize(dead) == "dead-lettered by payments: boom"


def test_the_table_aligns_columns_and_puts_the_saga_under_its_record() -> None:
    rows = merge([PLACED, RESERVED], [entry("StockReserved", "e-reserved", 41, "RESERVED")])
    lines = table(rows)
    assert lines[0].split() == ["TIME", "(UTC)", "TOPIC", "TYPE", "PRODUCER", "SUMMARY"]
    assert lines[1].startswith("2025-03-01 12:00:00.000  orders.events ")
    assert lines[2].index("inventory.events") == lines[1].index("orders.events")
    assert lines[2].index("StockReserved") == lines[1].index("OrderPlaced")
    assert lines[3].split(maxsplit=2) == ["└", "saga", "StockReserved → RESERVED"]
    assert lines[3].index("StockReserved") == lines[2].index("StockReserved")


def test_the_trace_covers_every_event_and_command_topic_and_dead_letters_on_request() -> None:
    topics = topics_to_read(None)
    assert topics == [
        "fulfillment.events",
        "inventory.events",
        "notifications.events",
        "orders.commands",
        "orders.events",
        "payments.events",
    ]
    assert topics_to_read(None, include_dlq=True) == topics + [t + ".dlq" for t in topics]
    assert topics_to_read(["orders.events", "payments.events.dlq"], include_dlq=True) == [
        "orders.events",
        "payments.events.dlq",
        "orders.events.dlq",
    ]


def test_a_missing_sqlite_database_is_reported_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    timeline = read_saga_timeline(f"sqlite:///{path}", "order-1")
    assert timeline.entries == []
    assert timeline.unavailable == f"no orders database at sqlite:///{path}"
    assert not path.exists()


def test_an_unreachable_database_is_reported_without_its_password() -> None:
    timeline = read_saga_timeline("postgresql://pipeline:s3cret@127.0.0.1:1/orders", "order-1")
    assert timeline.entries == []
    assert timeline.unavailable is not None
    assert timeline.unavailable.startswith("orders database postgresql://pipeline:***@")
    assert "not readable" in timeline.unavailable
    assert "s3cret" not in timeline.unavailable


def test_the_timeline_is_read_from_the_orders_database_in_its_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    engine = create_engine(url)
    OrdersBase.metadata.create_all(engine)
    rows = [
        ("order-1", "e-2", "StockReserved", "inventory", T0, "RESERVED", None),
        ("order-1", "e-1", "ShipmentDelivered", "fulfillment", T0, "RESERVED", "too early"),
        ("order-2", "e-3", "OrderPlaced", "orders", T0, "PENDING", None),
    ]
    with engine.begin() as connection:
        for order_id, event_id, event_type, source, at, status, note in rows:
            connection.execute(
                insert(TimelineEntry).values(
                    order_id=order_id,
                    event_id=event_id,
                    event_type=event_type,
                    source=source,
                    occurred_at=at,
                    status_after=status,
                    note=note,
                )
            )
    engine.dispose()
    timeline = read_saga_timeline(url, "order-1")
    assert timeline.unavailable is None
    assert [(e.event_id, e.status_after, e.note) for e in timeline.entries] == [
        ("e-2", "RESERVED", None),
        ("e-1", "RESERVED", "too early"),
    ]
    assert timeline.entries[0].occurred_at == T0
    assert read_saga_timeline(url, "order-9").unavailable is not None
