"""Local sandbox figures (issue #3). Prints them; asserts nothing (machines are noisy).

    .venv/bin/python -m tests.benchmarks.bench_sandbox [--n 50]

- ensure + first exec("true") on a new sandbox: p50 (target <= 50 ms)
- exec("true") round trip on an existing sandbox: p50 (target <= 15 ms)
- N sandboxes running a command at once: all finish? any process left behind?

Real bubblewrap, a real SQLite store in a temp directory, cgroup limits when writable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from lap_tui.config import load_settings
from lap_tui.domain.agent import Agent
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.sandbox import ensure_for_session
from lap_tui.sandbox.local import LocalBackend
from lap_tui.store import open_store


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def leftovers(marker: str) -> int:
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
                state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            n += marker.encode() in cmd and state != "Z"
    return n


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"XDG_DATA_HOME": f"{tmp}/data", "XDG_CONFIG_HOME": f"{tmp}/cfg", "XDG_STATE_HOME": f"{tmp}/st",
               "CONTAINER_ENV_TOKEN": "bench-secret"}
        settings = load_settings(env, cwd=Path(tmp))
        store = await open_store(f"sqlite://{tmp}/bench.db")
        backend = LocalBackend(store, settings, environ=env)
        print(f"isolation: {backend.isolation().version or backend.isolation().problem}; "
              f"limits: {backend.limits_in_use()}; cpus: {os.cpu_count()}")
        agent = await store.create_agent(Agent(id=new_id(), name="bench", team="default", model="m"))

        async def new_session() -> Session:
            return await store.create_session(Session(id=new_id(), agent_id=agent.id))

        await backend.exec((await ensure_for_session(backend, store, agent, await new_session())).id, ["true"])

        firsts = []
        for _ in range(rounds):
            s = await new_session()
            t = time.perf_counter()
            st = await ensure_for_session(backend, store, agent, s)
            r = await backend.exec(st.id, ["true"])
            firsts.append((time.perf_counter() - t) * 1000)
            assert r.exit_code == 0
        print(f"ensure + first exec(true), new sandbox: p50 {statistics.median(firsts):.1f} ms, "
              f"p90 {pct(firsts, 0.9):.1f} ms (n={rounds}; target p50 <= 50 ms)")

        sid = st.id
        trips = []
        for _ in range(rounds * 2):
            t = time.perf_counter()
            await backend.exec(sid, ["true"])
            trips.append((time.perf_counter() - t) * 1000)
        print(f"exec(true) round trip, existing sandbox: p50 {statistics.median(trips):.1f} ms, "
              f"p90 {pct(trips, 0.9):.1f} ms (n={rounds * 2}; target p50 <= 15 ms)")

        ids = [(await ensure_for_session(backend, store, agent, await new_session())).id for _ in range(n)]
        marker = str(time.time_ns())[-9:]
        t = time.perf_counter()
        results = await asyncio.gather(*(backend.exec(i, ["sh", "-c", f"sleep {marker} & "
                                                          "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"],
                                                      timeout=300) for i in ids))
        wall = time.perf_counter() - t
        ok = sum(r.exit_code == 0 for r in results)
        await asyncio.sleep(0.5)
        print(f"{n} sandboxes at once (busy loop + a background sleep each): {ok}/{n} finished with exit 0 in "
              f"{wall:.2f} s; processes left behind: {leftovers(marker)}")
        await store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=100)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.rounds))
