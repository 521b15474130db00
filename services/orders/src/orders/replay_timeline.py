"""An order's timeline in the order the log can vouch for: what a replay must reproduce.

The saga writes one entry per input it takes and one per message it sends in answer, right
after that input's entry. A replay reproduces every entry; their order only as far as the
log records it. The log records:

- each service's events to one order in the order that service sent them (one partition);
- where the saga took a customer's request or its own timer (`after_event_id`), and which
  input each of its answers was caused by (`replay_log.in_saga_order` uses both);
- every status change, through the answers it sent or the state it led to.

It does not record which of two services' events the live saga read first when they
reached the orders consumer within moments of each other, on different topics, and neither
moved the saga (a late PaymentCaptured during a compensation against an acknowledgement
that is not the last): so between two fixed points — an entry that changed the status, a
customer's or timer's input — rounds (an input and the answers it sent) are compared
source by source, each source's in its order, not interleaved. Nor when it read a
NotificationSent, which never moves the saga: those are compared as a multiset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from orders import contracts
from orders.domain.saga import INFORMATIONAL

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
    position: int = field(default=0, compare=False)  # 1-based, in the order's whole timeline

    @property
    def informational(self) -> bool:
        return self.event_type in INFORMATIONAL

    @property
    def answer(self) -> bool:
        return self.source == SAGA and self.event_type in _ANSWERS

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.event_type} from {self.source} -> {self.status_after}{note} [{self.event_id}]"
        )


def as_the_log_orders_it(path: Sequence[TimelineStep]) -> list[TimelineStep]:
    """`path` (no informational entries) with the rounds between two fixed points grouped by
    source, each source's kept in order: two timelines the log cannot tell apart come out
    equal, and any other difference stays."""
    ordered: list[TimelineStep] = []
    racing: list[list[TimelineStep]] = []
    status = None
    for round_ in _rounds(path):
        head = round_[0]
        if head.status_after != status or head.source in (SAGA, CUSTOMER):
            ordered += _by_source(racing)
            racing = []
            ordered += round_
        else:
            racing.append(round_)
        status = head.status_after
    return ordered + _by_source(racing)


def _rounds(path: Iterable[TimelineStep]) -> Iterator[list[TimelineStep]]:
    """Each input's entry with the entries of the answers it sent."""
    round_: list[TimelineStep] = []
    for step in path:
        if round_ and not step.answer:
            yield round_
            round_ = []
        round_.append(step)
    if round_:
        yield round_


def _by_source(rounds: list[list[TimelineStep]]) -> list[TimelineStep]:
    ordered = sorted(rounds, key=lambda round_: round_[0].source)  # stable: order per source
    return [step for round_ in ordered for step in round_]


def path_differences(live: Sequence[TimelineStep], replayed: Sequence[TimelineStep]) -> list[str]:
    """The first place where the two paths differ as far as the log can tell, if any."""
    a, b = as_the_log_orders_it(live), as_the_log_orders_it(replayed)
    for x, y in zip(a, b, strict=False):
        if x != y:
            return [f"timeline entry {x.position} is {x} live, entry {y.position} {y} replayed"]
    if len(a) != len(b):
        which, longer = ("live", a) if len(a) > len(b) else ("replayed", b)
        extra = longer[min(len(a), len(b))]
        return [
            f"timeline has {len(a)} entries live, {len(b)} replayed (not counting notifications);"
            f" the first extra one ({which}): entry {extra.position} {extra}"
        ]
    return []


Told = tuple[str, str, str]  # an informational entry: event id, type, source


def told_differences(live: Sequence[Told], replayed: Sequence[Told]) -> list[str]:
    """Informational entries one timeline holds (as often) and the other does not."""
    found = []
    for which, one, other in (("live", live, replayed), ("replayed", replayed, live)):
        if only := Counter(one) - Counter(other):
            entries = ", ".join(
                f"{kind} from {source} [{event_id}]" for event_id, kind, source in only
            )
            found.append(f"timeline entries only {which}: {entries}")
    return found
