"""Untrusted text made safe for the screen: the one neutraliser lives in the domain layer
(`lap_tui/domain/text.py`), shared with the CLI; re-exported here for the widgets."""

from __future__ import annotations

from lap_tui.domain.text import SafeStream, Sanitiser, neutralise, one_line, secrets_of

__all__ = ["SafeStream", "Sanitiser", "markup_safe", "neutralise", "one_line", "secrets_of"]


def markup_safe(text: str) -> str:
    """For the few places Textual parses a string as markup whatever we pass (the command
    palette's fuzzy highlighter): neutralised onto one line, then markup-escaped."""
    from textual.markup import escape

    return escape(one_line(text))
