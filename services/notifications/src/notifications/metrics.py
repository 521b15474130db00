"""The notifications service's business metrics (catalog: docs/METRICS.md)."""

from __future__ import annotations

from prometheus_client import Counter

from kit.envelope import Envelope

sent = Counter("notifications_sent_total", "Notifications sent", ["template"])


def count_emitted(envelope: Envelope) -> None:
    if envelope.event_type == "NotificationSent":  # once per notification: sends are deduped
        sent.labels(envelope.payload["template"]).inc()
