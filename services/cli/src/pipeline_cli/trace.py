"""`pipeline order trace ORDER_ID`: one order's whole history across every topic, with
what the saga made of each message.

Kafka has no index by key, so the trace reads every partition of every topic it covers
from the beginning up to the end offsets it found when it started (one consumer fetching
all partitions at once) and keeps the records keyed by the order id. That is a scan of
whole topics: seconds for a development pipeline, longer for a production one, where
`--topics` narrows it.

The saga's timeline (the orders database's `order_timeline`) names the event it recorded
by event id, so each entry is shown right under the message it is about; entries of
inputs that are no message (a customer's cancel, a deadline) fall in by their time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

import fulfillment.contracts
import inventory.contracts
import notifications.contracts
import orders.contracts
import payments.contracts
from kit.consumer import DEAD_LETTER_SUFFIX, HEADER_CONSUMER_GROUP, dead_letter_topic
from kit.database import create_database_engine
from kit.envelope import HEADER_EVENT_ID, HEADER_PRODUCER
from orders.adapters.tables import TimelineEntry
from orders.domain.saga import INFORMATIONAL
from orders.settings import OrdersSettings
from pipeline_cli.kafka_io import (
    Edge,
    KafkaSettings,
    decode_record,
    epoch_ms,
    iso_time,
    progress_bar,
    read_range,
    reported_errors,
)

app = typer.Typer(help="Follow one order through every service.", no_args_is_help=True)

CONTRACTS = (
    orders.contracts,
    inventory.contracts,
    payments.contracts,
    fulfillment.contracts,
    notifications.contracts,
)
DLQ_ERROR = "dlq.error.message"  # what kit.consumer says went wrong, on every dead letter
SUMMARY_WIDTH = 110
DB_CONNECT_TIMEOUT_S = 5


def topics_to_read(chosen: Sequence[str] | None, *, include_dlq: bool = False) -> list[str]:
    """The chosen topics, else every topic a service publishes to (events and commands, from
    their contracts); with their dead-letter topics if asked."""
    topics = list(chosen or sorted({t for c in CONTRACTS for t in c.PUBLISHES.values()}))
    if include_dlq:
        topics += [dead_letter_topic(t) for t in topics if not t.endswith(DEAD_LETTER_SUFFIX)]
    return list(dict.fromkeys(topics))


# ------------------------------------------------------------------------ the saga's side


@dataclass(frozen=True)
class SagaEntry:
    """One row of the order's timeline in the orders database."""

    event_id: str
    event_type: str
    source: str
    occurred_at: datetime
    status_after: str
    note: str | None


@dataclass(frozen=True)
class SagaTimeline:
    entries: list[SagaEntry]
    unavailable: str | None = None  # why there are no entries to show, if it could not read


def read_saga_timeline(url: str, order_id: str) -> SagaTimeline:
    """The saga's timeline of the order, or why it cannot be had. Never creates a database."""
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        # SQLite would create an empty file where none is; that is "no database" here.
        if not parsed.database or not Path(parsed.database).is_file():
            return SagaTimeline([], f"no orders database at {shown}")
    else:
        options["connect_args"] = {"connect_timeout": DB_CONNECT_TIMEOUT_S}
    try:
        engine = create_database_engine(url, for_reads=True, **options)
        try:
            with Session(engine) as session:
                rows = session.scalars(
                    select(TimelineEntry)
                    .where(TimelineEntry.order_id == order_id)
                    .order_by(TimelineEntry.id)
                ).all()
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return SagaTimeline([], f"orders database {shown} not readable ({reason})")
    entries = [
        SagaEntry(r.event_id, r.event_type, r.source, r.occurred_at, r.status_after, r.note)
        for r in rows
    ]
    if not entries:
        return SagaTimeline([], f"the orders database {shown} has no timeline for this order")
    return SagaTimeline(entries)


