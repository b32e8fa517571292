"""Security issue 15.5 and 15.11: what a sandbox sees of lap-tui's own files, and memory it can hold.

15.5: with the data and config directories under a directory the sandbox gets read-only (/opt,
/usr/local), sandbox B read sandbox A's workspace, the config file with the gateway key and
lap.db. 15.11: with rlimits, /tmp (tmpfs) held 200 MiB under a 64 MiB memory limit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from lap_tui.config import load_settings
from lap_tui.sandbox.local import LocalBackend
from lap_tui.store import open_store
from tests.conftest import need
from tests.sandbox.conftest import Maker, forget_cgroups

KEY = "sk-gateway-key-in-the-config-file"
A_SECRET = "workspace-secret-of-sandbox-a"


@pytest.fixture(params=["/opt", "/usr/local"])
def system_base(request):
    """A directory under one that every sandbox gets read-only; removed afterwards."""
    try:
        base = Path(tempfile.mkdtemp(prefix="lap-test-", dir=request.param))
    except OSError as exc:
        need(False, f"cannot write under {request.param}: {exc}")
    yield base
    shutil.rmtree(base, ignore_errors=True)


async def test_lap_tui_files_under_a_system_directory_are_hidden(require_bwrap, system_base):
    config = system_base / "config" / "lap-tui"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(f'litellm_api_key = "{KEY}"\n')
    environ = {"XDG_DATA_HOME": str(system_base / "data"), "XDG_CONFIG_HOME": str(system_base / "config"),
               "XDG_STATE_HOME": str(system_base / "state"), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    (system_base / "state" / "lap-tui").mkdir(parents=True)
    (system_base / "state" / "lap-tui" / "ui.json").write_text('{"draft": "private draft"}')
    settings = load_settings(environ, cwd=system_base)
    store = await open_store(settings.database_url)
    backend = LocalBackend(store, settings, environ=environ)
    try:
        maker = Maker(store, backend)
        a, b = await maker.sandbox(), await maker.sandbox()
        await backend.write_file(a, "secret.txt", A_SECRET.encode())
        data = Path(settings.data_dir)
        paths = [backend.workspace(a) / "secret.txt", config / "config.toml", data / "lap.db",
                 data / "lap.db-wal", system_base / "state" / "lap-tui" / "ui.json"]
        script = "; ".join(f"cat '{p}'" for p in paths)
        script += f"; ls -AR '{system_base}'"
        r = await backend.exec(b, ["sh", "-c", script + " 2>&1"])
        out = r.stdout.decode(errors="replace")
        for leak in (A_SECRET, KEY, "SQLite format", "private draft", a, "config.toml", "lap.db"):
            assert leak not in out, f"{leak!r} visible in sandbox {b}:\n{out}"
        # the places are there, empty (and read-only): the sandbox is not told what they held
        r = await backend.exec(b, ["sh", "-c", f"ls -A '{data}'; echo x > '{data}/planted' && echo wrote"])
        assert r.stdout == b"", r.stdout
        assert not (data / "planted").exists()
        # a still works in its own workspace
        r = await backend.exec(a, ["cat", "/workspace/secret.txt"])
        assert r.stdout == A_SECRET.encode()
    finally:
        await backend.close()
        forget_cgroups(backend)
        await store.close()


HOG = ("for d in /tmp /dev/shm /dev; do dd if=/dev/zero of=$d/hog bs=1M count=150 2>/dev/null; done; "
       "cat /tmp/hog /dev/shm/hog /dev/hog 2>/dev/null | wc -c")


@pytest.mark.parametrize("limits", ["rlimit", "auto"])
async def test_memory_backed_files_stay_within_the_memory_limit(require_bwrap, sb_store, sb_settings, sb_environ,
                                                                 limits):
    backend = LocalBackend(sb_store, sb_settings, environ=sb_environ, limits=limits)
    try:
        sid = await Maker(sb_store, backend).sandbox(memory="64Mi")
        r = await backend.exec(sid, ["sh", "-c", HOG], timeout=120)
        held = int(r.stdout.split()[-1]) if r.stdout.split() else 0
        assert held <= 64 * 2**20, f"{held / 2**20:.0f} MiB held in memory-backed files under a 64 MiB limit"
        # what a program needs still works: a small file in /tmp and in /dev/shm
        r = await backend.exec(sid, ["sh", "-c", "echo t > /tmp/t && echo s > /dev/shm/s && cat /tmp/t /dev/shm/s"])
        assert r.stdout == b"t\ns\n", r.stderr
    finally:
        await backend.close()
        forget_cgroups(backend)
