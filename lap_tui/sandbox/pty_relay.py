"""An interactive command on a pseudo-terminal lap-tui owns, relayed to the user's terminal.

A sandboxed shell must never hold the user's terminal: whatever holds a terminal can push
bytes into its input queue (TIOCSTI), change its foreground process group, or leave it in raw
mode, and the user's own shell reads that terminal once lap-tui returns. So the command gets a
fresh pty as its controlling terminal (it is a session leader of its own), and lap-tui copies
bytes between the user's terminal and the pty's master side: keys in, output out, the window
size on every SIGWINCH. The user's terminal is in raw mode meanwhile (the pty's own line
discipline does echo, ctrl+c and job control for the shell) and is always restored, with its
foreground process group, whatever the command did or however it ended.

No Textual here (sandbox layer): the app calls `shell()` inside `App.suspend()`.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import select
import signal
import struct
import termios
import tty
from typing import Callable

# Modes a program in the shell may have switched on and not off (killed full-screen programs):
# mouse reporting, bracketed paste, application cursor keys and keypad, hidden cursor, the
# alternate screen, colours. Turned off when the relay ends, before the user's shell (or the
# app) gets its terminal back.
RESET_MODES = (b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l\x1b[?2004l\x1b[?1l\x1b>"
               b"\x1b[?1047l\x1b[?25h\x1b[0m")
DRAIN_QUIET = 0.5  # after the command ends: stop reading its output once the pty is quiet this long
MAX_PENDING = 1 << 20  # keys not yet taken by the command: stop reading the terminal beyond this


def terminal_fds() -> tuple[int, int]:
    """The user's terminal: keys from stdin, output to stdout (stderr when stdout is redirected)."""
    out = 1 if os.isatty(1) or not os.isatty(2) else 2
    return 0, out


