"""Our gateway client through a real LiteLLM proxy (bin/install-litellm, pinned), with the
scripted server as the model behind it: what LiteLLM itself does to streams, tool calls and
errors reaches the client as the client expects. Missing, it fails under CI=true and skips
elsewhere (.ci/run installs it)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from lap_tui.gateway import (Completion, GatewayAuthError, GatewayClient, ModelNotFound, StreamInterrupted,
                             TextDelta, ToolCall, Timeouts)
from tests.conftest import need
from tests.gateway.conftest import collect, fast_policy
from tests.support.pgserver import free_port
from tests.support.scripted_gateway import ScriptedGateway, error, stream, tool_call
from tests.support.waiting import until_sync

LITELLM = Path(os.environ.get("LAP_LITELLM_DIR") or Path.home() / ".cache" / "lap-tui" / "litellm") / "venv" / "bin" / "litellm"
MASTER = "sk-lap-test-master-0042"
UPSTREAM_KEY = "sk-upstream-never-seen-by-the-client"
MSGS = [{"role": "user", "content": "hi"}]
pytestmark = pytest.mark.xdist_group("litellm")  # one proxy for the module, on one worker


def _live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/liveliness", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedGateway]:
    with ScriptedGateway(models=["up-model"], api_key=UPSTREAM_KEY) as gw:
        yield gw


@pytest.fixture(scope="module")
def proxy(upstream: ScriptedGateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need(LITELLM.exists(), f"no LiteLLM proxy at {LITELLM}: run bin/install-litellm")
    d = tmp_path_factory.mktemp("litellm")
    (d / "config.yaml").write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": "test-model", "litellm_params": {
            "model": "openai/up-model", "api_base": upstream.base_url + "/v1", "api_key": UPSTREAM_KEY}}],
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"num_retries": 0, "request_timeout": 30},
    }))
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "NO_DOCS": "True", "HOME": str(d)}
    env.pop("DATABASE_URL", None)
    log = (d / "proxy.log").open("wb")
    proc = subprocess.Popen([str(LITELLM), "--config", str(d / "config.yaml"), "--host", "127.0.0.1",
                             "--port", str(port), "--num_workers", "1"], cwd=d, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        until_sync(lambda: _live(url) or proc.poll() is not None, "the LiteLLM proxy to answer", timeout=120)
        assert proc.poll() is None, (d / "proxy.log").read_text()[-3000:]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
async def client(proxy: str, upstream: ScriptedGateway) -> AsyncIterator[GatewayClient]:
    upstream.reset()
    c = GatewayClient(proxy + "/v1", MASTER, retry=fast_policy(),
                      timeouts=Timeouts(connect=5, first_byte=30, idle=30))
    yield c
    await c.aclose()


async def test_models_are_the_proxys_names(client):
    assert await client.list_models() == ["test-model"]


async def test_streamed_text_and_usage_come_through(client, upstream):
    upstream.push(stream(["Hel", "lo, ", "wor", "ld"], usage={"prompt_tokens": 7, "completion_tokens": 4,
                                                               "total_tokens": 11}))
    events = await collect(client.stream_chat("test-model", MSGS))
    done = events[-1]
    assert isinstance(done, Completion) and done.text == "Hello, world" and done.finish_reason == "stop"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello, world"
    assert done.usage is not None and (done.usage.prompt_tokens, done.usage.completion_tokens) == (7, 4)
    [req] = upstream.chat_requests
    assert req.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the proxy's key upstream, not ours
    assert req.body["messages"] == MSGS


async def test_tool_calls_in_fragments_are_assembled(client, upstream):
    args = json.dumps({"cmd": "ls -la /tmp", "path": "src/ünï.py"}, ensure_ascii=False)
    upstream.push(stream(["Looking."], tool_calls=[tool_call("call_a", "run", args, fragment_size=4),
                                                    tool_call("call_b", "read_file", '{"path": "a"}', fragment_size=3)]))
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
             for n in ("run", "read_file")]
    done = (await collect(client.stream_chat("test-model", MSGS, tools)))[-1]
    assert done.finish_reason == "tool_calls"
    assert done.tool_calls == [ToolCall("call_a", "run", args), ToolCall("call_b", "read_file", '{"path": "a"}')]
    assert upstream.chat_requests[0].body["tools"] == tools


async def test_an_unknown_model_is_model_not_found(client):
    with pytest.raises(ModelNotFound) as ei:
        await collect(client.stream_chat("no-such-model", MSGS))
    assert "no-such-model" in str(ei.value)


async def test_a_wrong_key_is_an_auth_error_without_the_key(proxy):
    """Without a database LiteLLM answers a key that is not its master key with 400 "No
    connected db." (a 401 with one): the client says what that means."""
    async with GatewayClient(proxy + "/v1", "sk-wrong-key-9999", retry=fast_policy()) as c:
        with pytest.raises(GatewayAuthError) as ei:
            await collect(c.stream_chat("test-model", MSGS))
        assert "master key" in str(ei.value)
        with pytest.raises(GatewayAuthError):
            await c.list_models()
    assert "sk-wrong-key-9999" not in str(ei.value) and "sk-wrong-key-9999" not in repr(ei.value)


async def test_an_upstream_429_is_retried_by_the_client(client, upstream):
    upstream.push(error(429, headers={"Retry-After": "0.3"}), stream(["after the wait"]))
    notices = []
    done = (await collect(client.stream_chat("test-model", MSGS, on_retry=notices.append)))[-1]
    assert done.text == "after the wait"
    assert [n.status for n in notices] == [429]
    assert len(upstream.chat_requests) == 2


async def test_an_upstream_dropped_mid_stream_is_interrupted_with_what_came(client, upstream):
    upstream.push(stream(["Hel", "lo ", "wor", "ld"], drop_after=2))
    seen = []
    with pytest.raises(StreamInterrupted) as ei:
        async for ev in client.stream_chat("test-model", MSGS):
            seen.append(ev)
    text = "".join(e.text for e in seen if isinstance(e, TextDelta))
    assert text == ei.value.partial_text and "Hello ".startswith(text), (text, ei.value)
