"""Resource limits for sandboxed processes: cgroups where the host lets us write them, else rlimits.

A sandbox gets one cgroup (memory, process count, CPU) shared by all its commands, like a pod.
Commands join it before bwrap forks anything (in the child, between fork and exec), so nothing
the sandbox starts is ever outside it. Where no cgroup is writable (cgroup v2 without
delegation, no root), rlimits apply to each command instead: address space for memory and
RLIMIT_NPROC for processes (which the kernel does not enforce for root).
"""

from __future__ import annotations

import errno
import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lap_tui.domain.sandbox import check_sandbox_id, sandbox_id_problem

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP = "lap-tui"
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    pids: int
    cpu: float  # cores; 0 = no limit

    @staticmethod
    def parse_cpu(text: str) -> float:
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


class Cgroups:
    """Per-sandbox cgroups under this process's own cgroup (v1) or its parent (v2)."""

    def __init__(self, root: Path = CGROUP_ROOT, self_cgroup: str = "/proc/self/cgroup") -> None:
        self.root = root
        self._self_cgroup = self_cgroup
        self._bases: dict[str, Path] | None = None  # controller ("" on v2) -> our group dir
        self.problem = ""
        self._ready: set[str] = set()

    @property
    def version(self) -> int:
        return 2 if (self.root / "cgroup.controllers").is_file() else 1

    def available(self) -> bool:
        if self._bases is None:
            try:
                self._bases = self._v2_base() if self.version == 2 else self._v1_bases()
            except OSError as exc:
                self._bases = {}
                self.problem = f"cgroups are not writable here ({exc.strerror or exc})"
            self.sweep()
        return bool(self._bases)

    def sweep(self) -> int:
        """Remove the empty sandbox cgroups under our groups (left by processes that died before
        they could): rmdir fails on a cgroup with processes, so only empty ones go."""
        n = 0
        for base in (self._bases or {}).values():
            try:
                names = os.listdir(base)
            except OSError:
                continue
            for name in names:
                if sandbox_id_problem(name) is None and (base / name).is_dir():
                    try:
                        (base / name).rmdir()
                        n += 1
                    except OSError:
                        pass
        return n

    def describe(self) -> str:
        if not self.available():
            return "rlimits (" + (self.problem or "no writable cgroup") + ")"
        return f"cgroup v{self.version}"

    def _own_paths(self) -> dict[str, str]:
        paths: dict[str, str] = {}
        for line in Path(self._self_cgroup).read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                paths[c] = path
        return paths

    def _v1_bases(self) -> dict[str, Path]:
        own = self._own_paths()
        bases: dict[str, Path] = {}
        for ctrl in ("memory", "pids", "cpu"):
            mount = self.root / ctrl
            if ctrl not in own or not mount.is_dir():
                if ctrl == "cpu":
                    continue  # nice to have
                raise OSError(errno.ENOENT, f"no {ctrl} cgroup controller")
            base = mount / own[ctrl].lstrip("/") / GROUP
            base.mkdir(exist_ok=True)
            if ctrl == "memory":
                _write(base / "memory.use_hierarchy", "1", missing_ok=True)
            bases[ctrl] = base
        return bases

    def _v2_base(self) -> dict[str, Path]:
        own = self._own_paths().get("", "/")
        # A cgroup with processes cannot also hand controllers to children: use our parent.
        parent = self.root / own.lstrip("/")
        parent = parent.parent if own != "/" else parent
        base = parent / GROUP
        base.mkdir(exist_ok=True)
        available = (base / "cgroup.controllers").read_text().split()
        for ctrl in ("memory", "pids"):
            if ctrl not in available:
                raise OSError(errno.ENOENT, f"the {ctrl} controller is not delegated to {base}")
        wanted = [c for c in ("memory", "pids", "cpu") if c in available]
        _write(base / "cgroup.subtree_control", " ".join("+" + c for c in wanted))
        return {"": base}

    def dirs(self, sandbox_id: str) -> list[Path]:
        # The id names a cgroup we write limits to and kill the processes of: only our own names,
        # one level under our own groups (an absolute id would replace the base in `/`).
        check_sandbox_id(sandbox_id)
        return [b / sandbox_id for b in (self._bases or {}).values()]

    def prepare(self, sandbox_id: str, limits: Limits) -> list[str]:
        """Create (or re-limit) the sandbox's cgroup; the cgroup.procs files a command joins."""
        if not self.available():
            return []
        assert self._bases is not None
        joins = []
        for (ctrl, base), d in zip(self._bases.items(), self.dirs(sandbox_id)):
            key = f"{ctrl}:{sandbox_id}:{limits}"
            setup = [(str(d / name), value, missing_ok) for name, value, missing_ok in _settings(ctrl, limits)]
            joins.append(Join(d / "cgroup.procs", setup))
            try:
                d.mkdir()
            except FileExistsError:
                if key in self._ready:
                    continue
            try:
                for path, value, missing_ok in setup:
                    _write(Path(path), value, missing_ok=missing_ok)
            except FileNotFoundError:
                if d.exists():
                    raise  # a limit file missing: this controller cannot limit
                # Removed while we set it (another lap-tui process's sweep takes empty sandbox
                # cgroups, and one not joined yet is empty): the command's child makes it again,
                # limits first (Join). Never a command without its cgroup.
                continue
            self._ready.add(key)
        return joins

    def pids(self, sandbox_id: str) -> set[int]:
        found: set[int] = set()
        for d in self.dirs(sandbox_id):
            try:
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return found

    def oom_kills(self, sandbox_id: str) -> int:
        """How many processes the kernel has killed in the sandbox's cgroup for going over its
        memory limit (v1 memory.oom_control, v2 memory.events: "oom_kill N"); 0 where unknown."""
        total = 0
        for (ctrl, _), d in zip((self._bases or {}).items(), self.dirs(sandbox_id)):
            name = {"memory": "memory.oom_control", "": "memory.events"}.get(ctrl)
            try:
                text = (d / name).read_text() if name else ""
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    total += int(value)
        return total

    def remove(self, sandbox_id: str) -> None:
        for d in self.dirs(sandbox_id):
            try:
                d.rmdir()
            except OSError:
                pass
        self._ready = {k for k in self._ready if f":{sandbox_id}:" not in k}


