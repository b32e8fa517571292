"""Untrusted text made safe for the screen: the one neutraliser lives in the domain layer
(`lap_tui/domain/text.py`), shared with the CLI; re-exported here for the widgets."""

from __future__ import annotations

from lap_tui.domain.text import SafeStream, Sanitiser, neutralise, one_line, secrets_of

__all__ = ["SafeStream", "Sanitiser", "neutralise", "one_line", "secrets_of"]
