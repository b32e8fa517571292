#!/usr/bin/env python3
"""The floor for bench_tui_stream.py: the least a Textual app does to show a streamed reply.

A RichLog (Textual's own line-API log) above a TextArea draft. ctrl+j sends the draft to the
same scripted gateway (httpx, SSE lines parsed as they come) and the text received is written
to the log at most 20 times a second, as lap-tui's chat does; no store, no journal, no Markdown.
What this costs on the machine at the time is the floor lap-tui's figures are read against.

    LITELLM_API_BASE=http://127.0.0.1:PORT python stream_floor.py
"""

from __future__ import annotations

import json
import os

import httpx
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import RichLog, TextArea


class Floor(App):
    CSS = "#out { height: 1fr; } #draft { height: 3; }"
    BINDINGS = [("ctrl+j", "send", "send"), ("ctrl+q", "quit", "quit")]

    def compose(self) -> ComposeResult:
        yield RichLog(id="out", wrap=True, max_lines=2000)
        yield TextArea(id="draft", placeholder="Message — ctrl+j sends", compact=True)

    def on_mount(self) -> None:
        self.pending: list[str] = []
        self.set_interval(1 / 20, self.tick)
        self.set_focus(self.query_one(TextArea))

    def tick(self) -> None:
        if self.pending:
            text, self.pending = "".join(self.pending), []
            self.query_one(RichLog).write(Text(text), scroll_end=True)

    def action_send(self) -> None:
        draft = self.query_one(TextArea)
        text = draft.text
        draft.load_text("")
        self.run_worker(self.stream(text))

    async def stream(self, text: str) -> None:
        base = os.environ["LITELLM_API_BASE"].rstrip("/")
        body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": text}]}
        headers = {"Authorization": f"Bearer {os.environ.get('LITELLM_API_KEY', '')}"}
        async with httpx.AsyncClient(timeout=None) as client:
            async with client.stream("POST", f"{base}/v1/chat/completions", json=body, headers=headers) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    for choice in json.loads(line[6:]).get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            self.pending.append(piece)


if __name__ == "__main__":
    Floor().run()