def controlling_terminal(then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A preexec_fn: make fd 0 (the pty's slave side) the child's controlling terminal.

    The child is already a session leader (start_new_session=True runs setsid() before
    preexec_fn), so TIOCSCTTY attaches the pty, never the user's terminal.
    """

    def run() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if then is not None:
            then()

    return run


class PtyRelay:
    """One pty for one interactive command, and the copying between it and the user's terminal."""

    def __init__(self, user_in: int = 0, user_out: int = 1) -> None:
        self.user_in, self.user_out = user_in, user_out
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self._in_tty = os.isatty(user_in)
        self._pending = bytearray()  # keys waiting for the command to take them
        self._reading_user = False
        self._input_ended = False
        self._relaying = False
        self._writing = False
        self._copy_size()

    def close_slave(self) -> None:
        """The child has its copies: ours must go, or the master never sees the command's end."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def close(self) -> None:
        self.close_slave()
        if self.master >= 0:
            os.close(self.master)  # hangs up whatever still holds the slave side
            self.master = -1

    async def relay(self, proc: asyncio.subprocess.Process) -> int:
        """Copy bytes both ways until `proc` exits; the user's terminal is restored on every path."""
        loop = asyncio.get_running_loop()
        with UserTerminal(self.user_in, self.user_out, self._copy_size):
            try:
                self._relaying = True
                self._read_user(loop, True)
                loop.add_reader(self.master, self._from_command)
                code = await proc.wait()
                loop.remove_reader(self.master)
                self._drain()
                return code
            finally:
                self._relaying = False
                self._read_user(loop, False)
                loop.remove_reader(self.master)
                if self._writing:
                    loop.remove_writer(self.master)
                self.close()

    # --- the two directions -----------------------------------------------------------------
    def _read_user(self, loop: asyncio.AbstractEventLoop, on: bool) -> None:
        if on and not self._reading_user:
            loop.add_reader(self.user_in, self._from_user, loop)
        elif not on and self._reading_user:
            loop.remove_reader(self.user_in)
        self._reading_user = on

    def _from_user(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            data = os.read(self.user_in, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # the terminal is gone
        if not data:
            # End of input (a pipe, or a hung-up terminal): the shell reads end-of-file too.
            self._read_user(loop, False)
            self._input_ended = True
            data = b"\x04"  # VEOF: the pty's line discipline turns it into end-of-file
        self._pending += data
        if len(self._pending) > MAX_PENDING:
            self._read_user(loop, False)  # the command is not reading: let the terminal wait
        self._to_command(loop)

    def _to_command(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._pending:
            try:
                n = os.write(self.master, self._pending)
            except BlockingIOError:
                break
            except OSError:
                self._pending.clear()  # the command's side is closed: nobody will read these
                break
            del self._pending[:n]
        if self._pending and not self._writing:
            loop.add_writer(self.master, self._to_command, loop)
            self._writing = True
        elif not self._pending and self._writing:
            loop.remove_writer(self.master)
            self._writing = False
        if not self._pending and not self._reading_user and not self._input_ended and self._relaying:
            self._read_user(loop, True)  # the command caught up: take keys again

    def _from_command(self) -> None:
        try:
            data = os.read(self.master, 1 << 16)
        except BlockingIOError:
            return
        except OSError:  # EIO: every holder of the slave side has closed it
            asyncio.get_running_loop().remove_reader(self.master)
            return
        if data:
            _write_all(self.user_out, data)

    def _drain(self) -> None:
        """What the command wrote just before it ended. Stops at EIO (nobody holds the slave side
        any more: always so once a sandbox's pid namespace is gone) or when the pty stays quiet."""
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except BlockingIOError:
                if not select.select([self.master], [], [], DRAIN_QUIET)[0]:
                    return
                continue
            except OSError:
                return
            if not data:
                return
            _write_all(self.user_out, data)

    # --- the user's terminal ------------------------------------------------------------------
    def _copy_size(self) -> None:
        if not self._in_tty and not os.isatty(self.user_out):
            return
        size = window_size(self.user_out, self.user_in)
        if size is not None:
            # Setting it on the master signals SIGWINCH to the command's foreground group.
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def window_size(*fds: int) -> tuple[int, int] | None:
    """(rows, columns) of the first of `fds` that is a terminal with a size."""
    for fd in fds:
        try:
            size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        except OSError:
            continue
        rows, cols = struct.unpack("HHHH", size)[:2]
        if (rows, cols) != (0, 0):
            return rows, cols
    return None


class UserTerminal:
    """The user's terminal while a relayed shell has the screen (a local pty or a pod's exec TTY):
    raw mode (the far side's line discipline does echo and ctrl+c), `on_resize` on every SIGWINCH,
    and on leaving, whatever happened, its modes, input queue, foreground group and screen modes
    put back."""

    def __init__(self, user_in: int, user_out: int, on_resize: Callable[[], None] | None = None) -> None:
        self.user_in, self.user_out, self.on_resize = user_in, user_out, on_resize
        self._saved: list | None = None
        self._foreground: int | None = None
        self._undo_winch: Callable[[], None] | None = None

    def __enter__(self) -> "UserTerminal":
        in_tty = os.isatty(self.user_in)
        self._saved = _tcgetattr(self.user_in) if in_tty else None
        self._foreground = _foreground(self.user_in) if in_tty else None
        if self.on_resize is not None:
            self._undo_winch = self._watch_resize(asyncio.get_running_loop(), self.on_resize)
        try:
            if self._saved is not None:
                tty.setraw(self.user_in, termios.TCSANOW)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._undo_winch is not None:
            self._undo_winch()
            self._undo_winch = None
        self._restore(self._saved, self._foreground)

    @staticmethod
    def _watch_resize(loop: asyncio.AbstractEventLoop, on_resize: Callable[[], None]) -> Callable[[], None] | None:
        """Follow SIGWINCH while relaying; the returned function puts the previous handler back."""
        previous = signal.getsignal(signal.SIGWINCH)
        try:
            loop.add_signal_handler(signal.SIGWINCH, on_resize)
        except (ValueError, RuntimeError, NotImplementedError):
            return None  # not the main thread: the size is copied once, at the start

        def undo() -> None:
            loop.remove_signal_handler(signal.SIGWINCH)
            signal.signal(signal.SIGWINCH, previous if previous is not None else signal.SIG_DFL)

        return undo

    def _restore(self, saved: list | None, foreground: int | None) -> None:
        if saved is not None:
            try:
                termios.tcsetattr(self.user_in, termios.TCSADRAIN, saved)
                # Answers the terminal sent to the command's queries and keys typed as it ended
                # are not for whoever reads this terminal next.
                termios.tcflush(self.user_in, termios.TCIFLUSH)
            except termios.error:
                pass
        if foreground is not None:
            _reclaim_foreground(self.user_in, foreground)
        if os.isatty(self.user_out):
            _write_all(self.user_out, RESET_MODES)


def _tcgetattr(fd: int) -> list | None:
    try:
        return termios.tcgetattr(fd)
    except termios.error:
        return None


def _foreground(fd: int) -> int | None:
    try:
        return os.tcgetpgrp(fd) if os.tcgetpgrp(fd) == os.getpgrp() else None
    except OSError:
        return None


def _reclaim_foreground(fd: int, pgrp: int) -> None:
    """Make `pgrp` the terminal's foreground group again if something moved it. The command never
    had this terminal, so this is a safety net; SIGTTOU is blocked so a background caller is not
    stopped by asking."""
    try:
        if os.tcgetpgrp(fd) == pgrp:
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
        try:
            os.tcsetpgrp(fd, pgrp)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADF, errno.EPIPE):
                return  # the user's terminal is gone: nothing left to show it on
            raise
        view = view[n:]
