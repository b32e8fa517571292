"""The sandbox backend interface: `local` (bubblewrap) and `kubernetes` (agent-sandbox) implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Mapping, Sequence

from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.sandbox import DirEntry, ExecResult, SandboxError, SandboxEvent, SandboxSpec, SandboxStatus

if TYPE_CHECKING:
    from lap_tui.store.base import Store

# Called with ("stdout" | "stderr", chunk) as output arrives; may be a coroutine function.
OutputCallback = Callable[[str, bytes], "Awaitable[None] | None"]

DEFAULT_TIMEOUT = 600.0


class SandboxGone(SandboxError):
    """The sandbox's pod went away while a command ran in it (deleted, evicted, its node lost).

    The command's outcome is unknown, so it must not be retried blindly: the engine journals
    the tool call interrupted, waits for the sandbox to be ready again, and goes on.
    """


def check_argv(argv: Sequence[str]) -> list[str]:
    """A command as the backends run it: a non-empty list of strings without NUL bytes (a
    single string would be split by nobody and run as one odd program name)."""
    if isinstance(argv, (str, bytes)):
        raise InvalidInput("the command must be a list of arguments, not one string", 'e.g. ["sh", "-c", "echo hi"]')
    argv = list(argv)
    if not argv or not argv[0]:
        raise InvalidInput("no command given", "give the program and its arguments")
    for a in argv:
        if not isinstance(a, str) or "\0" in a:
            raise InvalidInput(f"command argument {a!r} is not a string without NUL bytes", "fix the command")
    return argv


async def forget_sandbox(store: "Store", sandbox_id: str, session_id: str | None) -> None:
    """After a backend removed a sandbox: drop its row, and the session's reference to it (a
    session that already moved to another sandbox keeps that one)."""
    await store.delete_sandbox(sandbox_id)
    if session_id:
        try:
            session = await store.get_session(session_id)
        except NotFound:
            return
        if session.sandbox_ref == sandbox_id:
            await store.update_session(session.id, sandbox_ref=None)


class SandboxBackend(ABC):
    """One sandbox per session (or per team context); every operation names it by id."""

    name: str  # "local" | "kubernetes"

    @abstractmethod
    async def ensure(self, spec: SandboxSpec) -> SandboxStatus:
        """Create the sandbox if it does not exist, resume it if suspended; ready on return."""

    @abstractmethod
    async def exec(self, sandbox_id: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: str | None = None, timeout: float | None = DEFAULT_TIMEOUT, stdin: bytes | None = None,
                   on_output: OutputCallback | None = None, max_output: int | None = None) -> ExecResult:
        """Run `argv` to completion (or timeout/cancel, which kill its whole process tree).

        `env` adds to the sandbox's environment; `cwd` is a path inside the sandbox. Output is
        streamed to `on_output` and kept up to `max_output` bytes per stream.
        """

    @abstractmethod
    async def shell(self, sandbox_id: str, argv: Sequence[str] | None = None) -> int:
        """An interactive command on this terminal (a login shell by default); its exit code."""

    @abstractmethod
    async def read_file(self, sandbox_id: str, path: str, *, max_bytes: int | None = None) -> bytes: ...

    @abstractmethod
    async def write_file(self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o644) -> None: ...

    @abstractmethod
    async def list_dir(self, sandbox_id: str, path: str = ".") -> list[DirEntry]: ...

    @abstractmethod
    async def logs(self, sandbox_id: str, *, tail: int | None = None) -> list[str]: ...

    @abstractmethod
    async def suspend(self, sandbox_id: str) -> SandboxStatus:
        """Stop every process of the sandbox; its files stay."""

    @abstractmethod
    async def resume(self, sandbox_id: str) -> SandboxStatus: ...

    @abstractmethod
    async def delete(self, sandbox_id: str) -> None:
        """Stop its processes and remove the sandbox with its files."""

    @abstractmethod
    async def status(self, sandbox_id: str) -> SandboxStatus: ...

    @abstractmethod
    async def list(self) -> list[SandboxStatus]: ...

    @abstractmethod
    def watch(self, *, poll_interval: float = 1.0) -> AsyncIterator[SandboxEvent]:
        """Every sandbox once as `added`, then each change (from any process) until cancelled."""

    @abstractmethod
    async def suspend_idle(self, *, now: float | None = None) -> list[str]:
        """Suspend sandboxes idle longer than their agent allows; the ids suspended."""

    async def for_id(self, sandbox_id: str) -> "SandboxBackend":
        """The backend that holds this sandbox: itself, or the one a router sends it to."""
        return self

    async def close(self) -> None:
        """Stop this process's running commands and background work."""
