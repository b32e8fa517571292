"""Security issue 15.9: a sandbox's FIFOs never block lap-tui's file operations in its workspace.

The attack: the sandbox plants FIFOs where the host's `write_file` puts its temporary file (its
name was `.<name>.lap-tmp-<pid>`, opened without O_EXCL or O_NONBLOCK): the write blocked in
open() until someone read the FIFO, that is for ever.
"""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from lap_tui.domain.errors import LapError
from lap_tui.domain.sandbox import SandboxError

LIMIT = 20  # seconds: far above what a write takes, only there so the old code fails instead of hanging


def release(directory) -> None:
    """Open every FIFO there for reading, so an open() blocked on one (old code) returns."""
    for name in os.listdir(directory):
        p = os.path.join(directory, name)
        if stat.S_ISFIFO(os.lstat(p).st_mode):
            os.close(os.open(p, os.O_RDONLY | os.O_NONBLOCK))


async def test_planted_fifos_do_not_block_write_file(backend, make):
    sid = await make.sandbox()
    ws = backend.workspace(sid)
    # The sandbox guesses the temporary names (the host's pid, the name it will be asked to write)
    # and plants a FIFO at each, and one at the target itself.
    names = " ".join(f".notes.txt.lap-tmp-{pid}" for pid in range(os.getpid() - 50, os.getpid() + 50))
    r = await backend.exec(sid, ["sh", "-c", f"cd /workspace && mkfifo {names} notes.txt fifo-in"])
    assert r.exit_code == 0, r.stderr
    try:
        await asyncio.wait_for(backend.write_file(sid, "notes.txt", b"from the host\n"), LIMIT)
    finally:
        release(ws)
    assert (ws / "notes.txt").read_bytes() == b"from the host\n"  # the FIFO was replaced, not opened
    assert not [n for n in os.listdir(ws) if n.startswith(".lap-tmp-")]  # no temporary left behind
    # reads and listings refuse FIFOs instead of waiting on them
    with pytest.raises(LapError, match="not a regular file"):
        await asyncio.wait_for(backend.read_file(sid, "fifo-in"), LIMIT)
    kinds = {e.name: e.kind for e in await asyncio.wait_for(backend.list_dir(sid), LIMIT)}
    assert kinds["fifo-in"] == "other" and kinds["notes.txt"] == "file"


async def test_a_host_file_operation_that_blocks_gives_up_in_time(backend, make, tmp_path):
    """The deadline itself, on a really blocking system call (opening a FIFO nobody reads)."""
    sid = await make.sandbox()
    fifo = tmp_path / "nobody-reads"
    os.mkfifo(fifo)
    backend.file_deadline = 0.5
    try:
        with pytest.raises(SandboxError, match="did not finish in 0.5 s"):
            await asyncio.wait_for(backend._on_host(sid, "opening a FIFO", os.open, str(fifo), os.O_WRONLY), LIMIT)
        assert "opening a FIFO did not finish" in "\n".join(await backend.logs(sid))
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets the stuck thread go
