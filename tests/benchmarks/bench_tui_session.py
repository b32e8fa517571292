#!/usr/bin/env python3
"""Opening a session with 10,000 messages: time from enter (in the sessions list) until its last
message is on screen, and `lap-tui --session ID` from exec to the last message. The store is
seeded directly (5,000 turns of a user message and a reply, as the engine journals them).
Measured with the shared tui_ttfp.py in a private tmux; prints the figures (medians).

    .venv/bin/python tests/benchmarks/bench_tui_session.py [--runs 5] [--messages 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT.parent / "shared" / "bench"
LAP = str(ROOT / ".venv" / "bin" / "lap-tui")
# extra NAME=VALUE for the app, e.g. PYTHONPATH=/tmp/old-checkout to measure an older version beside this one
APP_ENV = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_APP_ENV", "").split() if "=" in kv)


def seed(env: dict[str, str], messages: int) -> str:
    from lap_tui.config import load_settings
    from lap_tui.domain.agent import Agent
    from lap_tui.domain.ids import new_id
    from lap_tui.domain.session import Session
    from lap_tui.store import open_store

    settings = load_settings(env, cwd=ROOT)

    async def go() -> str:
        store = await open_store(settings.database_url)
        try:
            agent = await store.create_agent(Agent(id=new_id(), name="big-history", team="default", model="m"))
            s = await store.create_session(Session(id=new_id(), agent_id=agent.id, title="ten-thousand"))
            for i in range(messages // 2):
                t = new_id()
                await store.append(s.id, "turn.queued", {}, turn_id=t)
                await store.append(s.id, "user.message", {"text": f"question {2 * i}"}, turn_id=t)
                await store.append(s.id, "model.message", {
                    "text": f"Answer {2 * i + 1}: some **Markdown** text.\n\n- a point\n- another point",
                    "usage": {"prompt_tokens": 10, "completion_tokens": 20}, "cost_usd": 0.0001}, turn_id=t)
                await store.append(s.id, "turn.completed", {}, turn_id=t)
            await store.append(s.id, "turn.queued", {}, turn_id="f" * 32)
            await store.append(s.id, "user.message", {"text": "THE-LAST-QUESTION"}, turn_id="f" * 32)
            await store.append(s.id, "model.message", {"text": "THE-LAST-ANSWER"}, turn_id="f" * 32)
            await store.append(s.id, "turn.completed", {}, turn_id="f" * 32)
            return s.id
        finally:
            await store.close()

    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--page-limit", type=float, default=300, help="s: stop paging up after this long")
    ap.add_argument("--only", choices=("screen", "page"), help="only the tmux suite, or only the in-process checks")
    args = ap.parse_args()
    subprocess.run([sys.executable, str(Path(__file__).with_name("compile_app.py"))], check=True)  # as installed
    tmp = Path(tempfile.mkdtemp(prefix="lap-session-"))
    env = {"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
           "XDG_STATE_HOME": str(tmp / "state"), "LITELLM_API_BASE": "http://127.0.0.1:9"}
    t0 = time.perf_counter()
    sid = seed(env, args.messages)
    env.update(APP_ENV)
    print(f"seeded {args.messages + 2:,} messages in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    suite = [
        # From the sessions list: enter opens the chat; timed until the last answer shows.
        {"name": "open-from-list", "command": [LAP, "--view", "sessions"], "marker": "ten-thousand",
         "after_keys": "Enter", "after_marker": "THE-LAST-ANSWER", "after_delay": 0.5, "env": env,
         "quit_keys": "C-q"},
        # Straight into the chat: exec to the last answer.
        {"name": "--session", "command": [LAP, "--session", sid], "marker": "THE-LAST-ANSWER", "env": env,
         "quit_keys": "C-q"},
        {"name": "agents-list", "command": [LAP], "marker": r"big-history\s+default", "env": env,
         "quit_keys": "C-q"},
        # The floor: a bare Textual app (a Static and a Footer) from exec to its first paint.
        {"name": "floor", "command": [sys.executable, str(BENCH / "hello_floor.py")], "marker": "Hello, TTFP floor",
         "env": env, "quit_keys": "C-q"},
    ]
    for i, entry in enumerate(suite):  # each its own UI state: a reopened chat must not leak across
        entry["env"] = {**entry["env"], "XDG_STATE_HOME": str(tmp / f"state-{i}")}
    suite_file = tmp / "suite.json"
    suite_file.write_text(json.dumps(suite))
    if args.only != "page":
        screen(suite_file, args)
    if args.only == "screen":
        return 0
    # cwd outside the checkout: `python -c` puts the cwd first on sys.path, ahead of a PYTHONPATH
    mounted = subprocess.run([sys.executable, "-c", MOUNT_CHECK, sid], env={**os.environ, **env},
                             capture_output=True, text=True, cwd=tmp)
    print(mounted.stdout.strip() or mounted.stderr.strip()[-500:])
    paged = subprocess.run([sys.executable, "-c", GC_PROBE + PAGE_CHECK, sid, str(args.page_limit)],
                           env={**os.environ, **env}, capture_output=True, text=True, cwd=tmp)
    print(paged.stdout.strip() or paged.stderr.strip()[-800:])
    return 0


def screen(suite_file: Path, args: argparse.Namespace) -> None:
    proc = subprocess.run([sys.executable, str(BENCH / "tui_ttfp.py"), "--suite", str(suite_file), "--runs",
                           str(args.runs), "--size", args.size, "--json", "-q"], stdout=subprocess.PIPE, text=True)
    apps = json.loads(proc.stdout)["apps"]
    print(f"\nA session with {args.messages + 2:,} messages, {args.size}, {args.runs} runs (medians, ms):")
    print("| measure | median | min | max | failures |")
    print("|---|---|---|---|---|")
    for a in apps:
        st = a.get("after_ms") or a["ttfp_ms"] or {}
        what = {"open-from-list": "enter in the sessions list → last message on screen",
                "--session": "`lap-tui --session ID` exec → last message on screen",
                "agents-list": "`lap-tui` exec → agents list (same data dir, for reference)",
                "floor": "hello floor (bare Textual app) exec → first paint"}[a["name"]]
        print(f"| {what} | {st.get('median', float('nan')):.0f} | {st.get('min', float('nan')):.0f} "
              f"| {st.get('max', float('nan')):.0f} | {a['failures']} |")
    floor = next((a.get("ttfp_ms") or {} for a in apps if a["name"] == "floor"), {}).get("median")
    for a in apps:
        st = a.get("after_ms") or a["ttfp_ms"] or {}
        if floor and a["name"] in ("--session", "agents-list") and st.get("median"):
            print(f"{a['name']}: {st['median'] / floor:.2f}x the floor ({floor:.0f} ms) of the same run")


# Counts what the chat mounts for the session (headless Pilot run of the real app).
MOUNT_CHECK = r"""
import asyncio, sys
from lap_tui.tui.launch import build_services
from lap_tui.config import load_settings
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.chat import ChatScreen

