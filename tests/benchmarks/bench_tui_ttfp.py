#!/usr/bin/env python3
"""Start to first useful paint of `lap-tui` (agents list shown, store opened), interleaved with
the bare-Textual floor (hello_floor.py) and any anchors installed under /tmp/anchors (see
../shared/bench/README.md). Prints the shared tool's report; medians are what to quote.

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
    args = ap.parse_args()
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
        {"name": "hello-floor", "command": [str(floor_py), str(BENCH / "hello_floor.py")], "marker": "Hello, TTFP floor",
         "quit_keys": "C-q"},
    ]
    if (ANCHORS / "toolong" / "bin" / "tl").exists():
        log = tmp / "x.log"
        log.write_text("".join(f"line {i}\n" for i in range(1000)) + "THE-LAST-LINE\n")
        suite.append({"name": "toolong", "command": [str(ANCHORS / "toolong" / "bin" / "tl"), str(log)],
                      "marker": "THE-LAST-LINE", "quit_keys": "C-q"})
    suite_file = tmp / "suite.json"
    suite_file.write_text(json.dumps(suite))
    return subprocess.call([sys.executable, str(BENCH / "tui_ttfp.py"), "--suite", str(suite_file), "--runs",
                            str(args.runs), "--size", args.size])


if __name__ == "__main__":
    raise SystemExit(main())
