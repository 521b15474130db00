"""What the log tells a replay of the orders saga besides the events themselves.

The orders service's own messages (orders.events, orders.commands) say which input each
decision of the live saga answered (`causation_id`), and the recorded customer and timer
inputs name the timeline entry they came after (`after_event_id`). From that:

- `OwnLog` finds, for a message the replayed saga emits, the id it had when first emitted;
- `in_saga_order` puts each order's records where the live saga took them. Records arrive in
  production-timestamp order, and the live consumer read them in that order too, except
  where two services answered at nearly the same moment and the one stamped first reached
  the broker second (say, StockReleased and PaymentRefunded, answering one compensation).
  An input whose live decision sent messages must send the same ones when replayed, and
  one that sent none must send none: one that would not is held back until the order's
  other inputs make it so. An acknowledgement is held back, too, until the timer's
  re-sends of its command are placed: the saga re-sends only what it still awaits. A
  customer's or timer's input goes right after the entry it names; a recorded message of
  the saga right after the input that caused it.

Inputs that change nothing the log records (a NotificationSent, a forward step that sends
nothing, a late one during a compensation) keep their timestamp order: if two of them
reached the saga in the other order — even an effect before its cause — the rebuilt
timeline differs there, a race the log does not record and `replay_timeline` does not
count as a difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from kit.avro_codec import DecodeError, SchemaStore
from kit.envelope import Envelope, MissingHeaderError, envelope_from_headers, header_map
from kit.records import StoredRecord
from kit.replay import in_production_order
from orders import contracts
from orders.bootstrap import SAGA_EVENTS
from orders.domain.saga import (
    COMMAND_FOR,
    CUSTOMER_CANCEL,
    CUSTOMER_RETURN,
    DEADLINE_PASSED,
    Input,
    OrderStatus,
    SagaState,
    decide,
)
from orders.handlers.saga import input_of
from orders.handlers.saga_inputs import (
    CANCELLATION_REQUESTED,
    DEADLINE_PASSED_EVENT,
    customer_return_id,
)

OWN_TOPICS = (contracts.EVENTS_TOPIC, contracts.COMMANDS_TOPIC)
RECORDED_INPUTS = (CANCELLATION_REQUESTED, DEADLINE_PASSED_EVENT)
# What the saga emits; found again on the log, each tells the replay its id (and a re-send).
SAGA_OUTPUTS = frozenset(contracts.PUBLISHES) - {"OrderPlaced", *RECORDED_INPUTS}
# Uncaused (a customer's return starts them): found by their return id instead.
FOUND_BY_RETURN = ("ReturnRequested", "IssueReturnLabel")
_INPUT_OF_REQUEST = {
    CANCELLATION_REQUESTED: CUSTOMER_CANCEL,
    DEADLINE_PASSED_EVENT: DEADLINE_PASSED,
}


@dataclass(frozen=True)
class Recorded:
    """A record decoded, where it sits in the log."""

    envelope: Envelope
    record: StoredRecord

    @property
    def event_id(self) -> str:
        return self.envelope.event_id

    @property
    def order_id(self) -> str | None:
        order_id = self.envelope.payload.get("order_id")
        return None if order_id is None else str(order_id)


def decoded(records: Iterable[StoredRecord], schemas: SchemaStore) -> Iterable[Recorded]:
    """The records that decode; poison ones are left to the replay's consumer (which counts
    them as dead letters, never published)."""
    for record in records:
        if record.value is None:
            continue
        try:
            _, payload = schemas.decode(record.value)
            key = (record.key or b"").decode("utf-8", "replace")
            envelope = envelope_from_headers(header_map(record.headers), key, payload)
        except (DecodeError, MissingHeaderError):
            continue
        yield Recorded(envelope, record)


class OwnLog:
    """The orders service's own messages in the range, indexed."""

    def __init__(self, own: Iterable[Recorded]) -> None:
        self.caused: dict[tuple[str, str], str] = {}  # (cause id, type) -> recorded id
        self.outputs_of: defaultdict[str, list[Recorded]] = defaultdict(list)  # by cause id
        self.first_for_return: dict[tuple[str, str], str] = {}  # (type, return id) -> id
        self.uncaused: defaultdict[tuple[str, str], list[Recorded]] = defaultdict(list)
        self.by_id: dict[str, Recorded] = {}
        for recorded in sorted(
            own, key=lambda r: (r.record.topic, r.record.partition, r.record.offset)
        ):
            envelope = recorded.envelope
            self.by_id[envelope.event_id] = recorded
            if envelope.event_type in RECORDED_INPUTS:
                continue
            if envelope.causation_id:
                self.caused.setdefault(
                    (envelope.causation_id, envelope.event_type), envelope.event_id
                )
                self.outputs_of[envelope.causation_id].append(recorded)
                continue
            self.uncaused[(recorded.order_id or "", envelope.event_type)].append(recorded)
            return_id = envelope.payload.get("return_id")
            if envelope.event_type in FOUND_BY_RETURN and return_id:
                self.first_for_return.setdefault(
                    (envelope.event_type, str(return_id)), envelope.event_id
                )

    @classmethod
    def read(cls, records: Iterable[StoredRecord], schemas: SchemaStore) -> OwnLog:
        own = (r for r in records if r.topic in OWN_TOPICS)
        return cls(decoded(own, schemas))

    def is_original_of_return(self, envelope: Envelope) -> bool:
        return_id = envelope.payload.get("return_id")
        key = (envelope.event_type, str(return_id))
        return bool(return_id) and self.first_for_return.get(key) == envelope.event_id

    def resent_after(self, first: Recorded, order_id: str, event_type: str) -> str | None:
        """The id of the first uncaused `event_type` of the order at or after `first`: a
        re-send staged its commands together, so they follow each other in the partition."""
        where = (first.record.topic, first.record.partition)
        for candidate in self.uncaused.get((order_id, event_type), ()):
            record = candidate.record
            if (record.topic, record.partition) == where and record.offset >= first.record.offset:
                return candidate.event_id
        return None


