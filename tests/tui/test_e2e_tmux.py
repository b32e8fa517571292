"""Runs the tmux end-to-end script (the real `lap-tui` binary in tmux against the scripted
gateway) as part of the suite. Needs tmux; under CI=true a missing tmux fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import need

SCRIPT = Path(__file__).with_name("e2e_tmux.py")


def test_real_binary_in_tmux(require_bwrap):
    need(shutil.which("tmux") is not None, "tmux is not installed")
    r = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("e2e ok"), r.stdout[-4000:] + r.stderr[-2000:]
