"""Retry policy and timeouts: pure values and arithmetic, testable without a network."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Mapping

# Statuses worth another try: request timeout, conflict (lock), rate limit, server side.
RETRY_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or 500 <= status <= 599


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `first_byte`: request sent -> first stream event (or the whole body for
    non-streamed calls). `idle`: the longest gap allowed between two stream events."""

    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 90.0
    write: float = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; Retry-After from the gateway wins when present.

    Attempt n (1-based) that fails waits `base_delay * multiplier**(n-1)`, capped at
    `max_delay`, then jittered into [d/2, d] ("equal jitter": spread out, never near zero).
    A Retry-After (or retry-after-ms) is honoured as given plus up to 10% jitter; when it
    asks for more than `max_retry_after`, the client gives up at once rather than sleep.
    """

    max_attempts: int = 4  # total tries, including the first
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        d = min(self.max_delay, self.base_delay * self.multiplier ** max(0, attempt - 1))
        return d / 2 + self.rng.uniform(0, d / 2)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after + self.rng.uniform(0, 0.1 * retry_after)
        return self.backoff(attempt)


NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (delta-seconds or HTTP date).

    Returns None when absent or unreadable; never negative.
    """
    ms = _get(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    raw = _get(headers, "retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        secs = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - (time.time() if now is None else now)
    if secs != secs:  # NaN
        return None
    return max(0.0, secs)


def _get(headers: Mapping[str, str], name: str) -> str | None:
    v = headers.get(name)
    if v is None:
        for k, val in headers.items():
            if k.lower() == name:
                return val
    return v
