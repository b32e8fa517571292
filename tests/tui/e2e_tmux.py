#!/usr/bin/env python3
"""End to end in tmux: the real `lap-tui` binary at 80x24 against the scripted gateway.

Creates an agent with the CLI, opens the app, starts a session, sends a message with ctrl+j,
reads the streamed reply off the screen, quits, reopens and checks the same chat (and the
unsent draft) came back, then opens `--view sandboxes`. Prints each step; exit 1 on failure.

    .venv/bin/python tests/tui/e2e_tmux.py [--keep]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python")
LAP = str(ROOT / ".venv" / "bin" / "lap-tui")


EXITED = "lap-tui-has-exited"  # printed in the pane once the app's process ends


class Tmux:
    def __init__(self, env: dict[str, str]) -> None:
        self.sock = f"lap-e2e-{os.getpid()}"
        self.env = env

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True, check=True).stdout

    def start(self, command: str) -> None:
        self.n = getattr(self, "n", 0) + 1
        self.sock = f"lap-e2e-{os.getpid()}-{self.n}"  # a fresh server: the last one may still be exiting
        envs = " ".join(f"{k}={v}" for k, v in self.env.items())
        self.run("new-session", "-d", "-x", "80", "-y", "24", f"env {envs} {command}; echo {EXITED}; sleep 60")

    def screen(self) -> str:
        return self.run("capture-pane", "-p")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", *(["-l"] if literal else []), *keys)

    def wait(self, pattern: str, timeout: float = 20.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.screen()
            if re.search(pattern, text, re.M):
                return text
            time.sleep(0.05)
        raise AssertionError(f"never saw {pattern!r}; the screen was:\n{self.screen()}")

    def settled(self, ready, timeout: float = 20.0) -> str:
        """The screen once `ready(text)` holds and two captures 0.3 s apart agree."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            text = self.screen()
            if ready(text) and text == last:
                return text
            last = text
            time.sleep(0.3)
        raise AssertionError(f"the screen never settled; it was:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)


def step(msg: str) -> None:
    print(f"-- {msg}", flush=True)


def main() -> int:
    if shutil.which("tmux") is None:
        print("tmux is not installed", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="lap-e2e-"))
    gw = subprocess.Popen([PY, "-m", "tests.support.scripted_gateway", "--port", "0", "--scenario", "echo",
                           "--models", "gpt-test"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    url = gw.stdout.readline().split()[-1]
    env = {"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
           "XDG_STATE_HOME": str(tmp / "state"), "LITELLM_API_BASE": url, "LITELLM_API_KEY": "sk-e2e",
           "TERM": "xterm-256color", "PATH": os.environ["PATH"]}
    tmux = Tmux(env)
    try:
        subprocess.run([LAP, "agents", "create", "e2e-bot", "--model", "gpt-test"], env=env, check=True,
                       capture_output=True)
        step("start lap-tui: the agents list shows")
        tmux.start(LAP)
        tmux.wait(r"e2e-bot\s+default\s+gpt-test")
        tmux.wait(r"● store sqlite")
        step("the agent form: abc Tab xyz in one burst fills Name, then Team")
        tmux.keys("n")
        tmux.wait(r"New agent")
        tmux.keys("abc", "Tab", "xyz")
        tmux.wait(r"Team\s+xyz")
        tmux.wait(r"Name\s+abc\b")
        tmux.keys("Escape")  # typed into: esc asks first
        tmux.wait(r"Discard the changes\?")
        tmux.keys("y")
        tmux.wait(r"e2e-bot\s+default\s+gpt-test")
        step("enter: sessions; n: a new session and its chat")
        tmux.keys("Enter")
        tmux.wait(r"Sessions of e2e-bot")
        tmux.keys("n")
        tmux.wait(r"Chat · e2e-bot")
        step("text and ctrl+j in one burst (one send-keys): all of the text is sent")
        tmux.keys("hello from tmux", "C-j")
        tmux.wait(r"echo: hello from tmux")
        tmux.wait(r"✓ done")
        step("an unsent draft, then ctrl+q")
        tmux.keys("not sent yet", literal=True)
        tmux.wait("not sent yet")  # on screen, so in the draft: ctrl+q saves it from there
        tmux.keys("C-q")
        tmux.wait(EXITED, timeout=10)  # quit for real before the reopen (not killed mid-save)
        tmux.kill()
        step("reopen: the same chat with its history and the draft")
        tmux.start(LAP)
        screen = tmux.wait(r"Chat · e2e-bot")
        tmux.wait(r"echo: hello from tmux")
        tmux.wait("not sent yet")
        step("more of the draft, then the terminal closes at once (SIGHUP): the state is saved on the way out")
        tmux.keys(" plus hup", literal=True)
        tmux.wait("not sent yet plus hup")
        tmux.kill()
        state = tmp / "state" / "lap-tui" / "ui-state.json"
        end = time.monotonic() + 15
        while "plus hup" not in (state.read_text() if state.exists() else "") and time.monotonic() < end:
            time.sleep(0.05)
        tmux.start(LAP)
        tmux.wait(r"Chat · e2e-bot")
        tmux.wait("not sent yet plus hup")
        step("replies, the view scrolled six pages up (into turns not mounted at first), ctrl+q: "
             "it reopens showing the same lines")
        sid = json.loads(state.read_text())["session_id"]
        for turn in range(5):
            text = "\n\n".join(f"turn {turn} paragraph {i}" for i in range(10))
            subprocess.run([LAP, "send", sid, text, "--wait"], env=env, check=True, capture_output=True, timeout=120)
        tmux.wait(r"turn 4 paragraph 9")
        tmux.keys("C-l")
        tmux.wait(r"c Copy")
        tmux.keys(*["PPage"] * 6)  # in one burst: older turns mount on the way, no page is lost
        before = tmux.settled(lambda text: re.search(r"turn [0-3] paragraph", text) is not None)
        tmux.keys("C-q")
        tmux.wait(EXITED, timeout=10)
        tmux.kill()
        tmux.start(LAP)
        tmux.wait(r"Chat · e2e-bot")
        log_lines = before.splitlines()[1:-4]  # between the title and the draft / status / keys lines
        try:
            # the same lines, whatever the scrollbar at the right edge says (less history is mounted)
            tmux.wait("\n".join(re.escape(line[:76].rstrip()) + r"[^\n]*" for line in log_lines[:12]))
        except AssertionError as exc:
            raise AssertionError(f"reopened elsewhere; before quitting the screen was:\n{before}\n{exc}") from None
        step("ctrl+l leaves the draft; :sandboxes and enter in one burst, then ? for the keys")
        tmux.keys("C-l")
        tmux.wait(r"c Copy")  # focus has moved (a person types slower than tmux)
        tmux.keys(":sandboxes", "Enter")  # one burst: the command line takes what follows the :
        tmux.wait(r"NAME\s+BACKEND\s+TEAM")
        tmux.keys("?")
        tmux.wait(r"sandboxes\.suspend")
        tmux.keys("Escape")
        tmux.keys("C-q")
        tmux.kill()
        step("--view sandboxes opens straight there")
        tmux.start(f"{LAP} --view sandboxes")
        tmux.wait(r"› Sandboxes")
        tmux.keys("C-q")
        tmux.kill()
        step("--session ID opens straight into that chat (the first screen); esc esc: its agent's "
             "sessions; esc: the agents list")
        listed = subprocess.run([LAP, "sessions", "list", "--json"], env=env, check=True, capture_output=True,
                                text=True).stdout
        tmux.start(f"{LAP} --session {json.loads(listed.splitlines()[0])['id']}")  # one JSON object a line
        tmux.wait(r"Chat · e2e-bot")
        tmux.wait(r"turn \d paragraph")  # its history, where it was left
        tmux.keys("Escape")  # out of the draft
        tmux.wait(r"c Copy")
        tmux.keys("Escape")
        tmux.wait(r"› Sessions of e2e-bot")
        tmux.keys("Escape")
        tmux.wait(r"e2e-bot\s+default\s+gpt-test")
        tmux.keys("Enter")  # and back into the chat through the list
        tmux.wait(r"› Sessions of e2e-bot")
        tmux.keys("C-q")
        print("e2e ok")
        return 0
    except AssertionError as exc:
        print(f"e2e FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        tmux.kill()
        gw.terminate()
        if "--keep" not in sys.argv:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
