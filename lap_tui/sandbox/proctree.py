"""Killing a sandboxed command's process tree whole, whatever the moment.

bwrap runs a command as: bwrap (our child, its own process group) -> its clone, the sandbox's
pid 1 (init of a new pid namespace) -> the command. Killing pid 1 kills the namespace. Killing
bwrap's group reaches pid 1 only until pid 1 calls setsid (--new-session), and bwrap dying
takes pid 1 along only once pid 1 has armed --die-with-parent, which it does after setsid and a
fork: a kill landing in between (the first milliseconds of a command) left pid 1 and the
command running, unparented (found by tests/sandbox/test_early_kill.py: a third of the kills
timed at that moment).

So the group is stopped first (SIGSTOP): a stopped bwrap or keeper cannot clone or fork, and
its children stay its children (a stopped parent reaps nothing, so their pids cannot be
reused), so once every member of the group is seen stopped the tree below it is complete and
stable: pid 1 is in it whether or not it has left the group. Everything in it is killed, then
the group.
"""

from __future__ import annotations

import os
import signal
import time

STOP_WAIT = 2.0  # seconds to wait for the group to stop (microseconds normally; bounded anyway)
_STOPPED = (b"T", b"t", b"Z", b"X")  # stopped, traced, zombie, dead: can start nothing any more


def kill_tree(root: int) -> list[int]:
    """SIGKILL `root` (a process group leader we started), its group and every process below it.
    The tree as it was (to wait for); empty when nothing of it was left."""
    if not _signal(root, signal.SIGSTOP):
        return []
    deadline = time.monotonic() + STOP_WAIT
    while True:
        tree = [root, *descendants(root)]
        running = [p for p in tree if (p == root or _pgid(p) == root) and _state(p) not in (None, *_STOPPED)]
        if not running or time.monotonic() > deadline:
            break
        for p in running:  # joined the group after the group stop (forked meanwhile): stop it too
            _kill(p, signal.SIGSTOP)
        time.sleep(0.0002)
    # The group's members and their children (pid 1 among them): their parents are stopped, so
    # these pids cannot have been reused. Deeper processes die with pid 1's namespace.
    group = {root, *(p for p in tree if _pgid(p) == root)}
    for p in [p for p in tree if p in group or _ppid(p) in group]:  # chosen before any dies
        _kill(p, signal.SIGKILL)
    _signal(root, signal.SIGKILL)
    return tree


def descendants(root: int) -> list[int]:
    """Every process below `root` (host pids), from the kernel's child lists, else /proc's
    parent links."""
    out: list[int] = []
    todo = [root]
    while todo:
        kids = _children(todo.pop())
        if kids is None:
            return _descendants_by_scan(root)
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    """Running (a zombie has finished: only its parent's wait is missing)."""
    state = _state(pid)
    return state is not None and state not in b"ZX"


def _signal(root: int, sig: int) -> bool:
    hit = False
    for send in (os.killpg, os.kill):  # the group, and root itself should it lead none
        try:
            send(root, sig)
            hit = True
        except (ProcessLookupError, PermissionError):
            pass
    return hit


def _kill(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _stat(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name (state first); [] when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2:].split()  # the name may hold spaces and parentheses


def _state(pid: int) -> bytes | None:
    fields = _stat(pid)
    return fields[0][:1] if fields else None


def _pgid(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if len(fields) > 2 else None


def _ppid(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _children(pid: int) -> list[int] | None:
    """None when the kernel keeps no child lists (CONFIG_PROC_CHILDREN off)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids += [int(x) for x in fh.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # that thread ended
            return None
        except OSError:
            continue
    return kids


def _descendants_by_scan(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if len(fields) > 1 and fields[1].isdigit():
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
