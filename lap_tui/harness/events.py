"""A CLI's JSON event lines -> harness-neutral events, by the definition's rules (pure).

The output is untrusted text from the sandbox: every value is read by path, checked for its
type and capped, never evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lap_tui.harness.definition import EventRule, HarnessDefinition

MAX_TEXT = 200_000  # characters of one text or tool output kept per event
MAX_LINE = 4 * 2**20  # a longer line is cut off and reported, never parsed


@dataclass(frozen=True)
class Mapped:
    """kind: text | delta | tool_use | tool_result | usage | error | raw (an unmapped event)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


def get_path(obj: Any, path: str) -> Any:
    """`a.b.0.c` into nested dicts and lists; None when any step is missing."""
    if not path:
        return obj
    cur = obj
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def _matches(obj: Any, when: dict[str, Any]) -> bool:
    for path, want in when.items():
        got = get_path(obj, path)
        if isinstance(want, list):
            if got not in want:
                return False
        elif got != want:
            return False
    return True


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):  # e.g. a tool_result's content blocks
        text = "\n".join(_text(v.get("text") if isinstance(v, dict) else v) for v in value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text[:MAX_TEXT]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0.0


def parse_line(line: bytes) -> Any:
    """The JSON object of one output line, or None for anything else (blank, banner, broken)."""
    if len(line) > MAX_LINE:
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def session_id_of(definition: HarnessDefinition, obj: Any) -> str | None:
    if not definition.session_id:
        return None
    sid = get_path(obj, definition.session_id)
    # It becomes a CLI argument: a short printable token, nothing else.
    if isinstance(sid, str) and 0 < len(sid) <= 200 and all(c.isalnum() or c in "-_." for c in sid):
        return sid
    return None


def map_event(definition: HarnessDefinition, obj: Any) -> list[Mapped]:
    """The events one output object stands for, in order. Unmatched objects -> one `raw`."""
    out: list[Mapped] = []
    matched = False
    for rule in definition.rules:
        items = get_path(obj, rule.each) if rule.each else [obj]
        if rule.each and not isinstance(items, list):
            continue
        for item in items:
            if not _matches(item, rule.when):
                continue
            matched = True
            m = _apply(rule, item)
            if m is not None:
                out.extend(m)
        if matched and not rule.each:
            break  # a whole-line rule consumes the line; `each` rules may combine
    if not matched:
        kind = obj.get("type") if isinstance(obj.get("type"), str) else ""
        out.append(Mapped("raw", {"type": kind[:100]}))
    return out


def _apply(rule: EventRule, item: Any) -> list[Mapped] | None:
    f = {k: get_path(item, p) for k, p in rule.fields.items()}
    if rule.emit == "ignore":
        return []
    if rule.emit in ("text", "delta"):  # a whole text, or a streamed piece of one
        text = _text(f.get("text"))
        return [Mapped(rule.emit, {"text": text})] if text else []
    if rule.emit in ("tool", "tool_use"):
        call_id = _text(f.get("id"))[:200] or "call"
        args = f.get("input")
        use = Mapped("tool_use", {"tool_call_id": call_id, "name": _text(f.get("name"))[:200],
                                  "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)})
        if rule.emit == "tool_use":
            return [use]
        return [use, _result(call_id, f)]
    if rule.emit == "tool_result":
        return [_result(_text(f.get("id"))[:200] or "call", f)]
    if rule.emit == "usage":
        return [Mapped("usage", {"prompt_tokens": _int(f.get("prompt_tokens")),
                                 "completion_tokens": _int(f.get("completion_tokens")),
                                 "cost_usd": _float(f.get("cost"))})]
    if rule.emit == "error":
        return [Mapped("error", {"message": _text(f.get("message"))[:2000] or "the CLI reported an error"})]
    return None


def _result(call_id: str, f: dict[str, Any]) -> Mapped:
    status = f.get("status")
    is_error = f.get("is_error") is True or status in ("error", "failed")
    code = f.get("exit_code")
    output = _text(f.get("output")) or _text(f.get("error_output"))  # some CLIs put a failure's text apart
    return Mapped("tool_result", {"tool_call_id": call_id, "output": output,
                                  "exit_code": code if isinstance(code, int) and not isinstance(code, bool) else None,
                                  "error": "the tool failed" if is_error else None})
