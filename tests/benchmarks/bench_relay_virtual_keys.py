"""The relay's LiteLLM virtual keys: what minting costs (issue #12). Prints; asserts nothing.

    .venv/bin/python -m tests.benchmarks.bench_relay_virtual_keys [--n 60]

The relay in this process, on a unix socket in front of the scripted gateway (its /key/* API);
p50/p90 of a small streamed chat request: with the gateway's key (relay mode, the floor), a
session's first request with a virtual key (mint + forward), and its next request (forward).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import httpx

from lap_tui.gateway.relay import Grant, Relay, Usage, VirtualKeySpec
from tests.support.scripted_gateway import ScriptedGateway, stream

MASTER = "sk-bench-master"


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))]


async def main(n: int) -> None:
    sock = tempfile.mkdtemp(prefix="vkb-") + "/relay.sock"
    with ScriptedGateway(models=["m"], api_key=MASTER, default=stream(["ok"])) as gw:
        now: dict[str, object] = {"session": "s0", "virtual": False}

        async def authorize(token_hash: str) -> Grant | None:
            return Grant(str(now["session"]), "t", VirtualKeySpec(1.0, "1d") if now["virtual"] else None)

        async def account(grant: Grant, usage: Usage) -> None:
            pass

        relay = Relay(gw.base_url, MASTER, authorize=authorize, account=account)
        server = await relay.serve_unix(sock)
        client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=sock), base_url="http://relay")
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

        async def one() -> float:
            t = time.perf_counter()
            r = await client.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer t"})
            assert r.status_code == 200, r.text
            return (time.perf_counter() - t) * 1000

        out: dict[str, list[float]] = {"relay mode (gateway's key)": [], "virtual key, first request": [],
                                       "virtual key, next request": []}
        for i in range(n):
            now.update(session=f"r{i}", virtual=False)
            out["relay mode (gateway's key)"].append(await one())
            now.update(session=f"v{i}", virtual=True)
            out["virtual key, first request"].append(await one())
            out["virtual key, next request"].append(await one())
        for name, values in out.items():
            print(f"{name:30} p50 {statistics.median(values):7.2f} ms   p90 {_p(values, 0.9):7.2f} ms")
        await client.aclose()
        server.close()
        await relay.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    asyncio.run(main(ap.parse_args().n))
