"""The relay process stopping on SIGTERM (a Deployment's rollout, `_stop` on new settings): it
stops accepting, lets the streams under way finish and charges them, then exits 0.

A real `lap-tui relay` process, the scripted gateway holding its answer until a file exists
(the stream is under way at the relay when SIGTERM arrives: no sleeps), a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from lap_tui.config import load_settings
from lap_tui.domain.ids import new_id
from lap_tui.domain.journal import Turn
from lap_tui.engine.relay_service import issue_token, socket_path
from lap_tui.store import open_store
from tests.conftest import make_session
from tests.support.scripted_gateway import ScriptedGateway, stream
from tests.support.waiting import until


def _refused(family: int, address: object) -> bool:
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect(address)
        return False
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    finally:
        s.close()


async def test_sigterm_lets_the_stream_under_way_finish_charges_it_and_exits_0(hx_env, gw: ScriptedGateway,
                                                                                 monkeypatch, tmp_path: Path):
    for k, v in hx_env.items():
        monkeypatch.setenv(k, v)
    settings = load_settings()
    store = await open_store(settings.database_url)
    try:
        session = await make_session(store)
        turn = await store.create_turn(Turn(id=new_id(), session_id=session.id))
        token = await issue_token(store, session.id)
        await store.set_relay_turn(session.id, turn.id)
    finally:
        await store.close()
    sock = socket_path(settings)
    log = tmp_path / "relay.log"
    with open(log, "wb") as out:
        relay = subprocess.Popen([sys.executable, "-m", "lap_tui", "relay", "--socket", str(sock)], env=hx_env,
                                 stdout=out, stderr=out)
    try:
        await until(lambda: "READY" in log.read_text() or relay.poll() is not None, "the relay ready", timeout=60)
        assert relay.poll() is None, log.read_text()
        host, _, port = (sock.parent.parent / "relay.tcp").read_text().strip().rpartition(":")

        release = tmp_path / "release"
        gw.push(stream(["one ", "two ", "three"], wait_file=str(release),
                       usage={"prompt_tokens": 11, "completion_tokens": 3}))
        transport = httpx.AsyncHTTPTransport(uds=str(sock))
        async with httpx.AsyncClient(transport=transport, base_url="http://relay", timeout=120) as client:
            # /healthz answers without a token and says nothing else; every other path still needs one.
            ok = await client.get("/healthz")
            assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
            assert (await client.get("/healthz?live")).status_code == 200
            for method, target in (("POST", "/healthz"), ("GET", "/v1/models"), ("GET", "/healthz/../v1/models")):
                assert (await client.request(method, target)).status_code == 401, (method, target)
            async def call() -> str:
                r = await client.post("/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                                      json={"model": "gpt-test", "stream": True,
                                            "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 200, r.text
                return r.text

            answer = asyncio.create_task(call())
            # Under way: the relay forwarded it and the gateway holds the answer.
            await until(lambda: any(q.path == "/v1/chat/completions" for q in gw.requests) or answer.done(),
                        "the request at the gateway")
            relay.terminate()
            # It stops accepting: new connections are refused, on the socket and on TCP.
            await until(lambda: _refused(socket.AF_UNIX, str(sock)), "the relay's socket refusing", timeout=60)
            assert _refused(socket.AF_INET, (host, int(port)))
            assert relay.poll() is None  # still there for the stream under way
            release.touch()
            text = await answer
        deltas = [json.loads(line[5:])["choices"][0]["delta"].get("content", "")
                  for line in text.splitlines() if line.startswith("data:") and "[DONE]" not in line
                  and json.loads(line[5:]).get("choices")]
        assert "".join(deltas) == "one two three" and "[DONE]" in text
        assert await asyncio.to_thread(relay.wait, 60) == 0, log.read_text()
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(30)
    store = await open_store(settings.database_url)
    try:
        charged = await store.get_turn(turn.id)
    finally:
        await store.close()
    assert (charged.prompt_tokens, charged.completion_tokens) == (11, 3)


async def test_healthz_answers_503_when_the_store_is_gone_or_the_relay_is_stopping(tmp_path: Path):
    from lap_tui.gateway.relay import Relay

    store = await open_store(f"sqlite://{tmp_path / 'lap.db'}")

    async def healthy() -> bool:
        await store.relay_grant("-")
        return True

    async def refuse(_: str) -> None:
        return None

    async def account(*_: object) -> None:
        raise AssertionError("nothing is forwarded")

    with ScriptedGateway() as gw:
        relay = Relay(gw.base_url, "sk-master", authorize=refuse, account=account, healthy=healthy)
        server = await relay.serve_tcp("127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        try:
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                assert (await client.get("/healthz")).status_code == 200
                await store.close()  # the store no longer answers
                gone = await client.get("/healthz")
                assert (gone.status_code, gone.json()) == (503, {"status": "unavailable"})
                assert (await client.get("/healthz?live")).status_code == 200  # the loop still serves
                relay.draining = True  # as stop_accepting leaves it, seen from a request already read
                assert (await client.get("/healthz?live")).status_code == 503
        finally:
            await relay.drain(0)
            await relay.aclose()
        assert not gw.requests
