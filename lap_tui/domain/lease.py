"""Leases: one driver per session. Whoever holds the lease runs its turns; others watch."""

from __future__ import annotations

from dataclasses import dataclass

from lap_tui.domain.errors import LapError

DEFAULT_TTL = 15.0  # seconds; a holder heartbeats every ttl/3


@dataclass(frozen=True)
class Lease:
    session_id: str
    holder: str
    acquired_at: float
    heartbeat_at: float
    expires_at: float

    def expired(self, now: float) -> bool:
        return self.expires_at < now


class LeaseLost(LapError):
    """The caller no longer holds the session's lease: another driver took it over."""
