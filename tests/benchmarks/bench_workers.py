"""Worker scale-out figures (issue 13): turns per second with 1, 2 and 3 `lap-tui worker`
processes on one PostgreSQL. Prints them; asserts nothing.

    .venv/bin/python -m tests.benchmarks.bench_workers [--turns 300] [--max-workers 3]

Each worker is its own process running the real worker loop (`engine/worker.py`: leases,
fenced journal appends, replay) on the real store; a gateway and a sandbox that answer at
once stand in for the model and the commands (bench_engine's InstantGateway and
InstantSandbox), so what is measured is the engine and the database. Each turn is three
steps: a model call asking for one bash call, the call, the final answer. The time is taken
from the journal: first `turn.started` to last `turn.completed` (process start-up excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from lap_tui.domain.agent import Agent
from lap_tui.domain.ids import new_id
from lap_tui.domain.journal import TurnStatus
from lap_tui.domain.session import Session
from lap_tui.store import open_store
from tests.support.pgserver import PgServer


async def child(url: str) -> None:
    """One worker process with the instant stand-ins; stops on SIGTERM."""
    from lap_tui.config import load_settings
    from lap_tui.engine.engine import Engine
    from lap_tui.engine.worker import run_worker
    from tests.benchmarks.bench_engine import InstantGateway, InstantSandbox

    class PerTurnGateway(InstantGateway):
        """One bash call, then the answer, for every turn (the tool result tells them apart)."""

        async def stream_chat(self, model, messages, tools=None, **kw):
            self.calls = 0 if messages[-1]["role"] == "user" else self.tool_steps
            async for ev in super().stream_chat(model, messages, tools, **kw):
                yield ev

    class Sandboxes(InstantSandbox):
        async def suspend_idle(self):
            return []

    store = await open_store(url)
    gw, sb = PerTurnGateway(1), Sandboxes()
    engine = Engine(store, load_settings(), sandboxes=lambda: sb, gateway=lambda: gw)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        await run_worker(engine, poll_interval=0.05, stop=stop)
    finally:
        await engine.close()
        await store.close()


async def seed(url: str, n: int) -> list[str]:
    from lap_tui.config import load_settings
    from lap_tui.engine.engine import Engine

    store = await open_store(url)
    try:
        agent = await store.create_agent(Agent(id=new_id(), name="bench", team="default", model="m"))
        engine = Engine(store, load_settings(), sandboxes=lambda: None, gateway=lambda: None)
        sids = []
        for _ in range(n):
            s = await store.create_session(Session(id=new_id(), agent_id=agent.id))
            await engine.queue(s.id, "go")
            sids.append(s.id)
        return sids
    finally:
        await store.close()


def postgres_cpu(srv: PgServer) -> float:
    """The server's CPU seconds so far: the postmaster's own and its exited backends'."""
    pid = int((srv.data / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def run(srv: PgServer, url: str, workers: int, n: int) -> tuple[float, float, float]:
    """(turns per second, the workers' and the server's CPU seconds per turn: start-up included)."""
    sids = await seed(url, n)
    cpu0, pg0 = children_cpu(), postgres_cpu(srv)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.benchmarks.bench_workers", "--child", url],
                              env=env, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    store = await open_store(url)
    try:
        deadline = time.monotonic() + 600
        while True:
            done = await store.find_turns((TurnStatus.COMPLETED,), limit=n + 1)
            if len(done) == n:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(done)} of {n} turns completed in 600 s")
            await asyncio.sleep(0.2)
        first, last = None, None
        for sid in sids:
            for e in await store.read_events(sid):
                at = datetime.fromisoformat(e.at).timestamp()
                if e.kind == "turn.started":
                    first = at if first is None else min(first, at)
                elif e.kind == "turn.completed":
                    last = at if last is None else max(last, at)
        rate = n / (last - first)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        await store.close()
    return rate, (children_cpu() - cpu0) / n, (postgres_cpu(srv) - pg0) / n


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", metavar="URL")
    ap.add_argument("--turns", type=int, default=300)
    ap.add_argument("--max-workers", type=int, default=3)
    args = ap.parse_args()
    if args.child:
        await child(args.child)
        return
    srv = PgServer().start()
    try:
        print(f"worker scale-out: {args.turns} turns of 3 steps each, instant gateway and sandbox, "
              f"PostgreSQL, {os.cpu_count()} cores")
        base = None
        for k in range(1, args.max_workers + 1):
            rate, cpu, pg = await run(srv, srv.createdb(f"w{k}"), k, args.turns)
            base = base or rate
            print(f"  {k} worker{'s' if k > 1 else ' '}  {rate:7.1f} turns/s  ({rate * 3:.0f} steps/s)  "
                  f"x{rate / base:.2f} of one worker  CPU per turn: workers {cpu * 1000:.1f} ms, "
                  f"Postgres {pg * 1000:.1f} ms", flush=True)
        load = os.getloadavg()[0]
        print(f"  load average {load:.1f} on {os.cpu_count()} cores (other work included)")
    finally:
        srv.destroy()


if __name__ == "__main__":
    asyncio.run(main())
