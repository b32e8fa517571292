#!/usr/bin/env python3
"""What the gateway client alone spends to read a fast stream, by the gap between its network
reads (lap_tui/gateway/sse.paced): the scripted gateway subprocess streams WORDS chunks with
DELAY seconds between them (0.0005: about 2,000 chunks/s) and GatewayClient.stream_chat reads
them all. Gap 0 reads each chunk as it comes: the floor this pacing is measured against.

    .venv/bin/python tests/benchmarks/bench_gateway_read.py [--words 20000] [--delay 0.0005] [--gaps 0,0.01,0.02,0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def read_all(url: str, gap: float) -> tuple[int, float, float]:
    from lap_tui.config import load_settings
    from lap_tui.gateway import GatewayClient
    from lap_tui.gateway import sse

    sse.paced.__defaults__ = (gap,)  # the client reads through paced() with its default gap
    client = GatewayClient.from_settings(load_settings({"LITELLM_API_BASE": url, "LITELLM_API_KEY": "sk-bench"},
                                                       cwd=ROOT))
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    async for _ in client.stream_chat("gpt-test", [{"role": "user", "content": "go"}]):
        n += 1
    return n, time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=20_000)
    ap.add_argument("--delay", type=float, default=0.0005)
    ap.add_argument("--gaps", default="0,0.01,0.02,0.05")
    args = ap.parse_args()
    print(f"gateway client reading {args.words:,} chunks, {args.delay * 1000:g} ms apart at the gateway")
    print("| read gap | events | wall s | client CPU s | CPU % of a core | µs per event |")
    print("|---|---|---|---|---|---|")
    for gap in (float(g) for g in args.gaps.split(",")):
        gw = subprocess.Popen([sys.executable, "-m", "tests.support.scripted_gateway", "--port", "0", "--scenario",
                               "words", "--words", str(args.words), "--paragraph-every", "0", "--done-word", "END",
                               "--models", "gpt-test", "--delay", str(args.delay)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            url = gw.stdout.readline().split()[-1]
            n, wall, cpu = asyncio.run(read_all(url, gap))
        finally:
            gw.terminate()
            gw.wait(5)
        label = f"{gap * 1000:g} ms" + (" (floor: each chunk read as it comes)" if gap == 0 else "")
        print(f"| {label} | {n:,} | {wall:.2f} | {cpu:.2f} | {100 * cpu / wall:.0f} | {1e6 * cpu / max(1, n):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
