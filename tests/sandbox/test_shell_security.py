"""The interactive shell and terminal injection (security issue 15, items 1 and 8).

A sandbox controls its workspace, which is the shell's HOME: its `.bashrc` runs in every
`sandboxes shell`. Here it tries what an agent could: push a command into the terminal with
TIOCSTI so the operator's own shell runs it once lap-tui returns. And a shell must die with
its sandbox, whatever the limit mode.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import shutil
import signal
import struct
import subprocess
import sys
import termios
import uuid
from pathlib import Path

import pytest

from lap_tui.sandbox import seccomp
from lap_tui.sandbox.local import LocalBackend
from tests.conftest import ROOT, need
from tests.sandbox.conftest import Maker, forget_cgroups, live_processes

LAP = str(ROOT / ".venv" / "bin" / "lap-tui")

INJECT = """python3 - <<'EOF' > /workspace/result 2>&1
import errno, fcntl, os, termios
fd = os.open("/dev/tty", os.O_RDWR)
try:
    for c in "{command}\\n":
        fcntl.ioctl(fd, termios.TIOCSTI, c.encode())
    print("injected")
except OSError as e:
    print("blocked", errno.errorcode.get(e.errno, e.errno))
EOF
exit
"""


def _cli_env(tmp: Path) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
            "XDG_STATE_HOME": str(tmp / "state"), "LITELLM_API_BASE": "http://127.0.0.1:9",
            "LITELLM_API_KEY": "sk-test", "TERM": "xterm-256color", "PATH": os.environ["PATH"]}


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    r = subprocess.run([LAP, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"lap-tui {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def test_a_bashrc_cannot_type_into_the_operators_terminal(require_bwrap, tmp_path):
    """The attack for real: the operator's interactive bash in tmux runs `lap-tui sandboxes
    shell`; the sandbox's .bashrc pushes `echo PWNED > <host file>` into its terminal and exits.
    Before the fix the operator's bash read that line and ran it as the operator."""
    need(shutil.which("tmux") is not None, "tmux is not installed")
    need(os.path.exists("/usr/bin/python3"), "the attack needs python3 in the sandbox (/usr/bin/python3)")
    from tests.tui.e2e_tmux import Tmux

    env = _cli_env(tmp_path)
    marker = tmp_path / "PWNED"  # a host path: the sandbox cannot even see it
    _cli(env, "agents", "create", "bot", "--model", "m")
    session = _cli(env, "sessions", "new", "bot").strip()
    _cli(env, "sandboxes", "exec", session, "--stdin", "--", "sh", "-c", "cat > /workspace/.bashrc",
         stdin=INJECT.format(command=f"echo PWNED > {marker}"))
    tmux = Tmux(env)
    try:
        tmux.start("bash --norc --noprofile -i")
        tmux.keys(f"{LAP} sandboxes shell {session}; echo shell-exit-$?", literal=True)
        tmux.keys("Enter")
        tmux.wait(r"shell-exit-\d+", timeout=60)
        # Whatever was pushed into the operator's terminal sits before this line: once it has
        # run, so would have the injected one.
        tmux.keys("echo host-alive-$((40+2))", literal=True)
        tmux.keys("Enter")
        screen = tmux.wait(r"^host-alive-42", timeout=60)
    finally:
        tmux.kill()
    assert not marker.exists(), f"the sandbox ran a command on the host:\n{screen}"
    result = _cli(env, "sandboxes", "exec", session, "--", "cat", "/workspace/result")
    assert result.strip() == "blocked EPERM", result  # the seccomp filter refused the ioctl itself


PROBE = r"""
import errno, fcntl, os, termios
try:
    os.open("/dev/tty", os.O_RDWR)
    print("a controlling terminal")
except OSError as e:
    print("/dev/tty", errno.errorcode[e.errno])  # --new-session: none
os.setsid()  # a session leader without a terminal ...
m, s = os.openpty()
fcntl.ioctl(s, termios.TIOCSCTTY, 0)  # ... that takes a pty of its own: TIOCSTI's precondition
for name, req, arg in (("TIOCSTI", termios.TIOCSTI, b"x"), ("TIOCLINUX", 0x541C, b"\x03"),
                       ("TIOCSTI+high bits", termios.TIOCSTI | 1 << 32, b"y")):
    try:
        fcntl.ioctl(s, req, arg)
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
print("TIOCGWINSZ", len(fcntl.ioctl(s, termios.TIOCGWINSZ, b"\0" * 8)))
"""


async def test_every_command_runs_under_the_filter(backend, make):
    """Non-interactive commands too (they also keep --new-session): a process that gives itself
    a controlling pty, where TIOCSTI would otherwise work on this kernel, gets EPERM from the
    filter (the kernel's own refusals would be EIO or ENOTTY); other ioctls still work."""
    sid = await make.sandbox()
    r = await backend.exec(sid, ["python3", "-c", PROBE], timeout=60)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.decode().splitlines() == ["/dev/tty ENXIO", "TIOCSTI EPERM", "TIOCLINUX EPERM",
                                              "TIOCSTI+high bits EPERM", "TIOCGWINSZ 8"]


# --- the filter's program, run by a small classic-BPF interpreter --------------------------

def run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """What the kernel would return for one system call (struct seccomp_data, little-endian)."""
    a6 = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *a6)
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35):
            hit = acc == k if code == 0x15 else acc >= k
            pc += 1 + (jt if hit else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected BPF instruction {code:#x}")


ALLOW, DENY, KILL = seccomp.SECCOMP_RET_ALLOW, seccomp.SECCOMP_RET_ERRNO | errno.EPERM, seccomp.SECCOMP_RET_KILL_PROCESS


@pytest.mark.parametrize("machine, cases", [
    ("x86_64", [
        ((16, seccomp.AUDIT_ARCH_X86_64, (0, 0x5412)), DENY),
        ((16, seccomp.AUDIT_ARCH_X86_64, (0, 0x541C)), DENY),
        ((16, seccomp.AUDIT_ARCH_X86_64, (0, 0x5412 | 1 << 32)), DENY),  # the kernel reads 32 bits
        ((16, seccomp.AUDIT_ARCH_X86_64, (0, 0x5413)), ALLOW),  # TIOCGWINSZ
        ((1, seccomp.AUDIT_ARCH_X86_64, (0, 0x5412)), ALLOW),  # write(), not ioctl
        ((0x40000000 | 514, seccomp.AUDIT_ARCH_X86_64, (0, 0x5412)), DENY),  # x32 ioctl
        ((0x40000000 | 1, seccomp.AUDIT_ARCH_X86_64, ()), DENY),  # x32 at all
        ((54, seccomp.AUDIT_ARCH_I386, (0, 0x5412)), DENY),  # int 0x80 ioctl
        ((16, seccomp.AUDIT_ARCH_I386, (0, 0x5412)), ALLOW),  # 16 is lchown on i386
        ((29, seccomp.AUDIT_ARCH_AARCH64, (0, 0x5412)), KILL),  # not this host's
    ]),
    ("aarch64", [
        ((29, seccomp.AUDIT_ARCH_AARCH64, (0, 0x5412)), DENY),
        ((29, seccomp.AUDIT_ARCH_AARCH64, (0, 0x541C)), DENY),
        ((29, seccomp.AUDIT_ARCH_AARCH64, (0, 0x5413)), ALLOW),
        ((16, seccomp.AUDIT_ARCH_AARCH64, (0, 0x5412)), ALLOW),  # 16 is not ioctl here
        ((54, seccomp.AUDIT_ARCH_ARM, (0, 0x5412)), DENY),  # 32-bit arm ioctl
        ((16, seccomp.AUDIT_ARCH_X86_64, (0, 0x5412)), KILL),
    ]),
])
def test_the_filter_checks_each_architecture(machine, cases):
    program = seccomp.build(machine)
    for (nr, arch, args), expected in cases:
        assert run_bpf(program, nr, arch, args) == expected, (machine, hex(nr), hex(arch), args)


def test_other_architectures_are_refused_clearly():
    with pytest.raises(seccomp.Unsupported, match="no seccomp filter for the riscv64 architecture"):
        seccomp.build("riscv64")


# --- the relay on its own: no filter (unisolated), the injection lands in lap-tui's pty -------

async def test_an_injection_lands_in_lap_tuis_own_pty(sb_store, sb_settings, sb_environ, tmp_path):
    """Without bwrap (hence without the filter) TIOCSTI succeeds, but into the pty lap-tui made:
    nothing reaches the user's terminal, whose settings come back exactly as they were."""
    b = LocalBackend(sb_store, sb_settings, environ=sb_environ, bwrap="/nonexistent/bwrap", allow_unisolated=True)
    sid = await Maker(sb_store, b).sandbox()
    (b.workspace(sid) / ".bashrc").write_text(INJECT.replace("/workspace/result", str(b.workspace(sid) / "result"))
                                              .format(command=f"echo PWNED > {tmp_path / 'PWNED'}"))
    user_master, user_slave = os.openpty()  # the user's terminal: the test is the terminal emulator
    before = termios.tcgetattr(user_slave)
    try:
        code = await asyncio.wait_for(b.shell(sid, terminal=(user_slave, user_slave)), 60)
        queued = struct.unpack("i", fcntl.ioctl(user_slave, termios.FIONREAD, b"\0" * 4))[0]
        after = termios.tcgetattr(user_slave)
    finally:
        os.close(user_master)
        os.close(user_slave)
        await b.close()
    assert (b.workspace(sid) / "result").read_text().strip() == "injected"  # the ioctl worked ...
    assert queued == 0  # ... but nothing waits in the user's terminal for their shell to read
    assert after == before
    assert code == 0
    assert not (tmp_path / "PWNED").exists()


# --- item 8: a shell dies with its sandbox, on both limit modes --------------------------------

HOLDER = """
import asyncio, sys
from lap_tui.config import load_settings
from lap_tui.sandbox.local import LocalBackend
from lap_tui.store import open_store

async def main(sid, limits):
    settings = load_settings()
    store = await open_store(settings.database_url)
    try:
        print("holder-exit", await LocalBackend(store, settings, limits=limits).shell(sid), flush=True)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _in_own_terminal(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """Start `argv` as an operator would from their terminal: a pty the test holds the master of."""
    master, slave = os.openpty()

    def ctty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
                            start_new_session=True, preexec_fn=ctty)
    os.close(slave)
    return proc, master


def _read_until(master: int, text: bytes, proc: subprocess.Popen, limit: float = 60.0) -> bytes:
    import select
    import time

    seen = b""
    end = time.monotonic() + limit
    while text not in seen:
        left = end - time.monotonic()
        if left <= 0:
            break
        if select.select([master], [], [], min(left, 1.0))[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    assert text in seen, f"never saw {text!r}; got {seen[-2000:]!r}"
    return seen


async def _until(check, what: str, limit: float = 60.0) -> None:
    """Wait for a condition (a background job's exec follows the prompt's echo)."""
    end = asyncio.get_running_loop().time() + limit
    while not check():
        assert asyncio.get_running_loop().time() < end, what
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("action", ["delete", "suspend"])
@pytest.mark.parametrize("limits", ["rlimit", "cgroup"])
async def test_a_shell_dies_with_its_sandbox(require_bwrap, sb_store, sb_settings, sb_environ, limits, action):
    """`lap-tui sandboxes shell` in one process, a background `sleep` started in it, then the
    sandbox deleted or suspended from another process: the shell and the sleep are gone.
    Before the fix, in rlimit mode, the sleep lived on (the shell led no process group)."""
    other = LocalBackend(sb_store, sb_settings, environ=sb_environ, limits=limits)
    if limits == "cgroup":
        need(other._cgroups.available(), f"no writable cgroup here ({other._cgroups.problem})")
    sid = await Maker(sb_store, other).sandbox()
    mark = f"77{uuid.uuid4().int % 10**7:07d}"
    holder, master = _in_own_terminal([sys.executable, "-c", HOLDER, sid, limits], sb_environ | {"TERM": "dumb"})
    try:
        os.write(master, f"sleep {mark} & echo started-$((6*7))\n".encode())
        await asyncio.to_thread(_read_until, master, b"started-42", holder)
        await _until(lambda: live_processes(f"sleep {mark}"), "the background sleep never started")
        await getattr(other, action)(sid)
        tail = await asyncio.to_thread(_read_until, master, b"holder-exit ", holder)
        await asyncio.to_thread(holder.wait, 60)
        assert live_processes(f"sleep {mark}") == [], tail
        assert holder.returncode == 0
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        os.close(master)
        await other.close()
        forget_cgroups(other)


async def test_sigterm_ends_the_shell_and_gives_the_terminal_back(require_bwrap, sb_store, sb_settings, sb_environ):
    """The relay puts the user's terminal in raw mode; a `lap-tui sandboxes shell` ended by
    SIGTERM (or SIGHUP) must still restore it, and take the sandbox's processes with it."""
    b = LocalBackend(sb_store, sb_settings, environ=sb_environ)
    sid = await Maker(sb_store, b).sandbox()
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    mark = f"78{uuid.uuid4().int % 10**7:07d}"

    def ctty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([LAP, "sandboxes", "shell", sid], stdin=slave, stdout=slave, stderr=slave,
                            env=sb_environ | {"TERM": "dumb"}, start_new_session=True, preexec_fn=ctty)
    try:
        os.write(master, f"sleep {mark} & echo started-$((6*7))\n".encode())
        await asyncio.to_thread(_read_until, master, b"started-42", proc)
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # raw while relaying
        await _until(lambda: live_processes(f"sleep {mark}"), "the background sleep never started")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
        assert code == 128 + signal.SIGTERM
        assert termios.tcgetattr(slave) == before
        await _until(lambda: not live_processes(f"sleep {mark}"), "the sandbox's sleep outlived the shell")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
        await b.close()
        forget_cgroups(b)


class _Gated:
    """A store seen through a gate: lets a test order two processes' reads and writes."""

    def __init__(self, store, **overrides) -> None:
        self._store = store
        for name, fn in overrides.items():
            setattr(self, name, fn)

    def __getattr__(self, name):
        return getattr(self._store, name)


async def test_a_deleted_sandbox_stays_deleted_after_its_shell_ends(require_bwrap, sb_store, sb_settings,
                                                                    sb_environ):
    """The shell's last-used write after a kill read the row before another process deleted it
    and wrote it back after: the deleted sandbox came back as Running (seen in the app's list).
    Ordered here: the shell side's read happens first, the delete completes, then it may write."""
    gate_on, read, deleted = False, asyncio.Event(), asyncio.Event()

    async def get_sandbox(sandbox_id):
        rec = await sb_store.get_sandbox(sandbox_id)
        if gate_on:
            read.set()
            await deleted.wait()
        return rec

    shell: asyncio.Task | None = None

    async def delete_sandbox(sandbox_id):
        assert shell is not None
        await asyncio.wait([asyncio.create_task(read.wait()), shell], return_when=asyncio.FIRST_COMPLETED)
        await sb_store.delete_sandbox(sandbox_id)
        deleted.set()

    # The other process made the sandbox: this one has not touched it yet (touches are throttled).
    b = LocalBackend(_Gated(sb_store, delete_sandbox=delete_sandbox), sb_settings, environ=sb_environ)
    sid = await Maker(sb_store, b).sandbox()
    a = LocalBackend(_Gated(sb_store, get_sandbox=get_sandbox), sb_settings, environ=sb_environ)
    master, slave = os.openpty()
    shell = asyncio.create_task(a.shell(sid, terminal=(slave, slave)))
    try:
        os.write(master, b"echo ready-$((6*7))\n")
        await asyncio.to_thread(_read_until_fd, master, b"ready-42")
        gate_on = True
        await b.delete(sid)
        assert await asyncio.wait_for(shell, 60) == 137
        assert await sb_store.get_sandbox(sid) is None
    finally:
        shell.cancel()
        await asyncio.gather(shell, return_exceptions=True)
        os.close(master)
        os.close(slave)
        await a.close()
        forget_cgroups(a)


def _read_until_fd(fd: int, text: bytes, limit: float = 60.0) -> None:
    import select
    import time

    seen, end = b"", time.monotonic() + limit
    while text not in seen and time.monotonic() < end:
        if select.select([fd], [], [], 1.0)[0]:
            seen += os.read(fd, 65536)
    assert text in seen, seen[-2000:]
