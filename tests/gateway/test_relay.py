"""The relay over real HTTP: a unix socket in front of the scripted gateway (no sandbox, no CLI)."""

from __future__ import annotations

import httpx
import pytest

from lap_tui.gateway.relay import Grant, Relay, Usage, hash_token
from tests.support.scripted_apis import MESSAGES_PATH, RESPONSES_PATH
from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call

MASTER = "sk-master-relay-test"
TOKEN = "lap-session-token"


@pytest.fixture
async def relay(tmp_path):
    charged: list[tuple[Grant, Usage]] = []

    async def authorize(token_hash: str) -> Grant | None:
        return Grant("s1", "t1") if token_hash == hash_token(TOKEN) else None

    async def account(grant: Grant, usage: Usage) -> None:
        charged.append((grant, usage))

    with ScriptedGateway(models=["m"], api_key=MASTER) as gw:
        r = Relay(gw.base_url + "/v1", MASTER, authorize=authorize, account=account)
        server = await r.serve_unix(str(tmp_path / "relay.sock"))
        client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(tmp_path / "relay.sock")),
                                   base_url="http://relay")
        yield gw, client, charged
        await client.aclose()
        server.close()
        await r.aclose()


async def test_chat_streams_through_with_the_real_key_and_usage_is_charged(relay):
    gw, c, charged = relay
    gw.push(stream(["Hel", "lo"], tool_calls=[tool_call("c1", "bash", '{"command": "ls"}')],
                   usage={"prompt_tokens": 7, "completion_tokens": 3}, cost=0.25))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with c.stream("POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status_code == 200 and r.headers["x-litellm-response-cost"] == "0.25"
        text = b"".join([chunk async for chunk in r.aiter_bytes()]).decode()
    assert '"Hel"' in text and '"lo"' in text and "c1" in text and text.rstrip().endswith("data: [DONE]")
    (req,) = gw.chat_requests
    assert req.headers["authorization"] == f"Bearer {MASTER}" and TOKEN not in str(req.headers)
    ((grant, usage),) = charged
    assert grant == Grant("s1", "t1") and (usage.prompt_tokens, usage.completion_tokens, usage.cost_usd) == (7, 3, 0.25)


async def test_messages_and_responses_usage_is_read_from_their_own_events(relay):
    gw, c, charged = relay
    gw.push(stream(["a"], path=MESSAGES_PATH, usage={"prompt_tokens": 11, "completion_tokens": 4}),
            stream(["b"], path=RESPONSES_PATH, usage={"prompt_tokens": 13, "completion_tokens": 6}))
    r = await c.post("/v1/messages", json={"model": "m", "stream": True, "max_tokens": 5, "messages": []},
                     headers={"x-api-key": TOKEN, "anthropic-version": "2023-06-01"})
    assert r.status_code == 200 and "message_stop" in r.text
    assert gw.requests[-1].headers["x-api-key"] == MASTER and gw.requests[-1].headers["anthropic-version"]
    r = await c.post("/v1/responses", json={"model": "m", "stream": True, "input": []},
                     headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and "response.completed" in r.text
    assert [(u.prompt_tokens, u.completion_tokens) for _g, u in charged] == [(11, 4), (13, 6)]


async def test_unknown_tokens_and_other_paths_are_refused_before_the_gateway(relay):
    gw, c, charged = relay
    assert (await c.get("/v1/models")).status_code == 401
    assert (await c.get("/v1/models", headers={"authorization": "Bearer lap-guess"})).status_code == 401
    assert (await c.get("/v1/models", headers={"authorization": f"Bearer {MASTER}"})).status_code == 401
    r = await c.post("/key/generate", json={}, headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and "does not forward" in r.text  # no admin API through the relay
    assert gw.requests == [] and charged == []
    ok = await c.get("/v1/models", headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["data"][0]["id"] == "m"