def _settings(ctrl: str, limits: Limits) -> list[tuple[str, str, bool]]:
    """(file, value, may be missing) that limit one controller's cgroup ("" = cgroup v2)."""
    if ctrl == "memory":
        return [("memory.limit_in_bytes", str(limits.memory_bytes), False),
                ("memory.memsw.limit_in_bytes", str(limits.memory_bytes), True)]
    if ctrl == "pids":
        return [("pids.max", str(limits.pids), False)]
    if ctrl == "cpu":
        quota = int(limits.cpu * CPU_PERIOD_US) if limits.cpu > 0 else -1
        return [("cpu.cfs_period_us", str(CPU_PERIOD_US), False), ("cpu.cfs_quota_us", str(quota), False)]
    v2_quota = str(int(limits.cpu * CPU_PERIOD_US)) if limits.cpu > 0 else "max"
    return [("memory.max", str(limits.memory_bytes), False), ("memory.swap.max", "0", True),
            ("pids.max", str(limits.pids), False), ("cpu.max", f"{v2_quota} {CPU_PERIOD_US}", True)]


class Join(str):
    """A cgroup.procs file a command joins, with the writes that make its cgroup again: a
    sandbox's cgroup is removed when its last command ends, so another lap-tui process may
    remove it (empty) between prepare and the join; the child then makes it again itself."""

    setup: tuple[tuple[str, str, bool], ...]

    def __new__(cls, path: Path | str, setup: list[tuple[str, str, bool]]) -> Join:
        self = super().__new__(cls, str(path))
        self.setup = tuple(setup)
        return self


def _write(path: Path, value: str, *, missing_ok: bool = False) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def preexec(join: list[str], limits: Limits | None) -> Callable[[], None]:
    """Runs in the child between fork and exec: join the cgroup, else set rlimits.

    Only system calls here: the child of a threaded parent must not take locks.
    """
    joins = [(os.fsencode(p), os.fsencode(os.path.dirname(p)),
              [(os.fsencode(f), v.encode(), ok) for f, v, ok in getattr(p, "setup", ())]) for p in join]
    rl: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
    if not joins and limits is not None:
        rl += [(resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_NPROC, limits.pids)]

    def run() -> None:
        for p, group, setup in joins:
            try:
                fd = os.open(p, os.O_WRONLY)
            except FileNotFoundError:  # removed since prepare (see Join): make it again, limits first
                try:
                    os.mkdir(group)
                except FileExistsError:
                    pass
                for f, v, missing_ok in setup:
                    try:
                        wfd = os.open(f, os.O_WRONLY)
                    except FileNotFoundError:
                        if missing_ok:
                            continue
                        raise
                    try:
                        os.write(wfd, v)
                    finally:
                        os.close(wfd)
                fd = os.open(p, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        for kind, value in rl:
            resource.setrlimit(kind, (value, value))

    return run
