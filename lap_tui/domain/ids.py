"""Identifiers: random, 32 hex digits; users may type any unique prefix."""

from __future__ import annotations

import re
import uuid

from lap_tui.domain.errors import InvalidInput
from lap_tui.domain.names import clip

_HEX = re.compile(r"^[0-9a-f]+$")
MIN_PREFIX = 4


def new_id() -> str:
    return uuid.uuid4().hex


def validate_id_prefix(kind: str, value: str) -> str:
    value = value.strip().lower()
    if len(value) < MIN_PREFIX or len(value) > 32 or not _HEX.match(value):
        raise InvalidInput(
            f"{kind} id {clip(value)!r} is not an id",
            f"give the id or a unique prefix of at least {MIN_PREFIX} hex digits",
        )
    return value
