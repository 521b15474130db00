"""An order's timeline as far as the log can vouch for it: what a replay must reproduce.

The saga writes an entry for each input it takes and, right after it, one for each message
it sends in answer: a *round*. The log records, for one order:

- each source's inputs in the order it sent them (one service writes one partition per
  order; the customer's and the saga's own inputs are recorded on orders.events);
- which input each of the saga's messages answered (`replay_log.in_saga_order` holds the
  replay to it, and to where each customer's or timer's input was taken).

It does not record in which order the live saga read two services' events that raced to
the orders consumer on different topics — not even cause before effect: a PaymentCaptured
can be read before the StockReserved that led payments to capture (the saga accepts it and
skips RESERVED), a NotificationSent before or after any of them. What the saga wrote for
such an event (the status after it, "already PAID") depends on that order.

So two timelines are the same when, source by source, they hold the same rounds in the same
order; a round that decided something the log records — it sent answers, or it is the
customer's or the saga's own input (a timer's re-send is a round of its own) — is compared
whole (status after, note, answers; a cancel or a deadline also by the entry it came
after), any other only by which event it was. Every answer is still compared in its round,
every such decision in the state it was taken in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from orders import contracts
from orders.domain.saga import CUSTOMER_CANCEL, DEADLINE_PASSED
from orders.handlers.saga import RESENT

SAGA = "orders"  # the source of the entries the saga writes for what it sends and decides
CUSTOMER = "customer"
# What the saga sends in answer to an input: its entry follows the input's.
_ANSWERS = frozenset(contracts.PUBLISHES) - {"OrderPlaced"}


@dataclass(frozen=True)
class TimelineStep:
    event_id: str
    event_type: str
    source: str
    status_after: str
    note: str | None
    position: int = field(default=0, compare=False)  # 1-based, in the order's timeline

    @property
    def answer(self) -> bool:
        """Whether the saga sent it in answer to the input before it (a re-send answers the
        timer: it is a round of its own)."""
        return (
            self.source == SAGA
            and self.event_type in _ANSWERS
            and not (self.note or "").startswith(RESENT)
        )

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.event_type} from {self.source} -> {self.status_after}{note} [{self.event_id}]"
        )


@dataclass(frozen=True)
class Round:
    """An input's entry and the entries of the answers it sent."""

    steps: tuple[TimelineStep, ...]
    after: str = ""  # the event id of the entry before it

    @property
    def placed_by_the_log(self) -> bool:
        """A customer's cancel or a deadline: recorded with the entry it came after."""
        return self.steps[0].event_type in (CUSTOMER_CANCEL, DEADLINE_PASSED)

    @property
    def decided(self) -> bool:
        """Whether the log records what the saga made of it."""
        return len(self.steps) > 1 or self.steps[0].source in (SAGA, CUSTOMER)

    @property
    def key(self) -> tuple[object, ...]:
        if self.placed_by_the_log:
            return (self.after, *self.steps)
        if self.decided:
            return self.steps
        head = self.steps[0]
        return (head.event_id, head.event_type, head.source)

    def __str__(self) -> str:
        if not self.decided:
            head = self.steps[0]
            return f"{head.event_type} from {head.source} [{head.event_id}]"
        steps = " + ".join(map(str, self.steps))
        return f"{steps}, after [{self.after}]" if self.placed_by_the_log else steps


def rounds_by_source(timeline: Iterable[TimelineStep]) -> dict[str, list[Round]]:
    by_source: defaultdict[str, list[Round]] = defaultdict(list)
    for round_ in _rounds(timeline):
        by_source[round_.steps[0].source].append(round_)
    return dict(by_source)


def _rounds(timeline: Iterable[TimelineStep]) -> Iterator[Round]:
    steps: list[TimelineStep] = []
    after = ""
    for step in timeline:
        if steps and not step.answer:
            yield Round(tuple(steps), after)
            after, steps = steps[-1].event_id, []
        steps.append(step)
    if steps:
        yield Round(tuple(steps), after)


def timeline_differences(
    live: Sequence[TimelineStep], replayed: Sequence[TimelineStep]
) -> list[str]:
    """For each source, the first round where the two timelines differ, if any."""
    a, b = rounds_by_source(live), rounds_by_source(replayed)
    found = []
    for source in sorted(set(a) | set(b)):
        x, y = a.get(source, []), b.get(source, [])
        if difference := _first_difference(source, x, y):
            found.append(difference)
    return found


def _first_difference(source: str, live: list[Round], replayed: list[Round]) -> str | None:
    for x, y in zip(live, replayed, strict=False):
        if x.key != y.key:
            return (
                f"timeline entry {x.steps[0].position} is {x} live,"
                f" entry {y.steps[0].position} {y} replayed"
            )
    if len(live) == len(replayed):
        return None
    which, longer = ("live", live) if len(live) > len(replayed) else ("replayed", replayed)
    extra = longer[min(len(live), len(replayed))]
    return (
        f"timeline has {len(live)} inputs from {source} live, {len(replayed)} replayed;"
        f" the first extra one ({which}): entry {extra.steps[0].position} {extra}"
    )
