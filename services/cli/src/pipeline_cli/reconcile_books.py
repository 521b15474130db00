"""Reads the five services' databases into `Books`: read-only, each in one snapshot, through
the services' own table definitions.

Orders is read last. It commits an order before any other service can hear of it, so every
order another service mentions is in what we read; and orders whose last change predates
`read_at` had reached the other services' snapshots, taken after `read_at`, already.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from fulfillment.adapters import tables as fulfillment_db
from inventory.adapters import tables as inventory_db
from kit.database import create_database_engine
from kit.settings import ServiceSettings
from notifications.adapters import tables as notifications_db
from orders.adapters import tables as orders_db
from payments.adapters import tables as payments_db
from pipeline_cli.reconcile_checks import (
    Books,
    Order,
    Payment,
    Refund,
    Repeat,
    Reservation,
    Restock,
    Return,
    Shipment,
    StockLevel,
    UnsentNotification,
)


class UnreadableDatabaseError(Exception):
    def __init__(self, service: str, url: str, error: Exception) -> None:
        super().__init__(f"cannot read the {service} database {_shown(url)}: {_first_line(error)}")
        self.service = service


def default_url(service: str) -> str:
    """What `make run` uses: the service's embedded SQLite file under DATA_DIR (.run/)."""
    return ServiceSettings(service_name=service, database_url="").resolved_database_url()


def read_books(urls: Mapping[str, str]) -> Books:
    """Raises UnreadableDatabaseError naming the first database it could not open or query."""
    books = Books(read_at=datetime.now(UTC))
    for service, read in READERS.items():
        with _snapshot(service, urls[service]) as connection:
            read(connection, books)
    return books


def _read_inventory(connection: Connection, books: Books) -> None:
    level, reservation, restock = (
        inventory_db.StockLevel,
        inventory_db.Reservation,
        inventory_db.Restock,
    )
    books.stock_levels = [
        StockLevel(*row)
        for row in connection.execute(
            select(level.sku, level.warehouse, level.on_hand, level.reserved)
        )
    ]
    books.reservations = [
        Reservation(*row)
        for row in connection.execute(
            select(
                reservation.order_id,
                reservation.sku,
                reservation.warehouse,
                reservation.quantity,
                reservation.status,
            )
        )
    ]
    books.restocks = [
        Restock(return_id, order_id, _units(lines))
        for return_id, order_id, lines in connection.execute(
            select(restock.return_id, restock.order_id, restock.lines)
        )
    ]


def _read_payments(connection: Connection, books: Books) -> None:
    payment, refund = payments_db.Payment, payments_db.Refund
    books.payments = [
        Payment(*row)
        for row in connection.execute(
            select(
                payment.payment_id,
                payment.order_id,
                payment.amount,
                payment.status,
                payment.refunded_amount,
            )
        )
    ]
    books.refunds = [
        Refund(*row)
        for row in connection.execute(
            select(refund.refund_id, refund.order_id, refund.payment_id, refund.amount)
        )
    ]


def _read_fulfillment(connection: Connection, books: Books) -> None:
    shipment = fulfillment_db.Shipment
    books.shipments = [
        Shipment(*row)
        for row in connection.execute(
            select(shipment.shipment_id, shipment.order_id, shipment.status)
        )
    ]


def _read_notifications(connection: Connection, books: Books) -> None:
    log = notifications_db.Notification
    books.unsent_notifications = [
        UnsentNotification(*row)
        for row in connection.execute(
            select(log.order_id, log.template, log.reference).where(
                log.status == "awaiting_contact"
            )
        )
    ]
    books.notification_repeats = [
        Repeat(order_id, f"notification {template}" + (f" ({ref})" if ref else ""), count)
        for order_id, template, ref, count in connection.execute(
            select(log.order_id, log.template, log.reference, func.count())
            .group_by(log.order_id, log.template, log.reference)
            .having(func.count() > 1)
        )
    ]


def _read_orders(connection: Connection, books: Books) -> None:
    order, line, returned, timeline = (
        orders_db.Order,
        orders_db.OrderLine,
        orders_db.OrderReturn,
        orders_db.TimelineEntry,
    )
    query = select(
        order.order_id,
        order.status,
        order.cancel_reason,
        order.awaiting,
        order.shipping,
        order.total,
        order.refunded,
        order.status_since,
        order.dispatched_at,
    )
    for (
        order_id,
        status,
        reason,
        awaiting,
        shipping,
        total,
        refunded,
        since,
        dispatched,
    ) in connection.execute(query):
        books.orders[order_id] = Order(
            order_id,
            status,
            reason,
            sorted(awaiting or {}),
            shipping,
            total,
            refunded or 0,
            status_since=since,
            dispatched_at=dispatched,
        )
    for order_id, sku, quantity, unit_price in connection.execute(
        select(line.order_id, line.sku, line.quantity, line.unit_price)
    ):
        books.orders[order_id].quantities[sku] += quantity
        books.orders[order_id].unit_prices.setdefault(sku, unit_price)
    for (
        return_id,
        order_id,
        status,
        received,
        amount,
        requested_at,
        refund_id,
    ) in connection.execute(
        select(
            returned.return_id,
            returned.order_id,
            returned.status,
            returned.received_lines,
            returned.refund_amount,
            returned.requested_at,
            returned.refund_id,
        )
    ):
        books.orders[order_id].returns.append(
            Return(return_id, status, _units(received), amount, requested_at, refund_id)
        )
    books.timeline_repeats = [
        Repeat(order_id, f"event {event_id}", count)
        for order_id, event_id, count in connection.execute(
            select(func.min(timeline.order_id), timeline.event_id, func.count())
            .group_by(timeline.event_id)
            .having(func.count() > 1)
        )
    ]


# The reading order matters: orders last (see the module's docstring).
READERS: dict[str, Callable[[Connection, Books], None]] = {
    "inventory": _read_inventory,
    "payments": _read_payments,
    "fulfillment": _read_fulfillment,
    "notifications": _read_notifications,
    "orders": _read_orders,
}


@contextmanager
def _snapshot(service: str, url: str) -> Iterator[Connection]:
    """One read-only transaction, so each database is seen at a single moment."""
    engine: Engine | None = None
    try:
        engine = _read_only_engine(url)
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                # READ COMMITTED would show each query a different moment.
                connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            with connection.begin():
                yield connection
    except SQLAlchemyError as error:
        raise UnreadableDatabaseError(service, url, error) from error
    finally:
        if engine is not None:
            engine.dispose()


def _read_only_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return create_database_engine(url, for_reads=True)
    # mode=ro: a missing file is an error rather than a new empty database, and nothing
    # here can write. The kit's engine would switch the journal to WAL, which is a write.
    database = parsed.database
    if not parsed.query.get("uri"):
        database = "file:" + urllib.parse.quote(database)
    engine = create_engine(
        parsed.set(database=database, query={**parsed.query, "uri": "true", "mode": "ro"})
    )

    @event.listens_for(engine, "connect")
    def _explicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # so the BEGIN below is ours

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Deferred: the first read fixes the snapshot, and no lock keeps writers waiting.
        connection.exec_driver_sql("BEGIN")

    return engine


def _units(lines: Iterable[Mapping[str, Any]] | None) -> Counter[str]:
    units = Counter[str]()
    for line in lines or ():
        units[line["sku"]] += int(line["quantity"])
    return units


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return repr(url)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