def in_saga_order(
    records: Iterable[StoredRecord], schemas: SchemaStore, log: OwnLog
) -> list[StoredRecord]:
    """The records in production order, each order's own put where the live saga took them
    (see the module's doc). Records of one order only trade places among themselves."""
    merged = list(in_production_order(records))
    slots: defaultdict[str, list[int]] = defaultdict(list)
    items: dict[int, Recorded] = {}
    for index, recorded in _indexed(merged, schemas):
        if recorded.order_id is not None:
            slots[recorded.order_id].append(index)
            items[index] = recorded
    arranged = list(merged)
    for indices in slots.values():
        sequence = _OrderSequence([items[i] for i in indices], log).arranged()
        for index, recorded in zip(indices, sequence, strict=True):
            arranged[index] = recorded.record
    return arranged


def _reference_of_command(envelope: Envelope) -> str:
    """What its acknowledgement will carry as `Input.reference` (see `input_of`)."""
    field = "refund_id" if envelope.event_type == "RefundPayment" else "return_id"
    return str(envelope.payload.get(field) or "")


def _indexed(
    merged: Sequence[StoredRecord], schemas: SchemaStore
) -> Iterable[tuple[int, Recorded]]:
    positions = {id(record): n for n, record in enumerate(merged)}
    for recorded in decoded(merged, schemas):
        yield positions[id(recorded.record)], recorded


