"""Timestamps: RFC 3339 UTC strings with microseconds, fixed width so they sort as text."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_iso() -> str:
    return iso_from_epoch(time.time())


def iso_from_epoch(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_from_iso(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
