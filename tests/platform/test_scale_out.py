"""Three `lap-tui worker` processes on one PostgreSQL, 200 queued turns, one worker SIGKILLed
mid-run: every turn completes exactly once and no step is driven twice.

Each worker runs in its own UTS namespace with its own host name, as each replica of the
Deployment is its own pod: a dead worker's leases are then taken over only once they expire
(holders on another host are never judged dead), the path a real cluster takes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter

from lap_tui.config import load_settings
from lap_tui.domain.journal import TurnStatus
from lap_tui.engine.engine import UNFINISHED
from lap_tui.engine.services import build_engine
from lap_tui.store import open_store
from tests.conftest import make_session, need
from tests.support.scripted_gateway import ScriptedGateway, stream
from tests.support.waiting import until
from tests.platform.workers import WorkerProc, isolated_env, worker_env

SESSIONS = 200
WORKERS = 3


def uts_ok() -> bool:
    try:
        return subprocess.run(["unshare", "--uts", "hostname", "probe"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def as_pod(name: str) -> list[str]:
    """Run the command with host name `name` (its own UTS namespace), like a pod of its own."""
    return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', name]


async def test_three_workers_one_killed_every_turn_exactly_once(pg_url, tmp_path):
    need(uts_ok(), "unshare --uts (a host name per worker) needs root or user namespaces")
    instant = stream(["ok"], usage={"prompt_tokens": 3, "completion_tokens": 1})
    with ScriptedGateway(models=["test-model"], default=instant) as gw:
        env = worker_env(isolated_env(tmp_path), pg_url, gw.base_url)
        store = await open_store(pg_url)
        workers: list[WorkerProc] = []
        try:
            engine = build_engine(load_settings(env, cwd=tmp_path), store)
            turns: dict[str, str] = {}
            for i in range(SESSIONS):
                s = await make_session(store)
                turns[await engine.queue(s.id, f"turn {i}")] = s.id
            await engine.close()

            workers = [WorkerProc(env, tmp_path / f"w{n}", "--poll", "0.05", name=f"worker-{n}",
                                  prefix=as_pod(f"worker-{n}")) for n in range(WORKERS)]
            doomed = workers[0]
            holder = await until(lambda: _holder(doomed.log()), "the doomed worker's start line")
            assert holder.startswith("worker-0/")

            async def held_by_doomed() -> set[str]:
                sids = {t.session_id for t in await store.find_turns(UNFINISHED, limit=SESSIONS)}
                leases = await asyncio.gather(*(store.get_lease(sid) for sid in sids))
                return {le.session_id for le in leases if le is not None and le.holder == holder}

            # Kill it while it drives: frozen first, so the sessions it holds stay held.
            await until(held_by_doomed, "the doomed worker to hold a lease", timeout=120, interval=0.05)
            os.kill(doomed.pid, signal.SIGSTOP)
            orphaned = await held_by_doomed()
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.proc.wait(30)
            assert orphaned

            async def finished() -> int:
                return sum(t.status is TurnStatus.COMPLETED for t in
                           await store.find_turns((TurnStatus.COMPLETED,), limit=SESSIONS + 1))

            await until(lambda: _eq(finished(), SESSIONS), "every turn to complete", timeout=600, interval=0.5)
            for w in workers[1:]:
                os.kill(w.pid, signal.SIGTERM)
            for w in workers[1:]:
                assert await until(lambda w=w: w.proc.poll() is not None and (w.proc.returncode, ),
                                   "a worker to stop") == (0, ), w.log()

            # The journal: each turn started once, its one model step answered once, completed once.
            for turn_id, sid in turns.items():
                events = await store.read_events(sid)
                assert [e.seq for e in events] == list(range(1, len(events) + 1))
                c = Counter(e.kind for e in events)
                assert (c["turn.started"], c["model.message"], c["turn.completed"]) == (1, 1, 1), (sid, c)
                assert c["turn.failed"] == c["turn.cancelled"] == 0, (sid, c)
                assert (await store.get_turn(turn_id)).status is TurnStatus.COMPLETED
            # Each turn reported completed by exactly one worker; the orphans by the survivors.
            done = Counter(r["turn_id"] for w in workers for r in w.reports() if r["status"] == "completed")
            assert set(done) == set(turns) and set(done.values()) == {1}
            survivors = {r["turn_id"] for w in workers[1:] for r in w.reports() if r["status"] == "completed"}
            assert {t for t, s in turns.items() if s in orphaned} <= survivors
            # Both survivors took part: the load was shared, not drained by one.
            assert all(w.reports() for w in workers[1:])
        finally:
            for w in workers:
                w.stop()
            await store.close()


def _holder(log: str) -> str | None:
    for line in log.splitlines():
        if " INFO worker " in line and " started on " in line:
            return line.split(" INFO worker ", 1)[1].split(" ", 1)[0]
    return None


async def _eq(value, want: int) -> bool:
    return await value == want
