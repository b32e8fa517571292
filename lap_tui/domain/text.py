"""Untrusted text (model, tool, sandbox output, store rows) made safe for a terminal.

One neutraliser serves the app and every human-readable CLI output, so the two can never
disagree. Escape sequences (CSI, OSC, DCS, SOS, PM, APC and short ESC ones) are dropped: they
could move the cursor, retitle the window, write the clipboard (OSC 52) or clear the screen.
Characters that could disguise text are made visible instead of silently removed, so what a
reader sees is never a lie: C0/C1 controls become control pictures or U+FFFD, and so do bidi
overrides and isolates, zero-width characters, LRM/RLM/ALM, tag characters, interlinear
annotation marks (U+FFF9-FFFB) and every other invisible format character. U+2028/2029 become
line breaks. A zero-width joiner between two emoji is kept: it is how family and profession
emoji are written.

Secrets are masked *after* neutralising (`Sanitiser`): a secret split by an escape sequence
(`s3cr` ESC[m `3t`) would otherwise survive the mask and be joined again on screen.
Pure functions, no I/O.
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
# Invisible format characters (Unicode category Cf but the ZWJ; the tests check the list against
# unicodedata), plus fillers that render as nothing (Hangul fillers, combining grapheme joiner,
# Mongolian variation selectors, Khmer inherent vowels).
_INVISIBLE_BMP = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200c\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\uffa0"
)
# Beyond the BMP (tag characters among them): a class with these ranges costs ~6x per
# character, so it only runs on text that holds any character beyond the BMP.
_INVISIBLE_ASTRAL = ("\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
                     "\U000e0001\U000e0020-\U000e007f")
_INVISIBLE = _INVISIBLE_BMP + _INVISIBLE_ASTRAL
_EMOJI = "\u2600-\u27bf\U0001f000-\U0001faff"
# Left-over controls (not \t or \n), DEL, C1, and the invisible characters. A ZWJ is kept only
# between an emoji (or its variation selector) and an emoji: a second, rarer pass (a plain
# character class is what keeps the common case fast).
_CONTROL = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE_BMP}]")
_ASTRAL = re.compile(f"[{_INVISIBLE_ASTRAL}]")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all there is to find in ASCII text
_LONE_ZWJ = re.compile(rf"(?<![{_EMOJI}\ufe0f])\u200d|\u200d(?![{_EMOJI}])")
_LINE_SEPARATORS = re.compile("[\u2028\u2029]")
_CSI = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_STRING = re.compile(r"\x1b[PX^_][^\x1b]*\x1b\\")
MAX_SEQUENCE = 256  # an unfinished sequence longer than this is shown, not waited for
NEWLINE_MARK = "\u2424"  # ␤: a line break inside a one-line field (a table cell, a title)


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group())
    if c < 0x20:
        return chr(0x2400 + c)  # control pictures: ␛ ␇ ...
    if c == 0x7F:
        return "\u2421"
    return "\ufffd"


def neutralise(text: str) -> str:
    """Drop escape sequences and make other control and invisible characters visible."""
    if not text:
        return text
    text = text.replace("\r\n", "\n")
    text = _SEQUENCE.sub("", text)
    text = text.replace("\r", "\n")  # a bare CR would overwrite the line in a terminal
    if text.isascii():
        return _ASCII_CONTROL.sub(_visible, text)
    if "\u2028" in text or "\u2029" in text:
        text = _LINE_SEPARATORS.sub("\n", text)
    if "\u200d" in text:
        text = _LONE_ZWJ.sub("\ufffd", text)
    if len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text):  # beyond the BMP: cheap to tell
        text = _ASTRAL.sub("\ufffd", text)
    return _CONTROL.sub(_visible, text)


def one_line(text: str) -> str:
    """`neutralise`, and a line break shown as ␤: a name, title or table cell stays one line,
    so a value cannot forge extra rows of a listing."""
    return neutralise(text).replace("\n", NEWLINE_MARK).replace("\t", " ")


def secrets_of(redactor: Callable[[str], str]) -> list[str]:
    # Streaming needs the values to hold back a secret split across chunks.
    return list(getattr(redactor, "secrets", ()))


class Sanitiser:
    """neutralise, then mask: for whole texts (`clean`, `line`) and for streams (`stream`)."""

    def __init__(self, redactor: Callable[[str], str] | None = None, secrets: Iterable[str] | None = None) -> None:
        from lap_tui.domain.secrets import Redactor

        values = list(secrets) if secrets is not None else secrets_of(redactor) if redactor else []
        if values or redactor is None:
            # Also the neutralised form of each value: a secret holding a control character
            # reaches the mask in that form.
            self._secrets = list(Redactor([*values, *(neutralise(v) for v in values)]).secrets)
            self._redact: Callable[[str], str] = Redactor(self._secrets)
        else:  # a plain masking function without a list of values
            self._secrets, self._redact = [], redactor

    def clean(self, text: str) -> str:
        return self._redact(neutralise(text))

    def line(self, text: str) -> str:
        return self._redact(one_line(text))

    def stream(self) -> "SafeStream":
        return SafeStream(self)

    def held_secret(self, text: str) -> int:
        """How many trailing characters (of neutralised text) might start a secret."""
        hold = 0
        for s in self._secrets:
            for k in range(min(len(s) - 1, len(text)), hold, -1):
                if text.endswith(s[:k]):
                    hold = k
                    break
        return hold

    @staticmethod
    def held_sequence(text: str) -> int:
        """How many trailing characters (of raw text) might be the start of a sequence."""
        hold = 0
        tail_start = max(0, len(text) - MAX_SEQUENCE)
        esc = max(text.rfind("\x1b", tail_start), text.rfind("\x9b", tail_start))
        if esc != -1 and not _complete(text, esc):
            hold = len(text) - esc
        if text.endswith(("\r", "\u200d")):  # CR LF, or an emoji's joiner, may follow
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
    """Cleans a stream chunk by chunk without letting a sequence or a secret split across
    chunks: raw text is neutralised up to the last complete sequence, then the neutralised
    text is masked up to where a secret might still be starting."""

    def __init__(self, sanitiser: Sanitiser) -> None:
        self._s = sanitiser
        self._raw = ""
        self._clean = ""

    def feed(self, chunk: str) -> str:
        raw = self._raw + chunk
        cut = len(raw) - self._s.held_sequence(raw)
        self._raw = raw[cut:]
        clean = self._clean + neutralise(raw[:cut])
        cut = len(clean) - self._s.held_secret(clean)
        self._clean = clean[cut:]
        return self._s._redact(clean[:cut])

    def flush(self) -> str:
        clean = self._clean + neutralise(self._raw)
        self._raw = self._clean = ""
        return self._s._redact(clean)


_JSON_UNSAFE = re.compile(rf"[\x7f-\x9f\u2028\u2029\u200d{_INVISIBLE}]")


def _json_escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    if c > 0xFFFF:  # JSON writes an astral character (a tag) as a surrogate pair
        c -= 0x10000
        return "\\u%04x\\u%04x" % (0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF))
    return "\\u%04x" % c


def json_safe(text: str) -> str:
    """A JSON text with DEL, C1 controls, line separators and invisible characters written as
    \\u escapes (JSON already escapes C0): printing it cannot drive a terminal or hide text,
    and readable non-ASCII stays as it is. Valid because such characters can only be inside
    JSON strings."""
    return _JSON_UNSAFE.sub(_json_escape, text)
