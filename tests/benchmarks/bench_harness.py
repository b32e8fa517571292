"""CLI harness figures (issue #12). Prints them; asserts nothing (machines are noisy).

    .venv/bin/python -m tests.benchmarks.bench_harness [--turns 3] [--chunks 2000]

Per installed CLI harness (bin/install-harness-clis), against the scripted gateway:
- send -> first event: from starting `lap-tui send --wait` to the first event the CLI's output
  produced in the journal (polled every 10 ms by this process), p50
- turn: the whole `lap-tui send --wait`, p50; the same CLI alone (no sandbox, no relay, no
  lap-tui, talking to the gateway directly), p50; the difference is lap-tui's overhead per turn
Relay: a small request (GET /v1/models) direct to the gateway vs through the relay, p50; a
streamed answer of N chunks direct vs through the relay: the extra time per chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from lap_tui.harness.cli import harness_root, installed_bin
from lap_tui.harness.definition import load_definitions
from lap_tui.store import open_store
from tests.support.scripted_apis import MESSAGES_PATH, RESPONSES_PATH
from tests.support.scripted_gateway import ScriptedGateway, stream, words

KEY = "sk-bench-master"
MODELS = {"opencode": ("gpt-test", None), "claude-code": ("claude-test", MESSAGES_PATH),
          "codex": ("gpt-test", RESPONSES_PATH)}


def lap(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "lap_tui", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=env["XDG_STATE_HOME"])


def answer(path):
    return stream(["Hello ", "there."], usage={"prompt_tokens": 5, "completion_tokens": 2},
                  **({"path": path, "requires_tools": True} if path else {}))


async def first_event_after(db: str, sid: str, after_seq: int, deadline: float) -> float | None:
    store = await open_store(db)
    try:
        while time.monotonic() < deadline:
            for e in await store.read_events(sid, after_seq=after_seq):
                if "cli" in e.data:
                    return time.monotonic()
            await asyncio.sleep(0.01)
    finally:
        await store.close()
    return None


async def timed_send(env: dict, gw: ScriptedGateway, path: str | None, db: str, sid: str,
                     text: str) -> tuple[float | None, float]:
    """One `lap-tui send --wait` of a one-line answer: (send -> first journaled event of the
    turn, or None; the whole send), in seconds. A failed turn stops the benchmark."""
    gw.push(answer(path))
    store = await open_store(db)
    seq = await store.last_seq(sid)
    await store.close()
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "lap_tui", "send", sid, text, "--wait"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=env["XDG_STATE_HOME"])
    first = await first_event_after(db, sid, seq, t0 + 300)
    _out, err = proc.communicate(timeout=300)
    total = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the turn failed: {err.decode()[-500:]}")
    return (None if first is None else first - t0), total


async def bench_cli(name: str, env: dict, gw: ScriptedGateway, turns: int, cli_dir: Path) -> None:
    model, path = MODELS[name]
    if path:
        gw.path_defaults[path] = stream(["ok"], path=path)
    lap(env, "agents", "create", f"b-{name}", "--model", model, "--harness", name)
    sid = lap(env, "sessions", "new", f"b-{name}").stdout.strip()
    db = f"sqlite://{Path(env['XDG_DATA_HOME']) / 'lap-tui' / 'lap.db'}"
    firsts, totals = [], []
    for i in range(turns):
        first, total = await timed_send(env, gw, path, db, sid, f"hello {i}")
        totals.append(total)
        if first is not None:
            firsts.append(first)
    alone = [run_alone(name, gw, cli_dir, path) for _ in range(turns)]
    p50 = statistics.median
    print(f"{name:12s} send->first event p50 {p50(firsts) * 1000:7.0f} ms | turn p50 {p50(totals) * 1000:7.0f} ms"
          f" | the CLI alone p50 {p50(alone) * 1000:7.0f} ms | lap-tui overhead {(p50(totals) - p50(alone)) * 1000:6.0f} ms")


def run_alone(name: str, gw: ScriptedGateway, cli_dir: Path, path: str | None) -> float:
    h = load_definitions()[0][name]
    exe = str(installed_bin(cli_dir, h))
    home = Path(f"/tmp/lap-bench-alone-{uuid.uuid4().hex[:8]}")
    (home / "ws").mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    gw.push(answer(path))
    if name == "opencode":
        cfg = {"provider": {"lap": {"npm": "@ai-sdk/openai-compatible", "options": {
            "baseURL": gw.base_url + "/v1", "apiKey": KEY}, "models": {"gpt-test": {"name": "gpt-test"}}}},
            "model": "lap/gpt-test"}
        env.update(XDG_DATA_HOME=str(home / "d"), XDG_CONFIG_HOME=str(home / "c"), XDG_CACHE_HOME=str(home / "k"),
                   OPENCODE_CONFIG_CONTENT=json.dumps(cfg), OPENCODE_DISABLE_AUTOUPDATE="1",
                   OPENCODE_DISABLE_MODELS_FETCH="1", OPENCODE_DISABLE_DEFAULT_PLUGINS="1")
        argv = [exe, "run", "--format", "json", "--title", "t", "--dir", str(home / "ws"), "hello"]
    elif name == "claude-code":
        env.update(ANTHROPIC_BASE_URL=gw.base_url, ANTHROPIC_API_KEY=KEY, IS_SANDBOX="1",
                   CLAUDE_CONFIG_DIR=str(home / "c"), DISABLE_AUTOUPDATER="1",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
        argv = [exe, "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions",
                "--model", "claude-test", "--session-id", str(uuid.uuid4()), "hello"]
    else:
        env.update(CODEX_HOME=str(home / "c"), K=KEY)
        (home / "c").mkdir()
        argv = [exe, "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "-m",
                "gpt-test", "-c", "model_provider=lap", "-c", "model_providers.lap.name=lap", "-c",
                f"model_providers.lap.base_url={gw.base_url}/v1", "-c", "model_providers.lap.env_key=K", "-c",
                "model_providers.lap.wire_api=responses", "-C", str(home / "ws"), "hello"]
    t0 = time.monotonic()
    subprocess.run(argv, env=env, cwd=home / "ws", capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    took = time.monotonic() - t0
    shutil.rmtree(home, ignore_errors=True)
    return took


async def bench_relay(env: dict, gw: ScriptedGateway, chunks: int, n: int = 30) -> None:
    import httpx

    from lap_tui.config import load_settings
    from lap_tui.engine.relay_service import ensure_relay, issue_token

    os.environ.update(env)  # the relay this starts reads the same settings
    settings = load_settings()
    sock = await ensure_relay(settings)
    store = await open_store(settings.database_url)
    sid = (await store.list_sessions(limit=1))[0].id
    token = await issue_token(store, sid)
    await store.close()
    direct = httpx.AsyncClient(base_url=gw.base_url, headers={"authorization": f"Bearer {KEY}"})
    relay = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(sock)), base_url="http://relay",
                              headers={"authorization": f"Bearer {token}"})

    async def small(c):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            (await c.get("/v1/models")).raise_for_status()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    async def streamed(c):
        gw.push(words(chunks))
        t0 = time.perf_counter()
        body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        async with c.stream("POST", "/v1/chat/completions", json=body) as r:
            async for _ in r.aiter_bytes():
                pass
        return time.perf_counter() - t0

    d_small, r_small = await small(direct), await small(relay)
    d_stream = statistics.median([await streamed(direct) for _ in range(3)])
    r_stream = statistics.median([await streamed(relay) for _ in range(3)])
    await direct.aclose()
    await relay.aclose()
    print(f"relay        request p50 direct {d_small * 1000:.2f} ms, through the relay {r_small * 1000:.2f} ms "
          f"(+{(r_small - d_small) * 1000:.2f} ms)")
    print(f"relay        {chunks}-chunk stream direct {d_stream * 1000:.0f} ms, through the relay "
          f"{r_stream * 1000:.0f} ms (+{(r_stream - d_stream) / chunks * 1e6:.1f} us per chunk)")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--chunks", type=int, default=2000)
    args = ap.parse_args()
    cli_dir = Path(os.environ.get("LAP_HARNESS_DIR") or Path.home() / ".cache" / "lap-tui" / "harness-clis")
    data = Path(f"/tmp/lap-bench-{os.getpid()}")
    with ScriptedGateway(models=["gpt-test", "claude-test"]) as gw:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAP_", "LITELLM_"))}
        env.update(XDG_DATA_HOME=str(data / "d"), XDG_CONFIG_HOME=str(data / "c"), XDG_STATE_HOME=str(data / "s"),
                   LITELLM_API_BASE=gw.base_url, LITELLM_API_KEY=KEY, LAP_HARNESS_DIR=str(cli_dir))
        (data / "s").mkdir(parents=True)
        try:
            for name, h in sorted(load_definitions()[0].items()):
                if h.is_cli and installed_bin(harness_root(Path("."), env), h):
                    await bench_cli(name, env, gw, args.turns, cli_dir)
            await bench_relay(env, gw, args.chunks)
        finally:
            pid = data / "d" / "lap-tui" / "relay" / "relay.pid"
            if pid.exists():
                subprocess.run(["kill", pid.read_text().strip()], check=False)
            if not os.environ.get("BENCH_KEEP"):
                shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
