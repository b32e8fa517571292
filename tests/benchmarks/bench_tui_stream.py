#!/usr/bin/env python3
"""What the app spends to render a long streamed reply: the shared stream_bench.py against the
scripted gateway subprocess, for 5,000 and 20,000 small chunks, as one paragraph and with a
paragraph break every 100 words. Prints one table (medians of --runs).

Each case: a data dir with one agent and one session (a fresh copy per run, so history never
grows between runs), `lap-tui --session ID` in a private tmux at 120x40, type, ctrl+j, poll
until the done word shows. Key probes are typed into the draft while the reply streams.

    .venv/bin/python tests/benchmarks/bench_tui_stream.py [--runs 3] [--cases 5000:0,20000:0,5000:100,20000:100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT.parent / "shared" / "bench"
PY = str(ROOT / ".venv" / "bin" / "python")
LAP = str(ROOT / ".venv" / "bin" / "lap-tui")
DONE = "BIG-DONE"
WRAP = os.environ.get("BENCH_WRAP", "").split()  # e.g. "python -m cProfile -o /tmp/p.out" (profiling)
APP_ENV = os.environ.get("BENCH_APP_ENV", "").split()  # extra NAME=VALUE for the app (experiments)
FLOOR = Path(__file__).with_name("stream_floor.py")  # the least a Textual app does to show the stream
GC_PROBE = Path(__file__).with_name("gc_probe.py")  # --gc: the app's garbage collections, timed
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "0.05"))  # screen poll, s: the resolution of "max gap"


def seed_home(home: Path) -> str:
    """An agent and an empty session in HOME-relative XDG dirs (what stream_bench copies per run)."""
    env = {"XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_STATE_HOME": str(home / ".local" / "state")}
    from lap_tui.config import load_settings
    from lap_tui.domain.agent import Agent
    from lap_tui.domain.ids import new_id
    from lap_tui.domain.session import Session
    from lap_tui.store import open_store

    settings = load_settings(env, cwd=home)

    async def go() -> str:
        store = await open_store(settings.database_url)
        try:
            agent = await store.create_agent(Agent(id=new_id(), name="stream-bench", team="default", model="gpt-test"))
            session = await store.create_session(Session(id=new_id(), agent_id=agent.id, title="bench"))
            return session.id
        finally:
            await store.close()

    return asyncio.run(go())


def start_gateway(words: int, every: int, delay: float = 0.0) -> tuple[subprocess.Popen, str]:
    gw = subprocess.Popen([PY, "-m", "tests.support.scripted_gateway", "--port", "0", "--scenario", "words",
                           "--words", str(words), "--paragraph-every", str(every), "--done-word", DONE,
                           "--models", "gpt-test", "--delay", str(delay)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = gw.stdout.readline()
    if not line.startswith("READY"):
        gw.kill()
        raise SystemExit(f"gateway did not start: {line!r}")
    return gw, line.split()[-1]


def run_case(words: int, every: int, runs: int, probe_at: float, tmp: Path, sid: str, home: Path,
             size: str, delay: float = 0.0, variant: str = "lap-tui", app_env: list[str] = (),
             gc_log: Path | None = None) -> dict:
    gw, url = start_gateway(words, every, delay)
    name = f"{variant}-{words}-{every}"
    out = tmp / f"stream-{name}.json"
    probe = [PY, str(GC_PROBE), str(gc_log)] if gc_log else []
    app = [PY, str(FLOOR)] if variant == "floor" else [*WRAP, *probe, LAP, "--session", sid]
    try:
        cmd = [sys.executable, str(BENCH / "stream_bench.py"), "--name", name,
               "--runs", str(runs), "--ready", "Message —", "--type", "go", "--send", "C-j",
               "--done", DONE, "--first", r"word\d+ ", "--timeout", "300", "--size", size,
               "--home-template", str(home), "--workdir", str(tmp),
               "--env", f"LITELLM_API_BASE={url}", "--env", "LITELLM_API_KEY=sk-bench",
               "--env", f"PATH={os.environ['PATH']}", "--env", "TERM=xterm-256color",
               *[a for kv in [*APP_ENV, *app_env] for a in ("--env", kv)],
               "--key-probe-at", str(probe_at), "--key-probe-every", "0.5", "--key-probes", "6",
               "--interval", str(INTERVAL), "--json", str(out), "--", *app]
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL if not os.environ.get("BENCH_VERBOSE") else None)
        if not out.exists():
            return {"name": f"{words}/{every}", "n_ok": 0}
        data = json.loads(out.read_text())
        summary = data["summary"]
        idle = sorted(r["rss_before_mb"] for r in data["runs"] if r.get("ok") and "rss_before_mb" in r)
        if idle:
            summary["rss_before_mb"] = idle[len(idle) // 2]
        return summary
    finally:
        gw.terminate()
        gw.wait(5)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default="5000:0,20000:0,5000:100,20000:100",
                    help="WORDS:PARAGRAPH_EVERY[:DELAY], comma-separated (0 = one paragraph; DELAY: seconds "
                         "between chunks, e.g. 20000:0:0.0005 is 2,000 chunks/s for 10 s)")
    ap.add_argument("--probe-at", type=float, default=None,
                    help="seconds after send for the first key probe, then every 0.5 s while it streams (default 0.2)")
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor app (stream_floor.py) after each case")
    ap.add_argument("--before", metavar="DIR", help="also run the lap-tui at DIR (an export of an older commit, "
                                                    "put first on PYTHONPATH) after each case, as 'before'")
    ap.add_argument("--gc", action="store_true", help="time lap-tui's garbage collections per generation (gc_probe.py)")
    args = ap.parse_args()
    subprocess.run([sys.executable, str(Path(__file__).with_name("compile_app.py"))], check=True)  # as installed
    tmp = Path(tempfile.mkdtemp(prefix="lap-stream-"))
    home = tmp / "home"
    sid = seed_home(home)
    rows = []
    try:
        for case in args.cases.split(","):
            words, every, *rest = case.split(":")
            delay = float(rest[0]) if rest else 0.0
            probe_at = args.probe_at if args.probe_at is not None else 0.2
            variants = [("lap-tui", [])] + ([("before", [f"PYTHONPATH={args.before}"])] if args.before else []) \
                + ([] if args.no_floor else [("floor", [])])
            for variant, env in variants:
                gc_log = tmp / f"gc-{variant}-{case}.jsonl" if args.gc and variant != "floor" else None
                s = run_case(int(words), int(every), args.runs, probe_at, tmp, sid, home, args.size, delay, variant,
                             env, gc_log)
                if gc_log is not None and gc_log.exists():
                    s["gc"] = gc_summary(gc_log)
                rows.append((variant, int(words), int(every), delay, s))
                print(f"done {variant} {case}: {json.dumps(s)}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"lap-tui streaming ({args.runs} runs each, medians; CPU = the app's utime+stime from send to the "
          "done word; floor = stream_floor.py, a RichLog and a draft on the same stream, right after)")
    print("| app | chunks | paragraphs | rate | ok | wall s | app CPU s | CPU % of a core | peak RSS MB | RSS idle MB "
          "| max gap ms | key lat ms (median / max) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for app, words, every, delay, s in rows:
        def f(k: str, scale: float = 1.0, nd: int = 2) -> str:
            v = s.get(k)
            return "—" if v is None else f"{v * scale:.{nd}f}"
        lat = (f"{s['key_lat_ms_median']:.0f} / {s['key_lat_ms_max']:.0f}" if "key_lat_ms_median" in s else "—")
        share = f"{100 * s['cpu_s'] / s['wall_s']:.0f}" if s.get("wall_s") and s.get("cpu_s") is not None else "—"
        rate = f"{1 / delay:,.0f}/s" if delay else "max"
        print(f"| {app} | {words:,} | {'one' if not every else f'break every {every}'} | {rate} | {s.get('n_ok', 0)}/{s.get('n', 0)} "
              f"| {f('wall_s')} | {f('cpu_s')} | {share} | {f('peak_rss_mb', nd=1)} | {f('rss_before_mb', nd=1)} "
              f"| {f('max_gap_s', 1000, 0)} | {lat} |")
    gcs = [(app, words, every, delay, s["gc"]) for app, words, every, delay, s in rows if s.get("gc")]
    if gcs:
        print("\nGarbage collections (gc.callbacks, whole app run; mean of the runs, longest of all):")
        for app, words, every, delay, g in gcs:
            print(f"- {app} {words:,}/{every}{f' at {1 / delay:,.0f}/s' if delay else ''}: {g}")
    return 0


def gc_summary(path: Path) -> str:
    recs = [json.loads(line)["gc"] for line in path.read_text().splitlines() if line.strip()]
    out = []
    for g in ("0", "1", "2"):
        n = sum(r[g][0] for r in recs) / len(recs)
        total = sum(r[g][1] for r in recs) / len(recs)
        longest = max(r[g][2] for r in recs)
        out.append(f"gen {g} {n:.0f} passes {total * 1000:.0f} ms (longest {longest * 1000:.0f})")
    return "; ".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
