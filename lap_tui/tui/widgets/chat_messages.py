"""The pieces of a chat: user and assistant messages, tool calls, a turn's status line.

All text passes through the app's Sanitiser (control sequences neutralised, secrets masked).
Assistant text streams into Textual's MarkdownStream; the ChatLog decides when to flush.
"""

from __future__ import annotations

import json
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Collapsible, Markdown, Static

from lap_tui.tui.chat_model import Block
from lap_tui.tui.formatting import cost, tokens
from lap_tui.tui.safety import Sanitiser

MAX_TOOL_OUTPUT = 8000  # characters shown; the journal keeps what the engine kept
BASE_FLUSH = 1 / 20  # at most 20 appends a second ...
FLUSH_PER_CHAR = 1 / 400_000  # ... and fewer while one block grows huge (its re-parse grows)


class UserMessage(Static):
    DEFAULT_CSS = """
    UserMessage { border-left: thick $primary; padding: 0 1; margin: 1 0 0 0; background: $boost; }
    """

    def __init__(self, block: Block, sanitiser: Sanitiser) -> None:
        super().__init__(Text(sanitiser.clean(block.text)), classes="message")
        self.block = block

    def copy_text(self) -> str:
        return self.block.text


class AssistantMessage(Vertical):
    DEFAULT_CSS = """
    AssistantMessage { height: auto; border-left: thick $secondary; padding: 0 1; margin: 1 0 0 0; }
    AssistantMessage.-empty { display: none; }
    AssistantMessage > Markdown { margin: 0; padding: 0; }
    AssistantMessage > .note { color: $warning; }
    """

    def __init__(self, block: Block, sanitiser: Sanitiser) -> None:
        super().__init__(classes="message")
        self.block = block
        self._sanitiser = sanitiser
        self._safe = sanitiser.stream()
        self._pending: list[str] = []
        self._stream = None
        self._initial = self._safe.feed(block.text) if block.streaming else sanitiser.clean(block.text)
        self._upto = len(block.text)  # raw characters of the block this widget already has
        self.next_flush = 0.0
        self.set_class(not block.text and not block.streaming, "-empty")

    def compose(self) -> ComposeResult:
        yield Markdown(self._initial)
        yield Static(self._note(), classes="note")

    def _note(self) -> str:
        return "(interrupted)" if self.block.interrupted else ""

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def append(self, raw: str, end: int) -> None:
        if end <= self._upto:
            return  # built after this text arrived: it is already in
        self._pending.append(raw[len(raw) - (end - self._upto):] if end - len(raw) < self._upto else raw)
        self._upto = end
        self.remove_class("-empty")

    async def flush(self, final: bool = False) -> None:
        text = self._safe.feed("".join(self._pending)) if self._pending else ""
        self._pending.clear()
        if final:
            text += self._safe.flush()
        if text:
            if self._stream is None:
                self._stream = Markdown.get_stream(self.query_one(Markdown))
            await self._stream.write(text)
        tail = len(self.block.text) - self.block.text.rfind("\n\n")
        self.next_flush = time.monotonic() + BASE_FLUSH + tail * FLUSH_PER_CHAR

    async def finish(self) -> None:
        await self.flush(final=True)
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.query_one(".note", Static).update(self._note())
        self.set_class(not self.block.text, "-empty")

    async def replace(self) -> None:
        """The final text differs from what streamed (or nothing streamed): render it once, whole."""
        self._pending.clear()
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self._safe = self._sanitiser.stream()
        self._upto = len(self.block.text)
        await self.query_one(Markdown).update(self._sanitiser.clean(self.block.text))
        self.query_one(".note", Static).update(self._note())
        self.set_class(not self.block.text, "-empty")

    def copy_text(self) -> str:
        return self._sanitiser.clean(self.block.text)


def _summary(arguments: str) -> str:
    try:
        args = json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments
    if isinstance(args, dict):
        for key in ("command", "cmd", "path", "query", "url"):
            if isinstance(args.get(key), (str, list)):
                v = args[key]
                return " ".join(v) if isinstance(v, list) else v
    return arguments


