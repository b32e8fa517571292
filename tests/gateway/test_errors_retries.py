"""Retries, timeouts and the errors users see, over real HTTP against the scripted gateway."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from lap_tui.domain.errors import LapError
from lap_tui.gateway import (
    Completion,
    GatewayAuthError,
    GatewayRejected,
    GatewayUnavailable,
    ModelNotFound,
    StreamInterrupted,
    TextDelta,
    Timeouts,
    ToolCall,
)
from tests.gateway.conftest import KEY, collect, fast_policy
from tests.support.scripted_gateway import error, stream, tool_call

MSGS = [{"role": "user", "content": "hi"}]


# ---- retried ------------------------------------------------------------------------------------

async def test_429_with_retry_after_is_honoured_then_succeeds(gateway, make_client, notices):
    gateway.push(error(429, headers={"Retry-After": "0.2"}), stream(["after the wait"]))
    started = time.monotonic()
    events = await collect(make_client().stream_chat("gpt-test", MSGS))
    assert events[-1].text == "after the wait"
    [first, second] = gateway.chat_requests
    assert second.at - first.at >= 0.2  # the server saw the retry no sooner than asked
    assert time.monotonic() - started >= 0.2
    [n] = notices
    assert n.status == 429 and n.retry_after_s == pytest.approx(0.2)
    assert n.delay_s >= 0.2 and n.attempt == 1
    assert str(n).startswith("429 Too Many Requests, retrying in 0.2 s")


async def test_retry_after_as_http_date_is_honoured(gateway, make_client, notices):
    """The wait is the date minus the client's clock, pinned here to a whole second: an HTTP
    date has one-second resolution, so against the real clock the wait would depend on when in
    the second the test runs."""
    from email.utils import formatdate

    now = 1_800_000_000.0
    gateway.push(error(503, headers={"Retry-After": formatdate(now + 1, usegmt=True)}), stream(["ok"]))
    await collect(make_client(clock=lambda: now).stream_chat("gpt-test", MSGS))
    [first, second] = gateway.chat_requests
    assert notices[0].retry_after_s == 1.0
    assert second.at - first.at >= 1.0


async def test_retry_after_beyond_the_cap_gives_up_at_once(gateway, make_client, notices):
    gateway.push(error(429, headers={"Retry-After": "3600"}), stream(["never"]))
    with pytest.raises(GatewayUnavailable) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert "asked to wait 3600 s" in str(ei.value)
    assert len(gateway.chat_requests) == 1 and notices == []


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
async def test_transient_statuses_are_retried(gateway, make_client, notices, status):
    gateway.push(error(status), error(status), stream(["third time"]))
    events = await collect(make_client().stream_chat("gpt-test", MSGS))
    assert events[-1].text == "third time"
    assert len(gateway.chat_requests) == 3
    assert [n.status for n in notices] == [status, status]
    assert [n.attempt for n in notices] == [1, 2]


async def test_5xx_until_retries_run_out_is_gateway_unavailable(gateway, make_client, notices):
    gateway.push(*[error(500, "upstream exploded")] * 3, stream(["too late"]))
    with pytest.raises(GatewayUnavailable) as ei:
        await collect(make_client(retry=fast_policy(max_attempts=3)).stream_chat("gpt-test", MSGS))
    assert len(gateway.chat_requests) == 3 and len(notices) == 2
    assert ei.value.status == 500 and ei.value.attempts == 3
    assert "keeps failing" in ei.value.message and "upstream exploded" in ei.value.message
    assert gateway.remaining == 1


async def test_429_until_retries_run_out_says_rate_limited(gateway, make_client):
    gateway.push(*[error(429)] * 2)
    with pytest.raises(GatewayUnavailable) as ei:
        await collect(make_client(retry=fast_policy(max_attempts=2)).stream_chat("gpt-test", MSGS))
    assert "rate limiting" in ei.value.message and ei.value.status == 429


async def test_list_models_is_retried_too(gateway, make_client):
    gateway.push({**error(503), "path": "/v1/models"})
    assert await make_client().list_models() == ["gpt-test", "claude-test"]
    assert [r.path for r in gateway.requests] == ["/v1/models", "/v1/models"]


async def test_connection_closed_before_any_answer_is_retried(gateway, make_client, notices):
    gateway.push({"type": "hangup"}, stream(["there"]))
    events = await collect(make_client().stream_chat("gpt-test", MSGS))
    assert events[-1].text == "there"
    assert len(gateway.chat_requests) == 2
    assert notices[0].reason == "connection dropped" and notices[0].status is None


async def test_connect_refused_is_gateway_unavailable_after_retries(make_client, notices):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    client = make_client(f"http://127.0.0.1:{port}", retry=fast_policy(max_attempts=3))
    with pytest.raises(GatewayUnavailable) as ei:
        await collect(client.stream_chat("gpt-test", MSGS))
    assert ei.value.attempts == 3 and len(notices) == 2
    assert "connection refused" in ei.value.message and f"127.0.0.1:{port}" in ei.value.message
    assert "LITELLM_API_BASE" in (ei.value.hint or "")
    with pytest.raises(GatewayUnavailable):
        await client.list_models()


# ---- not retried: clear messages ------------------------------------------------------------------

async def test_401_is_not_retried_and_says_the_key_was_rejected(gateway, make_client, notices):
    gateway.push({"type": "bad_key"}, stream(["never"]))
    with pytest.raises(GatewayAuthError) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert ei.value.message.startswith("the gateway rejected the key")
    assert "LITELLM_API_KEY" in (ei.value.hint or "")
    assert len(gateway.chat_requests) == 1 and notices == []


async def test_401_without_a_key_says_none_is_set(gateway, make_client):
    gateway.api_key = KEY  # the server checks the Bearer token itself
    with pytest.raises(GatewayAuthError) as ei:
        await make_client(api_key="").list_models()
    assert "none is set" in ei.value.message


async def test_server_checking_the_key_accepts_the_right_one(gateway, make_client):
    gateway.api_key = KEY
    assert await make_client().list_models() == ["gpt-test", "claude-test"]
    with pytest.raises(GatewayAuthError):
        await make_client(api_key="sk-wrong").list_models()


async def test_litellm_without_a_database_refusing_a_key_is_an_auth_error(gateway, make_client, notices):
    """Real LiteLLM (tests/gateway/test_real_litellm.py) answers a key other than its master key
    with 400 "No connected db." when it has no database for virtual keys."""
    gateway.push(error(400, body={"error": {"message": "No connected db.", "type": "no_db_connection",
                                            "param": None, "code": "400"}}))
    with pytest.raises(GatewayAuthError) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert "master key" in str(ei.value) and ei.value.status == 400
    assert len(gateway.chat_requests) == 1 and notices == []


async def test_403_is_an_auth_error_and_not_retried(gateway, make_client):
    gateway.push(error(403, "key not allowed to access model"))
    with pytest.raises(GatewayAuthError) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert ei.value.status == 403 and "not allowed" in ei.value.message
    assert "key not allowed to access model" in (ei.value.hint or "")
    assert len(gateway.chat_requests) == 1


async def test_404_unknown_model_lists_the_served_models(gateway, make_client, notices):
    gateway.push({"type": "unknown_model"})
    with pytest.raises(ModelNotFound) as ei:
        await collect(make_client().stream_chat("gpt-nope", MSGS))
    assert str(ei.value.message) == "model 'gpt-nope' is not served by the gateway; it serves: gpt-test, claude-test"
    assert ei.value.served == ["gpt-test", "claude-test"]
    assert len(gateway.chat_requests) == 1 and notices == []


async def test_litellm_400_invalid_model_name_is_model_not_found(gateway, make_client):
    gateway.strict_models = True  # the server itself refuses unknown models
    gateway.push({"type": "unknown_model", "status": 400})
    with pytest.raises(ModelNotFound) as ei:
        await collect(make_client().stream_chat("gpt-nope", MSGS))
    assert "it serves: gpt-test, claude-test" in str(ei.value)


async def test_400_is_rejected_with_the_gateway_message_and_not_retried(gateway, make_client, notices):
    gateway.push(error(400, "messages: field required"))
    with pytest.raises(GatewayRejected) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert ei.value.status == 400
    assert "HTTP 400" in ei.value.message and "messages: field required" in ei.value.message
    assert len(gateway.chat_requests) == 1 and notices == []


async def test_wrong_base_url_404_on_models_says_so(gateway, make_client):
    with pytest.raises(GatewayRejected) as ei:
        await make_client(gateway.base_url + "/not-litellm").list_models()
    assert "no OpenAI-compatible API" in ei.value.message


async def test_wrong_base_url_path_on_chat_says_what_the_gateway_answered(gateway, make_client):
    # LITELLM_API_BASE=http://host:4000/nope: the chat URL 404s, and so does the models list.
    with pytest.raises(GatewayRejected) as ei:
        await collect(make_client(gateway.base_url + "/nope").stream_chat("gpt-test", MSGS))
    assert not isinstance(ei.value, ModelNotFound)
    assert ei.value.status == 404
    assert "HTTP 404" in ei.value.message and "/nope/v1/chat/completions" in ei.value.message
    assert "it said: Not Found" in ei.value.message and "LITELLM_API_BASE" in (ei.value.hint or "")


async def test_404_for_a_served_model_reports_the_gateway_message(gateway, make_client):
    gateway.push(error(404, "no route for POST /v1/chat/completions"))
    with pytest.raises(GatewayRejected) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert not isinstance(ei.value, ModelNotFound)
    assert "no route for POST /v1/chat/completions" in ei.value.message


async def test_the_key_never_appears_in_errors_or_reprs(gateway, make_client):
    gateway.push(error(401, f"Invalid key {KEY} passed"), error(400, f"bad request from {KEY}"))
    client = make_client()
    for exc_type in (GatewayAuthError, GatewayRejected):
        with pytest.raises(exc_type) as ei:
            await collect(client.stream_chat("gpt-test", MSGS))
        assert KEY not in str(ei.value) and KEY not in repr(ei.value) and "********" in str(ei.value)
    assert KEY not in repr(client) and "********" in repr(client)


async def test_errors_are_lap_errors(gateway, make_client):
    gateway.push(error(400))
    with pytest.raises(LapError):
        await collect(make_client().stream_chat("gpt-test", MSGS))


# ---- streams that die ----------------------------------------------------------------------------

async def test_connection_dropped_mid_stream_is_stream_interrupted_with_the_partial_text(gateway, make_client, notices):
    gateway.push(stream(["Hel", "lo ", "wor", "ld"], drop_after=2), stream(["never used"]))
    seen = []
    with pytest.raises(StreamInterrupted) as ei:
        async for ev in make_client().stream_chat("gpt-test", MSGS):
            seen.append(ev)
    assert seen == [TextDelta("Hel"), TextDelta("lo ")]
    assert ei.value.partial_text == "Hello "
    assert ei.value.reason == "connection dropped"
    assert len(gateway.chat_requests) == 1 and notices == []  # the caller decides, not the client


async def test_drop_mid_tool_call_carries_the_partial_tool_calls(gateway, make_client):
    gateway.push(stream(["Running."], drop_after=4,
                        tool_calls=[tool_call("c1", "run", '{"cmd": "make test"}', fragment_size=4)]))
    with pytest.raises(StreamInterrupted) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert ei.value.partial_text == "Running."
    assert ei.value.partial_tool_calls == [ToolCall("c1", "run", '{"cmd": "mak')]  # 3 of 5 fragments


async def test_drop_before_any_content_is_retried(gateway, make_client, notices):
    gateway.push(stream(["x"], drop_after=0), stream(["second try"]))
    events = await collect(make_client().stream_chat("gpt-test", MSGS))
    assert events == [TextDelta("second try"), events[-1]] and isinstance(events[-1], Completion)
    assert len(gateway.chat_requests) == 2 and notices[0].reason == "connection dropped"


async def test_idle_stall_mid_stream_is_stream_interrupted(gateway, make_client):
    gateway.push(stream(["one ", "two ", "three"], stall_after=2, stall_s=30))
    client = make_client(timeouts=Timeouts(connect=2, first_byte=10, idle=0.3))
    started = time.monotonic()
    with pytest.raises(StreamInterrupted) as ei:
        await collect(client.stream_chat("gpt-test", MSGS))
    assert ei.value.partial_text == "one two "
    assert "idle timeout" in ei.value.reason
    assert time.monotonic() - started >= 0.3
    assert len(gateway.chat_requests) == 1


async def test_a_slow_consumer_is_not_an_idle_gateway(gateway, make_client):
    """Only time spent waiting for the gateway counts toward `idle`, not the consumer's."""
    gateway.push(stream(["one ", "two ", "three"]))
    client = make_client(timeouts=Timeouts(connect=2, first_byte=10, idle=0.2))
    texts = []
    async for ev in client.stream_chat("gpt-test", MSGS):
        if isinstance(ev, TextDelta):
            texts.append(ev.text)
            await asyncio.sleep(0.4)  # twice the idle timeout, between events
    assert texts == ["one ", "two ", "three"]