class _OrderSequence:
    """One order's records, arranged as the live saga took them."""

    def __init__(self, items: list[Recorded], log: OwnLog) -> None:
        self._log = log
        self._state: SagaState | None = None  # None until the order is placed
        self._placed: list[Recorded] = []
        # Which item writes each timeline entry: an item its own, unless another one (the
        # input that caused a recorded message) writes it.
        # A record the relay published twice is one entry, written by its first copy.
        creators: dict[str, Recorded] = {}
        for item in items:
            creators.setdefault(item.event_id, item)
        for item in items:
            for entry in self._creates(item)[1:]:
                if creators.get(entry, item).event_id == entry:  # not claimed yet
                    creators[entry] = item
        self._followers: defaultdict[str, list[Recorded]] = defaultdict(list)
        self._main: list[Recorded] = []
        self._held: list[Recorded] = []
        self._placed_ids: set[str] = set()
        for item in items:
            creator = self._creator(item, creators)
            if creator is not None and creator is not item:
                self._followers[creator.event_id].append(item)
            else:
                self._main.append(item)

    def arranged(self) -> list[Recorded]:
        held = self._held
        for item in self._main:
            if not self._fits(item):
                held.append(item)
                continue
            self._place(item)
            while fitting := next((h for h in held if self._fits(h)), None):
                held.remove(fitting)
                self._place(fitting)
        while held:  # never fitted (say, part of the order is outside the range)
            self._place(held.pop(0))
        return self._placed

    def _place(self, item: Recorded) -> None:
        self._placed_ids.add(item.event_id)
        self._placed.append(item)
        self._state = self._next_state(item)
        for follower in self._followers.pop(item.event_id, []):
            self._place(follower)

    def _creates(self, item: Recorded) -> list[str]:
        """The timeline entries the replay writes when it handles `item`."""
        envelope = item.envelope
        entries = [item.event_id]
        entries += [output.event_id for output in self._log.outputs_of.get(item.event_id, ())]
        if envelope.event_type == "ReturnRequested":
            return_id = str(envelope.payload["return_id"])
            entries.append(customer_return_id(return_id))
            label = self._log.first_for_return.get(("IssueReturnLabel", return_id))
            entries += [label] if label else []
        return entries

    def _creator(self, item: Recorded, creators: dict[str, Recorded]) -> Recorded | None:
        """The item the replay must have handled right before this one, if any."""
        envelope = item.envelope
        if envelope.event_type in RECORDED_INPUTS:
            after = envelope.payload.get("after_event_id")
            return creators.get(after) if after else None
        if envelope.event_type in SAGA_OUTPUTS:
            return creators.get(item.event_id)
        return None

    def _input(self, item: Recorded) -> Input | None:
        envelope = item.envelope
        if envelope.event_type in SAGA_EVENTS and item.record.topic not in OWN_TOPICS:
            return input_of(envelope)
        if envelope.event_type in RECORDED_INPUTS:
            return Input(_INPUT_OF_REQUEST[envelope.event_type])
        if envelope.event_type == "ReturnRequested":
            return Input(CUSTOMER_RETURN, reference=str(envelope.payload["return_id"]))
        return None

    def _fits(self, item: Recorded) -> bool:
        """Handled now, would the input send what the live saga sent when it took it? And
        is nothing held back that the live consumer read before it (one partition)?"""
        where = (item.record.topic, item.record.partition)
        if any(
            (h.record.topic, h.record.partition) == where and h.record.offset < item.record.offset
            for h in self._held
        ):
            return False
        given = self._input(item)
        if self._state is None or given is None or given.event_type not in SAGA_EVENTS:
            return True
        decision = decide(self._state, given)
        sent = set(decision.emit) if decision.changed else set()
        recorded = {
            output.envelope.event_type for output in self._log.outputs_of.get(item.event_id, ())
        }
        return sent == recorded and not self._resent_before_read(given)

    def _resent_before_read(self, given: Input) -> bool:
        """Whether the live saga re-sent the command this acknowledges after this point: it
        re-sends only what it still awaits, so it read the acknowledgement after that (even
        if the acknowledgement was stamped first)."""
        command = COMMAND_FOR.get(given.event_type)
        return command is not None and any(
            other.envelope.event_type == command
            and not other.envelope.causation_id
            and other.event_id not in self._placed_ids
            and _reference_of_command(other.envelope) == given.reference
            for other in self._main
        )

    def _next_state(self, item: Recorded) -> SagaState | None:
        """The saga state after `item`, as `saga_state(order)` reads it after
        `Saga.advance` (status and awaited acknowledgements from the decision, `dispatched`
        from any ShipmentDispatched, the active return from the request until returned)."""
        if item.envelope.event_type == "OrderPlaced":
            return SagaState(OrderStatus.PENDING)
        state, given = self._state, self._input(item)
        if state is None or given is None:
            return state
        if given.event_type == CUSTOMER_RETURN:
            state = replace(state, active_return=given.reference)
        decision = decide(state, given)
        dispatched = state.dispatched or given.event_type == "ShipmentDispatched"
        if not decision.changed:
            return replace(state, dispatched=dispatched)
        returned = "OrderReturned" in decision.emit
        return SagaState(
            decision.status,
            dict(decision.awaiting),
            dispatched=dispatched,
            active_return="" if returned else state.active_return,
        )
