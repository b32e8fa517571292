#!/usr/bin/env python3
"""Runs a Python program with its garbage collections timed (gc.callbacks): per generation, how
many passes, their total and the longest, appended as one JSON line to OUT when the program
ends (and rewritten every second while it runs, so a killed app still leaves its figures).

    BENCH_WRAP="$PWD/.venv/bin/python $PWD/tests/benchmarks/gc_probe.py /tmp/gc.jsonl" \\
        .venv/bin/python tests/benchmarks/bench_tui_stream.py --cases 20000:0:0.0005
    .venv/bin/python tests/benchmarks/gc_probe.py --summary /tmp/gc.jsonl
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import runpy
import sys
import threading
import time


def summary(path: str) -> None:
    for line in open(path):
        r = json.loads(line)
        print(f"pid {r['pid']} ({r['wall_s']:.1f} s): " + "; ".join(
            f"gen {g}: {n} passes, {t * 1000:.0f} ms, longest {m * 1000:.1f} ms, {c} collected"
            for g, (n, t, m, c) in r["gc"].items()))


def main() -> None:
    if sys.argv[1] == "--summary":
        summary(sys.argv[2])
        return
    out, sys.argv = sys.argv[1], sys.argv[2:]
    stats = {g: [0, 0.0, 0.0, 0] for g in range(3)}  # passes, total s, longest s, objects collected
    began = [0.0]
    t0 = time.perf_counter()

    def cb(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        d = time.perf_counter() - began[0]
        s = stats[info["generation"]]
        s[0] += 1
        s[1] += d
        s[2] = max(s[2], d)
        s[3] += info.get("collected", 0)

    gc.callbacks.append(cb)
    lines: list[int] = []  # the offset of this process's line in OUT, once written

    def dump() -> None:
        rec = json.dumps({"pid": os.getpid(), "wall_s": time.perf_counter() - t0, "gc": stats}) + "\n"
        with open(out, "a+") as f:  # one line per process: rewritten in place at the end of OUT
            f.seek(0, os.SEEK_END)
            if lines:
                f.seek(lines[0])
                f.truncate()
            else:
                lines.append(f.tell())
            f.write(rec)

    def every_second() -> None:
        while True:
            time.sleep(1.0)
            dump()

    threading.Thread(target=every_second, daemon=True).start()
    atexit.register(dump)
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
