"""Streamed chat over real HTTP against the scripted gateway: text, tool calls, usage, cost."""

from __future__ import annotations

import json

from lap_tui.gateway import Completion, TextDelta, ToolCall, ToolCallDelta, Usage
from tests.gateway.conftest import KEY, collect
from tests.support.scripted_gateway import stream, tool_call

MSGS = [{"role": "user", "content": "say hello"}]


async def test_streamed_text_arrives_in_order_and_completes(gateway, make_client):
    gateway.push(stream(["Hel", "lo, ", "wor", "ld"]))
    events = await collect(make_client().stream_chat("gpt-test", MSGS))
    assert events[:-1] == [TextDelta("Hel"), TextDelta("lo, "), TextDelta("wor"), TextDelta("ld")]
    done = events[-1]
    assert isinstance(done, Completion)
    assert done.text == "Hello, world"
    assert done.finish_reason == "stop"
    assert done.tool_calls == []
    assert done.model == "gpt-test"


async def test_request_body_and_bearer_key(gateway, make_client):
    gateway.push(stream(["ok"]))
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    messages = MSGS + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "file contents"},
    ]
    await collect(make_client().stream_chat("gpt-test", messages, tools, temperature=0.2, tool_choice="auto"))
    [req] = gateway.chat_requests
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == "gpt-test"
    assert req.body["stream"] is True
    assert req.body["stream_options"] == {"include_usage": True}
    assert req.body["tools"] == tools
    assert req.body["messages"] == messages
    assert req.body["messages"][-1]["tool_call_id"] == "c1"
    assert req.body["temperature"] == 0.2 and req.body["tool_choice"] == "auto"
    assert "text/event-stream" in req.headers["accept"]


async def test_no_authorization_header_without_a_key(gateway, make_client):
    gateway.push(stream(["ok"]))
    await collect(make_client(api_key="").stream_chat("gpt-test", MSGS))
    assert "authorization" not in gateway.chat_requests[0].headers


async def test_tool_calls_split_across_chunks_are_assembled_by_index(gateway, make_client):
    args1 = json.dumps({"path": "src/main.py", "lines": [1, 2, 3]})
    args2 = json.dumps({"cmd": "ls -la /tmp", "timeout": 30})
    args3 = json.dumps({"query": "ünïcode ✓"}, ensure_ascii=False)
    gateway.push(stream(["Let me look."], interleave=True, tool_calls=[
        tool_call("call_a", "read_file", args1, fragment_size=3),
        tool_call("call_b", "run", args2, fragment_size=5),
        tool_call("call_c", "search", args3, fragment_size=2),
    ]))
    events = await collect(make_client().stream_chat("gpt-test", MSGS))
    done = events[-1]
    assert isinstance(done, Completion)
    assert done.text == "Let me look."
    assert done.finish_reason == "tool_calls"
    assert done.tool_calls == [ToolCall("call_a", "read_file", args1), ToolCall("call_b", "run", args2),
                               ToolCall("call_c", "search", args3)]
    assert [json.loads(t.arguments) for t in done.tool_calls][2] == {"query": "ünïcode ✓"}
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    # Interleaved: the fragments of the three calls alternate, and every fragment is shorter than its call.
    assert [d.index for d in deltas[:3]] == [0, 1, 2]
    assert all(len(d.arguments_fragment) < 6 for d in deltas)
    for i, tc in enumerate(done.tool_calls):
        mine = [d for d in deltas if d.index == i]
        assert len(mine) > 2
        assert "".join(d.arguments_fragment for d in mine) == tc.arguments
        assert {(d.id, d.name) for d in mine} == {(tc.id, tc.name)}


async def test_tool_call_arguments_given_as_explicit_fragments(gateway, make_client):
    gateway.push(stream([], tool_calls=[tool_call("c9", "write", ['{"pa', 'th": "a', '.txt", "te', 'xt": "hi"}'])]))
    done = (await collect(make_client().stream_chat("gpt-test", MSGS)))[-1]
    assert done.text == ""
    assert done.tool_calls == [ToolCall("c9", "write", '{"path": "a.txt", "text": "hi"}')]


async def test_usage_and_cost_header(gateway, make_client):
    gateway.push(stream(["a", "b"], usage={"prompt_tokens": 120, "completion_tokens": 7}, cost=0.00123))
    done = (await collect(make_client().stream_chat("gpt-test", MSGS)))[-1]
    assert done.usage == Usage(prompt_tokens=120, completion_tokens=7, total_tokens=127)
    assert done.cost_usd == 0.00123


async def test_cost_in_usage_chunk_wins_over_header(gateway, make_client):
    # A streamed LiteLLM response may send the header before the cost is known (0); the usage chunk knows.
    gateway.push(stream(["a"], usage={"prompt_tokens": 1, "completion_tokens": 1}, usage_cost=0.5, cost=0))
    done = (await collect(make_client().stream_chat("gpt-test", MSGS)))[-1]
    assert done.cost_usd == 0.5


async def test_no_usage_and_no_cost_when_the_gateway_sends_none(gateway, make_client):
    gateway.push(stream(["a"], usage=None))
    done = (await collect(make_client().stream_chat("gpt-test", MSGS)))[-1]
    assert done.usage is None
    assert done.cost_usd is None


async def test_stream_ending_after_finish_reason_without_done_is_complete(gateway, make_client):
    gateway.push(stream(["fine"], done=False))
    done = (await collect(make_client().stream_chat("gpt-test", MSGS)))[-1]
    assert isinstance(done, Completion) and done.text == "fine"


async def test_gateway_that_ignores_stream_true_is_accepted(gateway, make_client):
    body = {"id": "x", "object": "chat.completion", "model": "gpt-test",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "whole",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 3}}
    gateway.push({"type": "json", "body": body, "headers": {"x-litellm-response-cost": "0.01"}})
    events = await collect(make_client().stream_chat("gpt-test", MSGS))
    assert events[0] == TextDelta("whole")
    done = events[-1]
    assert done.tool_calls == [ToolCall("c1", "f", "{}")]
    assert done.usage == Usage(2, 3, 5) and done.cost_usd == 0.01


async def test_breaking_out_early_leaves_the_client_usable(gateway, make_client):
    gateway.push(stream([f"w{i} " for i in range(50)]), stream(["second"]))
    client = make_client()
    agen = client.stream_chat("gpt-test", MSGS)
    async for ev in agen:
        assert ev == TextDelta("w0 ")
        break
    await agen.aclose()
    done = (await collect(client.stream_chat("gpt-test", MSGS)))[-1]
    assert done.text == "second"


async def test_list_models(gateway, make_client):
    assert await make_client().list_models() == ["gpt-test", "claude-test"]
    [req] = gateway.requests
    assert req.path == "/v1/models" and req.headers["authorization"] == f"Bearer {KEY}"


async def test_base_url_with_v1_suffix_is_not_doubled(gateway, make_client):
    assert await make_client(gateway.base_url + "/v1/").list_models() == ["gpt-test", "claude-test"]
    assert gateway.requests[0].path == "/v1/models"
