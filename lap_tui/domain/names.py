"""Names that end up in Kubernetes objects must be DNS-1123 labels."""

from __future__ import annotations

import re

from lap_tui.domain.errors import InvalidInput

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_LABEL = 63
SHOWN = 40  # characters of a user's input echoed back in an error


def clip(text: str, limit: int = SHOWN) -> str:
    """Input echoed in an error, cut to a readable length: a pasted 300-character name must not
    fill the screen (the message says how long it was where the length matters)."""
    return text if len(text) <= limit else text[:limit] + "…"


def validate_label(kind: str, value: str) -> str:
    """Return `value` if it is a DNS-1123 label, else raise InvalidInput saying why."""
    if not value:
        raise InvalidInput(f"{kind} name is empty", "use lowercase letters, digits and '-'")
    if len(value) > MAX_LABEL:
        raise InvalidInput(
            f"{kind} name {clip(value)!r} is {len(value)} characters long",
            f"use at most {MAX_LABEL}",
        )
    if not _LABEL.match(value):
        problem = "must start and end with a letter or digit"
        if re.search(r"[^-a-z0-9]", value):
            bad = sorted(set(re.findall(r"[^-a-z0-9]", value)))
            problem = "may not contain " + " ".join(repr(c) for c in bad)
        raise InvalidInput(
            f"{kind} name {clip(value)!r} {problem}",
            "use lowercase letters, digits and '-', e.g. 'code-reviewer'",
        )
    return value


def label_problem(kind: str, value: str) -> str | None:
    """The same check for forms that validate as the user types: the message, or None."""
    try:
        validate_label(kind, value)
    except InvalidInput as exc:
        return str(exc)
    return None