async def main():
    services = build_services(load_settings())
    services.state_path = None
    app = LapApp(services, session=sys.argv[1])
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            if isinstance(app.screen, ChatScreen) and app.screen.model.blocks:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        log = app.screen.query_one("#log")
        if hasattr(log, "transcript"):
            msgs = [e for e in log.transcript.entries if e.kind != "turn"]
        else:  # the widget-tree chat before issue 14
            msgs = [c for c in log.children if c.has_class("message")]
        print(f"in the chat: {len(msgs)} messages ({len(list(log.query('*')))} widgets in the log)")
        app.exit()

asyncio.run(main())
"""


# Python's garbage collections while the check runs: per generation, how many, their total and
# the longest (gc.callbacks; the time a pass holds the loop).
GC_PROBE = r"""
import gc, time
GC = {g: [0, 0.0, 0.0] for g in range(3)}
_gc_t = [0.0]

def _gc_cb(phase, info):
    if phase == "start":
        _gc_t[0] = time.perf_counter()
    else:
        d = time.perf_counter() - _gc_t[0]
        s = GC[info["generation"]]
        s[0] += 1; s[1] += d; s[2] = max(s[2], d)

def gc_report():
    return "; ".join(f"gen {g}: {n} passes, {t * 1000:.0f} ms, longest {m * 1000:.1f} ms"
                     for g, (n, t, m) in GC.items())

