"""Files of a pod's workspace, read and written through exec.

Every exec starts in the workspace (a kubelet in the container's workingDir, kwok in its
Exec's workDir), so paths are handed to the scripts relative to it: "/workspace/a/b" and
"a/b" both become "a/b", and never "cd /workspace" (on kwok that directory does not exist).
`..` may not climb out, and the scripts check with realpath that symlinks stay inside too.
"""

from __future__ import annotations

import posixpath

from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.sandbox import WORKSPACE, DirEntry


def relative(path: str, *, what: str = "path") -> str:
    """A workspace path as a normalized relative one ("." for the workspace itself)."""
    if "\0" in path:
        raise InvalidInput(f"{what} {path!r} contains a NUL byte", "remove it")
    if path.startswith("/"):
        if path != WORKSPACE and not path.startswith(WORKSPACE + "/"):
            raise InvalidInput(f"{what} {path!r} is outside the workspace",
                               f"give a path under {WORKSPACE} or relative to it")
        path = path[len(WORKSPACE):].lstrip("/")
    norm = posixpath.normpath(path or ".")
    if norm == ".." or norm.startswith("../") or norm.startswith("/"):
        raise InvalidInput(f"{what} {path!r} escapes the workspace with '..'", f"stay under {WORKSPACE}")
    return norm


def cwd_arg(cwd: str | None) -> str:
    """The wrapper's working directory: workspace paths relative, any other absolute path as is."""
    if not cwd:
        return "."
    if "\0" in cwd:
        raise InvalidInput("working directory contains a NUL byte", "fix it")
    if cwd.startswith("/") and cwd != WORKSPACE and not cwd.startswith(WORKSPACE + "/"):
        return cwd
    return relative(cwd, what="working directory")


# Exit codes the scripts use, turned into errors by `raise_for`.
MISSING, NOT_FILE, TOO_BIG, OUTSIDE, IS_DIR = 20, 21, 22, 23, 24
_INSIDE = r'''w=$(pwd -P); r=$(realpath -m -- "$1") || exit 23
case "$r" in "$w"|"$w"/*) ;; *) exit 23;; esac
'''

READ = _INSIDE + r'''[ -e "$1" ] || exit 20; [ -f "$1" ] || exit 21
s=$(wc -c <"$1") || exit 21
[ "$s" -le "$2" ] || { printf %s "$s" >&2; exit 22; }
exec cat -- "$1"'''

# $1 path, $2 byte count, $3 octal mode; the bytes come on stdin (read with head -c, no EOF needed).
WRITE = _INSIDE + r'''if [ -d "$1" ] && [ ! -L "$1" ]; then exit 24; fi
d=$(dirname -- "$1"); mkdir -p -- "$d" || exit 21
t="$d/.$(basename -- "$1").lap-tmp-$$"
head -c "$2" >"$t" || { rm -f -- "$t"; exit 21; }
[ "$(wc -c <"$t")" -eq "$2" ] || { rm -f -- "$t"; exit 21; }
chmod "$3" "$t" && mv -fT -- "$t" "$1"'''

LIST = _INSIDE + r'''[ -e "$1" ] || exit 20; [ -d "$1" ] || exit 21
cd -- "$1" && find . -mindepth 1 -maxdepth 1 -printf '%y\t%s\t%T@\t%P\0' '''


def raise_for(code: int, path: str, stderr: bytes, *, max_bytes: int = 0, listing: bool = False) -> None:
    if code == 0:
        return
    if code == MISSING:
        raise NotFound(f"no {'directory' if listing else 'file'} {path!r} in the workspace")
    if code == NOT_FILE:
        raise InvalidInput(f"{path!r} is not a {'directory' if listing else 'regular file'} (or cannot be written)",
                           "check the path")
    if code == TOO_BIG:
        size = stderr.decode(errors="replace").strip()
        raise InvalidInput(f"{path!r} is {size} bytes, more than {max_bytes}",
                           "read it in the sandbox (head, tail, grep) or raise max_bytes")
    if code == OUTSIDE:
        raise InvalidInput(f"path {path!r} leads outside the workspace (a symbolic link?)",
                           "links may point only inside")
    if code == IS_DIR:
        raise InvalidInput(f"cannot write {path!r}: it is a directory", "name a file")
    text = stderr.decode(errors="replace").strip()[:300]
    raise InvalidInput(f"file operation on {path!r} failed (exit {code}): {text}", "check the path")


_KINDS = {"f": "file", "d": "dir", "l": "symlink"}


def parse_listing(data: bytes) -> list[DirEntry]:
    out = []
    for rec in data.split(b"\0"):
        if not rec:
            continue
        parts = rec.split(b"\t", 3)
        if len(parts) != 4:
            continue
        kind, size, mtime, name = parts
        out.append(DirEntry(name.decode(errors="replace"), _KINDS.get(kind.decode(), "other"), int(size),
                            float(mtime)))
    return sorted(out, key=lambda e: e.name)
