"""Who drives a session: `host/pid/start-time/nonce`, so a process on the same host can tell
at once that a lease's holder is dead (killed, crashed) and take over without waiting for
the lease to expire. Holders on other hosts are only ever taken over after expiry."""

from __future__ import annotations

import os
import secrets
import socket


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def new_holder() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}/{pid}/{_start_ticks(pid) or 0}/{secrets.token_hex(3)}"


def holder_is_dead(holder: str) -> bool:
    """True only when certain: same host, and that process is gone (or the pid was reused)."""
    parts = holder.split("/")
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    ticks = _start_ticks(int(parts[1]))
    return ticks is None or ticks != parts[2]