def saga_says(entry: SagaEntry) -> str:
    """What the saga did with an input, or that it sent the message, in one line."""
    if entry.event_type in orders.contracts.PUBLISHES:
        sent = f"{entry.event_type} sent, order {entry.status_after}"
        return f"{sent} ({entry.note})" if entry.note else sent
    if entry.event_type in INFORMATIONAL:
        return f"{entry.event_type} noted, order {entry.status_after}"
    if entry.note:
        return f"{entry.event_type} ignored: {entry.note}"
    return f"{entry.event_type} → {entry.status_after}"


# -------------------------------------------------------------------------- the trace


@dataclass
class Row:
    """One line of the trace: a Kafka record, or a saga timeline entry."""

    time: datetime
    kind: Literal["kafka", "saga"]
    record: dict[str, Any] | None = None  # decoded, for a Kafka row
    entry: SagaEntry | None = None  # for a saga row
    matched: bool = False  # a saga row right under the record it is about
    sort_key: tuple[Any, ...] = field(default=(), repr=False)


def _record_time(record: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(record["timestamp"])


def merge(records: Iterable[dict[str, Any]], timeline: Sequence[SagaEntry]) -> list[Row]:
    """Kafka records in time order, each followed by the saga's entries about it (same
    event id); entries about no record (customer and timer inputs, or records a --topics
    choice left out) fall in by their own time.

    Time is the record's timestamp (when it was published: an effect is never published
    before its cause), then its occurred_at header, which breaks ties within a millisecond.
    """
    by_event: dict[str, list[SagaEntry]] = {}
    for entry in timeline:
        by_event.setdefault(entry.event_id, []).append(entry)
    blocks: list[list[Row]] = []
    for record in records:
        headers = record["headers"]
        block = [
            Row(
                _record_time(record),
                "kafka",
                record=record,
                sort_key=(
                    _record_time(record),
                    headers.get("occurred_at") or "",
                    record["topic"],
                    record["partition"],
                    record["offset"],
                ),
            )
        ]
        # A message published twice (a relay retry) carries its entries once, under the first.
        for entry in by_event.pop(headers.get(HEADER_EVENT_ID) or "", []):
            block.append(Row(entry.occurred_at, "saga", entry=entry, matched=True))
        blocks.append(block)
    for entries in by_event.values():
        for entry in entries:
            key = (entry.occurred_at, entry.occurred_at.isoformat(), "", 0, 0)
            blocks.append([Row(entry.occurred_at, "saga", entry=entry, sort_key=key)])
    blocks.sort(key=lambda block: block[0].sort_key)
    return [row for block in blocks for row in block]


def summarize(record: Mapping[str, Any], width: int = SUMMARY_WIDTH) -> str:
    """The payload in one line: its scalar fields, lines as sku:quantity; the order id (the
    key), nested records and *_at times (the time column has one) left out. A dead letter
    says who gave up on it and why."""
    headers = record["headers"]
    if headers.get(DLQ_ERROR) is not None:
        group = headers.get(HEADER_CONSUMER_GROUP)
        return _clip(f"dead-lettered by {group}: {headers[DLQ_ERROR]}", width)
    if "payload" not in record:
        return _clip(f"undecodable: {record.get('decode_error')}", width)
    parts = []
    for name, value in record["payload"].items():
        if name == "order_id" or name.endswith("_at") or value is None or isinstance(value, dict):
            continue
        if isinstance(value, list):
            parts.append(f"{name}={_items(value)}")
        else:
            parts.append(f"{name}={value}")
    return _clip(" ".join(parts), width)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _items(values: list[Any]) -> str:
    if all(isinstance(v, dict) and {"sku", "quantity"} <= v.keys() for v in values):
        return ",".join(f"{v['sku']}:{v['quantity']}" for v in values)
    return f"[{len(values)} items]"


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


COLUMNS = ("TIME (UTC)", "TOPIC", "TYPE", "PRODUCER", "SUMMARY")


def table(rows: Sequence[Row]) -> list[str]:
    """The trace as aligned text columns; a saga row spans TYPE to SUMMARY."""
    cells: list[tuple[str, ...]] = [COLUMNS]
    for row in rows:
        if row.record is not None:
            record = row.record
            cells.append(
                (
                    _clock(row.time),
                    record["topic"],
                    record["event_type"] or "?",
                    record["headers"].get(HEADER_PRODUCER) or "",
                    summarize(record),
                )
            )
        elif row.entry is not None:
            said = saga_says(row.entry)
            if row.matched:
                cells.append(("", "  └ saga", said))
            else:
                cells.append((_clock(row.time), "saga", f"{said}  [{row.entry.source}]"))
    # TIME and TOPIC fit every row; TYPE and PRODUCER only the rows that have them.
    widths = [max(len(line[i]) for line in cells if len(line) > i + 1) for i in range(4)]
    out = []
    for line in cells:
        padded = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=False)]
        out.append("  ".join([*padded, line[-1]]).rstrip())
    return out


