"""An interactive shell in a sandbox's pod: pods/exec with a TTY, relayed by lap-tui.

The pod never holds the operator's terminal (as with the local backend's pty relay, see
docs/SECURITY.md): the kubelet (kwok: its host) gives the command a pty of its own, and lap-tui
copies bytes between that pty and the user's terminal over the exec websocket: keys on
channel 0, the pty's output on channel 1, the window size as JSON on channel 4 at the start and
on every SIGWINCH, the exit status on channel 3. The user's terminal is in raw mode meanwhile
and is restored by `UserTerminal` however the shell ends: `exit`, the pod deleted (the relay
stops when the pod goes; the exit code is then 137, "killed", as for the local backend), or the
connection lost (SandboxError, raised after the terminal is back).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any, Sequence

from lap_tui.domain.sandbox import SandboxError
from lap_tui.sandbox.k8s import execws, objects
from lap_tui.sandbox.k8s.client import EXEC_PROTOCOLS
from lap_tui.sandbox.k8s.ops import SandboxOps
from lap_tui.sandbox.pty_relay import MAX_PENDING, UserTerminal, _write_all, terminal_fds, window_size

RESIZE = 4  # the channel of terminal sizes
KILLED = 137  # the pod went away under the shell: as a SIGKILL, like the local backend's
DEFAULT_SHELL = ["sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -i; fi; exec sh -i"]
_TERM = re.compile(r"[A-Za-z0-9._+-]{1,64}")


def resize_frame(rows: int, cols: int) -> bytes:
    return execws.frame(RESIZE, json.dumps({"Width": cols, "Height": rows}).encode())


def shell_command(argv: Sequence[str] | None, term: str | None) -> list[str]:
    """The command to exec; the operator's TERM goes with it when it is a plain terminal name
    (a kubelet's exec starts with the container's environment, which has none)."""
    cmd = list(argv or DEFAULT_SHELL)
    if term and _TERM.fullmatch(term):
        cmd = ["env", f"TERM={term}", *cmd]
    return cmd


class ExecRelay:
    """One TTY exec stream and the copying between it and the user's terminal."""

    def __init__(self, ws: Any, user_in: int, user_out: int) -> None:
        self.ws, self.user_in, self.user_out = ws, user_in, user_out
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._queued = 0
        self._reading = False
        self._ended = False

    def _resize(self) -> None:
        size = window_size(self.user_out, self.user_in)
        if size is not None:
            self._send(resize_frame(*size))

    def _send(self, frame: bytes) -> None:
        self._queued += len(frame)
        self._out.put_nowait(frame)

    def _read_user(self, on: bool) -> None:
        loop = asyncio.get_running_loop()
        if on and not self._reading and not self._ended:
            loop.add_reader(self.user_in, self._from_user)
            self._reading = True
        elif not on and self._reading:
            loop.remove_reader(self.user_in)
            self._reading = False

    def _from_user(self) -> None:
        try:
            data = os.read(self.user_in, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # the terminal is gone
        if not data:
            # End of input (a pipe, a hung-up terminal): VEOF, which the pod's pty turns into end-of-file.
            self._read_user(False)
            self._ended = True
            data = b"\x04"
        self._send(execws.frame(execws.STDIN, data))
        if self._queued > MAX_PENDING:
            self._read_user(False)  # the stream is not taking keys: let the terminal wait

    async def _sender(self) -> None:
        while True:
            frame = await self._out.get()
            await self.ws.send_bytes(frame)
            self._queued -= len(frame)
            if self._queued <= MAX_PENDING // 2:
                self._read_user(True)

    async def run(self) -> int:
        """Relay until the command ends; its exit code. The terminal is restored on every path."""
        status = b""
        with UserTerminal(self.user_in, self.user_out, self._resize):
            self._resize()
            sender = asyncio.create_task(self._sender())
            try:
                self._read_user(True)
                async for ch, payload in execws.frames(self.ws):
                    if ch == execws.ERROR:
                        status += payload
                    elif ch in (execws.STDOUT, execws.STDERR) and payload:
                        _write_all(self.user_out, payload)
                    if sender.done():
                        break  # the stream no longer takes keys: see why below
            finally:
                self._read_user(False)
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        if not status:
            why = sender.exception() if sender.done() and not sender.cancelled() else None
            raise SandboxError(f"the connection to the sandbox was lost{f' ({why})' if why else ''}",
                               "the shell may still be running in the pod; open a new one")
        return execws.exit_code(status)


async def run_shell(backend: SandboxOps, ns: str, name: str, pod: dict[str, Any],
                    argv: Sequence[str] | None = None) -> int:
    """A shell in the sandbox's (ready) pod on this terminal; its exit code, 137 if the pod went."""
    import aiohttp

    apis = await backend.apis()
    user_in, user_out = terminal_fds()
    meta = pod.get("metadata") or {}
    try:
        cm = await apis.core_ws.connect_get_namespaced_pod_exec_without_preload_content(  # type: ignore[attr-defined]
            name, ns, command=shell_command(argv, os.environ.get("TERM")), container=objects.CONTAINER,
            stdin=True, stdout=True, stderr=False, tty=True)
        async with cm as ws:
            if ws.protocol not in EXEC_PROTOCOLS:
                raise SandboxError(f"the cluster offered exec protocol {ws.protocol!r}",
                                   "lap-tui needs v4.channel.k8s.io or newer (Kubernetes 1.10+)")
            relay = asyncio.create_task(ExecRelay(ws, user_in, user_out).run())
            gone = asyncio.create_task(backend.pod_gone(ns, name, meta.get("uid"), meta.get("resourceVersion")))
            try:
                await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not relay.done() and gone.exception() is not None:
                    # The pod watch broke (the API away): not a sign the pod went; the stream decides.
                    await asyncio.wait({relay})
                if relay.done():
                    return relay.result()
                # The pod went (deleted, replaced, stopped): its shell went with it on a real node.
                await ws.close()
                await asyncio.gather(relay, return_exceptions=True)  # the terminal is back after this
                return KILLED
            finally:
                for t in (relay, gone):
                    t.cancel()
                await asyncio.gather(relay, gone, return_exceptions=True)
    except aiohttp.WSServerHandshakeError as exc:
        raise SandboxError(f"cannot open a shell in sandbox {name}: {exc.status} {exc.message}",
                           "is the pod running? `lap-tui sandboxes list`") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise SandboxError(f"the shell's connection to sandbox {name} broke: {exc}") from None
