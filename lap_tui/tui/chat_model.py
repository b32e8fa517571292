"""The chat as blocks folded from journal events and live text. Pure: no Textual.

Journal `model.delta` checkpoints and in-process `LiveText` chunks carry the same text (the
engine checkpoints what it streamed). Each source keeps its own position in the step's text
and only the part beyond what is already shown is appended, so whichever source is ahead
wins and nothing is shown twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lap_tui.domain.journal import EventKind, JournalEvent

ACTIVE = ("queued", "running", "resumed")


@dataclass
class Block:
    key: str
    kind: str  # user | assistant | tool | turn
    turn_id: str | None
    text: str = ""  # user/assistant: raw text shown so far
    streaming: bool = False
    interrupted: bool = False
    claimed: bool = True  # assistant: opened by model.requested (not by early live text)
    live_pos: int = 0
    delta_pos: int = 0
    # tool
    name: str = ""
    arguments: str = ""
    output: str | None = None
    exit_code: int | None = None
    truncated: bool = False
    state: str = ""  # tool: requested | running | finished | interrupted
    # turn
    status: str = ""
    reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seq: int = 0


@dataclass
class Change:
    op: str  # add | update | append | replace
    block: Block
    text: str = ""  # for append: the new raw text
    end: int = 0  # for append: len(block.text) once appended (a widget built later already has it)


@dataclass
class ChatModel:
    blocks: list[Block] = field(default_factory=list)
    _by_key: dict[str, Block] = field(default_factory=dict)
    _open: dict[str, Block] = field(default_factory=dict)  # turn id -> streaming assistant block
    _n: int = 0
    _early: dict[str, str] = field(default_factory=dict)  # live text ahead of its turn's user message
    _users: set[str] = field(default_factory=set)
    prefix: str = ""  # keeps keys unique when an older page is folded separately

    # -- queries
    def turn(self, turn_id: str | None) -> Block | None:
        return self._by_key.get(f"turn:{turn_id}")

    def active_turn(self) -> Block | None:
        for b in reversed(self.blocks):
            if b.kind == "turn":
                return b if b.status in ACTIVE else None
        return None

    def last_failed_turn(self) -> Block | None:
        for b in reversed(self.blocks):
            if b.kind == "turn":
                return b if b.status == "failed" else None
        return None

    # -- folding
    def _add(self, block: Block, out: list[Change]) -> Block:
        self.blocks.append(block)
        self._by_key[block.key] = block
        out.append(Change("add", block))
        return block

    def _new_key(self, kind: str) -> str:
        self._n += 1
        return f"{self.prefix}{kind}:{self._n}"

    def _turn_block(self, turn_id: str | None, seq: int, out: list[Change]) -> Block:
        b = self.turn(turn_id)
        if b is None:
            b = self._add(Block(key=f"turn:{turn_id}", kind="turn", turn_id=turn_id, status="queued", seq=seq), out)
        return b

    def _set_status(self, turn: Block, status: str, out: list[Change], reason: str = "") -> None:
        turn.status, turn.reason = status, reason
        out.append(Change("update", turn))

    def _close_open(self, turn_id: str | None, out: list[Change], *, interrupted: bool) -> None:
        b = self._open.pop(turn_id or "", None)
        if b is not None:
            b.streaming = False
            b.interrupted = interrupted and bool(b.text)
            out.append(Change("update", b))

    def _open_step(self, turn_id: str | None, seq: int, out: list[Change], *, claimed: bool) -> Block:
        b = self._add(Block(key=self._new_key("assistant"), kind="assistant", turn_id=turn_id,
                            streaming=True, claimed=claimed, seq=seq), out)
        self._open[turn_id or ""] = b
        return b

    def _extend(self, b: Block, pos_attr: str, text: str, out: list[Change]) -> None:
        pos = getattr(b, pos_attr) + len(text)
        setattr(b, pos_attr, pos)
        shown = len(b.text)
        if pos > shown:
            new = text[len(text) - (pos - shown):]
            b.text += new
            out.append(Change("append", b, new, len(b.text)))

    def apply_live(self, turn_id: str, text: str) -> list[Change]:
        out: list[Change] = []
        if turn_id not in self._users:
            # The journal has not shown this turn's message yet: hold the text so the reply
            # does not appear above the question.
            self._early[turn_id] = self._early.get(turn_id, "") + text
            return out
        b = self._open.get(turn_id) or self._open_step(turn_id, 0, out, claimed=False)
        self._extend(b, "live_pos", text, out)
        return out

    def apply(self, ev: JournalEvent) -> list[Change]:
        out: list[Change] = []
        k, d, tid = ev.kind, ev.data or {}, ev.turn_id
        if k == EventKind.TURN_QUEUED:
            t = self._turn_block(tid, ev.seq, out)
            if t.status != "queued":  # a retry queues the same turn again
                self._set_status(t, "queued", out)
        elif k == "turn.cancel_requested":
            t = self._turn_block(tid, ev.seq, out)
            if t.status in ACTIVE:
                self._set_status(t, t.status, out, "cancelling…")
        elif k == EventKind.USER_MESSAGE:
            self._turn_block(tid, ev.seq, out)
            self._add(Block(key=self._new_key("user"), kind="user", turn_id=tid, text=str(d.get("text", "")),
                            seq=ev.seq), out)
            self._users.add(tid or "")
            early = self._early.pop(tid or "", "")
            if early:
                out += self.apply_live(tid or "", early)
        elif k in (EventKind.TURN_STARTED, EventKind.TURN_RESUMED):
            t = self._turn_block(tid, ev.seq, out)
            self._set_status(t, "running" if k == EventKind.TURN_STARTED else "resumed", out)
        elif k == EventKind.MODEL_REQUESTED:
            cur = self._open.get(tid or "")
            if cur is not None and not cur.claimed:
                cur.claimed = True  # live text ran ahead of the journal: same step
            else:
                self._close_open(tid, out, interrupted=True)
                self._open_step(tid, ev.seq, out, claimed=True)
        elif k == EventKind.MODEL_DELTA:
            b = self._open.get(tid or "") or self._open_step(tid, ev.seq, out, claimed=True)
            self._extend(b, "delta_pos", str(d.get("text", "")), out)
        elif k == EventKind.MODEL_MESSAGE:
            self._model_message(tid, ev, d, out)
        elif k in (EventKind.TOOL_STARTED, EventKind.TOOL_FINISHED, EventKind.TOOL_INTERRUPTED):
            self._tool(tid, ev, d, out)
        elif k in (EventKind.TURN_COMPLETED, EventKind.TURN_FAILED, EventKind.TURN_CANCELLED):
            status = {EventKind.TURN_COMPLETED: "completed", EventKind.TURN_FAILED: "failed",
                      EventKind.TURN_CANCELLED: "cancelled"}[EventKind(k)]
            self._close_open(tid, out, interrupted=status != "completed")
            t = self._turn_block(tid, ev.seq, out)
            # A CLI harness's turn reports its totals only here (the relay counted them).
            t.prompt_tokens = max(t.prompt_tokens, _count(d.get("prompt_tokens")))
            t.completion_tokens = max(t.completion_tokens, _count(d.get("completion_tokens")))
            t.cost_usd = max(t.cost_usd, float(_count(d.get("cost_usd"), float)))
            self._set_status(t, status, out, str(d.get("reason", "") or ""))
            for b in self.blocks:  # a tool still running when the turn ended never finished
                if b.kind == "tool" and b.turn_id == tid and b.state in ("requested", "running"):
                    b.state = "interrupted"
                    out.append(Change("update", b))
        return out

    def _model_message(self, tid: str | None, ev: JournalEvent, d: dict[str, Any], out: list[Change]) -> None:
        text = str(d.get("text", "") or "")
        b = self._open.pop(tid or "", None)
        if b is None:
            b = self._add(Block(key=self._new_key("assistant"), kind="assistant", turn_id=tid, seq=ev.seq), out)
        b.streaming = False
        if b.text != text:
            b.text = text
            out.append(Change("replace", b))
        else:
            out.append(Change("update", b))
        usage = d.get("usage") or {}
        t = self._turn_block(tid, ev.seq, out)
        t.prompt_tokens += int(usage.get("prompt_tokens", 0) or 0)
        t.completion_tokens += int(usage.get("completion_tokens", 0) or 0)
        t.cost_usd += float(d.get("cost_usd", 0.0) or 0.0)
        out.append(Change("update", t))
        for call in d.get("tool_calls") or []:
            cid = str(call.get("id", ""))
            if f"tool:{cid}" not in self._by_key:
                self._add(Block(key=f"tool:{cid}", kind="tool", turn_id=tid, name=str(call.get("name", "")),
                                arguments=str(call.get("arguments", "")), state="requested", seq=ev.seq), out)

    def _tool(self, tid: str | None, ev: JournalEvent, d: dict[str, Any], out: list[Change]) -> None:
        cid = str(d.get("tool_call_id", ""))
        b = self._by_key.get(f"tool:{cid}")
        if b is None:
            b = self._add(Block(key=f"tool:{cid}", kind="tool", turn_id=tid, name=str(d.get("name", "")),
                                arguments=str(d.get("arguments", "")), state="requested", seq=ev.seq), out)
        if d.get("name"):
            b.name = str(d["name"])
        if d.get("arguments"):
            b.arguments = str(d["arguments"])
        if ev.kind == EventKind.TOOL_STARTED:
            b.state = "running"
        elif ev.kind == EventKind.TOOL_FINISHED:
            b.state = "finished"
            b.output = None if d.get("output") is None else str(d.get("output"))
            b.exit_code = d.get("exit_code")
            b.truncated = bool(d.get("truncated", False))
            b.reason = str(d.get("error") or "")
        else:
            b.state = "interrupted"
            b.reason = str(d.get("reason") or "interrupted")
        out.append(Change("update", b))


def _count(value: Any, kind: type = int) -> Any:
    """A non-negative number from a journal row (any process writes those), else 0."""
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else kind(0)


def turn_start_index(events: list[JournalEvent]) -> int:
    """Index of the first event that starts a turn, so a page of history holds whole turns."""
    for i, ev in enumerate(events):
        if ev.kind in (EventKind.TURN_QUEUED, EventKind.USER_MESSAGE):
            return i
    return 0
