"""A minimal service for testing the kit: it stores completed orders and emits nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from kit.avro_codec import SchemaStore
from kit.database import TYPE_ANNOTATIONS, create_database_engine, kit_tables
from kit.envelope import Envelope
from kit.settings import REPO_ROOT
from kit.unit_of_work import UnitOfWork

SCHEMAS = SchemaStore.load(REPO_ROOT / "schemas")


class SampleBase(DeclarativeBase):
    type_annotation_map = TYPE_ANNOTATIONS


outbox, inbox = kit_tables(SampleBase.metadata)


class CompletedOrder(SampleBase):
    __tablename__ = "completed_orders"
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    times_seen: Mapped[int]
    completed_at: Mapped[datetime]


def record_completion(envelope: Envelope, uow: UnitOfWork) -> None:
    order_id = envelope.payload["order_id"]
    row = uow.session.get(CompletedOrder, order_id)
    if row is None:
        uow.session.add(
            CompletedOrder(
                order_id=order_id, times_seen=1, completed_at=envelope.payload["completed_at"]
            )
        )
    else:
        row.times_seen += 1
    uow.emit(
        envelope.caused(
            "NotificationSent",
            {
                "order_id": order_id,
                "notification_id": f"n-{order_id}",
                "channel": "email",
                "template": "done",
                "recipient": "a@example.com",
                "sent_at": datetime.now(UTC),
            },
            producer="sample",
        )
    )


ROUTES = {"NotificationSent": "notifications.events", "OrderCompleted": "orders.events"}


@dataclass
class SampleDatabase:
    url: str
    notified: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = create_database_engine(self.url)
        SampleBase.metadata.create_all(self.engine)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    def unit_of_work(self, kind: type[UnitOfWork] = UnitOfWork) -> UnitOfWork:
        return kind(
            self.sessions,
            SCHEMAS,
            ROUTES,
            outbox,
            inbox,
            "sample",
            on_outbox_commit=lambda: self.notified.append(1),
        )

    def factory(self) -> Callable[[], UnitOfWork]:
        return self.unit_of_work


def order_completed(order_id: str) -> Envelope:
    return Envelope(
        event_type="OrderCompleted",
        key=order_id,
        payload={"order_id": order_id, "completed_at": datetime.now(UTC)},
        correlation_id=order_id,
        producer="orders",
    )
