#!/usr/bin/env python3
"""Compiles lap_tui to bytecode before a start-up or frame benchmark, as an installed app runs.

With PYTHONDONTWRITEBYTECODE set (as on the build machines) no .pyc is ever written, so every
module changed since the last compile is compiled from source at each start: measured, the
chat's five changed modules added 20-50 ms to `lap-tui --session ID`, in the app and not in
the floor beside it. The TUI benchmarks run this first.

    .venv/bin/python tests/benchmarks/compile_app.py [EXTRA_DIR ...]
"""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    ok = all(compileall.compile_dir(str(d), quiet=1) for d in [ROOT / "lap_tui", *map(Path, sys.argv[1:])])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
