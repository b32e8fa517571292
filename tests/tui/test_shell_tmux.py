"""`x` (a shell in a sandbox) from the app, for real: the `lap-tui` binary in tmux, real bwrap.

After the shell ends, however it ends (`exit`, killed from outside, its sandbox deleted by
another process), the app must be back on screen and answer keys (first-day issue 10, item 1:
it used to stay on the shell's text with the terminal's foreground group on the dead shell).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, need
from tests.tui.e2e_tmux import EXITED, Tmux

LAP = str(ROOT / ".venv" / "bin" / "lap-tui")
WINCH = ("python3 -c \"import os, signal; signal.signal(signal.SIGWINCH, lambda *a: print('winch', "
         "*os.get_terminal_size(0))); print('waiting-for-' + 'winch', flush=True); signal.pause()\"")


def _env(tmp: Path) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
            "XDG_STATE_HOME": str(tmp / "state"), "LITELLM_API_BASE": "http://127.0.0.1:9",
            "LITELLM_API_KEY": "sk-test", "TERM": "xterm-256color", "PATH": os.environ["PATH"]}


def _cli(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([LAP, *args], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"lap-tui {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def _kill_shell(env: dict[str, str], sid: str) -> None:
    """SIGKILL the shell's bwrap from outside lap-tui, found through the pid file lap-tui keeps."""
    run = next(Path(env["XDG_DATA_HOME"]).glob(f"**/sandboxes/{sid}/run"))
    pids = [int(p.name) for p in run.iterdir() if p.name.isdigit()]
    assert pids, "no running command recorded for the sandbox"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("ending", ["exit", "exit from the detail screen", "killed", "deleted"])
def test_the_app_comes_back_after_a_shell(require_bwrap, tmp_path, ending):
    need(shutil.which("tmux") is not None, "tmux is not installed")
    env = _env(tmp_path)
    _cli(env, "agents", "create", "bot", "--model", "m")
    session = _cli(env, "sessions", "new", "bot").strip()
    _cli(env, "sandboxes", "exec", session, "--", "true")
    sid = json.loads(_cli(env, "sandboxes", "list", "--json").splitlines()[0])["id"]
    tmux = Tmux(env)
    try:
        tmux.start(f"{LAP} --view sandboxes")
        tmux.wait(rf"{sid}\s+local", timeout=60)
        # x at once: the rows come from the store before the backend is open; x waits for it
        if ending == "exit from the detail screen":
            tmux.keys("Enter")
            tmux.wait(rf"Sandbox {sid}", timeout=60)
        tmux.keys("x")
        tmux.wait("exit to return", timeout=60)
        tmux.keys("echo in-sandbox-$((6*7))", literal=True)
        tmux.keys("Enter")
        tmux.wait(r"^in-sandbox-42", timeout=60)
        if ending == "exit":
            # The pty follows the terminal's size: a program in the shell gets SIGWINCH and the new
            # size when tmux resizes the pane.
            tmux.keys("stty size", literal=True)
            tmux.keys("Enter")
            tmux.wait(r"^24 80\s*$", timeout=60)
            tmux.keys(WINCH, literal=True)
            tmux.keys("Enter")
            tmux.wait(r"^waiting-for-winch", timeout=60)
            tmux.run("resize-window", "-x", "100", "-y", "30")
            tmux.wait(r"^winch 100 30", timeout=60)
        if ending.startswith("exit"):
            tmux.keys("exit", literal=True)
            tmux.keys("Enter")
            tmux.wait(r"exited with 0", timeout=60)  # the toast wraps at 80 columns
        elif ending == "killed":
            _kill_shell(env, sid)
            tmux.wait(r"exited with 137", timeout=60)
        else:
            _cli(env, "sandboxes", "delete", sid)
            tmux.wait(r"exited with 137", timeout=60)
            tmux.wait(r"no sandboxes yet", timeout=60)
        tmux.wait(rf"Sandbox {sid}" if "detail" in ending else r"› Sandboxes")
        # The app answers keys again: ? opens its keys, escape closes them, ctrl+q quits.
        tmux.keys("?")
        tmux.wait(r"sandboxes\.suspend", timeout=30)
        tmux.keys("Escape")
        tmux.keys("C-q")
        tmux.wait(EXITED, timeout=30)
    finally:
        tmux.kill()


async def test_a_failing_shell_still_resumes_the_app(services_factory):
    """Textual resumes only when the body of `with app.suspend()` returns normally: an error
    from the shell (a sandbox deleted before it started, bwrap failing) must not escape it, or
    the app stays suspended with no input thread. A headless stand-in for suspend that behaves
    like Textual's records whether the app was resumed."""
    from lap_tui.domain.sandbox import SandboxError
    from lap_tui.tui.app import LapApp
    from lap_tui.tui.screens.sandboxes import SandboxesScreen
    from lap_tui.tui.widgets.table import LapTable
    from tests.tui.conftest import FakeSandboxBackend, seed, seed_sandboxes, wait_for

    class Failing(FakeSandboxBackend):
        async def shell(self, sandbox_id: str, argv=None) -> int:
            self.calls.append(("shell", sandbox_id))
            raise SandboxError(f"sandbox {sandbox_id} could not start: boom")

    backend = Failing()
    services = services_factory(sandboxes=backend)
    seed(services, seed_sandboxes)
    app = LapApp(services, view="sandboxes")
    steps: list[str] = []

    @contextlib.contextmanager
    def suspend():
        steps.append("suspended")
        yield
        steps.append("resumed")  # as in Textual: not reached when the body raises

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SandboxesScreen) and app.sandboxes is not None
                       and app.screen.query_one(LapTable).row_count == 4, what="sandboxes")
        app.suspend = suspend
        await pilot.press("x")
        await wait_for(pilot, lambda: any("boom" in str(n.message) for n in app._notifications), what="the error")
        assert steps == ["suspended", "resumed"]
