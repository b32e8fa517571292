"""The local backend: a persistent workspace per sandbox, each command run under bubblewrap.

A "running" local sandbox is a workspace directory plus its state in the store; it keeps no
process alive between commands. Each exec is one bwrap process tree in fresh namespaces, in
the sandbox's cgroup, killed whole (pid namespace) on timeout, cancel, suspend or delete, and
killed by the kernel when lap-tui dies (--die-with-parent).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import AsyncIterator, Mapping, Sequence

from lap_tui.config import Settings, config_dir, sqlite_files
from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.clock import epoch_from_iso, now_iso
from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.sandbox import (WORKSPACE, DirEntry, ExecResult, SandboxError, SandboxEvent, SandboxPhase,
                                    SandboxSpec, SandboxStatus, SandboxUnavailable, check_sandbox_id,
                                    sandbox_id_problem)
from lap_tui.domain.secrets import Redactor
from lap_tui.sandbox import bwrap as bw
from lap_tui.sandbox import paths, proctree, pty_relay, seccomp
from lap_tui.sandbox.base import DEFAULT_TIMEOUT, OutputCallback, SandboxBackend, check_argv, forget_sandbox
from lap_tui.sandbox.env import sandbox_env, secret_values
from lap_tui.sandbox.limits import Cgroups, Limits, preexec
from lap_tui.sandbox.output import DEFAULT_MAX_OUTPUT, CappedBuffer
from lap_tui.store.base import SandboxRecord, Store

DEFAULT_PIDS = 512
DEFAULT_MAX_FILE = 64 * 2**20
TOUCH_EVERY = 1.0  # seconds between last-used writes for one sandbox
OUT_OF_MEMORY = "out of memory: it went over the sandbox's memory limit (the agent's memory setting)"
FILE_DEADLINE = 60.0  # seconds a host-side file operation in a workspace may take
RELEASE_EVERY, RELEASE_TRIES = 0.02, 100  # retrying the removal of a cgroup whose processes are dying
DRAIN_AFTER_KILL = 5.0
MAX_LOG = 1 << 20
_SIGNALLED_BASE = 128
_BWRAP_START_ERRORS = (b"bwrap: execvp ", b"bwrap: Can't chdir")


@dataclass(eq=False)
class _Running:
    proc: asyncio.subprocess.Process
    killed: str | None = None

    def kill(self, reason: str) -> None:
        if self.killed is None:
            self.killed = reason
        _kill_tree(self.proc.pid)


@dataclass
class _State:
    running: set[_Running] = field(default_factory=set)
    touched: float = 0.0
    warned_seccomp: bool = False


class LocalBackend(SandboxBackend):
    name = "local"

    def __init__(self, store: Store, settings: Settings, *, root: Path | None = None,
                 environ: Mapping[str, str] | None = None, limits: str = "auto", pids_limit: int = DEFAULT_PIDS,
                 max_output: int = DEFAULT_MAX_OUTPUT, bwrap: str | None = None,
                 allow_unisolated: bool | None = None) -> None:
        self.store = store
        self.settings = settings
        self.root = root or Path(settings.data_dir) / "sandboxes"
        self.environ = dict(os.environ if environ is None else environ)
        self.pids_limit = pids_limit
        self.max_output = max_output
        self.allow_unisolated = settings["allow_unisolated"] if allow_unisolated is None else allow_unisolated
        self._bwrap = bwrap
        self._limits_mode = limits  # "auto" | "cgroup" | "rlimit"
        self._cgroups = Cgroups()
        self._states: dict[str, _State] = {}
        self._watchers: set[asyncio.Event] = set()
        self._releasing: dict[str, asyncio.Task] = {}  # sandbox id -> removal of its cgroup, retried
        self._redact = Redactor(secret_values(settings))

    # --- isolation ---------------------------------------------------------------------
    def isolation(self) -> bw.Probe:
        return bw.probe(self._bwrap)

    def _mode(self) -> str:
        """"bwrap", or "none" when the user opted into unisolated processes; else refuse."""
        p = self.isolation()
        if p.ok:
            return "bwrap"
        if self.allow_unisolated:
            return "none"
        raise SandboxUnavailable(p.problem, p.hint)

    def limits_in_use(self) -> str:
        if self._limits_mode == "rlimit":
            return "rlimits (forced)"
        return self._cgroups.describe()

    # --- lifecycle ---------------------------------------------------------------------
    def sandbox_dir(self, sandbox_id: str) -> Path:
        """The sandbox's own directory, never anywhere else: ids come from a store others write."""
        d = self.root / check_sandbox_id(sandbox_id)
        if os.path.realpath(d) != os.path.join(os.path.realpath(self.root), sandbox_id):
            raise SandboxError(f"the directory of sandbox {sandbox_id} ({d}) leads outside {self.root}",
                               "remove that link; lap-tui made a plain directory there")
        return d

    def workspace(self, sandbox_id: str) -> Path:
        return self.sandbox_dir(sandbox_id) / "workspace"

    def _private_paths(self) -> list[str]:
        """lap-tui's own places, hidden in every sandbox wherever they are (bwrap.command_argv)."""
        s = self.settings
        return [str(p) for p in (s.data_dir, self.root, s.state_dir, config_dir(self.environ),
                                 *([s.config_file] if s.config_file else []), *sqlite_files(s))]

    async def ensure(self, spec: SandboxSpec) -> SandboxStatus:
        mode = self._mode()
        spec.settings.validate()
        check_sandbox_id(spec.id)  # made from store rows (session id, context key): check before use
        rec = await self.store.get_sandbox(spec.id)
        if rec is not None and (rec.team != spec.team or rec.backend != self.name):
            raise SandboxError(f"sandbox {spec.id} belongs to team {rec.team} ({rec.backend} backend)",
                               "sandboxes are never shared across teams or backends")
        sdir = self.sandbox_dir(spec.id)
        # Owner-only down to each sandbox's directory: a sandbox may leave setuid files in its
        # workspace (as root they are root's), which no other user of the host may reach.
        _private_dirs(*([Path(self.settings.data_dir)] if self.root.parent == Path(self.settings.data_dir) else []),
                      self.root, sdir)
        os.chmod(sdir, 0o700)  # also for directories made before this rule
        self.workspace(spec.id).mkdir(exist_ok=True)
        (sdir / "run").mkdir(exist_ok=True)
        now = now_iso()
        data = {"settings": spec.settings.to_dict(), "isolation": mode,
                "workspace": str(self.workspace(spec.id))}
        if rec is None:
            rec = SandboxRecord(id=spec.id, backend=self.name, team=spec.team, phase=SandboxPhase.RUNNING.value,
                                agent_id=spec.agent_id, session_id=spec.session_id, context_key=spec.context_key,
                                ready=True, message=_message(mode), created_at=now, last_used_at=now, data=data)
            rec = await self.store.put_sandbox(rec)
            self._log(spec.id, f"created ({_message(mode)})")
        else:
            # Only over the row as read: deleted or changed meanwhile by another process, start over.
            new = await self.store.update_sandbox(
                spec.id, phase_was=rec.phase, phase=SandboxPhase.RUNNING.value, ready=True, suspended_at=None,
                agent_id=spec.agent_id or rec.agent_id, message=_message(mode), last_used_at=now, data=data)
            if new is None:
                return await self.ensure(spec)
            if rec.phase != SandboxPhase.RUNNING.value:
                self._log(spec.id, f"resumed from {rec.phase}")
            rec = new
        self._state(spec.id).touched = time.monotonic()
        self._changed()
        return _status(rec)

    async def suspend(self, sandbox_id: str) -> SandboxStatus:
        rec = await self._record(sandbox_id)
        n = self._kill_all(sandbox_id, "suspended")
        await self._reap(sandbox_id)
        self._release_cgroup(sandbox_id)
        if rec.phase != SandboxPhase.SUSPENDED.value:
            new = await self._set_phase(rec, phase=SandboxPhase.SUSPENDED.value, ready=False,
                                        suspended_at=now_iso())
            if new is not None:
                rec = new
                self._log(sandbox_id, f"suspended ({n} process tree(s) stopped, workspace kept)")
                self._changed()
            else:
                rec = await self._record(sandbox_id)
        return _status(rec)

    async def resume(self, sandbox_id: str) -> SandboxStatus:
        rec = await self._record(sandbox_id)
        if rec.phase != SandboxPhase.RUNNING.value:
            self._mode()
            new = await self._set_phase(rec, phase=SandboxPhase.RUNNING.value, ready=True, suspended_at=None,
                                        last_used_at=now_iso())
            if new is not None:
                rec = new
                self._log(sandbox_id, "resumed")
                self._changed()
            else:
                rec = await self._record(sandbox_id)
        return _status(rec)

    async def delete(self, sandbox_id: str) -> None:
        rec = await self._record(sandbox_id, checked=False)
        if sandbox_id_problem(rec.id) is None:
            self._kill_all(sandbox_id, "deleted")
            await self._reap(sandbox_id)
            self._cgroups.remove(sandbox_id)
            await asyncio.to_thread(_rmtree, self.sandbox_dir(sandbox_id))
        # else: a row lap-tui never made; its id names no directory, cgroup or process of ours,
        # so only the row goes.
        await forget_sandbox(self.store, sandbox_id, rec.session_id)
        self._states.pop(sandbox_id, None)
        self._changed()

    async def status(self, sandbox_id: str) -> SandboxStatus:
        return _status(await self._record(sandbox_id))

    async def list(self) -> list[SandboxStatus]:
        # A sandbox no session uses any more (kept at deletion) is listed as an orphan.
        orphans = await self.store.orphan_sandbox_ids()
        return [replace(_status(r), orphan=r.id in orphans) for r in await self.store.list_sandboxes(backend=self.name)]

    async def logs(self, sandbox_id: str, *, tail: int | None = None) -> list[str]:
        await self._record(sandbox_id)
        try:
            lines = (self.sandbox_dir(sandbox_id) / "events.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        return lines[-tail:] if tail else lines

    async def suspend_idle(self, *, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        done = []
        for rec in await self.store.list_sandboxes(backend=self.name):
            if rec.phase != SandboxPhase.RUNNING.value or sandbox_id_problem(rec.id):
                continue  # a row with an id lap-tui never makes is not ours to suspend
            idle = int((rec.data or {}).get("settings", {}).get("idle_suspend_seconds", 0))
            last = rec.last_used_at or rec.created_at
            if idle <= 0 or not last or now - epoch_from_iso(last) < idle:
                continue
            if self._state(rec.id).running or self._live_pids(rec.id):
                continue  # busy is not idle
            await self.suspend(rec.id)
            done.append(rec.id)
        return done

    async def watch(self, *, poll_interval: float = 1.0) -> AsyncIterator[SandboxEvent]:
        seen: dict[str, SandboxStatus] = {}
        wake = asyncio.Event()
        self._watchers.add(wake)
        try:
            while True:
                wake.clear()
                current = {s.id: s for s in await self.list()}
                for sid, st in current.items():
                    old = seen.get(sid)
                    if old is None:
                        yield SandboxEvent("added", st)
                    elif _visible(old) != _visible(st):
                        yield SandboxEvent("modified", st)
                for sid in seen.keys() - current.keys():
                    yield SandboxEvent("deleted", seen[sid])
                seen = current
                try:
                    await asyncio.wait_for(wake.wait(), poll_interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._watchers.discard(wake)

    async def close(self) -> None:
        for sid in list(self._states):
            for r in list(self._states[sid].running):
                r.kill("cancelled")
            await self._reap(sid)
            self._release_cgroup(sid)
        # pending cgroup removals end within RELEASE_TRIES * RELEASE_EVERY (processes are dying)
        await asyncio.gather(*self._releasing.values(), return_exceptions=True)

    # --- commands ----------------------------------------------------------------------
    async def exec(self, sandbox_id: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: str | None = None, timeout: float | None = DEFAULT_TIMEOUT, stdin: bytes | None = None,
                   on_output: OutputCallback | None = None, max_output: int | None = None) -> ExecResult:
        argv = check_argv(argv)
        rec, mode, full_argv, proc_env, join, limits, workspace, keep = await self._prepare(
            sandbox_id, argv, env, cwd, interactive=False)
        cap = self.max_output if max_output is None else max_output
        out, err = CappedBuffer(cap), CappedBuffer(cap)
        state = self._state(sandbox_id)
        ooms = self._cgroups.oom_kills(sandbox_id) if join else 0
        started = time.monotonic()
        spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
            *full_argv, env=proc_env, cwd=str(workspace),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, preexec_fn=preexec(join, limits), pass_fds=keep))
        try:
            proc = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            # Cancelled while bwrap starts. asyncio would kill bwrap alone, and bwrap's pid 1, still
            # setting up (--die-with-parent not armed yet), would run the command to its end: let
            # the start finish, then kill the whole group (pid 1 is in it) like any other command.
            await _kill_when_started(spawn)
            self._release_cgroup(sandbox_id)
            raise
        except (OSError, Exception) as exc:  # SubprocessError from preexec_fn
            self._release_cgroup(sandbox_id)
            raise SandboxError(f"cannot start a command in sandbox {sandbox_id}: {exc}",
                               "see `lap-tui sandboxes logs`") from None
        finally:
            _close_fds(keep)
        running = _Running(proc)
        state.running.add(running)
        pidfile = self.sandbox_dir(sandbox_id) / "run" / str(proc.pid)
        _touch_file(pidfile)
        readers = [asyncio.create_task(_pump(proc.stdout, "stdout", out, on_output)),
                   asyncio.create_task(_pump(proc.stderr, "stderr", err, on_output))]
        feeder = asyncio.create_task(_feed(proc, stdin)) if stdin is not None else None
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                running.kill("timeout")
            except asyncio.CancelledError:
                running.kill("cancelled")
                await asyncio.shield(self._finish(proc, readers, feeder))
                raise
            await self._finish(proc, readers, feeder)
        finally:
            state.running.discard(running)
            _unlink(pidfile)
            oom_kills = self._cgroups.oom_kills(sandbox_id) if join else 0
            self._release_cgroup(sandbox_id)
        code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        code = _SIGNALLED_BASE - code if code < 0 else code
        duration = time.monotonic() - started
        if mode == "bwrap" and code == 1 and err.total < 4096:
            _raise_if_not_started(sandbox_id, argv, err.value())
        if (running.killed is None and code == _SIGNALLED_BASE + signal.SIGKILL and join
                and oom_kills > ooms):
            # The kernel's OOM killer, not lap-tui: say so, or a bare 137 explains nothing.
            running.killed = OUT_OF_MEMORY
        self._log(sandbox_id, f"exec {_show_argv(argv, self._redact)} -> exit {code} in {duration * 1000:.0f} ms"
                  + (f" (killed: {running.killed})" if running.killed else "")
                  + (" (output truncated)" if out.truncated or err.truncated else ""))
        if code != _SIGNALLED_BASE + signal.SIGKILL:
            await self._touch(sandbox_id)  # not after a kill: see shell()
        return ExecResult(exit_code=code, stdout=out.value(), stderr=err.value(),
                          stdout_truncated=out.truncated, stderr_truncated=err.truncated,
                          timed_out=running.killed == "timeout", killed=running.killed, duration_s=duration)

    async def _finish(self, proc: asyncio.subprocess.Process, readers: list[asyncio.Task],
                      feeder: asyncio.Task | None) -> None:
        await proc.wait()
        # bwrap is gone, so its pid namespace and every process in it are too: pipes close.
        done, pending = await asyncio.wait(readers, timeout=DRAIN_AFTER_KILL)
        for t in pending:
            t.cancel()
        if feeder is not None:
            feeder.cancel()
        await asyncio.gather(*readers, *([feeder] if feeder else []), return_exceptions=True)

    async def shell(self, sandbox_id: str, argv: Sequence[str] | None = None, *,
                    terminal: tuple[int, int] | None = None) -> int:
        """The command runs on a pty lap-tui owns, relayed to the user's terminal (`terminal`:
        the descriptors keys come from and output goes to; stdin and stdout by default). It never
        holds the user's terminal, so it cannot type into it (TIOCSTI), take its foreground group
        or leave it in raw mode: see sandbox/pty_relay.py."""
        if argv is None:
            argv = ["/bin/bash", "-i"] if os.path.exists("/bin/bash") else ["/bin/sh", "-i"]
        extra = {k: self.environ[k] for k in ("TERM", "COLORTERM") if k in self.environ}
        rec, mode, full_argv, proc_env, join, limits, workspace, keep = await self._prepare(
            sandbox_id, check_argv(argv), extra, None, interactive=True)
        self._log(sandbox_id, f"shell {_show_argv(argv, self._redact)}")
        relay = pty_relay.PtyRelay(*(terminal or pty_relay.terminal_fds()))
        try:
            # Its own session (so the process-group kill reaches it) with the pty as its terminal.
            proc = await asyncio.create_subprocess_exec(
                *full_argv, env=proc_env, cwd=str(workspace), stdin=relay.slave, stdout=relay.slave,
                stderr=relay.slave, start_new_session=True, pass_fds=keep,
                preexec_fn=pty_relay.controlling_terminal(preexec(join, limits)))
        except BaseException as exc:
            relay.close()
            if isinstance(exc, Exception):
                raise SandboxError(f"cannot start a shell in sandbox {sandbox_id}: {exc}",
                                   "see `lap-tui sandboxes logs`") from None
            raise
        finally:
            _close_fds(keep)
            relay.close_slave()
        running = _Running(proc)
        state = self._state(sandbox_id)
        state.running.add(running)
        pidfile = self.sandbox_dir(sandbox_id) / "run" / str(proc.pid)
        _touch_file(pidfile)
        try:
            code = await relay.relay(proc)
        except BaseException:
            running.kill("cancelled")
            raise
        finally:
            state.running.discard(running)
            _unlink(pidfile)
        if running.killed:
            self._log(sandbox_id, f"shell ended: killed ({running.killed})")
        if code != -signal.SIGKILL:
            # Not after a kill: that is a delete or suspend (maybe by another process), not a use
            # (the touch itself could no longer bring a row back: store.touch_sandbox).
            await self._touch(sandbox_id)
        return _SIGNALLED_BASE - code if code < 0 else code

    async def _prepare(self, sandbox_id: str, argv: list[str], env: Mapping[str, str] | None, cwd: str | None,
                       *, interactive: bool) -> tuple:
        rec = await self._record(sandbox_id)
        mode = self._mode()
        if rec.phase != SandboxPhase.RUNNING.value:
            new = await self._set_phase(rec, phase=SandboxPhase.RUNNING.value, ready=True, suspended_at=None,
                                        last_used_at=now_iso())
            if new is not None:
                rec = new
                self._log(sandbox_id, "resumed on use")
                self._changed()
            else:
                rec = await self._record(sandbox_id)
        data = rec.data or {}
        settings = SandboxSettings.from_dict(data.get("settings", {}))
        workspace = self.workspace(sandbox_id)
        if not workspace.is_dir():
            raise SandboxError(f"the workspace of sandbox {sandbox_id} is gone ({workspace})",
                               "delete the sandbox (`lap-tui sandboxes delete`) and run again")
        proc_env, dropped = sandbox_env(self.settings, settings.env, self.environ, env, team=rec.team)
        if dropped:
            self._log(sandbox_id, "left out of the environment: " + ", ".join(dropped))
        limits = Limits(settings.memory_bytes, self.pids_limit, Limits.parse_cpu(settings.cpu))
        join: list[str] = []
        if self._limits_mode != "rlimit":
            try:
                join = self._cgroups.prepare(sandbox_id, limits)
            except OSError as exc:
                if self._limits_mode == "cgroup":
                    raise SandboxError(f"cannot set up the cgroup of sandbox {sandbox_id}: {exc}") from None
                self._log(sandbox_id, f"cgroup not set up ({exc}): this command runs under rlimits")
        keep: tuple[int, ...] = ()
        if mode == "bwrap":
            inner_cwd = _inner_cwd(cwd)
            filter_fd = self._seccomp_fd(sandbox_id)
            keep = (filter_fd,) if filter_fd is not None else ()
            full = bw.command_argv(self.isolation().bwrap or "bwrap", workspace=workspace, argv=argv,
                                   cwd=inner_cwd, hostname=sandbox_id, network=settings.network,
                                   interactive=interactive, seccomp_fd=filter_fd,
                                   hide=self._private_paths(),
                                   tmp_bytes=limits.memory_bytes if self.isolation().sizes_tmpfs else None)
        else:
            host_cwd = workspace.joinpath(*paths.resolve(workspace, _inner_cwd(cwd)))
            proc_env["HOME"] = str(workspace)
            full = ["/usr/bin/env", "-C", str(host_cwd), "--", *argv]
        return rec, mode, full, proc_env, join, limits, workspace, keep

    def _seccomp_fd(self, sandbox_id: str) -> int | None:
        """A fresh descriptor of the no-terminal-injection filter for one bwrap (it reads it whole)."""
        try:
            return seccomp.filter_fd(seccomp.program())
        except seccomp.Unsupported as exc:
            state = self._state(sandbox_id)
            if not state.warned_seccomp:
                state.warned_seccomp = True
                self._log(sandbox_id, str(exc))
            return None

    # --- files -------------------------------------------------------------------------
    async def read_file(self, sandbox_id: str, path: str, *, max_bytes: int | None = None) -> bytes:
        await self._record(sandbox_id)
        return await self._on_host(sandbox_id, f"reading {path!r}", paths.read_file, self.workspace(sandbox_id),
                                   path, DEFAULT_MAX_FILE if max_bytes is None else max_bytes)

    async def write_file(self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o644) -> None:
        await self._record(sandbox_id)
        await self._on_host(sandbox_id, f"writing {path!r}", paths.write_file, self.workspace(sandbox_id), path,
                            data, mode)

    async def list_dir(self, sandbox_id: str, path: str = ".") -> list[DirEntry]:
        await self._record(sandbox_id)
        return await self._on_host(sandbox_id, f"listing {path!r}", paths.list_dir, self.workspace(sandbox_id), path)

    file_deadline = FILE_DEADLINE

    async def _on_host(self, sandbox_id: str, what: str, fn, *args):  # type: ignore[no-untyped-def]
        """Run a file operation in a workspace (a directory the sandbox controls) with a deadline.

        In a daemon thread of its own: should the kernel ever hold it (a FIFO, a stuck mount),
        the caller gets an error in time and the process can still exit."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(ok: bool, value: object) -> None:
            if done.done():
                return  # given up on (cancelled by the deadline)
            if ok:
                done.set_result(value)
            else:
                done.set_exception(value)  # type: ignore[arg-type]

        def run() -> None:
            try:
                result = (True, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result = (False, exc)
            try:
                loop.call_soon_threadsafe(settle, *result)
            except RuntimeError:
                pass  # the loop is gone: nobody waits any more

        threading.Thread(target=run, name=f"lap-file-{sandbox_id}", daemon=True).start()
        try:
            return await asyncio.wait_for(done, self.file_deadline)
        except asyncio.TimeoutError:
            self._log(sandbox_id, f"{what} did not finish in {self.file_deadline:g} s: given up")
            raise SandboxError(f"{what} in sandbox {sandbox_id} did not finish in {self.file_deadline:g} s",
                               "something in the workspace blocks it (a FIFO, a stuck mount): "
                               "look with `lap-tui sandboxes exec`") from None

    # --- helpers -----------------------------------------------------------------------
    async def _record(self, sandbox_id: str, *, checked: bool = True) -> SandboxRecord:
        if checked:
            check_sandbox_id(sandbox_id)
        rec = await self.store.get_sandbox(sandbox_id)
        if rec is None or rec.backend != self.name:
            raise NotFound(f"no sandbox {sandbox_id!r}", "`lap-tui sandboxes list` shows them")
        return rec

    def _state(self, sandbox_id: str) -> _State:
        st = self._states.get(sandbox_id)
        if st is None:
            st = self._states[sandbox_id] = _State()
        return st

    def _changed(self) -> None:
        for w in self._watchers:
            w.set()

    async def _set_phase(self, rec: SandboxRecord, **fields) -> SandboxRecord | None:  # type: ignore[no-untyped-def]
        """Change the phase of the row as read, compare-and-set: when another process changed its
        phase meanwhile, apply ours to what it is now unless it is already there. None then (and
        NotFound when it was deleted): never a row brought back or a newer change undone."""
        for _ in range(5):
            new = await self.store.update_sandbox(rec.id, phase_was=rec.phase, **fields)
            if new is not None:
                return new
            rec = await self._record(rec.id)
            if rec.phase == fields["phase"]:
                return None
        return None

    async def _touch(self, sandbox_id: str) -> None:
        state = self._state(sandbox_id)
        if time.monotonic() - state.touched < TOUCH_EVERY:
            return
        state.touched = time.monotonic()
        # The last-used time alone, on the row as it is now: a whole-row write of an earlier read
        # would bring back a sandbox another process deleted meanwhile, or undo its suspend.
        await self.store.touch_sandbox(sandbox_id, now_iso())

    def _live_pids(self, sandbox_id: str) -> list[int]:
        """bwrap processes of this sandbox started by any lap-tui process, from the pid files."""
        rundir = self.sandbox_dir(sandbox_id) / "run"
        marker = os.fsencode(str(self.workspace(sandbox_id)))
        live = []
        try:
            names = os.listdir(rundir)
        except FileNotFoundError:
            return []
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    cmdline = fh.read()
            except OSError:
                cmdline = b""
            if marker in cmdline:
                live.append(int(name))
            else:
                _unlink(rundir / name)  # stale: that process is gone
        return live

    def _kill_all(self, sandbox_id: str, reason: str) -> int:
        check_sandbox_id(sandbox_id)  # a kill target: never an id we could not have made
        n = 0
        for r in list(self._state(sandbox_id).running):
            r.kill(reason)
            n += 1
        for pid in self._live_pids(sandbox_id):
            n += _kill_tree(pid)
        for pid in self._cgroups.pids(sandbox_id) if self._cgroups.available() else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return n

    def _release_cgroup(self, sandbox_id: str) -> None:
        """The sandbox's cgroup goes when its last command here has ended, so none pile up; the
        next command makes it again (limits.Join). bwrap reports the exit before its pid namespace
        has finished dying, so a busy cgroup is tried again for a moment; one still busy after
        that runs a command of another lap-tui process, which removes it when that ends."""
        if self._state(sandbox_id).running or self._limits_mode == "rlimit" or not self._cgroups.available():
            return
        self._cgroups.remove(sandbox_id)
        if sandbox_id not in self._releasing and any(d.exists() for d in self._cgroups.dirs(sandbox_id)):
            self._releasing[sandbox_id] = asyncio.get_running_loop().create_task(self._release_soon(sandbox_id))

    async def _release_soon(self, sandbox_id: str) -> None:
        try:
            for _ in range(RELEASE_TRIES):
                await asyncio.sleep(RELEASE_EVERY)
                if self._state(sandbox_id).running:
                    return  # in use again: its last command will release it
                self._cgroups.remove(sandbox_id)
                if not any(d.exists() for d in self._cgroups.dirs(sandbox_id)):
                    return
        finally:
            self._releasing.pop(sandbox_id, None)

    async def _reap(self, sandbox_id: str) -> None:
        """Wait (briefly) for this process's killed commands to finish."""
        procs = [r.proc.wait() for r in self._state(sandbox_id).running]
        if procs:
            await asyncio.wait([asyncio.ensure_future(p) for p in procs], timeout=DRAIN_AFTER_KILL)

    def _log(self, sandbox_id: str, line: str) -> None:
        path = self.sandbox_dir(sandbox_id) / "events.log"
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{now_iso()} {self._redact(line)}\n")
                full = fh.tell() > MAX_LOG
            if full:
                os.replace(path, path.with_name("events.log.1"))  # keep one older file
        except FileNotFoundError:
            pass


def _message(mode: str) -> str:
    return "isolated by bubblewrap" if mode == "bwrap" else "UNISOLATED: plain host processes (allow_unisolated)"


def _status(rec: SandboxRecord) -> SandboxStatus:
    data = rec.data or {}
    return SandboxStatus(id=rec.id, backend=rec.backend, team=rec.team, phase=SandboxPhase(rec.phase),
                         ready=rec.ready, agent_id=rec.agent_id, session_id=rec.session_id,
                         context_key=rec.context_key, isolated=data.get("isolation", "bwrap") == "bwrap",
                         message=rec.message, restarts=rec.restarts, created_at=rec.created_at,
                         updated_at=rec.updated_at, last_used_at=rec.last_used_at, suspended_at=rec.suspended_at)


def _visible(s: SandboxStatus) -> tuple:
    return (s.phase, s.ready, s.isolated, s.message, s.restarts, s.last_used_at, s.suspended_at, s.orphan)


def _inner_cwd(cwd: str | None) -> str:
    if not cwd:
        return WORKSPACE
    if "\0" in cwd:
        raise InvalidInput("working directory contains a NUL byte", "fix it")
    return cwd if cwd.startswith("/") else f"{WORKSPACE}/{cwd}"


def _raise_if_not_started(sandbox_id: str, argv: list[str], stderr: bytes) -> None:
    """bwrap says `bwrap: execvp X: <reason>` when the program cannot be started."""
    text = stderr.decode(errors="replace").strip()
    if not text.startswith("bwrap: "):
        return
    if text.startswith("bwrap: execvp"):
        reason = text.rsplit(":", 1)[-1].strip()
        code = 127 if "No such file" in reason else 126
        err = SandboxError(f"command {argv[0]!r} cannot be started in sandbox {sandbox_id}: {reason}",
                           "is it installed in the sandbox's image or workspace, and on PATH?")
        err.exit_code = code
        raise err
    if text.startswith("bwrap: Can't chdir"):
        raise InvalidInput(f"working directory does not exist in sandbox {sandbox_id}: {text[7:]}",
                           f"give an existing directory, e.g. {WORKSPACE}")
    raise SandboxError(f"sandbox {sandbox_id} could not start: {text}", "see `lap-tui sandboxes logs`")


def _show_argv(argv: Sequence[str], redact: Redactor) -> str:
    text = " ".join(a if a and all(c.isalnum() or c in "-_./=:" for c in a) else repr(a) for a in argv)
    if len(text) > 200:
        text = text[:200] + "..."
    return redact(text)


async def _pump(stream: asyncio.StreamReader | None, name: str, buf: CappedBuffer,
                on_output: OutputCallback | None) -> None:
    if stream is None:
        return
    # bwrap writes "bwrap: " and its message in separate writes, so hold back the start of
    # stderr until its first line is complete before deciding whether it is bwrap's.
    head: bytes | None = b"" if name == "stderr" else None
    while True:
        chunk = await stream.read(1 << 16)
        if chunk:
            buf.add(chunk)
        if head is not None:
            head += chunk
            if chunk and b"\n" not in head and len(head) < 512:
                continue
            chunk, head = head, None
            if chunk.startswith(_BWRAP_START_ERRORS):
                chunk = b""  # the program never started: exec raises a clear error instead
        if chunk and on_output is not None:
            r = on_output(name, chunk)
            if inspect.isawaitable(r):
                await r
        if not chunk and head is None and stream.at_eof():
            return


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        proc.stdin.close()


def _touch_file(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except FileNotFoundError:
        pass


async def _kill_when_started(spawn: asyncio.Future) -> None:
    try:
        proc = await spawn
    except BaseException:  # noqa: BLE001 - it never started: nothing to kill
        return
    _kill_tree(proc.pid)
    await proc.wait()


def _kill_tree(pid: int) -> int:
    """SIGKILL a command's whole tree: bwrap, its group and the sandbox's pid 1 (whose death ends
    its pid namespace, every process of the sandbox), even in the first milliseconds, when pid 1
    has left bwrap's group but is not yet tied to bwrap's life (sandbox/proctree.py). 1 if
    anything was killed."""
    return 1 if proctree.kill_tree(pid) else 0


def _close_fds(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _private_dirs(*dirs: Path) -> None:
    """Each made owner-only when missing (their parents as usual); existing ones are left as they are."""
    for d in dirs:
        d.parent.mkdir(parents=True, exist_ok=True)
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass


def _rmtree(path: Path) -> None:
    def fix(func, p, exc):  # type: ignore[no-untyped-def]
        # A sandbox may leave read-only directories behind; the host may still remove them.
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix) if path.exists() else None
