"""Rebuilding the orders read model (status, timeline, returns) from the event topics alone.

The live model has inputs no other service publishes: the gateway creates the order, the
customer cancels or returns, time passes deadlines, the timer re-sends commands. The log
records each of them on the orders service's own topics, so a replay reads those too:

- `OrderPlaced` becomes the order row, as the gateway stored it (`order_from_placed`);
- `OrderCancellationRequested` / `OrderDeadlinePassed` go to the saga as the customer's
  cancel and the deadline did (`saga_inputs.feed_*`);
- `ReturnRequested` opens the return and feeds it to the saga (`open_return`);
- a recorded command nobody caused is a re-send of the timer's: the replay re-sends there;
- every other event the saga consumes goes to the very handlers `bootstrap.py` builds.

`replay_log.in_saga_order` arranges the records as the live saga took them, and what the
saga emits gets the id it had when first emitted (`replay_log.OwnLog`), so the rebuilt
timeline names the same messages. `replay_compare` says whether it all came out the same.

Nothing leaves the process: the replay unit of work writes no outbox rows unless asked (see
`kit.replay`), and the saga has no other side effect. Orders placed before the range are
not rebuilt; events about them are counted and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from kit.avro_codec import SchemaStore
from kit.consumer import Handler, Subscription
from kit.envelope import Envelope
from kit.records import StoredRecord
from kit.replay import Replayable
from kit.unit_of_work import UnitOfWork
from orders import bootstrap, contracts
from orders.adapters.tables import Order, OrderLine, OrderReturn, TimelineEntry
from orders.domain.returns import ReturnLine
from orders.domain.saga import ACKNOWLEDGED_BY, OrderStatus
from orders.handlers.customer_requests import open_return
from orders.handlers.placing import pending_saga
from orders.handlers.saga import Saga, lock_orders_of_batch
from orders.handlers.saga_inputs import (
    CANCELLATION_REQUESTED,
    feed_cancellation_request,
    feed_deadline,
)
from orders.replay_log import (
    FOUND_BY_RETURN,
    OWN_TOPICS,
    RECORDED_INPUTS,
    SAGA_OUTPUTS,
    OwnLog,
    Recorded,
    in_saga_order,
)
from orders.settings import OrdersSettings

log = logging.getLogger(__name__)

TOPICS = (*contracts.CONSUMES_TOPICS, *OWN_TOPICS)


@dataclass
class RebuildNotes:
    """What the replay met that it did not rebuild, for the report."""

    outside_range: int = 0  # messages about orders placed before the range
    not_reproduced: int = 0  # recorded saga messages the replayed saga did not send
    resends: int = 0  # timer re-sends the replay reproduced


class OrdersReplay:
    """The orders service as `kit.replay` runs it, to rebuild its read model from the log."""

    def __init__(
        self, settings: OrdersSettings, records: Sequence[StoredRecord], schemas: SchemaStore
    ) -> None:
        """`records`: the range to replay (of TOPICS), for what the log tells about it."""
        self._settings = settings
        self._schemas = schemas
        self._log = OwnLog.read(records, schemas)
        self._saga = Saga(settings)
        self._resending: Recorded | None = None
        self.notes = RebuildNotes()

    def replayable(self) -> Replayable:
        definition = bootstrap.definition(self._settings)
        assert definition.subscription is not None
        handlers: dict[str, Handler] = {
            event_type: self._consumed(handler)
            for event_type, handler in definition.subscription.handlers.items()
        }
        handlers["OrderPlaced"] = self._order_placed
        handlers["ReturnRequested"] = self._return_requested
        for event_type in RECORDED_INPUTS:
            handlers[event_type] = self._recorded_input
        for event_type in SAGA_OUTPUTS - {"ReturnRequested"}:
            handlers[event_type] = self._recorded_output
        subscription = Subscription(TOPICS, handlers, prefetch=lock_orders_of_batch)
        return Replayable(
            definition, subscription, assign_event_id=self._event_id, arrange=self._arrange
        )

    def _arrange(self, records: Iterable[StoredRecord]) -> list[StoredRecord]:
        return in_saga_order(records, self._schemas, self._log)

    # -- the ids of what the saga emits -----------------------------------------------------

    def _event_id(self, envelope: Envelope) -> str:
        if envelope.causation_id:
            key = (envelope.causation_id, envelope.event_type)
            return self._log.caused.get(key, envelope.event_id)
        order_id = str(envelope.payload["order_id"])
        if self._resending is not None:
            found = self._log.resent_after(self._resending, order_id, envelope.event_type)
            return found or envelope.event_id
        return_id = envelope.payload.get("return_id")
        if return_id and envelope.event_type in FOUND_BY_RETURN:
            key = (envelope.event_type, str(return_id))
            return self._log.first_for_return.get(key, envelope.event_id)
        return envelope.event_id

    # -- handlers -----------------------------------------------------------------------------

    def _consumed(self, handler: Handler) -> Handler:
        """A live handler; the saga's inputs only for orders the replay has rebuilt."""

        def handle(envelope: Envelope, uow: UnitOfWork) -> None:
            order_id = envelope.payload.get("order_id")
            if order_id is None:
                handler(envelope, uow)  # the catalog copy
                return
            if self._order(uow, order_id) is None:
                return
            handler(envelope, uow)

        return handle

    def _order_placed(self, envelope: Envelope, uow: UnitOfWork) -> None:
        if uow.session.get(Order, envelope.payload["order_id"]) is not None:
            return  # replayed into a read model that has it already
        uow.session.add(order_from_placed(envelope, self._settings.stock_deadline))
        uow.session.flush()

    def _return_requested(self, envelope: Envelope, uow: UnitOfWork) -> None:
        payload = envelope.payload
        order = self._order(uow, payload["order_id"])
        if order is None or uow.session.get(OrderReturn, payload["return_id"]) is not None:
            return
        lines = [ReturnLine(line["sku"], int(line["quantity"])) for line in payload["lines"]]
        requested_at = payload["requested_at"]
        open_return(
            uow, self._saga, order, payload["return_id"], lines, payload["reason"], requested_at
        )

    def _recorded_input(self, envelope: Envelope, uow: UnitOfWork) -> None:
        order = self._order(uow, envelope.payload["order_id"])
        if order is None or _in_timeline(uow, order.order_id, envelope.event_id):
            return  # replayed into a read model that has it already
        if envelope.event_type == CANCELLATION_REQUESTED:
            feed_cancellation_request(uow, self._saga, order, envelope)
        else:
            feed_deadline(uow, self._saga, order, envelope)

    def _recorded_output(self, envelope: Envelope, uow: UnitOfWork) -> None:
        order = self._order(uow, envelope.payload["order_id"])
        if order is None or _in_timeline(uow, order.order_id, envelope.event_id):
            return  # the replayed saga sent it too, under this id
        if self._is_resend(envelope, order):
            self._resending = self._log.by_id.get(envelope.event_id)
            try:
                self._saga.resend_unacknowledged(uow, order, datetime.now(UTC))
            finally:
                self._resending = None
            uow.after_commit(self._count("resends"))
            return
        log.warning(
            "order %s: the log has %s %s that the replayed saga did not send",
            order.order_id,
            envelope.event_type,
            envelope.event_id,
        )
        uow.after_commit(self._count("not_reproduced"))

    # -- helpers ------------------------------------------------------------------------------

    def _order(self, uow: UnitOfWork, order_id: str) -> Order | None:
        order = uow.session.get(Order, order_id)
        if order is None:
            uow.after_commit(self._count("outside_range"))
        return order

    def _count(self, note: str) -> Callable[[], None]:
        def count() -> None:
            setattr(self.notes, note, getattr(self.notes, note) + 1)

        return count

    def _is_resend(self, envelope: Envelope, order: Order) -> bool:
        """A command nobody caused, not the first of its return, that the order still waits
        to see acknowledged: the timer sent it again."""
        ack = ACKNOWLEDGED_BY.get(envelope.event_type)
        return (
            envelope.causation_id is None
            and ack is not None
            and ack in (order.awaiting or {})
            and not self._log.is_original_of_return(envelope)
        )


