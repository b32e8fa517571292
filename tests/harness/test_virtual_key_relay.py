"""The relay's LiteLLM virtual keys over real HTTP (a unix socket in front of the scripted
gateway's /key/* API; no CLI): what the CLI is told when the gateway refuses the session's key
(budget, in LiteLLM's older 400 and newer 429 shapes; expiry) or will not mint one, and that a
budget edited on the agent reaches the existing key. The key itself never appears in an answer."""

from __future__ import annotations

import httpx
import pytest

from lap_tui.gateway.relay import Grant, Relay, Usage, VirtualKeySpec, hash_token, virtual_key
from tests.support.scripted_gateway import ScriptedGateway, stream

MASTER = "sk-master-vk-relay-test"
TOKEN = "lap-session-token"
SESSION = "5e55" + "0" * 28
BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def relay(tmp_path):
    spec = {"now": VirtualKeySpec(budget_usd=0.01, ttl="1h", metadata={"lap_tui_agent": "vk"})}

    async def authorize(token_hash: str) -> Grant | None:
        return Grant(SESSION, "t1", spec["now"]) if token_hash == hash_token(TOKEN) else None

    async def account(grant: Grant, usage: Usage) -> None:
        pass

    with ScriptedGateway(models=["m"], api_key=MASTER) as gw:
        r = Relay(gw.base_url, MASTER, authorize=authorize, account=account)
        server = await r.serve_unix(str(tmp_path / "relay.sock"))
        client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(tmp_path / "relay.sock")),
                                   base_url="http://relay")
        yield gw, client, spec, r
        await client.aclose()
        server.close()
        await r.aclose()


@pytest.mark.parametrize("status", [400, 429])
async def test_an_exceeded_budget_is_a_plain_400_that_says_so(relay, status):
    gw, c, _spec, _r = relay
    gw.budget_status = status  # older LiteLLM answered 400, newer 429 (which CLIs retry)
    gw.push(stream(["a"], cost=0.02))
    assert (await c.post("/v1/chat/completions", json=BODY, headers=AUTH)).status_code == 200
    key = virtual_key(MASTER, SESSION)
    assert gw.virtual_keys[key]["spend"] == 0.02 and gw.chat_requests[-1].headers["authorization"] == f"Bearer {key}"
    r = await c.post("/v1/chat/completions", json=BODY, headers=AUTH)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "budget_exceeded"
    assert err["message"].startswith("budget exceeded: this session's LiteLLM virtual key has used up its budget "
                                     "(max $0.01); the gateway said: Budget has been exceeded! Current cost: 0.02")
    assert "lap-tui agents edit vk --key-budget USD" in err["message"]
    assert key not in r.text and gw.virtual_keys[key]["token"] not in r.text and MASTER not in r.text


async def test_a_budget_edited_on_the_agent_reaches_the_existing_key(relay):
    gw, c, spec, _r = relay
    gw.push(stream(["a"], cost=0.02), stream(["b"]))
    await c.post("/v1/chat/completions", json=BODY, headers=AUTH)
    assert (await c.post("/v1/chat/completions", json=BODY, headers=AUTH)).status_code == 400
    spec["now"] = VirtualKeySpec(budget_usd=1.0, ttl="1h")  # the next turn's grant
    r = await c.post("/v1/chat/completions", json=BODY, headers=AUTH)
    assert r.status_code == 200 and '"b"' in r.text
    key = virtual_key(MASTER, SESSION)
    assert gw.virtual_keys[key]["max_budget"] == 1.0
    paths = [q.path for q in gw.requests if q.path.startswith("/v1/key/")]
    assert paths == ["/v1/key/generate", "/v1/key/generate", "/v1/key/update"]  # the second: "already exists"


async def test_an_expired_key_is_said_as_expired(relay):
    gw, c, _spec, _r = relay
    gw.push(stream(["a"]))
    assert (await c.post("/v1/chat/completions", json=BODY, headers=AUTH)).status_code == 200
    key = virtual_key(MASTER, SESSION)
    gw.virtual_keys[key]["expires"] = 0  # its TTL is over
    r = await c.post("/v1/chat/completions", json=BODY, headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["type"] == "expired_key"
    assert "virtual key has expired (key TTL 1h): start a new session" in r.json()["error"]["message"]
    assert key not in r.text


async def test_a_gateway_that_will_not_mint_fails_the_request_clearly(relay):
    gw, c, _spec, r = relay
    gw.api_key = "sk-another-master"  # the relay's key is no admin there
    resp = await c.post("/v1/chat/completions", json=BODY, headers=AUTH)
    assert resp.status_code == 400
    msg = resp.json()["error"]["message"]
    assert msg.startswith("lap-tui relay: the gateway would not mint a virtual key for the session (HTTP 401)")
    assert MASTER not in resp.text and virtual_key(MASTER, SESSION) not in resp.text
    assert gw.chat_requests == [] and gw.virtual_keys == {}
