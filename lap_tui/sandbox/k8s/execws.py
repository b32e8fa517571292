"""Commands in a pod through the pods/exec websocket (channel.k8s.io v5, else v4).

Every message is one byte of channel then data: 0 stdin, 1 stdout, 2 stderr, 3 the final
`Status` (JSON), 255 (v5 only) "close this channel". The command runs under a small sh
wrapper that puts it in its own session and writes that session's id to a pid file, so a
timeout or a cancel can kill the whole process tree through a second exec: a kubelet does
not kill an exec'd process when its stream goes away.

Stdin never relies on EOF (kwok's exec never delivers it): the wrapper reads exactly the
announced number of bytes with `head -c N` and gives the command those.
"""

from __future__ import annotations

import json
import re
import signal
import uuid
from typing import Any, AsyncIterator, Sequence

from lap_tui.domain.sandbox import SandboxError

STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255
CHANNELS = {STDOUT: "stdout", STDERR: "stderr"}
STDIN_CHUNK = 1 << 16

# $1 pid file, $2 working dir, $3 stdin byte count or "-", then the command. `setsid` in a
# background job (not a group leader) makes no fork, so $! is the new session's id.
WRAPPER = r'''f=$1; d=$2; n=$3; shift 3
cd -- "$d" || exit 126
if [ "$n" = - ]; then setsid "$@" </dev/null &
else exec 3<&0; head -c "$n" <&3 | setsid "$@" & fi
p=$!; echo "$p" >"$f"
wait "$p"; r=$?; rm -f -- "$f"; exit "$r"'''

# $1 pid file. Waits (bounded) for the wrapper to have written it: the kill may race the start.
KILLER = r'''f=$1; i=0
while [ ! -s "$f" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i+1)); done
[ -s "$f" ] || exit 0
p=$(cat -- "$f"); kill -9 "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null; rm -f -- "$f"'''


def new_token() -> str:
    return uuid.uuid4().hex


def pid_file(token: str) -> str:
    # Outside the workspace, so it is never among the user's files; /tmp exists in any image.
    return f"/tmp/.lap-exec-{token}.pid"


def wrapped(argv: Sequence[str], *, token: str, cwd: str, env: dict[str, str] | None,
            stdin_len: int | None) -> list[str]:
    cmd = list(argv)
    if env:
        cmd = ["env", "--", *(f"{k}={v}" for k, v in env.items()), *cmd]
    return ["sh", "-c", WRAPPER, "lap-exec", pid_file(token), cwd, "-" if stdin_len is None else str(stdin_len),
            *cmd]


def killer(token: str) -> list[str]:
    return ["sh", "-c", KILLER, "lap-kill", pid_file(token)]


def exit_code(status_json: bytes | str) -> int:
    """The exit code from the error channel's Status.

    A real kubelet says `Success`, or `Failure` with reason `NonZeroExitCode` and a cause
    `ExitCode` whose message is the code. kwok differs: its exec runs the command on its
    host with Go's os/exec and reports a non-zero exit as a 500 InternalError whose message
    ends in "exit status N" (or "signal: killed"); that shape is accepted too.
    """
    try:
        st = json.loads(status_json)
    except ValueError:
        raise SandboxError(f"the sandbox answered with an unreadable exec status: {status_json[:200]!r}") from None
    if st.get("status") == "Success":
        return 0
    if st.get("reason") == "NonZeroExitCode":
        for cause in (st.get("details") or {}).get("causes") or ():
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message"))
                except (TypeError, ValueError):
                    break
    message = str(st.get("message") or "")
    m = re.search(r"exit status (\d+)\s*$", message)
    if m:
        return int(m.group(1))
    m = re.search(r"signal: ([a-z ]+)\s*$", message)
    if m:
        name = "SIG" + m.group(1).strip().upper().replace(" ", "")
        sig = {"SIGKILLED": signal.SIGKILL, "SIGTERMINATED": signal.SIGTERM, "SIGINTERRUPT": signal.SIGINT,
               "SIGHANGUP": signal.SIGHUP}.get(name, getattr(signal, name, None))
        if sig is not None:
            return 128 + int(sig)
    raise SandboxError(f"the command could not run in the sandbox: {message[:300] or st.get('reason')}",
                       "see `lap-tui sandboxes logs`")


async def frames(ws: Any) -> AsyncIterator[tuple[int, bytes]]:
    """(channel, payload) of each non-empty frame of an exec websocket until it closes or fails
    (a text frame, from an older server, is taken as its UTF-8 bytes)."""
    import aiohttp  # the kubernetes client's transport: loaded with it, never at app start

    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.BINARY:
            data = msg.data
        elif msg.type == aiohttp.WSMsgType.TEXT:
            data = msg.data.encode()
        else:
            return
        if data:
            yield data[0], data[1:]


def frame(channel: int, data: bytes) -> bytes:
    return bytes([channel]) + data