gc.callbacks.append(_gc_cb)
"""


# PageUp from the end to the first message (headless Pilot run of the real app, 120x40): the
# longest the event loop was blocked (a 5 ms ticker's worst overshoot: what a key or a frame
# would wait), the slowest PageUp, and the memory from the opened chat to the top.
PAGE_CHECK = r"""
import asyncio, os, sys, time
from lap_tui.tui.launch import build_services
from lap_tui.config import load_settings
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.chat import ChatScreen

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

async def main():
    services = build_services(load_settings())
    services.state_path = None
    app = LapApp(services, session=sys.argv[1])
    limit = float(sys.argv[2])
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(400):
            if isinstance(app.screen, ChatScreen) and app.screen.shown.is_set():
                break
            await pilot.pause(0.05)
        await pilot.pause(1.0)
        log = app.screen.query_one("#log")
        app.screen.set_focus(log)
        await pilot.pause(0.5)
        idle = rss_mb()
        lag = [0.0]
        cpu_lag = [0.0, 0.0]  # the worst block's CPU (this thread's: the app's own work), the most CPU of any block
        for v in GC.values():
            v[:] = [0, 0.0, 0.0]

        async def ticker():
            while True:
                t, c = time.perf_counter(), time.thread_time()
                await asyncio.sleep(0.005)
                wall, cpu = time.perf_counter() - t - 0.005, time.thread_time() - c
                if wall > lag[0]:
                    lag[0], cpu_lag[0] = wall, cpu
                cpu_lag[1] = max(cpu_lag[1], cpu)

        task = asyncio.create_task(ticker())
        began, presses, worst, peak, top = time.perf_counter(), 0, 0.0, idle, False
        while time.perf_counter() - began < limit:
            t = time.perf_counter()
            await pilot.press("pageup")
            worst = max(worst, time.perf_counter() - t)
            presses += 1
            if presses % 50 == 0:
                peak = max(peak, rss_mb())
            if log.scroll_y <= 0 and not log.has_older and not log.loading_older:
                await pilot.pause(0.2)
                if log.scroll_y <= 0 and not log.has_older and not log.loading_older:
                    top = True
                    break
        took = time.perf_counter() - began
        task.cancel()
        peak = max(peak, rss_mb())
        print(f"PageUp to the top: {presses} presses in {took:.1f} s "
              f"({'reached the first message' if top else 'stopped before the top'}); loop blocked at most "
              f"{lag[0] * 1000:.0f} ms ({cpu_lag[0] * 1000:.0f} ms of it the app's CPU; the most CPU in one "
              f"block {cpu_lag[1] * 1000:.0f} ms); slowest PageUp until the process was idle again (Pilot: "
              f"an older page's read and render included) {worst * 1000:.0f} ms; RSS {idle:.1f} MB opened, "
              f"{peak:.1f} MB peak (+{peak - idle:.1f})")
        print(f"garbage collections while paging: {gc_report()}; {len(gc.get_objects())} tracked objects, "
              f"{gc.get_freeze_count()} frozen")
        if os.environ.get("BENCH_CENSUS"):  # what the collector walks, by type
            import collections
            c = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
            print(c.most_common(25))
        # what a complete pass finds unreachable, the frozen part included: garbage kept so far
        gc.unfreeze()
        if os.environ.get("BENCH_CENSUS"):
            gc.set_debug(gc.DEBUG_SAVEALL)
        t = time.perf_counter()
        found = gc.collect()
        if os.environ.get("BENCH_CENSUS"):
            print(collections.Counter(type(o).__qualname__ for o in gc.garbage).most_common(30))
            gc.set_debug(0)
        print(f"a complete pass now: {found} unreachable objects, {(time.perf_counter() - t) * 1000:.0f} ms, "
              f"{len(gc.get_objects())} tracked; RSS {rss_mb():.1f} MB")
        app.exit()

asyncio.run(main())
"""


if __name__ == "__main__":
    raise SystemExit(main())
