"""Rebuilding the orders read model from the log: a live saga's runs, recorded as the broker
would hold them, replayed into an empty database give the same orders — on every backend."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, inspect, select, update
from sqlalchemy.orm import Session

from kit.database import create_database_engine
from kit.envelope import Envelope
from kit.records import StoredRecord
from kit.replay import replay
from kit.testing.servers import create_postgres_database
from kit.testing.service_harness import ServiceHarness, event
from orders.adapters.tables import CatalogItem, Order, TimelineEntry
from orders.bootstrap import definition
from orders.domain.pricing import ShippingPolicy
from orders.domain.returns import ReturnLine, refund_id_for_cancellation, refund_id_for_return
from orders.handlers.customer_requests import request_cancellation, request_return
from orders.handlers.placing import place_order
from orders.handlers.saga import Saga
from orders.replay import OrdersReplay
from orders.replay_compare import OrderView, differences, read_orders
from orders.replay_timeline import TimelineStep
from orders.settings import OrdersSettings
from orders.testing import place_command

CLIENT = "storefront-1"
MUG_PRICE = 1200
NOW = datetime.now(UTC)


class LiveOrders(ServiceHarness):
    """The orders service on its database, and the log of everything that reached Kafka:
    what it published (its outbox, as the relay sends it) and the other services' events.

    Records get ascending timestamps in the order they reach the log; the saga reads another
    service's event only when a test says so, so it can lag behind the log as in production."""

    def __init__(self, database_url: str, **settings: Any) -> None:
        self.settings = OrdersSettings(database_url=database_url, **settings)
        super().__init__(self.settings, definition(self.settings))
        self.saga = Saga(self.settings)
        self.log: list[StoredRecord] = []
        self._ticks = itertools.count(1_000)
        self._offsets = Counter[str]()
        self.run(
            lambda uow: uow.session.add(
                CatalogItem(
                    sku="MUG",
                    name="Mug",
                    unit_price=MUG_PRICE,
                    currency="EUR",
                    active=True,
                    updated_at=NOW,
                )
            )
        )

    def _append(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        offset, self._offsets[topic] = self._offsets[topic], self._offsets[topic] + 1
        self.log.append(
            StoredRecord(
                topic, 0, offset, key.encode(), value, headers, timestamp=next(self._ticks)
            )
        )

    def relay(self) -> None:
        outbox = self.runtime.outbox
        with self.runtime.engine.begin() as connection:
            rows = connection.execute(select(outbox).order_by(outbox.c.id)).all()
            connection.execute(delete(outbox))
        for row in rows:
            headers = [(name, value.encode()) for name, value in row.headers]
            self._append(row.topic, row.message_key, row.value, headers)

    def publish(self, event_type: str, order_id: str, producer: str, **payload: Any) -> Envelope:
        """Another service's event reaches its topic; the saga reads it at `consume`."""
        envelope = event(event_type, order_id, producer, **payload)
        value = self.runtime.schemas.encode(event_type, envelope.payload)
        self._append(f"{producer}.events", order_id, value, envelope.headers())
        return envelope

    def consume(self, *envelopes: Envelope) -> None:
        self.deliver(*envelopes)
        self.relay()

    def happen(self, event_type: str, order_id: str, producer: str, **payload: Any) -> None:
        self.consume(self.publish(event_type, order_id, producer, **payload))

    def place(self, quantity: int = 1) -> str:
        command = place_command(str(uuid.uuid4()), quantity, client_id=CLIENT)
        policy = ShippingPolicy(499, 100_000)
        order = self.run(
            lambda uow: place_order(uow, command, policy, self.settings.stock_deadline)
        )
        self.relay()
        return order.order_id

    def cancel(self, order_id: str) -> None:
        self.run(lambda uow: request_cancellation(uow, self.saga, CLIENT, order_id))
        self.relay()

    def request_return(self, order_id: str, quantity: int = 1) -> str:
        lines = [ReturnLine("MUG", quantity)]
        returned = self.run(
            lambda uow: request_return(uow, self.saga, CLIENT, order_id, lines, "chipped")
        )
        self.relay()
        return returned.return_id

    def timers(self) -> None:
        self.run_job("saga timers")
        self.relay()

    def status(self, order_id: str) -> str:
        with self.session() as session:
            order = session.get(Order, order_id)
            assert order is not None
            return order.status

    # -- what the other services answer ----------------------------------------------------

    def reserve(self, order_id: str) -> None:
        lines = [{"sku": "MUG", "quantity": 1, "warehouse": "WH-A"}]
        self.happen("StockReserved", order_id, "inventory", reservation_id="r", lines=lines)

    def captured(self, order_id: str) -> Envelope:
        return self.publish(
            "PaymentCaptured",
            order_id,
            "payments",
            payment_id=f"pay-{order_id}",
            amount=MUG_PRICE + 499,
            currency="EUR",
            provider_reference="psp-1",
            captured_at=NOW,
        )

    def deliver_order(self, order_id: str) -> None:
        self.reserve(order_id)
        self.consume(self.captured(order_id))
        shipment = {"shipment_id": f"s-{order_id}", "carrier": "sim"}
        self.happen("ShipmentCreated", order_id, "fulfillment", **shipment, created_at=NOW)
        self.happen(
            "NotificationSent",
            order_id,
            "notifications",
            notification_id="n-1",
            channel="email",
            template="order_confirmation",
            recipient="c@example.com",
            sent_at=NOW,
        )
        self.happen(
            "ShipmentDispatched",
            order_id,
            "fulfillment",
            **shipment,
            tracking_number="T-1",
            dispatched_at=NOW,
        )
        self.happen(
            "ShipmentDelivered",
            order_id,
            "fulfillment",
            shipment_id=f"s-{order_id}",
            delivered_at=NOW,
        )

    def refunded(self, order_id: str, refund_id: str, amount: int) -> None:
        self.happen(
            "PaymentRefunded",
            order_id,
            "payments",
            refund_id=refund_id,
            payment_id=f"pay-{order_id}",
            amount=amount,
            currency="EUR",
            refunded_at=NOW,
        )

    def released(self, order_id: str) -> None:
        lines = [{"sku": "MUG", "quantity": 1, "warehouse": "WH-A"}]
        self.happen("StockReleased", order_id, "inventory", lines=lines)


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Another empty database on the same backend: where the replay rebuilds."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'replayed.db'}"
    return create_postgres_database(
        request.getfixturevalue("postgres"), f"replayed_{uuid.uuid4().hex[:12]}"
    )


@pytest.fixture
def live(database_url: str) -> Iterator[LiveOrders]:
    # Every unacknowledged command is due for a re-send at once: `timers()` re-sends.
    orders = LiveOrders(database_url, compensation_retry_initial=timedelta(0))
    yield orders
    orders.close()


def rebuild(live: LiveOrders, url: str, **options: Any) -> tuple[OrdersReplay, Any]:
    schemas = live.runtime.schemas
    orders_replay = OrdersReplay(live.settings, live.log, schemas)
    replayable = orders_replay.replayable()
    records = replayable.arrange(live.log)
    report = replay(replayable, records, url, schemas, batch_size=7, **options)
    return orders_replay, report


def views(url: str) -> dict[str, OrderView]:
    engine = create_database_engine(url)
    try:
        with Session(engine) as session:
            return read_orders(session)
    finally:
        engine.dispose()


def returned_with_two_resends(live: LiveOrders) -> str:
    order_id = live.place()
    live.deliver_order(order_id)
    return_id = live.request_return(order_id)
    live.timers()  # IssueReturnLabel re-sent, attempt 1
    live.timers()  # and 2
    live.happen(
        "ReturnLabelIssued",
        order_id,
        "fulfillment",
        return_id=return_id,
        carrier="sim",
        label_reference="L-1",
    )
    live.happen(
        "ReturnReceived",
        order_id,
        "fulfillment",
        return_id=return_id,
        lines=[{"sku": "MUG", "quantity": 1}],
        received_at=NOW,
    )
    live.happen(
        "StockRestocked",
        order_id,
        "inventory",
        return_id=return_id,
        lines=[{"sku": "MUG", "quantity": 1}],
    )
    live.refunded(order_id, refund_id_for_return(return_id), MUG_PRICE + 499)
    assert live.status(order_id) == "RETURNED"
    return order_id


def cancelled_while_a_capture_was_in_flight(live: LiveOrders) -> str:
    order_id = live.place()
    live.reserve(order_id)
    capture = live.captured(order_id)  # on the log before the customer cancels...
    live.cancel(order_id)
    live.consume(capture)  # ...but read by the saga after: "late"
    live.happen(
        "ShipmentCancelled", order_id, "fulfillment", shipment_id=None, reason="customer_cancelled"
    )
    live.released(order_id)
    live.refunded(order_id, refund_id_for_cancellation(order_id), MUG_PRICE + 499)
    live.cancel(order_id)  # asked again once cancelled: recorded and ignored
    assert live.status(order_id) == "CANCELLED"
    return order_id


def declined(live: LiveOrders) -> str:
    order_id = live.place()
    live.reserve(order_id)
    live.happen(
        "PaymentFailed", order_id, "payments", payment_id="p", reason="declined", detail="no"
    )
    live.released(order_id)
    return order_id


def out_of_stock(live: LiveOrders) -> str:
    order_id = live.place(quantity=5)
    live.happen(
        "StockReservationFailed",
        order_id,
        "inventory",
        reason="out_of_stock",
        shortages=[{"sku": "MUG", "requested": 5, "available": 1}],
    )
    return order_id


def test_a_replay_rebuilds_every_order_exactly_from_the_log_alone(
    live: LiveOrders, fresh_url: str
) -> None:
    placed = [
        cancelled_while_a_capture_was_in_flight(live),
        declined(live),
        out_of_stock(live),
        returned_with_two_resends(live),
    ]

    orders_replay, report = rebuild(live, fresh_url)

    rebuilt, original = views(fresh_url), views(live.settings.database_url)
    assert sorted(rebuilt) == sorted(placed)
    assert differences(original, rebuilt) == []
    assert report.dead_lettered == 0
    assert (orders_replay.notes.resends, orders_replay.notes.not_reproduced) == (2, 0)
    cancelled = [(s.event_type, s.note) for s in rebuilt[placed[0]].timeline][:5]
    assert cancelled == [
        ("OrderPlaced", None),
        ("StockReserved", None),
        ("CustomerCancel", None),
        ("CancelShipment", None),
        ("PaymentCaptured", "late: the compensation's commands undo it"),
    ]


def test_a_deadline_is_fed_to_the_replayed_saga_where_it_passed(
    database_url: str, fresh_url: str
) -> None:
    live = LiveOrders(database_url, stock_deadline=timedelta(0))
    try:
        order_id = live.place()
        reserved = live.publish(
            "StockReserved",
            order_id,
            "inventory",
            reservation_id="r",
            lines=[{"sku": "MUG", "quantity": 1, "warehouse": "WH-A"}],
        )
        live.timers()  # the stock deadline passed before the saga read the reservation
        live.consume(reserved)
        live.happen(
            "ShipmentCancelled",
            order_id,
            "fulfillment",
            shipment_id=None,
            reason="stock_deadline_exceeded",
        )
        live.released(order_id)
        live.refunded(order_id, refund_id_for_cancellation(order_id), 0)
        assert live.status(order_id) == "CANCELLED"

        rebuild(live, fresh_url)

        rebuilt = views(fresh_url)
        assert differences(views(database_url), rebuilt) == []
        assert rebuilt[order_id].cancel_reason == "stock_deadline_exceeded"
        assert [s.event_type for s in rebuilt[order_id].timeline][1:4] == [
            "DeadlinePassed",
            "CancelShipment",
            "StockReserved",
        ]
    finally:
        live.close()


def test_replaying_again_changes_nothing_and_nothing_is_ever_staged_for_kafka(
    live: LiveOrders, fresh_url: str
) -> None:
    order_id = returned_with_two_resends(live)
    _, first = rebuild(live, fresh_url)

    _, again = rebuild(live, fresh_url)

    assert first.changed and first.emitted[("orders.commands", "IssueReturnLabel")] == 3
    assert (again.handled, again.changed, again.emitted) == (0, False, Counter())
    assert again.duplicates == first.handled
    engine = create_database_engine(fresh_url)
    with engine.connect() as connection:
        assert connection.execute(select(live.runtime.outbox.c.id)).all() == []
    engine.dispose()
    assert differences(views(live.settings.database_url), views(fresh_url)) == []
    assert order_id in views(fresh_url)


def test_a_dry_run_says_what_a_rebuild_would_write_and_writes_nothing(
    live: LiveOrders, fresh_url: str
) -> None:
    declined(live)
    out_of_stock(live)

    _, report = rebuild(live, fresh_url, dry_run=True)

    assert report.changes["orders"].inserted == 2
    assert report.changes["order_timeline"].inserted > 2
    assert report.emitted[("orders.events", "OrderCancelled")] == 2
    engine = create_database_engine(fresh_url)
    assert inspect(engine).get_table_names() == []  # not even the tables
    engine.dispose()


def test_the_comparison_names_each_difference(live: LiveOrders, fresh_url: str) -> None:
    order_id = declined(live)
    rebuild(live, fresh_url)
    engine = create_database_engine(fresh_url)
    with engine.begin() as connection:
        connection.execute(update(Order).values(cancel_reason="fraud_rejected"))
        connection.execute(
            update(TimelineEntry).where(TimelineEntry.event_type == "ReleaseStock").values(note="x")
        )
    engine.dispose()

    found = differences(views(live.settings.database_url), views(fresh_url))

    assert len(found) == 2, found
    assert (
        found[0] == f"order {order_id}: cancel_reason is 'declined' live, 'fraud_rejected' replayed"
    )
    # The note belongs to an answer: its round, PaymentFailed's, is named.
    assert found[1].startswith(f"order {order_id}: timeline entry 3 is PaymentFailed from")
    live_step, rebuilt_step = (
        only_step(url, "ReleaseStock") for url in (live.settings.database_url, fresh_url)
    )
    assert rebuilt_step.note == "x"
    assert f"{live_step} live, entry 3 " in found[1]
    assert found[1].endswith(f" + {rebuilt_step} replayed")


def only_step(url: str, event_type: str) -> TimelineStep:
    ((step,),) = [
        [s for s in view.timeline if s.event_type == event_type] for view in views(url).values()
    ]
    return step


def swap_entries(url: str, first_type: str, second_type: str) -> None:
    """The two entries change places in the timeline (each takes the other's row)."""
    columns = ("event_id", "event_type", "source", "status_after", "note")
    engine = create_database_engine(url)
    with engine.begin() as connection:
        rows = {
            row.event_type: row
            for row in connection.execute(
                select(TimelineEntry.__table__).where(
                    TimelineEntry.event_type.in_([first_type, second_type])
                )
            )
        }
        first, second = rows[first_type], rows[second_type]
        for target, source in ((first, second), (second, first)):
            connection.execute(
                update(TimelineEntry)
                .where(TimelineEntry.id == target.id)
                .values({column: getattr(source, column) for column in columns})
            )
    engine.dispose()


def reached_reserved_when_placed(url: str) -> None:
    engine = create_database_engine(url)
    with engine.begin() as connection:
        connection.execute(
            update(TimelineEntry)
            .where(TimelineEntry.event_type == "OrderPlaced")
            .values(status_after="RESERVED")
        )
    engine.dispose()


@pytest.mark.parametrize(
    ("change", "entries"),
    [
        pytest.param(reached_reserved_when_placed, [1], id="a status reached elsewhere"),
        pytest.param(
            lambda url: swap_entries(url, "PaymentFailed", "ReleaseStock"),
            [2, 3],  # inventory's round gained an answer, payments' lost it
            id="an answer after another input",
        ),
    ],
)
def test_a_timeline_the_log_does_not_allow_is_a_difference(
    live: LiveOrders, fresh_url: str, change: Callable[[str], None], entries: list[int]
) -> None:
    order_id = declined(live)
    rebuild(live, fresh_url)
    change(fresh_url)

    found = differences(views(live.settings.database_url), views(fresh_url))

    assert len(found) == len(entries), found
    for line, entry in zip(found, entries, strict=True):
        assert line.startswith(f"order {order_id}: timeline entry {entry} is "), found


def cancelled_and_released(live: LiveOrders) -> tuple[str, Envelope]:
    """A reserved order the customer cancelled, its shipment cancelled: the saga awaits the
    release and the refund. Inventory's StockReleased is on the log, not yet read."""
    order_id = live.place()
    live.reserve(order_id)
    live.cancel(order_id)
    live.happen("ShipmentCancelled", order_id, "fulfillment", shipment_id=None,
                reason="customer_cancelled")  # fmt: skip
    released = live.publish(
        "StockReleased", order_id, "inventory",
        lines=[{"sku": "MUG", "quantity": 1, "warehouse": "WH-A"}],
    )  # fmt: skip
    return order_id, released


def rebuilt_alike_though_read_out_of_stamp_order(
    live: LiveOrders, fresh_url: str, order_id: str, *, read_first: str, stamped_first: str
) -> None:
    """The replay reads the two in stamp order, the live saga did not (the race really
    happened), and the comparison finds no difference."""
    rebuild(live, fresh_url)
    live_timeline = timeline_of(live.settings.database_url, order_id)
    assert live_timeline.index(read_first) < live_timeline.index(stamped_first)
    rebuilt_timeline = timeline_of(fresh_url, order_id)
    assert rebuilt_timeline.index(stamped_first) < rebuilt_timeline.index(read_first)
    assert differences(views(live.settings.database_url), views(fresh_url)) == []


def test_answers_that_left_the_status_as_it_was_may_have_been_read_in_either_order(
    live: LiveOrders, fresh_url: str
) -> None:
    order_id, released = cancelled_and_released(live)
    late_capture = live.captured(order_id)
    # Stamped second, read first; neither sends anything: the refund is still awaited.
    live.consume(late_capture)
    live.consume(released)
    live.refunded(order_id, refund_id_for_cancellation(order_id), MUG_PRICE + 499)
    assert live.status(order_id) == "CANCELLED"

    rebuilt_alike_though_read_out_of_stamp_order(
        live, fresh_url, order_id, read_first="PaymentCaptured", stamped_first="StockReleased"
    )


def test_a_resend_the_saga_sent_before_reading_an_earlier_stamped_ack_is_no_difference(
    live: LiveOrders, fresh_url: str
) -> None:
    order_id, released = cancelled_and_released(live)
    live.timers()  # re-sends ReleaseStock and RefundPayment: the release is not read yet
    live.consume(released)
    live.refunded(order_id, refund_id_for_cancellation(order_id), MUG_PRICE + 499)

    rebuilt_alike_with_its_resend(live, fresh_url, order_id, "CANCELLED")


def test_events_held_back_behind_an_acknowledgement_keep_their_partitions_order(
    live: LiveOrders, fresh_url: str
) -> None:
    order_id = live.place()
    live.deliver_order(order_id)
    return_id = live.request_return(order_id)
    labelled = live.publish(
        "ReturnLabelIssued", order_id, "fulfillment", return_id=return_id, carrier="sim",
        label_reference="L-1",
    )  # fmt: skip
    received = live.publish(
        "ReturnReceived", order_id, "fulfillment", return_id=return_id,
        lines=[{"sku": "MUG", "quantity": 1}], received_at=NOW,
    )  # fmt: skip
    live.timers()  # both stamped, neither read: the label request is re-sent
    live.consume(labelled)
    live.consume(received)
    live.happen("StockRestocked", order_id, "inventory", return_id=return_id,
                lines=[{"sku": "MUG", "quantity": 1}])  # fmt: skip
    live.refunded(order_id, refund_id_for_return(return_id), MUG_PRICE + 499)

    rebuilt_alike_with_its_resend(live, fresh_url, order_id, "RETURNED")


def rebuilt_alike_with_its_resend(
    live: LiveOrders, fresh_url: str, order_id: str, status: str
) -> None:
    assert live.status(order_id) == status
    orders_replay, _ = rebuild(live, fresh_url)
    assert differences(views(live.settings.database_url), views(fresh_url)) == []
    assert (orders_replay.notes.resends, orders_replay.notes.not_reproduced) == (1, 0)


def test_answers_the_saga_read_in_another_order_than_stamped_are_replayed_as_it_read_them(
    live: LiveOrders, fresh_url: str
) -> None:
    # Inventory stamped its answer first, payments' reached the saga first: the log's
    # OrderCancelled, caused by StockReleased, says which one the saga took last.
    order_id, released = cancelled_and_released(live)
    live.refunded(order_id, refund_id_for_cancellation(order_id), 0)
    live.consume(released)
    assert live.status(order_id) == "CANCELLED"

    orders_replay, _ = rebuild(live, fresh_url)

    rebuilt = views(fresh_url)
    assert differences(views(live.settings.database_url), rebuilt) == []
    assert [s.event_type for s in rebuilt[order_id].timeline][-3:] == [
        "PaymentRefunded",
        "StockReleased",
        "OrderCancelled",
    ]
    assert orders_replay.notes.not_reproduced == 0


def timeline_of(url: str, order_id: str) -> list[str]:
    engine = create_database_engine(url)
    try:
        with Session(engine) as session:
            query = (
                select(TimelineEntry.event_type)
                .where(TimelineEntry.order_id == order_id)
                .order_by(TimelineEntry.id)
            )
            return list(session.scalars(query))
    finally:
        engine.dispose()


def told(live: LiveOrders, order_id: str) -> Envelope:
    return live.publish(
        "NotificationSent", order_id, "notifications", notification_id=f"n-{order_id}",
        channel="email", template="order_received", recipient="c@example.com", sent_at=NOW,
    )  # fmt: skip


def test_a_notification_read_after_a_later_stamped_step_is_no_difference(
    live: LiveOrders, fresh_url: str
) -> None:
    order_id = live.place()
    notification = told(live, order_id)
    reserved = live.publish(
        "StockReserved", order_id, "inventory", reservation_id="r",
        lines=[{"sku": "MUG", "quantity": 1, "warehouse": "WH-A"}],
    )  # fmt: skip
    live.consume(reserved)
    live.consume(notification)

    rebuilt_alike_though_read_out_of_stamp_order(
        live, fresh_url, order_id, read_first="StockReserved", stamped_first="NotificationSent"
    )


def test_an_effect_read_before_its_cause_on_another_topic_is_no_difference(
    live: LiveOrders, fresh_url: str
) -> None:
    order_id = live.place()
    reserved = live.publish(
        "StockReserved", order_id, "inventory", reservation_id="r",
        lines=[{"sku": "MUG", "quantity": 1, "warehouse": "WH-A"}],
    )  # fmt: skip
    captured = live.captured(order_id)  # payments captured because the stock was reserved...
    live.consume(captured)  # ...but the saga read the capture first, and skipped RESERVED
    live.consume(reserved)

    rebuilt_alike_though_read_out_of_stamp_order(
        live, fresh_url, order_id, read_first="PaymentCaptured", stamped_first="StockReserved"
    )
    assert only_step(live.settings.database_url, "StockReserved").status_after == "PAID"
    assert only_step(fresh_url, "StockReserved").status_after == "RESERVED"


def dropped(url: str) -> None:
    engine = create_database_engine(url)
    with engine.begin() as connection:
        connection.execute(
            delete(TimelineEntry).where(TimelineEntry.event_type == "NotificationSent")
        )
    engine.dispose()


def written_twice(url: str) -> None:
    columns = [c for c in TimelineEntry.__table__.columns if c.name != "id"]
    engine = create_database_engine(url)
    with engine.begin() as connection:
        connection.execute(
            insert(TimelineEntry).from_select(
                columns,
                select(*columns).where(TimelineEntry.event_type == "NotificationSent"),
            )
        )
    engine.dispose()


@pytest.mark.parametrize(
    ("change", "only"),
    [
        pytest.param(dropped, "live", id="dropped"),
        pytest.param(written_twice, "replayed", id="twice"),
    ],
)
def test_a_notification_not_rebuilt_once_is_a_difference(
    live: LiveOrders, fresh_url: str, change: Callable[[str], None], only: str
) -> None:
    order_id = live.place()
    notification = told(live, order_id)
    live.consume(notification)
    rebuild(live, fresh_url)
    change(fresh_url)

    found = differences(views(live.settings.database_url), views(fresh_url))

    replayed, extra = (0, 2) if only == "live" else (2, 3)  # entry 3: the copy
    assert found == [
        f"order {order_id}: timeline has 1 inputs from notifications live, {replayed} replayed;"
        f" the first extra one ({only}): entry {extra} NotificationSent"
        f" from notifications [{notification.event_id}]"
    ]


def test_a_replay_into_the_live_read_model_itself_changes_no_order(live: LiveOrders) -> None:
    cancelled_while_a_capture_was_in_flight(live)
    returned_with_two_resends(live)
    before = views(live.settings.database_url)

    _, report = rebuild(live, live.settings.database_url)

    # Every consumed event is in the inbox already; the orders service's own messages
    # find their order, return, request or message there and are marked handled.
    assert set(report.changes) == {"inbox"}
    assert report.changes["inbox"].inserted == sum(
        record.topic in ("orders.events", "orders.commands") for record in live.log
    )
    assert not report.emitted
    assert views(live.settings.database_url) == before