async def test_no_first_byte_in_time_is_retried_then_unavailable(gateway, make_client, notices):
    gateway.push(stream(["late"], first_delay=30), stream(["late"], first_delay=30))
    client = make_client(timeouts=Timeouts(connect=2, first_byte=0.3, idle=10), retry=fast_policy(max_attempts=2))
    with pytest.raises(GatewayUnavailable) as ei:
        await collect(client.stream_chat("gpt-test", MSGS))
    assert "no answer within 0.3 s" in ei.value.message
    assert len(gateway.chat_requests) == 2 and len(notices) == 1


async def test_stream_cut_without_finish_or_done_is_interrupted(gateway, make_client):
    # A clean end of the HTTP body, but the model never finished: not a complete answer.
    gateway.push({"type": "raw_sse", "done": False, "events": [
        {"choices": [{"index": 0, "delta": {"content": "half an ans"}, "finish_reason": None}]}]})
    with pytest.raises(StreamInterrupted) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert ei.value.partial_text == "half an ans" and "before [DONE]" in ei.value.reason


async def test_error_event_mid_stream_after_text_is_interrupted(gateway, make_client):
    gateway.push({"type": "raw_sse", "events": [
        {"choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]},
        {"error": {"message": "upstream overloaded", "code": "503"}}]})
    with pytest.raises(StreamInterrupted) as ei:
        await collect(make_client().stream_chat("gpt-test", MSGS))
    assert ei.value.partial_text == "partial" and "503" in ei.value.reason


async def test_async_on_retry_per_call_is_awaited_and_a_failing_callback_does_not_break_the_call(gateway, make_client):
    got = []

    async def on_retry(n):
        got.append(str(n))

    def broken(n):
        raise RuntimeError("UI bug")

    gateway.push(error(502), stream(["a"]), error(502), stream(["b"]))
    client = make_client()
    assert (await collect(client.stream_chat("gpt-test", MSGS, on_retry=on_retry)))[-1].text == "a"
    assert len(got) == 1 and got[0].startswith("502 Bad Gateway, retrying in ")
    assert (await collect(client.stream_chat("gpt-test", MSGS, on_retry=broken)))[-1].text == "b"
