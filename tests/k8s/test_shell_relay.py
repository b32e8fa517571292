"""The Kubernetes shell's relay (lap_tui/sandbox/k8s/shell.py) on a real pseudo-terminal standing
for the operator's terminal, with a scripted exec stream: the size goes first on channel 4, keys
go on channel 0, output reaches the terminal, and the terminal's modes come back however the
stream ends (status, or the connection lost). The real API server: tests/k8s/test_shell_tmux.py."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import struct
import termios
from types import SimpleNamespace

import aiohttp
import pytest

from lap_tui.domain.sandbox import SandboxError
from lap_tui.sandbox.k8s.shell import ExecRelay, shell_command


class ScriptedStream:
    """The exec websocket: what the server sends is queued by the test; what lap-tui sends is kept."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.sent: list[bytes] = []
        self.got_sent = asyncio.Event()

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)
        self.got_sent.set()

    def server(self, channel: int, data: bytes) -> None:
        self.incoming.put_nowait(SimpleNamespace(type=aiohttp.WSMsgType.BINARY, data=bytes([channel]) + data))

    def close(self) -> None:
        self.incoming.put_nowait(SimpleNamespace(type=aiohttp.WSMsgType.CLOSED, data=None))

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self.incoming.get()


@pytest.fixture
def terminal():
    """(emulator side, the operator's terminal): a pty of 30 rows, 100 columns, cooked."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    yield master, slave
    os.close(master)
    os.close(slave)


async def _until(cond, what: str) -> None:
    for _ in range(2000):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_keys_output_size_and_exit_status(terminal):
    master, slave = terminal
    before = termios.tcgetattr(slave)
    ws = ScriptedStream()
    run = asyncio.create_task(ExecRelay(ws, slave, slave).run())
    await _until(lambda: ws.sent, "the first frame")
    assert ws.sent[0] == b"\x04" + json.dumps({"Width": 100, "Height": 30}).encode()  # the size first
    assert not termios.tcgetattr(slave)[3] & termios.ICANON  # raw while relaying
    os.write(master, b"echo hi\r")  # the operator types
    await _until(lambda: b"\x00echo hi\r" in ws.sent, "the keys on channel 0")
    ws.server(1, b"hi from the pod\r\n")
    ws.server(3, json.dumps({"status": "Failure", "reason": "NonZeroExitCode",
                             "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}).encode())
    ws.close()
    assert await run == 3
    assert b"hi from the pod" in os.read(master, 4096)
    assert termios.tcgetattr(slave)[3] == before[3]  # cooked again: echo, icanon as they were


async def test_the_connection_lost_restores_the_terminal_then_raises(terminal):
    master, slave = terminal
    before = termios.tcgetattr(slave)
    ws = ScriptedStream()
    run = asyncio.create_task(ExecRelay(ws, slave, slave).run())
    await _until(lambda: ws.sent, "the first frame")
    ws.close()  # no status: the stream broke
    with pytest.raises(SandboxError, match="connection to the sandbox was lost"):
        await run
    assert termios.tcgetattr(slave)[3] == before[3]


def test_the_command_carries_a_plain_term_only():
    assert shell_command(["bash"], "xterm-256color") == ["env", "TERM=xterm-256color", "bash"]
    assert shell_command(["bash"], "x; rm -rf /") == ["bash"]
    assert shell_command(None, None)[:2] == ["sh", "-c"]
