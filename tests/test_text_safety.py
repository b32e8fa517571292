"""The one neutraliser (lap_tui/domain/text.py): what it drops, what it makes visible, and
masking after neutralising, for whole texts and for streams cut at every point."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from lap_tui.domain.secrets import MASK, Redactor
from lap_tui.domain.text import NEWLINE_MARK, Sanitiser, neutralise, one_line
from lap_tui.tui import safety

ESC = "\x1b"
SEQUENCES = {
    "OSC 0 title (BEL)": f"{ESC}]0;pwned{chr(7)}",
    "OSC 52 clipboard (ST)": f"{ESC}]52;c;ZWNobyBwd25lZA=={ESC}\\",
    "CSI clear": f"{ESC}[2J",
    "CSI colour": f"{ESC}[31m",
    "C1 CSI": "\x9b2J",
    "DCS": f"{ESC}Pq#0;2;0;0;0{ESC}\\",
    "APC": f"{ESC}_Gf=100;AAAA{ESC}\\",
    "PM": f"{ESC}^privacy{ESC}\\",
    "SOS": f"{ESC}Xstring{ESC}\\",
    "short ESC (RIS)": f"{ESC}c",
}


@pytest.mark.parametrize("name", SEQUENCES)
def test_escape_sequences_are_dropped(name):
    out = neutralise(f"before{SEQUENCES[name]}after")
    assert out == "beforeafter", name


def test_controls_are_made_visible_not_executed():
    out = neutralise("a\x07b\x08c\x7fd\x85e\x90f\x9cg\x00")
    assert out == "a\u2407b\u2408c\u2421d\ufffde\ufffdf\ufffdg\u2400"
    assert neutralise("x\r\ny\rz\tw") == "x\ny\nz\tw"  # a bare CR cannot overwrite a line


# Characters that disguise text: each must leave a visible mark where it was.
DISGUISES = {
    "RLO": "\u202e", "LRO": "\u202d", "RLE": "\u202b", "PDF": "\u202c", "LRI": "\u2066", "RLI": "\u2067",
    "FSI": "\u2068", "PDI": "\u2069", "LRM": "\u200e", "RLM": "\u200f", "ALM": "\u061c", "ZWSP": "\u200b",
    "ZWNJ": "\u200c", "ZWJ alone": "\u200d", "word joiner": "\u2060", "BOM": "\ufeff", "soft hyphen": "\u00ad",
    "tag A": "\U000e0041", "tag cancel": "\U000e007f", "IAA": "\ufff9", "IAS": "\ufffa", "IAT": "\ufffb",
    "Hangul filler": "\u3164",
}


@pytest.mark.parametrize("name", DISGUISES)
def test_disguising_characters_become_visible(name):
    out = neutralise(f"ls{DISGUISES[name]}x")
    assert out == "ls\ufffdx", (name, out)


def test_every_invisible_format_character_is_covered():
    """The hard-coded list matches Unicode's Cf category of this Python (the ZWJ is handled apart)."""
    missed = [hex(c) for c in range(sys.maxunicode + 1)
              if unicodedata.category(chr(c)) == "Cf" and c != 0x200D and neutralise(chr(c)) == chr(c)]
    assert missed == []


def test_line_separators_break_lines_and_emoji_joiners_survive():
    assert neutralise("a\u2028b\u2029c") == "a\nb\nc"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert neutralise(family) == family
    assert neutralise("\u2764\ufe0f\u200d\U0001f525") == "\u2764\ufe0f\u200d\U0001f525"
    assert neutralise("rm\u200d-rf") == "rm\ufffd-rf"


def test_one_line_keeps_a_value_on_its_line():
    assert one_line("title\nID  FAKE ROW\r\x1b[2Kx\ty") == f"title{NEWLINE_MARK}ID  FAKE ROW{NEWLINE_MARK}x y"


def test_tui_and_cli_share_the_one_function():
    assert safety.neutralise is neutralise and safety.Sanitiser is Sanitiser


SECRET = "s3cr3t-value"


@pytest.mark.parametrize("disguise", ["\x1b[m", "\x1b]0;x\x07", "\u200b", "\u202e", "\x9bm"])
def test_a_secret_split_by_an_escape_is_still_masked(disguise):
    s = Sanitiser(Redactor([SECRET]))
    raw = f"key={SECRET[:7]}{disguise}{SECRET[7:]} end"
    out = s.clean(raw)
    if neutralise(raw).count(SECRET):  # the split vanished on screen: the secret must not show
        assert SECRET not in out and MASK in out
    assert SECRET not in out


def test_a_secret_split_by_a_sequence_is_masked_at_every_stream_cut():
    s = Sanitiser(Redactor([SECRET]))
    raw = f"one {SECRET[:7]}\x1b[m{SECRET[7:]} two \x1b]0;t\x07{SECRET} three"
    whole = s.clean(raw)
    assert whole == f"one {MASK} two {MASK} three"
    for i in range(len(raw) + 1):
        for j in range(i, len(raw) + 1):
            st = s.stream()
            out = st.feed(raw[:i]) + st.feed(raw[i:j]) + st.feed(raw[j:]) + st.flush()
            assert out == whole, (i, j)


def test_a_secret_holding_a_control_character_is_masked_in_its_shown_form():
    s = Sanitiser(Redactor(["tab\x07bell-secret"]))
    assert s.clean("x tab\x07bell-secret y") == f"x {MASK} y"


def test_lines_are_masked_too():
    s = Sanitiser(Redactor([SECRET]))
    assert s.line(f"a\n{SECRET[:3]}\x1b[1m{SECRET[3:]}") == f"a{NEWLINE_MARK}{MASK}"
