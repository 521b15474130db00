"""Returns: issue a label on IssueReturnLabel; record what the warehouse finds in the parcel."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from fulfillment.adapters.carrier import Carrier
from fulfillment.adapters.tables import ReturnAuthorization, ShippingOrder
from fulfillment.domain.returns import LineProblem, ReturnLine, merged, received_line_problems
from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class ReturnHandlers:
    def __init__(self, carrier: Carrier) -> None:
        self._carrier = carrier

    def on_issue_return_label(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """One label per return: a repeated command is answered with the stored label."""
        payload = envelope.payload
        authorization = uow.session.get(ReturnAuthorization, payload["return_id"])
        if authorization is None:
            authorization = self._issue(envelope, uow)
        uow.emit(
            envelope.caused(
                "ReturnLabelIssued",
                {
                    "order_id": authorization.order_id,
                    "return_id": authorization.return_id,
                    "carrier": authorization.carrier,
                    "label_reference": authorization.label_reference,
                },
                producer=uow.service_name,
            )
        )

    def _issue(self, envelope: Envelope, uow: UnitOfWork) -> ReturnAuthorization:
        order_id, return_id = envelope.payload["order_id"], envelope.payload["return_id"]
        order = uow.session.get(ShippingOrder, order_id)
        if order is None or order.address is None:
            # Refusing would leave the saga retrying forever; the label is issued without a
            # pickup address, which the customer's drop-off does not need.
            log.warning("return %s: no shipping address known for order %s", return_id, order_id)
        label = self._carrier.issue_return_label(
            return_id, order.address if order is not None and order.address else {}
        )
        lines = merged(ReturnLine.from_record(line) for line in envelope.payload["lines"])
        authorization = ReturnAuthorization(
            return_id=return_id,
            order_id=order_id,
            lines=[line.as_record() for line in lines],
            carrier=label.carrier,
            label_reference=label.label_reference,
            status="label_issued",
            issued_at=datetime.now(UTC),
            trace_id=envelope.trace_id,
        )
        uow.session.add(authorization)
        log.info("return label issued for order %s: return %s", order_id, return_id)
        return authorization


class ReturnNotFoundError(LookupError):
    pass


class InvalidReturnLinesError(ValueError):
    def __init__(self, return_id: str, problems: Sequence[LineProblem]) -> None:
        super().__init__(f"return {return_id}: " + "; ".join(p.message for p in problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Receipt:
    authorization: ReturnAuthorization
    # False when the parcel had been recorded before: nothing was changed or emitted.
    recorded_now: bool


def receive_return(
    uow: UnitOfWork, return_id: str, found: Sequence[ReturnLine] | None = None
) -> Receipt:
    """Records the parcel's arrival and stages ReturnReceived; the caller commits.

    `found` is what was in the parcel; None means exactly the authorized lines. Receiving is
    idempotent: a parcel already recorded is returned as it was, whatever `found` says now.
    Raises ReturnNotFoundError or InvalidReturnLinesError; nothing is staged then."""
    authorization = uow.session.scalar(
        select(ReturnAuthorization)
        .where(ReturnAuthorization.return_id == return_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if authorization is None:
        raise ReturnNotFoundError(return_id)
    if authorization.status == "received":
        return Receipt(authorization, recorded_now=False)
    authorized = [ReturnLine.from_record(line) for line in authorization.lines]
    received = authorized if found is None else merged(found)
    problems = received_line_problems(authorized, received)
    if problems:
        raise InvalidReturnLinesError(return_id, problems)
    now = datetime.now(UTC)
    authorization.status = "received"
    authorization.received_lines = [line.as_record() for line in received]
    authorization.received_at = now
    uow.emit(
        uow.new_event(
            "ReturnReceived",
            {
                "order_id": authorization.order_id,
                "return_id": return_id,
                "lines": authorization.received_lines,
                "received_at": now,
            },
            key=authorization.order_id,
            correlation_id=authorization.order_id,
            trace_id=authorization.trace_id,
        )
    )
    return Receipt(authorization, recorded_now=True)
