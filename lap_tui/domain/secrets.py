"""Masking of secret values before text reaches a screen, a log or the journal."""

from __future__ import annotations

from typing import Iterable

MASK = "********"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values masked, longest first (read-only: a stream needs them to hold back a split one)."""
        return tuple(self._secrets)


class RedactStream:
    """Masks a text stream chunk by chunk: the tail that might be the start of a secret is
    held back until the next chunk (or `flush`) decides, so a secret split across chunks is
    masked whole. The concatenated output equals `redactor(whole text)`."""

    def __init__(self, redactor: Redactor) -> None:
        self._redact = redactor
        self._secrets = redactor.secrets
        self._buf = ""

    def feed(self, chunk: str) -> str:
        buf = self._buf + chunk
        n = len(buf)
        hold = 0  # the longest tail of `buf` that a secret starts with (shorter than the secret)
        for s in self._secrets:
            # Only where the secret's first character is (found in C, left to right: the first
            # match is the longest); trying every length cost a slice per length per chunk.
            first = s[0]
            i = buf.find(first, max(0, n - len(s) + 1))
            while i != -1 and n - i > hold:
                if s.startswith(buf[i:]):
                    hold = n - i
                    break
                i = buf.find(first, i + 1)
        cut = n - hold
        self._buf = buf[cut:]
        return self._redact(buf[:cut])

    def flush(self) -> str:
        buf, self._buf = self._buf, ""
        return self._redact(buf)
