"""Delivery channels. The built-in one records only: nothing leaves the machine."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    recipient: str
    subject: str
    body: str
    # The notification id: a handler can run more than once before its transaction commits
    # (redelivery, a batch re-run), so a real channel must drop a key it has already sent.
    idempotency_key: str = ""


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None: ...


class RecordOnlyEmail:
    """The default: the notification log is the outbox for humans; no SMTP is configured."""

    name = "email"

    def send(self, message: Message) -> None:
        log.info("email recorded for %s: %s", message.recipient, message.subject)
