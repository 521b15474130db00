"""The fulfillment service on a real database, fed messages the way its consumer feeds them.

For tests: the kit's `ServiceHarness` with fulfillment's carrier and clock-free timers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from fulfillment.adapters.carrier import Carrier
from fulfillment.adapters.tables import Shipment
from fulfillment.bootstrap import definition
from fulfillment.settings import FulfillmentSettings
from kit.envelope import Envelope
from kit.testing.service_harness import ServiceHarness, command, event, sku_lines


class Fulfillment(ServiceHarness):
    def __init__(
        self, database_url: str, *, dispatch_delay_s: float = 0.0, carrier: Carrier | None = None
    ) -> None:
        settings = FulfillmentSettings(
            database_url=database_url, dispatch_delay_s=dispatch_delay_s, delivery_delay_s=0.0
        )
        super().__init__(
            settings,
            definition(settings, carrier),
            commands=("CancelShipment", "IssueReturnLabel"),
        )

    def run_carrier(self) -> int:
        """One tick of the periodic carrier job, as the service runs it."""
        moved = self.run_job("carrier")
        assert isinstance(moved, int)
        return moved

    def make_timers_due(self) -> None:
        """Time passes: every pending carrier step is due now."""
        with self.session() as session, session.begin():
            session.execute(
                update(Shipment)
                .where(Shipment.next_step_at.is_not(None))
                .values(next_step_at=datetime.now(UTC) - timedelta(seconds=1))
            )


def payment_captured(order_id: str) -> Envelope:
    return event(
        "PaymentCaptured",
        order_id,
        "payments",
        payment_id=f"pay-{order_id}",
        amount=2000,
        currency="EUR",
        provider_reference="psp-1",
        captured_at=datetime.now(UTC),
    )


def cancel_shipment(order_id: str, reason: str = "customer_request") -> Envelope:
    return command("CancelShipment", order_id, reason=reason)


def issue_return_label(
    order_id: str, return_id: str, lines: Sequence[tuple[str, int]] = (("T-MUG", 2),)
) -> Envelope:
    return command("IssueReturnLabel", order_id, return_id=return_id, lines=sku_lines(lines))
