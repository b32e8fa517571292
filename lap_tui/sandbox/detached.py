"""Detached commands: a CLI harness's turn, running in the sandbox on its own, outliving the
lap-tui process that started it.

Local backend. An exec is one bwrap tied to lap-tui (--die-with-parent; killed with it). A
detached command is the same bwrap started under a small *keeper* shell on the host instead:

    lap-tui --(spawns, never waits on)--> sh keeper (own session) --> bwrap --die-with-parent --> command

The keeper is the parent bwrap dies with, so the sandbox's processes live exactly as long as
the keeper: lap-tui dying (terminal closed, SIGKILL) does not touch it, while killing the
keeper's process group kills bwrap, and bwrap dying takes its pid namespace (every process of
the command) along. The keeper records the command's exit code in the sandbox's host-side
`run/detached/` directory, which the sandbox cannot see or forge; its pid file there and in
`run/` (like every exec's) lets any lap-tui process find it, and makes suspend and delete
(`LocalBackend._kill_all`) stop it like any other command of the sandbox.

What the command prints is its own business: the caller redirects it to a file in the
workspace inside the sandbox (so a symbolic link planted there resolves in the sandbox, never
on the host) and follows that file with `read_from`.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.sandbox import SandboxError
from lap_tui.sandbox import paths, proctree
from lap_tui.sandbox.base import SandboxBackend
from lap_tui.sandbox.limits import preexec

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")
# $1: the host-side base path of the record files; the rest: bwrap's argv.
_KEEPER = ('base=$1; shift; "$@" </dev/null >/dev/null 2>>"$base.err"; code=$?; '
           'echo "$code" >"$base.exit.tmp" && mv -f "$base.exit.tmp" "$base.exit"')
KILL_WAIT = 10.0


@dataclass(frozen=True)
class DetachedState:
    state: str  # "running" | "exited" | "gone" (killed, or the host restarted: no exit code)
    exit_code: int | None = None
    stderr: str = ""  # bwrap's own complaints (the command's output goes where it redirected it)


class Detached:
    """Start, observe and kill detached commands of one backend's sandboxes."""

    def __init__(self, backend: SandboxBackend) -> None:
        from lap_tui.sandbox.local import LocalBackend

        if not isinstance(backend, LocalBackend):
            raise SandboxError(f"the {backend.name} backend cannot run CLI harness turns yet",
                               "use the local backend (bubblewrap) for agents on CLI harnesses")
        self.backend = backend

    def _dir(self, sandbox_id: str) -> Path:
        d = self.backend.sandbox_dir(sandbox_id) / "run" / "detached"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _base(self, sandbox_id: str, name: str) -> Path:
        if not _NAME.match(name):
            raise InvalidInput(f"detached command name {name!r} is invalid", "lowercase letters, digits, '-'")
        return self._dir(sandbox_id) / name

    async def start(self, sandbox_id: str, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                    cwd: str | None = None, ro_binds: Sequence[tuple[str, str]] = ()) -> int:
        """Start `argv` detached; `ro_binds` are (host path, sandbox path) pairs mounted
        read-only. Returns the keeper's pid. A previous record under `name` is replaced."""
        b = self.backend
        base = self._base(sandbox_id, name)
        prepared = await b._prepare(sandbox_id, list(argv), env, cwd, interactive=False)
        _rec, mode, full, proc_env, join, limits, _workspace = prepared[:7]
        keep = tuple(prepared[7]) if len(prepared) > 7 else ()
        try:
            if mode != "bwrap":
                raise SandboxError("CLI harnesses run only in bubblewrap sandboxes",
                                   "install bubblewrap; unisolated mode cannot mount the CLI and the relay")
            full = with_ro_binds(full, ro_binds)
            for suffix in (".exit", ".exit.tmp", ".err", ".pid"):
                _unlink(Path(f"{base}{suffix}"))
            try:
                proc = subprocess.Popen(["/bin/sh", "-c", _KEEPER, "lap-keeper", str(base), *full],
                                        env=proc_env, cwd=str(b.workspace(sandbox_id)), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, preexec_fn=preexec(join, limits), pass_fds=keep)
            except (OSError, subprocess.SubprocessError) as exc:
                raise SandboxError(f"cannot start a command in sandbox {sandbox_id}: {exc}",
                                   "see `lap-tui sandboxes logs`") from None
        finally:
            for fd in keep:
                os.close(fd)
        # Reap it if it ends while we live; if we die first, init does. Never killed on our exit.
        threading.Thread(target=proc.wait, name=f"reap {proc.pid}", daemon=True).start()
        _write(Path(f"{base}.pid"), f"{proc.pid}\n")
        _write(b.sandbox_dir(sandbox_id) / "run" / str(proc.pid), "")
        b._log(sandbox_id, f"detached {name} started (keeper pid {proc.pid})")
        return proc.pid

    def state(self, sandbox_id: str, name: str) -> DetachedState:
        base = self._base(sandbox_id, name)
        err = _read(Path(f"{base}.err"))[-2000:]
        code = _read(Path(f"{base}.exit")).strip()
        if code:
            try:
                return DetachedState("exited", int(code), err)
            except ValueError:
                return DetachedState("exited", 255, err)
        if self._pid(sandbox_id, name) is not None:
            return DetachedState("running", None, err)
        return DetachedState("gone", None, err)

    def _pid(self, sandbox_id: str, name: str) -> int | None:
        """The keeper's pid while it runs (checked by its command line: pids are reused)."""
        base = self._base(sandbox_id, name)
        text = _read(Path(f"{base}.pid")).strip()
        if not text.isdigit():
            return None
        pid = int(text)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            return None
        return pid if os.fsencode(str(base)) + b"\0" in cmdline else None

    async def kill(self, sandbox_id: str, name: str) -> bool:
        """Kill the command's whole process tree; True once every process of it is gone.

        The keeper's group holds the keeper and bwrap; the sandbox's own processes die with
        bwrap (--die-with-parent), but asynchronously: each is killed here too, and waited for.
        """
        pid = self._pid(sandbox_id, name)
        if pid is None:
            return True
        # Stopped first, then killed: bwrap's pid 1 may have left the group and not yet be tied
        # to bwrap's life (sandbox/proctree.py).
        tree = proctree.kill_tree(pid) or [pid]
        self.backend._log(sandbox_id, f"detached {name} killed (keeper pid {pid}, {len(tree)} processes)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_WAIT
        while any(_alive(p) for p in tree) and loop.time() < deadline:
            await asyncio.sleep(0.02)  # a SIGKILLed process is gone within milliseconds
        return not any(_alive(p) for p in tree)

    async def read_from(self, sandbox_id: str, path: str, offset: int, max_bytes: int) -> bytes:
        """Up to `max_bytes` of a workspace file from byte `offset` (b"" at its end or when absent)."""
        root = self.backend.workspace(sandbox_id)
        try:
            return await asyncio.to_thread(_read_range, root, path, offset, max_bytes)
        except NotFound:
            return b""


def with_ro_binds(bwrap_argv: list[str], binds: Sequence[tuple[str, str]]) -> list[str]:
    """Insert read-only mounts before bwrap remounts its root read-only (mount points are made
    on that root, so they must come first)."""
    if not binds:
        return list(bwrap_argv)
    extra: list[str] = []
    for host, inner in binds:
        if not inner.startswith("/") or "\0" in inner or "\0" in host:
            raise InvalidInput(f"bind target {inner!r} is not an absolute path", "fix the harness setup")
        extra += ["--ro-bind", host, inner]
    for i in range(len(bwrap_argv) - 1):
        if bwrap_argv[i] == "--remount-ro" and bwrap_argv[i + 1] == "/":
            return bwrap_argv[:i] + extra + bwrap_argv[i:]
    i = bwrap_argv.index("--chdir")
    return bwrap_argv[:i] + extra + bwrap_argv[i:]


def _read_range(root: Path, path: str, offset: int, max_bytes: int) -> bytes:
    import stat

    comps = paths.resolve(root, path)
    dfd = paths._walk(root, comps, path)
    try:
        fd = os.open(comps[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except FileNotFoundError:
        raise NotFound(f"no file {path!r} in the workspace") from None
    finally:
        os.close(dfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidInput(f"{path!r} is not a regular file", "the CLI's output must be a file")
        return os.pread(fd, max_bytes, offset)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    """Running (a zombie has finished: only its parent's wait is missing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] != b"Z"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
