"""The scripted gateway's other two APIs, as LiteLLM serves them: Anthropic Messages
(`POST /v1/messages`, for Claude Code) and OpenAI Responses (`POST /v1/responses`, for Codex).

The same scripted responses as chat completions ({"type": "stream", "chunks", "tool_calls",
"usage", "finish_reason", "cost"}), queued with "path": "/v1/messages" or "/v1/responses",
rendered as that API's stream (or as one JSON answer when the request does not stream).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

MESSAGES_PATH = "/v1/messages"
RESPONSES_PATH = "/v1/responses"


def _args(call: dict[str, Any]) -> str:
    a = call.get("arguments", "")
    if isinstance(a, list):
        return "".join(str(x) for x in a)
    return a if isinstance(a, str) else json.dumps(a)


def _usage(r: dict[str, Any]) -> tuple[int, int]:
    u = r.get("usage")
    if not isinstance(u, dict):
        return 1, 1
    return int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))


# ---- Anthropic Messages --------------------------------------------------------------------

def messages_events(r: dict[str, Any], req: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of one streamed Messages answer."""
    model = r.get("model") or req.get("model") or "claude-test"
    p, c = _usage(r)
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_scripted", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": p, "output_tokens": 1}}}
    index = 0
    chunks = [str(x) for x in r.get("chunks", [])]
    if chunks:
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "text", "text": ""}}
        for ch in chunks:
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": ch}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    calls = r.get("tool_calls") or []
    for call in calls:
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}}
        yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                      "delta": {"type": "input_json_delta", "partial_json": _args(call)}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    stop = "tool_use" if calls else "end_turn"
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                            "usage": {"output_tokens": c}}
    yield "message_stop", {"type": "message_stop"}


def messages_json(r: dict[str, Any], req: dict[str, Any]) -> dict[str, Any]:
    p, c = _usage(r)
    content: list[dict[str, Any]] = []
    if r.get("chunks"):
        content.append({"type": "text", "text": "".join(str(x) for x in r["chunks"])})
    for call in r.get("tool_calls") or []:
        content.append({"type": "tool_use", "id": call["id"], "name": call["name"], "input": json.loads(_args(call))})
    return {"id": "msg_scripted", "type": "message", "role": "assistant",
            "model": r.get("model") or req.get("model") or "claude-test", "content": content,
            "stop_reason": "tool_use" if r.get("tool_calls") else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": p, "output_tokens": c}}


# ---- OpenAI Responses ----------------------------------------------------------------------

def responses_events(r: dict[str, Any], req: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    model = r.get("model") or req.get("model") or "gpt-test"
    p, c = _usage(r)
    base = {"id": "resp_scripted", "object": "response", "created_at": 1_700_000_000, "model": model,
            "status": "in_progress", "output": []}
    seq = 0

    def ev(name: str, **data: Any) -> tuple[str, dict[str, Any]]:
        nonlocal seq
        seq += 1
        return name, {"type": name, "sequence_number": seq, **data}

    yield ev("response.created", response=base)
    output: list[dict[str, Any]] = []
    chunks = [str(x) for x in r.get("chunks", [])]
    if chunks:
        item = {"id": "msg_scripted", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        i = len(output)
        yield ev("response.output_item.added", output_index=i, item=item)
        yield ev("response.content_part.added", item_id="msg_scripted", output_index=i, content_index=0,
                 part={"type": "output_text", "text": "", "annotations": []})
        for ch in chunks:
            yield ev("response.output_text.delta", item_id="msg_scripted", output_index=i, content_index=0, delta=ch)
        text = "".join(chunks)
        yield ev("response.output_text.done", item_id="msg_scripted", output_index=i, content_index=0, text=text)
        part = {"type": "output_text", "text": text, "annotations": []}
        yield ev("response.content_part.done", item_id="msg_scripted", output_index=i, content_index=0, part=part)
        done = dict(item, status="completed", content=[part])
        yield ev("response.output_item.done", output_index=i, item=done)
        output.append(done)
    for call in r.get("tool_calls") or []:
        i = len(output)
        item = {"id": f"fc_{call['id']}", "type": "function_call", "status": "in_progress", "call_id": call["id"],
                "name": call["name"], "arguments": ""}
        yield ev("response.output_item.added", output_index=i, item=item)
        yield ev("response.function_call_arguments.delta", item_id=item["id"], output_index=i, delta=_args(call))
        yield ev("response.function_call_arguments.done", item_id=item["id"], output_index=i, arguments=_args(call))
        done = dict(item, status="completed", arguments=_args(call))
        yield ev("response.output_item.done", output_index=i, item=done)
        output.append(done)
    final = dict(base, status="completed", output=output,
                 usage={"input_tokens": p, "output_tokens": c, "total_tokens": p + c,
                        "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}})
    yield ev("response.completed", response=final)
