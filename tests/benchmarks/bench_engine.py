"""Engine figures (issue: turns). Prints them; asserts nothing.

    .venv/bin/python -m tests.benchmarks.bench_engine [--only overhead|resume|latency]

- engine overhead per step, model and tool time excluded (a gateway and a sandbox that
  answer at once stand in for them, so what is timed is the engine: journal, replay,
  context): target <= 2 ms p50 on SQLite
- a session with 10,000 events and an interrupted turn: how soon after `lap-tui worker`
  starts the turn continues (turn.resumed journaled): target <= 200 ms
- a streamed token reaches an observer in another process: target <= 100 ms Postgres,
  <= 300 ms SQLite (the driver is `lap-tui send --wait`; the gateway stamps each chunk with
  its send time)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lap_tui.config import load_settings
from lap_tui.domain.agent import Agent
from lap_tui.domain.clock import now_iso
from lap_tui.domain.ids import new_id
from lap_tui.domain.journal import Turn, TurnStatus
from lap_tui.domain.sandbox import ExecResult, SandboxPhase, SandboxStatus
from lap_tui.domain.session import Session
from lap_tui.engine.engine import Engine, EngineOptions
from lap_tui.gateway import Completion, TextDelta, ToolCall, Usage
from lap_tui.store import open_store
from tests.benchmarks.bench_store import bulk
from tests.support.pgserver import PgServer
from tests.support.scripted_gateway import ScriptedGateway, stream

ROOT = Path(__file__).resolve().parents[2]


def pct(values: list[float], scale: float = 1000.0) -> str:
    v = sorted(values)
    return (f"p50 {statistics.median(v) * scale:.2f} ms  p95 {v[int(len(v) * 0.95)] * scale:.2f} ms  "
            f"max {v[-1] * scale:.2f} ms  (n={len(v)})")


# --- 1. overhead per step ---------------------------------------------------------------
class InstantGateway:
    """Answers at once: every other call asks for one bash call, then a final answer."""

    def __init__(self, tool_steps: int) -> None:
        self.tool_steps, self.calls = tool_steps, 0

    async def stream_chat(self, model, messages, tools=None, **kw):
        self.calls += 1
        yield TextDelta("ok ")
        calls = [ToolCall(id=f"c{self.calls}", name="bash", arguments='{"command": "true"}')] \
            if self.calls <= self.tool_steps else []
        yield Completion(text="ok ", tool_calls=calls, usage=Usage(10, 2, 12), cost_usd=0.0001)

    async def aclose(self):
        pass


class InstantSandbox:
    name = "instant"

    async def ensure(self, spec):
        return SandboxStatus(id=spec.id, backend="instant", team=spec.team, phase=SandboxPhase.RUNNING, ready=True)

    async def exec(self, *a, **kw):
        return ExecResult(exit_code=0)

    async def close(self):
        pass


async def bench_overhead(url: str, label: str, settings) -> None:
    store = await open_store(url)
    try:
        agent = await store.create_agent(Agent(id=new_id(), name="bench", team="default", model="m"))
        per_step = []
        for _ in range(30):
            s = await store.create_session(Session(id=new_id(), agent_id=agent.id))
            tool_steps = 10
            gw = InstantGateway(tool_steps)
            sb = InstantSandbox()
            engine = Engine(store, settings, sandboxes=lambda: sb, gateway=lambda: gw)
            t0 = time.perf_counter()
            await engine.send(s.id, "go")
            await engine.start(s.id)
            elapsed = time.perf_counter() - t0
            await engine.close()
            steps = (tool_steps + 1) + tool_steps  # model steps + tool calls
            per_step.append(elapsed / steps)
            assert (await store.list_turns(s.id))[0].status is TurnStatus.COMPLETED
        events = await store.last_seq(s.id)
        print(f"  {label:<10} per step {pct(per_step)}  ({events} journal events per 21-step turn)")
    finally:
        await store.close()


# --- 2. resume of an interrupted turn in a long session -----------------------------------
async def seed_interrupted(url: str, n_events: int) -> str:
    store = await open_store(url)
    try:
        agent = await store.create_agent(Agent(id=new_id(), name="resume-" + new_id()[:6], team="default",
                                                 model="gpt-test"))
        s = await store.create_session(Session(id=new_id(), agent_id=agent.id))
        rows, seq, at = [], 0, now_iso()
        while seq < n_events - 5:
            tid = new_id()
            for kind, data in (("turn.queued", {}), ("user.message", {"text": f"question {seq}"}),
                               ("turn.started", {}), ("model.message", {"text": f"answer {seq}", "tool_calls": []}),
                               ("turn.completed", {})):
                seq += 1
                rows.append((s.id, seq, tid, kind, at, json.dumps(data)))
        await bulk(store, "INSERT INTO events (session_id, seq, turn_id, kind, at, data) VALUES (?, ?, ?, ?, ?, ?)",
                   rows)
        async with store._write() as db:
            await db.execute("UPDATE sessions SET last_seq = ? WHERE id = ?", seq, s.id)
        turn = await store.create_turn(Turn(id=new_id(), session_id=s.id, status=TurnStatus.RUNNING))
        for kind, data in (("turn.queued", {}), ("user.message", {"text": "the interrupted one"}),
                           ("turn.started", {}), ("model.requested", {"attempt": 1})):
            await store.append(s.id, kind, data, turn_id=turn.id)
        # Its driver died: the lease is still held, far from expiry, by a pid that is gone.
        import socket
        await store.acquire_lease(s.id, f"{socket.gethostname()}/4000000/1/dead", 3600)
        return s.id
    finally:
        await store.close()


async def bench_resume(url: str, label: str, env: dict[str, str], gw: ScriptedGateway) -> None:
    spawn_to_resumed, ready_to_resumed = [], []
    for _ in range(5):
        sid = await seed_interrupted(url, 10_000)
        gw.reset()
        gw.push(stream(["resumed"]))
        store = await open_store(url)
        ready_at: list[float] = []
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "lap_tui", "worker", "--once", "--poll", "0.05"],
                                env={**env, "LAP_DATABASE_URL": url}, cwd=ROOT, stderr=subprocess.PIPE, text=True)

        def read_stderr() -> None:
            for line in proc.stderr:
                if "started on" in line and not ready_at:
                    ready_at.append(time.perf_counter())

        threading.Thread(target=read_stderr, daemon=True).start()
        resumed = None
        while resumed is None and time.perf_counter() - t0 < 30:
            evs = await store.last_events(sid, 5)
            if any(e.kind == "turn.resumed" for e in evs):
                resumed = time.perf_counter()
            else:
                await asyncio.sleep(0.003)
        proc.wait(30)
        await store.close()
        assert resumed is not None, "the turn never resumed"
        spawn_to_resumed.append(resumed - t0)
        if ready_at:
            ready_to_resumed.append(resumed - ready_at[0])
    print(f"  {label:<10} worker ready -> turn.resumed {pct(ready_to_resumed)}")
    print(f"  {label:<10} process spawn -> turn.resumed {pct(spawn_to_resumed)}")


# --- 3. token latency to an observer in another process ------------------------------------
async def bench_latency(url: str, label: str, env: dict[str, str], gw: ScriptedGateway) -> None:
    store = await open_store(url)
    try:
        agent = await store.create_agent(Agent(id=new_id(), name="latency", team="default", model="gpt-test"))
        s = await store.create_session(Session(id=new_id(), agent_id=agent.id))
        gw.reset()
        gw.push(stream([], stamps=400, delay=0.01))
        lat_all, lat_fresh = [], []
        proc = subprocess.Popen([sys.executable, "-m", "lap_tui", "send", s.id, "stream", "--wait"],
                                env={**env, "LAP_DATABASE_URL": url}, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

        async def observe() -> None:
            async for ev in store.follow(s.id, poll_interval=0.05):
                now = time.time()
                if ev.kind == "model.delta":
                    stamps = [float(x) for x in re.findall(r"\[([0-9.]+)\]", ev.data["text"])]
                    lat_all.extend(now - t for t in stamps)
                    if stamps:
                        lat_fresh.append(now - stamps[-1])
                if ev.kind in ("turn.completed", "turn.failed"):
                    return

        await asyncio.wait_for(observe(), 60)
        proc.wait(30)
        print(f"  {label:<10} every token   {pct(lat_all)}")
        print(f"  {label:<10} newest token  {pct(lat_fresh)}  (per checkpoint)")
    finally:
        await store.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["overhead", "resume", "latency"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lap-bench-"))
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
           "XDG_STATE_HOME": str(tmp / "state")}
    srv = PgServer(durable=True).start()
    try:
        with ScriptedGateway(models=["gpt-test"]) as gw:
            env["LITELLM_API_BASE"] = gw.base_url
            settings = load_settings(env, cwd=tmp)
            stores = [(lambda n: f"sqlite://{tmp / (n + '.db')}", "SQLite"),
                      (lambda n: srv.createdb(n), "Postgres")]
            if args.only in (None, "overhead"):
                print("engine overhead per step (model and tool time excluded)")
                for make, label in stores:
                    await bench_overhead(make("overhead"), label, settings)
            if args.only in (None, "resume"):
                print("10,000-event session, interrupted turn: worker start -> turn continues")
                for make, label in stores:
                    await bench_resume(make("resume"), label, env, gw)
            if args.only in (None, "latency"):
                print("streamed token -> observer in another process")
                for make, label in stores:
                    await bench_latency(make("latency"), label, env, gw)
    finally:
        srv.destroy()


if __name__ == "__main__":
    asyncio.run(main())
