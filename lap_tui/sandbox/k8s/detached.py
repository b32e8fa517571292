"""Detached commands in a pod: a CLI harness's turn, outliving the lap-tui that started it.

The local backend's `sandbox.detached.Detached` keeps its records on the host, out of the
sandbox's reach. A pod has no such place, so here everything goes through exec:

- **start**: one exec runs `nohup setsid sh -c KEEPER ... &` and returns at once. The keeper
  (its own session, so the exec's end and lap-tui's death leave it alone: a kubelet never
  kills what an exec started) runs the command and then writes its exit code to
  `.lap/run/<name>.exit` in the workspace; its pid goes to `/tmp/.lap-detached-<sandbox>-<name>.pid`.
  /tmp is the container's own: a pod restarted (suspend, eviction) forgets the pid and the
  command is "gone" (the driver resumes the turn), while the workspace keeps the exit code.
- **state**: one exec: the exit file, else the pid alive with the keeper's marker ($0) in
  its /proc cmdline (pids are reused), else gone.
- **read_from**: `tail -c +OFFSET | head -c N` of the output file, by exec.
- **kill**: every process of the keeper's session and every descendant of those (opencode
  starts its bash tool in a session of its own) is stopped, then SIGKILLed; waited for.

Unlike the local keeper's, these records are within the agent's reach (it runs in the same
container): a forged exit file can only end its own turn early. On kwok (bin/k8s-dev) exec
runs on the host in the volume's directory, so /tmp and /proc are the host's; the per-sandbox
names keep sandboxes apart.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from lap_tui.domain.errors import InvalidInput
from lap_tui.domain.sandbox import SandboxError
from lap_tui.sandbox.detached import DetachedState
from lap_tui.sandbox.k8s import files
from lap_tui.sandbox.k8s.ops import SandboxOps

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")
RUN_DIR = ".lap/run"

# $1 record base (workspace-relative), $2 pid file, $3 marker; then the command.
_START = r'''base=$1; pf=$2; mk=$3; shift 3
mkdir -p .lap/run || exit 125
rm -f -- "$base.exit" "$base.exit.tmp" "$base.err"
nohup setsid sh -c 'base=$1; shift; "$@" </dev/null >/dev/null 2>>"$base.err"; c=$?; echo "$c" >"$base.exit.tmp" && mv -f "$base.exit.tmp" "$base.exit"' "$mk" "$base" "$@" </dev/null >/dev/null 2>&1 &
echo $! >"$pf"
pwd -P'''
# A background job of a shell without job control is no group leader, so setsid makes no fork
# and $! is the keeper's pid, its session's and its group's id.

_ALIVE = r'''alive() { [ -s "$pf" ] || return 1; p=$(cat -- "$pf"); kill -0 "$p" 2>/dev/null || return 1
  tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qxF -- "$mk"; }'''

_STATE = r'''base=$1; pf=$2; mk=$3
''' + _ALIVE + r'''
if [ -s "$base.exit" ]; then echo "exited $(cat -- "$base.exit")"
elif alive; then echo running
elif [ -s "$base.exit" ]; then echo "exited $(cat -- "$base.exit")"
else echo gone; fi
tail -c 2000 -- "$base.err" 2>/dev/null'''

_KILL = r'''pf=$1; mk=$2
''' + _ALIVE + r'''
alive || exit 0
# pid ppid session of every process; the tree: the keeper's session plus every descendant
# (a tool the CLI starts in a session of its own is still its child).
snap() { for d in /proc/[0-9]*; do
  sed -n 's/^\([0-9]*\) .*) . \([0-9]*\) [0-9]* \([0-9]*\) .*/\1 \2 \3/p' "$d/stat" 2>/dev/null; done; }
tree() { snap | awk -v k="$p" '{pp[$1]=$2; if ($3 == k) t[$1]=1}
  END {do {n=0; for (i in pp) if (!(i in t) && (pp[i] in t)) {t[i]=1; n=1}} while (n); for (i in t) print i}'; }
live() { c=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1); [ -n "$c" ] && [ "$c" != Z ]; }
t=$(tree); kill -STOP $t 2>/dev/null  # stopped, nothing forks or reparents while we look again
t=$(tree); kill -STOP $t 2>/dev/null; kill -9 $t 2>/dev/null
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40; do
  left=0
  for q in $t; do live "$q" && left=1; done
  [ "$left" = 0 ] && exit 0
  sleep 0.25
done
exit 1'''

_READ = r'''f=$1; off=$2; n=$3
[ -f "$f" ] && [ ! -L "$f" ] || exit 0
tail -c "+$((off + 1))" -- "$f" | head -c "$n"'''


class PodDetached:
    """Start, observe and kill detached commands in one Kubernetes backend's pods (the same
    methods as `sandbox.detached.Detached`, with `state` a coroutine)."""

    in_pod = True  # no host-side mounts; the CLI reaches the relay over TCP

    def __init__(self, backend: SandboxOps) -> None:
        self.backend = backend

    def _names(self, sandbox_id: str, name: str) -> tuple[str, str, str]:
        if not _NAME.match(name) or not _NAME.match(sandbox_id):
            raise InvalidInput(f"detached command name {name!r} is invalid", "lowercase letters, digits, '-'")
        return (f"{RUN_DIR}/{name}", f"/tmp/.lap-detached-{sandbox_id}-{name}.pid",
                f"lap-keeper-{sandbox_id}-{name}")

    async def workspace(self, sandbox_id: str) -> str:
        """The workspace's absolute path as commands see it (/workspace; kwok: the volume dir)."""
        code, out, err = await self.backend.script(sandbox_id, "pwd -P", [], limit=4096)
        path = out.decode("utf-8", "replace").strip()
        if code != 0 or not path.startswith("/") or "\n" in path:
            raise SandboxError(f"cannot find the workspace of sandbox {sandbox_id}: {err[-300:]!r}")
        return path

    async def start(self, sandbox_id: str, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                    cwd: str | None = None, ro_binds: Sequence[tuple[str, str]] = ()) -> int:
        """Start `argv` detached in the workspace with `env` added to the pod's environment.
        `ro_binds` must be empty: a pod's mounts are fixed in its spec."""
        if ro_binds or cwd not in (None, ".", "/workspace"):
            raise SandboxError("a pod cannot mount files for one command", "a lap-tui bug: report it")
        base, pf, mk = self._names(sandbox_id, name)
        cmd = list(argv)
        if env:
            cmd = ["env", "--", *(f"{k}={v}" for k, v in env.items()), *cmd]
        code, _out, err = await self.backend.script(sandbox_id, _START, [base, pf, mk, *cmd], limit=4096)
        if code != 0:
            raise SandboxError(f"cannot start a command in sandbox {sandbox_id} (exit {code}): "
                               f"{err.decode('utf-8', 'replace')[-300:]}", "see `lap-tui sandboxes logs`")
        return 0

    async def state(self, sandbox_id: str, name: str) -> DetachedState:
        base, pf, mk = self._names(sandbox_id, name)
        code, out, _err = await self.backend.script(sandbox_id, _STATE, [base, pf, mk], limit=8192)
        first, _, rest = out.decode("utf-8", "replace").partition("\n")
        word, _, value = first.strip().partition(" ")
        if code != 0 or word not in ("exited", "running", "gone"):
            raise SandboxError(f"cannot read the state of {name} in sandbox {sandbox_id}")
        if word == "exited":
            return DetachedState("exited", int(value) if value.strip().isdigit() else 255, rest)
        return DetachedState(word, None, rest)

    async def kill(self, sandbox_id: str, name: str) -> bool:
        """Kill the command's whole process tree; True once every process of it is gone."""
        _base, pf, mk = self._names(sandbox_id, name)
        code, _out, _err = await self.backend.script(sandbox_id, _KILL, [pf, mk], limit=4096)
        return code == 0

    async def read_from(self, sandbox_id: str, path: str, offset: int, max_bytes: int) -> bytes:
        """Up to `max_bytes` of a workspace file from byte `offset` (b"" at its end or when absent)."""
        rel = files.relative(path)
        code, out, err = await self.backend.script(sandbox_id, _READ, [rel, str(int(offset)), str(int(max_bytes))],
                                                    limit=max_bytes)
        if code != 0:
            raise SandboxError(f"cannot read {path!r} in sandbox {sandbox_id}: {err[-300:]!r}")
        return out
