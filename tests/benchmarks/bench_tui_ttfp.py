#!/usr/bin/env python3
"""Start to first useful paint of `lap-tui` (agents list shown, store opened), interleaved with
the bare-Textual floor (hello_floor.py) and the anchors installed under /tmp/anchors (toolong,
elia, posting, harlequin; see ../shared/bench/README.md). Prints a side-by-side table of medians
and each one's ratio to the floor.

    .venv/bin/python tests/benchmarks/bench_tui_ttfp.py [--runs 7] [--size 80x24]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT.parent / "shared" / "bench"
ANCHORS = Path("/tmp/anchors")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--size", default="80x24")
    ap.add_argument("--only", help="comma-separated names (lap-tui,hello-floor,toolong,elia,posting,harlequin)")
    args = ap.parse_args()
    subprocess.run([sys.executable, str(Path(__file__).with_name("compile_app.py"))], check=True)  # as installed
    tmp = Path(tempfile.mkdtemp(prefix="lap-ttfp-"))
    env = {"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
           "XDG_STATE_HOME": str(tmp / "state"), "LITELLM_API_BASE": "http://127.0.0.1:9"}
    lap = str(ROOT / ".venv" / "bin" / "lap-tui")
    subprocess.run([lap, "agents", "create", "ttfp-agent", "--model", "m"], env={**os.environ, **env}, check=True,
                   capture_output=True)
    floor_py = ANCHORS / "textual" / "bin" / "python"
    if not floor_py.exists():
        floor_py = ROOT / ".venv" / "bin" / "python"  # same Textual 8.2.8
    suite = [
        {"name": "lap-tui", "command": [lap], "marker": r"ttfp-agent\s+default", "env": env, "quit_keys": "C-q"},
        {"name": "hello-floor", "command": [str(floor_py), str(BENCH / "hello_floor.py")],
         "marker": "Hello, TTFP floor", "quit_keys": "C-q"},
    ]
    missing = []
    if (ANCHORS / "toolong" / "bin" / "tl").exists():
        log = tmp / "x.log"
        log.write_text("".join(f"line {i}\n" for i in range(1000)) + "THE-LAST-LINE\n")
        suite.append({"name": "toolong", "command": [str(ANCHORS / "toolong" / "bin" / "tl"), str(log)],
                      "marker": "THE-LAST-LINE", "quit_keys": "C-q"})
    else:
        missing.append("toolong")
    if (ANCHORS / "elia-chat" / "bin" / "elia").exists():
        suite.append({"name": "elia", "command": [str(ANCHORS / "elia-chat" / "bin" / "elia")],
                      "marker": "Enter your message", "quit_keys": "C-q",
                      "env": {"OPENAI_API_KEY": "sk-dummy", "HOME": str(tmp / "elia-home")}})
    else:
        missing.append("elia")
    if (ANCHORS / "posting" / "bin" / "posting").exists():
        suite.append({"name": "posting", "command": [str(ANCHORS / "posting" / "bin" / "posting")],
                      "marker": "Enter a URL or paste a curl", "quit_keys": "C-q",
                      "env": {"HOME": str(tmp / "posting-home")}})
    else:
        missing.append("posting")
    hq = ANCHORS / "harlequin" / "bin"
    if (hq / "harlequin").exists():
        db = tmp / "x.duckdb"
        subprocess.run([str(hq / "python"), "-c", f"import duckdb; duckdb.connect({str(db)!r}).close()"], check=True)
        suite.append({"name": "harlequin", "command": [str(hq / "harlequin"), "--locale", "C", str(db)],
                      "marker": "Query Editor", "quit_keys": "C-q", "env": {"HOME": str(tmp / "hq-home")}})
    else:
        missing.append("harlequin")
    if args.only:
        suite = [e for e in suite if e["name"] in args.only.split(",")]
    suite_file = tmp / "suite.json"
    suite_file.write_text(json.dumps(suite))
    proc = subprocess.run([sys.executable, str(BENCH / "tui_ttfp.py"), "--suite", str(suite_file), "--runs",
                           str(args.runs), "--size", args.size, "--json", "-q"], stdout=subprocess.PIPE, text=True)
    try:
        apps = json.loads(proc.stdout)["apps"]
    except ValueError:
        print(proc.stdout)
        return 1
    med = {a["name"]: (a["ttfp_ms"] or {}).get("median") for a in apps}
    floor = med.get("hello-floor")
    print(f"\nStart to first useful paint, {args.size}, {args.runs} interleaved runs (medians, ms):")
    print("| app | median | min | max | failures | x floor |")
    print("|---|---|---|---|---|---|")
    for a in apps:
        st = a["ttfp_ms"] or {}
        m = st.get("median")
        ratio = f"{m / floor:.2f}" if m and floor else "—"
        print(f"| {a['name']} | {m if m is None else round(m)} | {st.get('min', 0):.0f} | {st.get('max', 0):.0f} "
              f"| {a['failures']} | {ratio} |")
    if missing:
        print("not installed under /tmp/anchors: " + ", ".join(missing))
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