def _in_timeline(uow: UnitOfWork, order_id: str, event_id: str) -> bool:
    found = uow.session.scalar(
        select(TimelineEntry.id).where(
            TimelineEntry.order_id == order_id, TimelineEntry.event_id == event_id
        )
    )
    return found is not None


def order_from_placed(envelope: Envelope, stock_deadline: timedelta) -> Order:
    """The order row as the gateway stored it, from its OrderPlaced.

    OrderPlaced does not carry the storefront client, the notes or the client's metadata:
    a rebuilt order has none of them (client "")."""
    payload = envelope.payload
    placed_at: datetime = payload["placed_at"]
    return Order(
        order_id=payload["order_id"],
        client_id="",
        customer_id=payload["customer_id"],
        customer_email=payload["customer_email"],
        customer_name=payload["customer_name"],
        shipping_address=dict(payload["shipping_address"]),
        notes=None,
        client_metadata={},
        currency=payload["currency"],
        subtotal=payload["subtotal"],
        shipping=payload["shipping"],
        total=payload["total"],
        **pending_saga(placed_at, stock_deadline),
        trace_id=envelope.trace_id,
        returns=[],
        lines=[
            OrderLine(
                line_no=n,
                sku=line["sku"],
                name=line["name"],
                quantity=line["quantity"],
                unit_price=line["unit_price"],
            )
            for n, line in enumerate(payload["lines"], start=1)
        ],
        timeline=[
            TimelineEntry(
                event_id=envelope.event_id,
                event_type="OrderPlaced",
                source="orders",
                occurred_at=placed_at,
                status_after=OrderStatus.PENDING,
            )
        ],
    )
