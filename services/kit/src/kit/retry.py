"""Retrying with backoff for things that must eventually succeed (broker connections)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, wait_exponential_jitter

log = logging.getLogger(__name__)


async def retry_forever(action: Callable[[], Awaitable[object]], what: str) -> None:
    def _warn(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (attempt %d): %s; retrying", what, state.attempt_number, error)

    async for attempt in AsyncRetrying(
        wait=wait_exponential_jitter(initial=0.5, max=10), before_sleep=_warn
    ):
        with attempt:
            await action()