class ToolCallBlock(Collapsible):
    DEFAULT_CSS = """
    ToolCallBlock { margin: 0 0 0 2; padding: 0; border: none; background: $surface; }
    ToolCallBlock > Contents { padding: 0 0 0 2; }
    ToolCallBlock .output { color: $text-muted; }
    """

    def __init__(self, block: Block, sanitiser: Sanitiser) -> None:
        self.block = block
        self._s = sanitiser
        self._args = Static("", classes="args")
        self._output = Static("", classes="output")
        super().__init__(self._args, self._output, title=self._make_title(), collapsed=True, classes="message")
        self._fill()

    def _make_title(self) -> str:
        b = self.block
        mark = {"requested": "·", "running": "◐", "finished": "✓" if (b.exit_code or 0) == 0 else "✗",
                "interrupted": "!"}.get(b.state, "·")
        summary = self._s.clean(_summary(b.arguments)).replace("\n", " ")
        if len(summary) > 60:
            summary = summary[:59] + "…"
        tail = ""
        if b.state == "finished":
            tail = f" · exit {b.exit_code}" if b.exit_code is not None else " · done"
        elif b.state == "interrupted":
            tail = " · interrupted"
        elif b.state == "running":
            tail = " · running"
        return f"{mark} {self._s.clean(b.name)} {summary}{tail}"

    def _fill(self) -> None:
        b = self.block
        self._args.update(Text("$ " + self._s.clean(_summary(b.arguments) or b.arguments), style="bold"))
        out = self._s.clean(b.output or "")
        if len(out) > MAX_TOOL_OUTPUT:
            out = "… (" + str(len(out) - MAX_TOOL_OUTPUT) + " characters above)\n" + out[-MAX_TOOL_OUTPUT:]
        notes = []
        if b.truncated:
            notes.append("(output truncated by the engine)")
        if b.reason:
            notes.append(self._s.clean(b.reason))
        self._output.update(Text(out + ("\n" if out and notes else "") + " ".join(notes)))

    def refresh_block(self) -> None:
        self.title = self._make_title()
        self._fill()

    def copy_text(self) -> str:
        return self._s.clean(f"$ {_summary(self.block.arguments)}\n{self.block.output or ''}")


class TurnStatus(Static):
    DEFAULT_CSS = """
    TurnStatus { color: $text-muted; padding: 0 1 0 2; }
    TurnStatus.-failed { color: $error; }
    TurnStatus.-running, TurnStatus.-resumed { color: $accent; }
    """

    def __init__(self, block: Block, sanitiser: Sanitiser, keys: dict[str, str]) -> None:
        super().__init__("")
        self.block = block
        self._s = sanitiser
        self._keys = keys
        self.refresh_block()

    def refresh_block(self) -> None:
        b = self.block
        head = {"queued": "… queued", "running": "◐ running", "resumed": "↻ resumed", "completed": "✓ done",
                "failed": "✗ failed", "cancelled": "■ cancelled", "interrupted": "! interrupted"}.get(b.status,
                                                                                                     b.status)
        parts = [head + (f": {self._s.clean(b.reason)}" if b.reason else "")]
        if b.prompt_tokens or b.completion_tokens:
            parts.append(f"{tokens(b.prompt_tokens)} in / {tokens(b.completion_tokens)} out")
            parts.append(cost(b.cost_usd))
        if b.status == "failed":
            parts.append(f"{self._keys.get('chat.retry', 'ctrl+r')} retries")
        elif b.status in ("queued", "running", "resumed"):
            parts.append(f"{self._keys.get('chat.cancel', 'ctrl+g')} cancels")
        for c in ("queued", "running", "resumed", "completed", "failed", "cancelled"):
            self.set_class(b.status == c, f"-{c}")
        self.update(" · ".join(parts))
