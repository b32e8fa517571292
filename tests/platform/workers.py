"""Real `lap-tui worker` processes for the platform tests and the benchmark."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class WorkerProc:
    """One `lap-tui worker` process, its stderr (the log) and stdout (`--json`) in files."""

    def __init__(self, env: dict[str, str], workdir: Path, *args: str, name: str = "worker",
                 prefix: list[str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.out_path = workdir / f"{name}.jsonl"
        self.cmd = [*(prefix or []), sys.executable, "-m", "lap_tui", "worker", "--json", *args]
        with open(self.log_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, env=env, cwd=workdir, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def reports(self) -> list[dict[str, Any]]:
        """The `turn.driven` objects printed so far (a killed worker's last line may be cut)."""
        out = []
        for line in self.out_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def health_url(self) -> str | None:
        m = re.search(r"health probes on (http://[0-9.]+:[0-9]+)/livez", self.log())
        return m.group(1) if m else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def probe(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def worker_env(base: dict[str, str], database_url: str, gateway_url: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_"))}
    env.update(LAP_DATABASE_URL=database_url, LITELLM_API_BASE=gateway_url, LITELLM_API_KEY="sk-platform-test",
               PYTHONUNBUFFERED="1")
    return env


def isolated_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(XDG_DATA_HOME=str(tmp / "data"), XDG_CONFIG_HOME=str(tmp / "config"),
               XDG_STATE_HOME=str(tmp / "state"))
    return env
