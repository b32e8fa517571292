"""The CLI closes its cluster backend: `sandboxes list` on a configured cluster used to end with
aiohttp's "Unclosed client session" warnings on stderr (the backend's HTTP session was never
closed), noise in every script's log."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.k8s.lap_backend import k8s_env


def test_sandboxes_list_on_a_cluster_leaves_no_unclosed_session(tmp_path, k8s_cluster, k8s_namespace):
    env = {**os.environ, **k8s_env(tmp_path, k8s_cluster, k8s_namespace), "PYTHONWARNINGS": "default"}
    for argv in (["sandboxes", "list"], ["sandboxes", "list", "--json"]):
        proc = subprocess.run([sys.executable, "-m", "lap_tui", *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "Unclosed" not in proc.stderr, proc.stderr
