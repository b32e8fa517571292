"""Short human forms for tables: ages, token counts, costs. Pure."""

from __future__ import annotations

from lap_tui.domain.clock import epoch_from_iso


def age(iso: str | None, now: float) -> str:
    """'42s', '5m', '3h', '12d' like kubectl; '' when unknown."""
    if not iso:
        return ""
    try:
        return age_since(epoch_from_iso(iso), now)
    except ValueError:
        return ""


def age_since(epoch: float, now: float) -> str:
    """`age` from a time already parsed (a table re-ages 1,000 rows every few seconds)."""
    secs = max(0, int(now - epoch))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def cost(usd: float) -> str:
    if not usd:
        return "$0"
    if usd < 0.01:
        return f"${usd:.4f}"
    return f"${usd:.2f}"


def short_id(id_: str | None) -> str:
    return (id_ or "")[:8]


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 session`, `2 sessions`; `nouns` for the irregular ones (`sandboxes`)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"
