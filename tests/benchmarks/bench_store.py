"""Store figures (issue: foundation). Prints them; asserts nothing (machines are noisy).

    .venv/bin/python -m tests.benchmarks.bench_store [--only sqlite|postgres]

- append one journal event: p50 (target <= 1 ms SQLite, <= 3 ms Postgres)
- a session with 100,000 events: read the last 200 (target <= 30 ms), append cost at 1k vs 100k
- 100,000 sessions: first page of 100 (target <= 50 ms) and the memory it takes

Postgres runs on a throwaway server with fsync on (durable, as in production).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from lap_tui.domain.agent import Agent
from lap_tui.domain.clock import now_iso
from lap_tui.domain.ids import new_id
from lap_tui.domain.session import Session
from lap_tui.store import Store, open_store
from tests.support.pgserver import PgServer

EVENT = {"text": "a typical streamed chunk of model output, about a hundred bytes long......", "n": 1}


def ms(values: list[float]) -> str:
    values = sorted(values)
    return (f"p50 {statistics.median(values) * 1000:.3f} ms  p95 {values[int(len(values) * 0.95)] * 1000:.3f} ms"
            f"  (n={len(values)})")


async def timed(n: int, fn) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await fn(i)
        out.append(time.perf_counter() - t0)
    return out


async def bulk(store: Store, sql: str, rows: list[tuple]) -> None:
    """Fast set-up only (the figures are measured through the public API)."""
    if store.kind == "sqlite":
        async with store._wlock:
            await store._writer.execute("BEGIN")
            await store._writer.executemany(sql, rows)
            await store._writer.execute("COMMIT")
    else:
        from lap_tui.store.postgres import _dollar

        async with store._pool.acquire() as conn:
            await conn.executemany(_dollar(sql), rows)


async def bench(url: str, label: str) -> dict:
    store = await open_store(url)
    res: dict = {}
    try:
        agent = await store.create_agent(Agent(id=new_id(), name="bench", team="default", model="m"))
        s = await store.create_session(Session(id=new_id(), agent_id=agent.id))
        await timed(200, lambda i: store.append(s.id, "model.delta", EVENT))  # warm up
        t = await timed(2000, lambda i: store.append(s.id, "model.delta", EVENT))
        res["append"] = ms(t)

        big = await store.create_session(Session(id=new_id(), agent_id=agent.id))
        data = json.dumps(EVENT)
        at = now_iso()
        await bulk(store, "INSERT INTO events (session_id, seq, turn_id, kind, at, data) VALUES (?, ?, ?, ?, ?, ?)",
                   [(big.id, i, "t", "model.delta", at, data) for i in range(1, 1001)])
        async with store._write() as db:
            await db.execute("UPDATE sessions SET last_seq = 1000 WHERE id = ?", big.id)
        res["append_at_1k"] = ms(await timed(1000, lambda i: store.append(big.id, "model.delta", EVENT)))
        await bulk(store, "INSERT INTO events (session_id, seq, turn_id, kind, at, data) VALUES (?, ?, ?, ?, ?, ?)",
                   [(big.id, i, "t", "model.delta", at, data) for i in range(2001, 100_001)])
        async with store._write() as db:
            await db.execute("UPDATE sessions SET last_seq = 100000 WHERE id = ?", big.id)
        res["append_at_100k"] = ms(await timed(1000, lambda i: store.append(big.id, "model.delta", EVENT)))
        assert (await store.last_seq(big.id)) == 101_000
        res["last_200_of_100k"] = ms(await timed(200, lambda i: store.last_events(big.id, 200)))
        res["page_back_200_of_100k"] = ms(await timed(200, lambda i: store.last_events(big.id, 200,
                                                                                     before_seq=50_000 - i * 200)))

        rows = []
        base = time.time() - 10_000_000
        from lap_tui.domain.clock import iso_from_epoch
        for i in range(100_000):
            ts = iso_from_epoch(base + i * 37)
            rows.append((new_id(), agent.id, f"session {i}", "idle", ts, ts))
        await bulk(store, "INSERT INTO sessions (id, agent_id, title, status, created_at, updated_at)"
                          " VALUES (?, ?, ?, ?, ?, ?)", rows)
        del rows
        if store.kind == "postgres":
            async with store._write() as db:
                await db.execute("ANALYZE")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        t = await timed(200, lambda i: store.list_sessions(limit=100))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        res["first_page_of_100k_sessions"] = ms(t)
        page = await store.list_sessions(limit=100)
        res["next_page_of_100k_sessions"] = ms(await timed(
            200, lambda i: store.list_sessions(limit=100, before=(page[-1].updated_at, page[-1].id))))
        res["list_peak_python_alloc"] = f"{peak / 1024:.0f} KiB (rss grew {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0} KiB)"
    finally:
        await store.close()
    print(f"\n== {label}")
    for k, v in res.items():
        print(f"  {k:<30} {v}")
    return res


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["sqlite", "postgres"])
    args = ap.parse_args()
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as d:
            await bench(f"sqlite://{Path(d) / 'bench.db'}", "SQLite (WAL, synchronous=NORMAL)")
    if args.only in (None, "postgres"):
        srv = PgServer(durable=True).start()
        try:
            await bench(srv.createdb("bench"), "PostgreSQL 15, local, fsync on")
        finally:
            srv.destroy()


if __name__ == "__main__":
    asyncio.run(main())
