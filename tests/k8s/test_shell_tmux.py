"""A shell in a cluster sandbox, for real: `lap-tui sandboxes shell` and the app's `x` in tmux,
over pods/exec with a TTY on the bin/k8s-dev API server (kwok runs the shell on this host, on a
pty of its own). The operator's terminal never reaches the pod: lap-tui relays it, and gives it
back (cooked mode, echo) however the shell ends: exit, the pod deleted, the API gone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, need
from tests.k8s.lap_backend import k8s_env
from tests.tui.e2e_tmux import EXITED, Tmux

LAP = str(ROOT / ".venv" / "bin" / "lap-tui")
# After lap-tui returns: its exit code and whether the terminal is cooked again.
AFTER = "; r=$?; echo; echo shell-exit=$r; stty -a | grep -o -- ' -\\?icanon\\| -\\?echo ' | tr -d '\\n'; echo; sleep 600"


def _env(tmp: Path, cluster, ns: str) -> dict[str, str]:
    env = k8s_env(tmp, cluster, ns, LAP_TEAM="team1", LITELLM_API_BASE="http://127.0.0.1:9",
                  LITELLM_API_KEY="sk-test", TERM="xterm-256color", PATH=os.environ["PATH"])
    env.pop("AGENT_TOKEN", None)
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([LAP, *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"lap-tui {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


@pytest.fixture
def cluster_session(tmp_path, k8s_cluster, k8s_namespace):
    need(shutil.which("tmux") is not None, "tmux is not installed")
    env = _env(tmp_path, k8s_cluster, k8s_namespace)
    _cli(env, "agents", "create", "bot", "--model", "m", "--sandbox-backend", "kubernetes")
    session = _cli(env, "sessions", "new", "bot").strip()
    _cli(env, "sandboxes", "exec", session, "--", "true")  # the Sandbox, Ready
    return env, session, "s-" + session[:12], k8s_namespace


@pytest.mark.parametrize("ending", ["exit", "pod deleted"])
def test_cli_shell_on_a_cluster_sandbox(cluster_session, k8s_cluster, ending):
    env, session, sid, ns = cluster_session
    tmux = Tmux(env)
    try:
        tmux.start(f"{LAP} sandboxes shell {session} 2>/dev/null" + AFTER)
        tmux.keys("echo in-pod-$((6*7))", literal=True)
        tmux.keys("Enter")
        tmux.wait(r"^in-pod-42", timeout=60)
        if ending == "exit":
            # The pod's pty has the terminal's size, and follows it (channel 4 on SIGWINCH).
            tmux.keys("stty size", literal=True)
            tmux.keys("Enter")
            tmux.wait(r"^24 80\s*$", timeout=60)
            tmux.run("resize-window", "-x", "100", "-y", "30")
            tmux.keys("clear; stty size", literal=True)
            tmux.keys("Enter")
            tmux.wait(r"^30 100\s*$", timeout=60)
            tmux.keys("exit 3", literal=True)
            tmux.keys("Enter")
            tmux.wait(r"shell-exit=3", timeout=60)
        else:
            k8s_cluster.kubectl("delete", "pod", "-n", ns, sid, "--wait=false", check=True)
            tmux.wait(r"shell-exit=137", timeout=60)
        tmux.wait(r"^ icanon echo\s*$", timeout=30)  # the terminal is cooked again
    finally:
        tmux.kill()


def test_app_x_opens_a_cluster_shell_and_comes_back(cluster_session):
    env, session, sid, ns = cluster_session
    tmux = Tmux(env)
    try:
        tmux.start(f"{LAP} --view sandboxes")
        tmux.wait(rf"{sid}\s+kubernetes", timeout=60)
        tmux.keys("x")
        tmux.wait("exit to return", timeout=60)
        tmux.keys("echo in-pod-$((6*7))", literal=True)
        tmux.keys("Enter")
        tmux.wait(r"^in-pod-42", timeout=60)
        tmux.keys("exit", literal=True)
        tmux.keys("Enter")
        tmux.wait(r"exited with 0", timeout=60)
        tmux.wait(r"› Sandboxes", timeout=30)
        tmux.keys("?")  # the app answers keys again
        tmux.wait(r"sandboxes\.describe", timeout=30)
        tmux.keys("Escape")
        tmux.keys("C-q")
        tmux.wait(EXITED, timeout=30)
    finally:
        tmux.kill()
