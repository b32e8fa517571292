"""Untrusted text (agent, tool and sandbox output) made safe for the screen.

Terminal control sequences are removed or shown as visible symbols so output cannot move the
cursor, retitle the window, write the clipboard (OSC 52) or hide text; secret values are
masked with the settings' Redactor. Pure functions: no Textual here.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

# Complete escape sequences: CSI, OSC, DCS/SOS/PM/APC strings, and short ESC sequences.
_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[PX^_][^\x1b]*\x1b\\"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# Left-over controls (not \t or \n), DEL, C1, and bidi overrides that can reorder text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CSI = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_STRING = re.compile(r"\x1b[PX^_][^\x1b]*\x1b\\")
MAX_SEQUENCE = 256  # an unfinished sequence longer than this is shown, not waited for


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group())
    if c < 0x20:
        return chr(0x2400 + c)  # control pictures: ␛ ␇ ...
    if c == 0x7F:
        return "\u2421"
    return "\ufffd"


def neutralise(text: str) -> str:
    """Drop escape sequences and make other control characters visible."""
    if not text:
        return text
    text = text.replace("\r\n", "\n")
    text = _SEQUENCE.sub("", text)
    text = text.replace("\r", "\n")  # a bare CR would overwrite the line in a terminal
    return _CONTROL.sub(_visible, text)


def secrets_of(redactor: Callable[[str], str]) -> list[str]:
    # Streaming needs the values to hold back a secret split across chunks.
    return list(getattr(redactor, "secrets", ()))


class Sanitiser:
    """neutralise + mask, for whole texts (`clean`) and for streams (`feed`/`flush`)."""

    def __init__(self, redactor: Callable[[str], str] | None = None, secrets: Iterable[str] | None = None) -> None:
        self._redact = redactor or (lambda s: s)
        self._secrets = list(secrets) if secrets is not None else secrets_of(self._redact)

    def clean(self, text: str) -> str:
        return neutralise(self._redact(text))

    def stream(self) -> "SafeStream":
        return SafeStream(self)

    def held_back(self, text: str) -> int:
        """How many trailing characters might be the start of a secret or of a sequence."""
        hold = 0
        for s in self._secrets:
            for k in range(min(len(s) - 1, len(text)), hold, -1):
                if text.endswith(s[:k]):
                    hold = k
                    break
        tail_start = max(0, len(text) - MAX_SEQUENCE)
        esc = max(text.rfind("\x1b", tail_start), text.rfind("\x9b", tail_start))
        if esc != -1 and not _complete(text, esc):
            hold = max(hold, len(text) - esc)
        if text.endswith("\r"):
            hold = max(hold, 1)
        return hold


def _complete(text: str, i: int) -> bool:
    """Is the escape sequence starting at `i` whole (so cleaning it now is safe)?"""
    rest = text[i:i + 2]
    if rest.startswith("\x9b") or rest == "\x1b[":
        return bool(_CSI.match(text, i))
    if rest == "\x1b]":
        return bool(_OSC.match(text, i))
    if rest[1:] in ("P", "X", "^", "_"):
        return bool(_STRING.match(text, i))
    return len(rest) == 2 and bool(_SEQUENCE.match(text, i))


class SafeStream:
    """Cleans a stream chunk by chunk without letting a secret or sequence split across chunks."""

    def __init__(self, sanitiser: Sanitiser) -> None:
        self._s = sanitiser
        self._buf = ""

    def feed(self, chunk: str) -> str:
        buf = self._buf + chunk
        cut = len(buf) - self._s.held_back(buf)
        self._buf = buf[cut:]
        return self._s.clean(buf[:cut])

    def flush(self) -> str:
        buf, self._buf = self._buf, ""
        return self._s.clean(buf)
