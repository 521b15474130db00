"""Replaying the notifications service: its log rebuilt from the events, nobody told again.

The handlers run as they do live — contacts, rendering, the notification log, one row per
(order, template, reference) — but through a channel that sends nothing. The rebuilt log
says what was sent, to whom, with which subject and body, as the live one does; the only
difference is the time each row was written.
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.replay import Replayable
from notifications.adapters.channels import Message
from notifications.bootstrap import definition


@dataclass
class SuppressedChannel:
    """Counts what the handlers asked it to send and sends none of it. Named like the live
    channel, so the rebuilt log names the channel each notification really went through."""

    name: str = "email"
    suppressed: int = 0

    def send(self, message: Message) -> None:
        self.suppressed += 1


def replayable(channel: SuppressedChannel) -> Replayable:
    return Replayable(definition(channel))
