"""The fulfillment service on a real database, fed messages the way its consumer feeds them.

For tests: no broker is involved, so whatever the service emits stays in its outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fulfillment.adapters.carrier import Carrier
from fulfillment.adapters.tables import Shipment, outbox
from fulfillment.bootstrap import definition
from fulfillment.settings import FulfillmentSettings
from kit.consumer import BatchOutcome
from kit.envelope import Envelope
from kit.problems import install_problem_handlers
from kit.service import Runtime


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Fulfillment:
    def __init__(
        self, database_url: str, *, dispatch_delay_s: float = 0.0, carrier: Carrier | None = None
    ) -> None:
        settings = FulfillmentSettings(
            database_url=database_url, dispatch_delay_s=dispatch_delay_s, delivery_delay_s=0.0
        )
        self.definition = definition(settings, carrier)
        self.runtime = Runtime(settings, self.definition)
        self.runtime.create_tables()
        self._offset = 0

    def close(self) -> None:
        self.runtime.engine.dispose()
        self.runtime.read_engine.dispose()

    def deliver(self, *envelopes: Envelope) -> BatchOutcome:
        """One consumed batch, handled in one transaction like the Kafka consumer does."""
        records = []
        for envelope in envelopes:
            self._offset += 1
            records.append(
                Record(
                    _topic_of(envelope),
                    0,
                    self._offset,
                    envelope.key.encode(),
                    self.runtime.schemas.encode(envelope.event_type, envelope.payload),
                    envelope.headers(),
                )
            )
        return self.runtime.batch_processor().process(records)

    def run_carrier(self) -> int:
        """One tick of the periodic carrier job, as the service runs it."""
        (job,) = self.definition.periodic_jobs
        with self.runtime.unit_of_work() as uow:
            moved = job.run(uow)
            uow.commit()
        assert isinstance(moved, int)
        return moved

    def make_timers_due(self) -> None:
        """Time passes: every pending carrier step is due now."""
        with self.runtime.session_factory() as session, session.begin():
            session.execute(
                update(Shipment)
                .where(Shipment.next_step_at.is_not(None))
                .values(next_step_at=datetime.now(UTC) - timedelta(seconds=1))
            )

    def emitted(self, event_type: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(event type, decoded payload) of every staged message, oldest first."""
        with self.runtime.engine.connect() as connection:
            rows = connection.execute(select(outbox).order_by(outbox.c.id)).all()
        decoded = [self.runtime.schemas.decode(row.value) for row in rows]
        return [(t, p) for t, p in decoded if event_type is None or t == event_type]

    def session(self) -> Session:
        return self.runtime.session_factory()

    def app(self) -> FastAPI:
        """The service's HTTP API with its group committer running, but no broker."""

        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            committer = asyncio.create_task(self.runtime.committer.run())
            yield
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)

        app = FastAPI(lifespan=lifespan)
        install_problem_handlers(app)
        for router in self.definition.routers:
            app.include_router(router)
        app.state.runtime = self.runtime
        return app


def _topic_of(envelope: Envelope) -> str:
    if envelope.event_type in ("CancelShipment", "IssueReturnLabel"):
        return "orders.commands"
    return f"{envelope.producer}.events"


def command(event_type: str, order_id: str, **payload: Any) -> Envelope:
    return Envelope(
        event_type=event_type,
        key=order_id,
        payload={"order_id": order_id, **payload},
        correlation_id=order_id,
        producer="orders",
    )


def order_placed(order_id: str, lines: Sequence[tuple[str, int]] = (("T-MUG", 2),)) -> Envelope:
    return command(
        "OrderPlaced",
        order_id,
        customer_id="c-1",
        customer_email="c-1@example.com",
        customer_name="Test Customer",
        lines=[
            {"sku": sku, "name": sku.title(), "quantity": quantity, "unit_price": 1000}
            for sku, quantity in lines
        ],
        currency="EUR",
        subtotal=2000,
        shipping=0,
        total=2000,
        shipping_address={
            "name": "Test Customer",
            "line1": "1 Test Street",
            "line2": None,
            "city": "Berlin",
            "postal_code": "10115",
            "region": None,
            "country": "DE",
        },
        payment_token="tok_visa",
        placed_at=datetime.now(UTC),
    )


def payment_captured(order_id: str) -> Envelope:
    return Envelope(
        event_type="PaymentCaptured",
        key=order_id,
        payload={
            "order_id": order_id,
            "payment_id": f"pay-{order_id}",
            "amount": 2000,
            "currency": "EUR",
            "provider_reference": "psp-1",
            "captured_at": datetime.now(UTC),
        },
        correlation_id=order_id,
        producer="payments",
    )


def cancel_shipment(order_id: str, reason: str = "customer_request") -> Envelope:
    """A new envelope each call: the saga's retry carries a new event id."""
    return command("CancelShipment", order_id, reason=reason)


def issue_return_label(
    order_id: str, return_id: str, lines: Sequence[tuple[str, int]] = (("T-MUG", 2),)
) -> Envelope:
    return command(
        "IssueReturnLabel",
        order_id,
        return_id=return_id,
        lines=[{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    )