def as_json(row: Row) -> dict[str, Any]:
    if row.record is not None:
        record = row.record
        summary = summarize(record)
        return {"kind": "kafka", "time": record["timestamp"], **record, "summary": summary}
    assert row.entry is not None
    entry = row.entry
    return {
        "kind": "saga",
        "time": iso_time(epoch_ms(entry.occurred_at)),  # as a record's timestamp
        "event_id": entry.event_id,
        "event_type": entry.event_type,
        "source": entry.source,
        "status_after": entry.status_after,
        "note": entry.note,
        "saga": saga_says(entry),
        "about_previous_record": row.matched,
    }


# ------------------------------------------------------------------------------- command


@app.command()
def trace(
    order_id: Annotated[str, typer.Argument(help="The order id (the key of its messages)")],
    topics: Annotated[
        list[str] | None,
        typer.Option(
            "--topics", help="Only these topics (repeat). Default: every event and command topic"
        ),
    ] = None,
    include_dlq: Annotated[
        bool, typer.Option("--include-dlq", help="Also the dead-letter topics (<topic>.dlq)")
    ] = False,
    orders_db: Annotated[
        str | None,
        typer.Option(
            help="The orders database, for the saga's timeline. Default: the orders service's "
            "own (DATABASE_URL, else .run/orders.db)"
        ),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="JSON lines (kind: kafka or saga) instead of a table")
    ] = False,
) -> None:
    """Everything that happened to ORDER_ID, across every topic, in time order.

    Every message keyed by the order on every event and command topic (time,
    topic, type, producer, the payload in one line) and, under each, what the
    saga did with it ("StockReserved → RESERVED", "ShipmentDelivered ignored:
    …"), read from the orders database; without it, the messages alone.

    It reads each topic whole, up to the end it had when the trace started:
    on a big pipeline, narrow it with --topics.

    Examples:

        pipeline order trace 0b6d5e0c-...

        pipeline order trace 0b6d5e0c-... --include-dlq --json | jq .kind

        DATABASE_URL=postgresql://... pipeline order trace 0b6d5e0c-...
    """
    chosen = topics_to_read(topics, include_dlq=include_dlq)
    with reported_errors():
        url = orders_db or OrdersSettings().resolved_database_url()
        timeline = read_saga_timeline(url, order_id)
        records = asyncio.run(_order_records(chosen, order_id))
    rows = merge(records, timeline.entries)
    if json_lines:
        if timeline.unavailable:
            typer.echo(f"saga timeline not shown: {timeline.unavailable}", err=True)
        for row in rows:
            typer.echo(json.dumps(as_json(row), ensure_ascii=False))
        return
    typer.echo(
        f"order {order_id}: {len(records)} messages on {len(chosen)} topics"
        + (f"; saga timeline not shown: {timeline.unavailable}" if timeline.unavailable else "")
    )
    for line in table(rows):
        typer.echo(line)


async def _order_records(topics: Sequence[str], order_id: str) -> list[dict[str, Any]]:
    settings = KafkaSettings()
    schemas = settings.schemas()
    key = order_id.encode()
    found = []
    with progress_bar() as progress:
        task = progress.add_task(f"scanning {len(topics)} topics", total=None)
        records = read_range(
            settings.kafka_bootstrap_servers,
            topics,
            Edge.BEGINNING,
            Edge.END,
            on_range=lambda total: progress.update(task, total=total),
        )
        async for record in records:
            progress.advance(task)
            if record.key == key:
                found.append(decode_record(record, schemas))
    return found
