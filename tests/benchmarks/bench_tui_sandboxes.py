#!/usr/bin/env python3
"""The Sandboxes view with 1,000 rows under 100 changes a second: keypress latency and the app's
CPU. The store is seeded with 1,000 local sandbox records; `lap-tui --view sandboxes` runs in a
private tmux (the shared tui_ttfp.py plumbing); a writer process changes --rate rows a second
through the store (phase, ready, restarts) while keys are typed into the `/` filter and timed
until they show. Prints the figures, with an idle (no writer) pass for comparison.

    .venv/bin/python tests/benchmarks/bench_tui_sandboxes.py [--rows 1000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT.parent / "shared" / "bench"
LAP = str(ROOT / ".venv" / "bin" / "lap-tui")
sys.path.insert(0, str(BENCH))
from tui_ttfp import SESSION, AppSpec, PrivateTmux  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PHASES = ("Running", "Suspended", "Pending", "Failed")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def seed(env: dict[str, str], rows: int) -> None:
    from lap_tui.config import load_settings
    from lap_tui.domain.agent import Agent
    from lap_tui.domain.ids import new_id
    from lap_tui.store import open_store
    from lap_tui.store.base import SandboxRecord

    async def go() -> None:
        store = await open_store(load_settings(env, cwd=ROOT).database_url)
        try:
            agent = await store.create_agent(Agent(id=new_id(), name="fleet", team="default", model="m"))
            for i in range(rows):
                await store.put_sandbox(SandboxRecord(id=f"sb-{i:06d}", backend="local", team="default",
                                                      phase=PHASES[i % 4], agent_id=agent.id,
                                                      session_id=new_id(), ready=i % 4 == 0, restarts=0))
        finally:
            await store.close()

    asyncio.run(go())


WRITER = r"""
import asyncio, random, sys, time
from dataclasses import replace
from lap_tui.config import load_settings
from lap_tui.store import open_store
PHASES = ("Running", "Suspended", "Pending", "Failed")

async def main(rows, rate):
    store = await open_store(load_settings().database_url)
    n, t0 = 0, time.monotonic()
    while True:
        i = random.randrange(rows)
        rec = await store.get_sandbox(f"sb-{i:06d}")
        phase = random.choice(PHASES)
        await store.put_sandbox(replace(rec, phase=phase, ready=phase == "Running", restarts=rec.restarts + 1))
        n += 1
        ahead = t0 + n / rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        if n % rate == 0:
            print(n, flush=True)

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
"""


def measure(tm: PrivateTmux, pid: int, seconds: float) -> dict:
    """Type into the `/` filter every 0.5 s for `seconds`; each key timed until the filter line
    (docked on top) shows it; the table refilters its rows on the same key."""
    lat: list[float] = []
    c0, t0 = cpu_s(pid), time.perf_counter()
    tm.send_keys(["/"])
    time.sleep(0.3)
    typed = ""
    probe = "sb-0"  # matches every row: the table stays 1,000 rows while typing
    while time.perf_counter() - t0 < seconds:
        ch = probe[len(typed) % len(probe)]
        if len(typed) == len(probe):
            tm.send_keys(["Escape", "@0.2", "/"])  # clear and reopen the filter
            time.sleep(0.3)
            typed = ""
            continue
        typed += ch
        want = re.compile(r"\A\s*" + re.escape(typed) + r"\s*$", re.M)  # the filter line, docked on top
        ts = time.perf_counter()
        tm.tmux(["send-keys", "-t", SESSION, "-l", ch])
        while True:
            screen, dead = tm.snapshot()
            if want.search(screen):
                lat.append((time.perf_counter() - ts) * 1000)
                break
            if dead or time.perf_counter() - ts > 5:
                if os.environ.get("BENCH_VERBOSE"):
                    print(screen, file=sys.stderr)
                lat.append(float("inf"))
                break
            time.sleep(0.005)
        time.sleep(max(0.0, 0.5 - (time.perf_counter() - ts)))
    cpu = cpu_s(pid) - c0
    wall = time.perf_counter() - t0
    tm.send_keys(["Escape"])
    return {"cpu_pct": 100 * cpu / wall, "lat": lat, "wall": wall}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="120x40")
    args = ap.parse_args()
    subprocess.run([sys.executable, str(Path(__file__).with_name("compile_app.py"))], check=True)  # as installed
    tmp = Path(tempfile.mkdtemp(prefix="lap-sandboxes-"))
    env = {"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
           "XDG_STATE_HOME": str(tmp / "state"), "LITELLM_API_BASE": "http://127.0.0.1:9",
           "PATH": os.environ["PATH"], "TERM": "xterm-256color"}
    seed(env, args.rows)
    w, h = map(int, args.size.split("x"))
    spec = AppSpec(name="sandboxes", command=[LAP, "--view", "sandboxes"], marker=rf"{args.rows} sandboxes",
                   env=env, cwd=str(ROOT))
    tm = PrivateTmux(spec, w, h, "control")
    writer = None
    try:
        tm.start()
        pid = tm.pane_pid
        t_spawn = tm.release()
        while not re.search(spec.marker, tm.snapshot()[0]):
            if time.perf_counter() - t_spawn > 30:
                raise SystemExit("the sandboxes view never showed:\n" + tm.snapshot()[0])
            time.sleep(0.02)
        shown_ms = (time.perf_counter() - t_spawn) * 1000
        time.sleep(1.5)  # the backend's watch() takes over from the store read
        idle = measure(tm, pid, args.seconds / 2)
        rss_idle = _rss(pid)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(args.rows), str(args.rate)],
                                  env={**os.environ, **env}, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        time.sleep(1.5)
        busy = measure(tm, pid, args.seconds)
        rss_busy = _rss(pid)
        writer.terminate()
        written = writer.communicate(timeout=5)[0].split()
        rate = int(written[-1]) / (args.seconds + 1.5 + 0.5) if written else 0
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
        tm.close()
    print(f"\nSandboxes view, {args.rows:,} rows, {args.size} (exec → table shown: {shown_ms:.0f} ms)")
    print("| writer | changes/s | key latency ms (median / p90 / max) | app CPU % | RSS MB |")
    print("|---|---|---|---|---|")
    for label, m, r, rs in (("none", idle, 0, rss_idle), ("on", busy, rate, rss_busy)):
        lat = sorted(m["lat"])
        p90 = lat[int(0.9 * (len(lat) - 1))] if lat else float("nan")
        print(f"| {label} | ~{r:.0f} | {statistics.median(lat):.0f} / {p90:.0f} / {max(lat):.0f} (n={len(lat)}) "
              f"| {m['cpu_pct']:.0f} | {rs:.0f} |")
    return 0


def _rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
