"""One service on a real database, fed consumed batches by hand instead of by Kafka.

For tests: no broker is involved, so whatever the service emits stays in its outbox, where
`emitted` reads it back. Services wrap `ServiceHarness` in a thin subclass of their own for
their settings, adapters and state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from kit.avro_codec import SchemaStore
from kit.consumer import BatchOutcome
from kit.envelope import Envelope
from kit.problems import install_problem_handlers
from kit.records import StoredRecord
from kit.service import Runtime, ServiceDefinition
from kit.settings import ServiceSettings
from kit.unit_of_work import UnitOfWork

# The orders saga's commands travel here; every other message on `<producer>.events`.
COMMANDS_TOPIC = "orders.commands"
UNIT_PRICE = 1000

T = TypeVar("T")


def record_of(
    envelope: Envelope, schemas: SchemaStore, topic: str, offset: int = 0
) -> StoredRecord:
    """The record a producer would have written for `envelope`, as read from partition 0."""
    return StoredRecord(
        topic,
        0,
        offset,
        envelope.key.encode(),
        schemas.encode(envelope.event_type, envelope.payload),
        envelope.headers(),
    )


class ServiceHarness:
    """A service's runtime on its database, its tables created, with no broker and no loop."""

    def __init__(
        self,
        settings: ServiceSettings,
        definition: ServiceDefinition,
        *,
        commands: Collection[str] = (),
    ) -> None:
        """`commands`: the saga's commands this service consumes, which come on COMMANDS_TOPIC."""
        self.definition = definition
        self.runtime = Runtime(settings, definition)
        self.runtime.create_tables()
        self._commands = frozenset(commands)
        self._offset = 0

    def close(self) -> None:
        self.runtime.engine.dispose()
        self.runtime.read_engine.dispose()

    def topic_of(self, envelope: Envelope) -> str:
        if envelope.event_type in self._commands:
            return COMMANDS_TOPIC
        return f"{envelope.producer}.events"

    def deliver(self, *envelopes: Envelope) -> BatchOutcome:
        """One consumed batch, handled in one transaction like the Kafka consumer does.

        A dead-lettered message fails the test: a handler's bug must not pass for a skip.
        """
        records = []
        for envelope in envelopes:
            self._offset += 1
            records.append(
                record_of(envelope, self.runtime.schemas, self.topic_of(envelope), self._offset)
            )
        outcome = self.runtime.batch_processor().process(records)
        assert outcome.dead_lettered == 0, "a handler failed: its message was dead-lettered"
        return outcome

    def emitted(self, event_type: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(event type, decoded payload) of every staged message, oldest first."""
        outbox = self.runtime.outbox
        with self.runtime.engine.connect() as connection:
            values = connection.execute(select(outbox.c.value).order_by(outbox.c.id)).scalars()
            decoded = [self.runtime.schemas.decode(value) for value in values]
        return [(t, p) for t, p in decoded if event_type is None or t == event_type]

    def payloads(self, event_type: str) -> list[dict[str, Any]]:
        """The decoded payloads of the staged messages of one type, oldest first."""
        return [payload for _, payload in self.emitted(event_type)]

    def run(self, action: Callable[[UnitOfWork], T]) -> T:
        """`action` in one unit of work, committed, as a request or a job would run it."""
        with self.runtime.unit_of_work() as uow:
            result = action(uow)
            uow.commit()
        return result

    def run_job(self, name: str) -> object:
        """One tick of the named periodic job, as the service runs it."""
        (job,) = [job for job in self.definition.periodic_jobs if job.name == name]
        return self.run(job.run)

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
        if self.definition.configure_app is not None:
            self.definition.configure_app(app)
        for router in self.definition.routers:
            app.include_router(router)
        app.state.runtime = self.runtime
        return app


def event(event_type: str, order_id: str, producer: str, **payload: Any) -> Envelope:
    """A message about one order; a new event id each call, as a re-sent answer has."""
    return Envelope(
        event_type=event_type,
        key=order_id,
        payload={"order_id": order_id, **payload},
        correlation_id=order_id,
        producer=producer,
    )


def command(event_type: str, order_id: str, **payload: Any) -> Envelope:
    """A command of the orders saga; a new event id each call, as the saga's retry has."""
    return event(event_type, order_id, "orders", **payload)


def sku_lines(lines: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """(sku, quantity) pairs as the lines of a command or event about goods."""
    return [{"sku": sku, "quantity": quantity} for sku, quantity in lines]


def order_placed(
    order_id: str,
    lines: Sequence[tuple[str, int]] = (("T-MUG", 2),),
    *,
    customer_email: str = "c-1@example.com",
    customer_name: str = "Test Customer",
    payment_token: str = "tok_visa",
) -> Envelope:
    """OrderPlaced for (sku, quantity) lines at UNIT_PRICE each, shipped for free."""
    subtotal = UNIT_PRICE * sum(quantity for _, quantity in lines)
    return event(
        "OrderPlaced",
        order_id,
        "orders",
        customer_id="c-1",
        customer_email=customer_email,
        customer_name=customer_name,
        lines=[
            {"sku": sku, "name": sku.title(), "quantity": quantity, "unit_price": UNIT_PRICE}
            for sku, quantity in lines
        ],
        currency="EUR",
        subtotal=subtotal,
        shipping=0,
        total=subtotal,
        shipping_address={
            "name": customer_name,
            "line1": "1 Test Street",
            "line2": None,
            "city": "Berlin",
            "postal_code": "10115",
            "region": None,
            "country": "DE",
        },
        payment_token=payment_token,
        placed_at=datetime.now(UTC),
    )
