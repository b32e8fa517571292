"""A command the kernel kills for going over the sandbox's memory limit says so (issue 10 item 8)."""

from __future__ import annotations

import json

from lap_tui.harness.builtin import BuiltinTools
from lap_tui.sandbox.local import OUT_OF_MEMORY, LocalBackend
from tests.conftest import need
from tests.sandbox.conftest import Maker, forget_cgroups

HOG = "s = b'x' * (1024 * 2**20); print(len(s))"


async def test_a_command_killed_by_the_memory_limit_says_so(require_bwrap, sb_store, sb_settings, sb_environ):
    backend = LocalBackend(sb_store, sb_settings, environ=sb_environ, limits="cgroup")
    need(backend._cgroups.available(), f"no writable memory cgroup here: {backend._cgroups.describe()}")
    try:
        sid = await Maker(sb_store, backend).sandbox(memory="64Mi")
        r = await backend.exec(sid, ["python3", "-c", HOG], timeout=120)
        assert r.exit_code == 137 and not r.timed_out
        assert r.killed == OUT_OF_MEMORY and "memory limit" in r.killed
        # What the model (and the chat) sees for a bash tool call.
        out = await BuiltinTools(backend, sid).run("bash", json.dumps({"command": f'python3 -c "{HOG}"'}))
        assert out.exit_code == 137 and "[killed: out of memory" in out.output, out.output
        # A command lap-tui or a user kills with SIGKILL is not blamed on memory.
        r = await backend.exec(sid, ["sh", "-c", "kill -9 $$"], timeout=60)
        assert r.exit_code == 137 and r.killed is None
    finally:
        await backend.close()
        forget_cgroups(backend)
