"""Bubblewrap: is isolation available on this host, and the argv that isolates one command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lap_tui.domain.sandbox import WORKSPACE

INSTALL_HINT = ("install bubblewrap: `sudo apt-get install bubblewrap` (Debian/Ubuntu), "
                "`sudo dnf install bubblewrap` (Fedora), `sudo pacman -S bubblewrap` (Arch), "
                "`sudo apk add bubblewrap` (Alpine); or set LAP_ALLOW_UNISOLATED=1 to run agents' "
                "commands as plain host processes (no isolation at all)")
USERNS_HINT = ("enable unprivileged user namespaces: `sudo sysctl -w kernel.unprivileged_userns_clone=1`, "
               "or on Ubuntu 24.04+ `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, "
               "or check user.max_user_namespaces; or set LAP_ALLOW_UNISOLATED=1 (no isolation at all)")

# The host's system, read-only. Everything else of the host is simply not there.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
# Files under /etc no agent needs and no agent should read.
HIDDEN_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
                "/etc/security/opasswd", "/etc/machine-id")
HIDDEN_DIRS = ("/etc/ssl/private", "/etc/sudoers.d", "/etc/ssh", "/etc/NetworkManager/system-connections")


@dataclass(frozen=True)
class Probe:
    """Whether bubblewrap can isolate here; when not, why and what to do."""

    ok: bool
    bwrap: str | None
    problem: str = ""
    hint: str = ""
    version: str = ""

    @property
    def sizes_tmpfs(self) -> bool:
        """bwrap's `--size` (bubblewrap 0.5 and later): a tmpfs of a given size."""
        nums = re.findall(r"\d+", self.version)[:2]
        return len(nums) == 2 and (int(nums[0]), int(nums[1])) >= (0, 5)


_probes: dict[str | None, Probe] = {}


def probe(bwrap: str | None = None) -> Probe:
    """Find bwrap and try one isolated `true` (cached per process: a few milliseconds once)."""
    key = bwrap
    if key in _probes:
        return _probes[key]
    path = bwrap or shutil.which("bwrap")
    if not path or not os.access(path, os.X_OK):
        result = Probe(False, None, "bubblewrap (bwrap) is not installed, so sandboxes cannot be isolated",
                       INSTALL_HINT)
    else:
        result = _try(path)
    _probes[key] = result
    return result


def _try(path: str) -> Probe:
    argv = [path, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
            "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        out = subprocess.run(argv, capture_output=True, timeout=10, env={}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe(False, path, f"bubblewrap at {path} cannot run: {exc}", INSTALL_HINT)
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip().splitlines()
        detail = err[-1] if err else f"exit code {out.returncode}"
        return Probe(False, path, f"bubblewrap cannot create namespaces here ({detail})", USERNS_HINT)
    try:
        version = subprocess.run([path, "--version"], capture_output=True, timeout=5).stdout.decode().strip()
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    return Probe(True, path, version=version)


def command_argv(bwrap: str, *, workspace: Path, argv: Sequence[str], cwd: str, hostname: str,
                 network: bool, interactive: bool = False, seccomp_fd: int | None = None,
                 hide: Sequence[str] = (), tmp_bytes: int | None = None) -> list[str]:
    """bwrap's argv around `argv`. The environment is not on it: it goes as bwrap's own (clean)
    environment, so no value shows up in `ps` on the host. `seccomp_fd` is a descriptor the
    filter program can be read from (`seccomp.filter_fd`), passed on to bwrap."""
    a = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        a.append("--unshare-net")
    a += ["--die-with-parent", "--cap-drop", "ALL", "--hostname", hostname]
    if not interactive:
        a.append("--new-session")  # no controlling terminal (the interactive shell's is lap-tui's pty)
    if seccomp_fd is not None:
        a += ["--seccomp", str(seccomp_fd)]  # no TIOCSTI/TIOCLINUX (sandbox/seccomp.py)
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            a += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            a += ["--ro-bind", d, d]
    for f in HIDDEN_FILES:
        if os.path.lexists(f) and not os.path.isdir(f):
            a += ["--ro-bind", "/dev/null", f]
    for d in HIDDEN_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            a += ["--tmpfs", d, "--remount-ro", d]
    a += _hide_private(hide)
    if network:
        a += _resolv_conf()
    # The only writable memory-backed places: sized so that together they stay within the
    # sandbox's memory (rlimits do not count tmpfs pages), and /dev itself read-only.
    shm = [] if tmp_bytes is None else ["--size", str(max(tmp_bytes // 4, 1 << 20)), "--tmpfs", "/dev/shm",
                                         "--remount-ro", "/dev", "--size", str(max(tmp_bytes * 3 // 4, 1 << 20))]
    a += ["--proc", "/proc", "--dev", "/dev", *shm, "--tmpfs", "/tmp", "--dir", "/var/tmp",
          "--bind", str(workspace), WORKSPACE,
          "--remount-ro", "/",  # bwrap's root tmpfs: nothing but the mounts above is writable
          "--chdir", cwd, "--"]
    a += list(argv)
    return a


def _hide_private(paths: Sequence[str]) -> list[str]:
    """An empty read-only tmpfs over each of lap-tui's own directories (/dev/null over files) that
    the system directories mounted above would otherwise show: a data or config directory under
    /opt or /usr/local holds every workspace, the database and the gateway key."""
    mounted = [os.path.realpath(d) for d in SYSTEM_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    done = list(HIDDEN_DIRS)
    out: list[str] = []
    for p in sorted({os.path.realpath(p) for p in paths}):
        if not any(p == m or p.startswith(m + "/") for m in mounted):
            continue  # not in the sandbox's view at all
        if any(p == h or p.startswith(h + "/") for h in done):
            continue  # inside one already hidden
        if os.path.isdir(p):
            out += ["--tmpfs", p, "--remount-ro", p]
            done.append(p)
        elif os.path.exists(p):
            out += ["--ro-bind", "/dev/null", p]
    return out


def _resolv_conf() -> list[str]:
    """/etc/resolv.conf is often a symlink into /run, which the sandbox does not see."""
    link = "/etc/resolv.conf"
    if not os.path.islink(link):
        return []
    target = os.path.realpath(link)
    if target.startswith("/etc/") or not os.path.isfile(target):
        return []
    return ["--ro-bind", target, target]
