"""Files of a workspace, reached from the host without ever leaving the workspace.

The sandbox writes whatever it likes into its workspace, symbolic links included, and the
host reads and writes there for it. So every path is resolved here component by component:
`..` may not climb out, a symlink is followed only while it stays inside, and the final walk
opens each component with O_NOFOLLOW relative to its parent's descriptor, so a link swapped
in between the check and the open fails instead of escaping.

Nothing here may block on what the sandbox planted: files are opened O_NONBLOCK and checked
with fstat before use (a FIFO or device is refused), and temporaries have unpredictable names
created with O_EXCL, so an existing FIFO is never opened.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.sandbox import WORKSPACE, DirEntry

MAX_LINKS = 40


def split(path: str) -> list[str]:
    """A path inside the sandbox ("/workspace/a" or "a", relative to /workspace) -> components."""
    if "\0" in path:
        raise InvalidInput(f"path {path!r} contains a NUL byte", "remove it")
    if path.startswith("/"):
        if path != WORKSPACE and not path.startswith(WORKSPACE + "/"):
            raise InvalidInput(f"path {path!r} is outside the workspace",
                               f"give a path under {WORKSPACE} or relative to it")
        path = path[len(WORKSPACE):]
    return [c for c in path.split("/") if c]


def resolve(root: Path, path: str, *, follow_last: bool = True) -> list[str]:
    """Components of `path` below `root`, with `..` and in-workspace symlinks resolved."""
    todo = split(path)
    done: list[str] = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name == ".":
            continue
        if name == "..":
            if not done:
                raise InvalidInput(f"path {path!r} escapes the workspace with '..'",
                                   f"stay under {WORKSPACE}")
            done.pop()
            continue
        host = root.joinpath(*done, name)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            done.append(name)
            continue
        if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
            links += 1
            if links > MAX_LINKS:
                raise InvalidInput(f"path {path!r} has too many levels of symbolic links", "fix the links")
            target = os.readlink(host)
            if target.startswith("/"):
                if target != WORKSPACE and not target.startswith(WORKSPACE + "/"):
                    raise InvalidInput(f"path {path!r}: {'/'.join(done + [name])} is a symbolic link to "
                                       f"{target}, outside the workspace", "links may point only inside")
                done = []
                todo = split(target) + todo
            else:
                todo = [c for c in target.split("/") if c] + todo
            continue
        done.append(name)
    return done


def _walk(root: Path, comps: list[str], path: str, *, create_dirs: bool = False) -> int:
    """An O_PATH descriptor of the directory holding the last component (root for none)."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for c in comps[:-1]:
            try:
                nfd = os.open(c, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create_dirs:
                    raise NotFound(f"no directory {c!r} on the way to {path!r} in the workspace") from None
                os.mkdir(c, 0o755, dir_fd=fd)
                nfd = os.open(c, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                raise InvalidInput(f"path {path!r}: {c!r} is not a directory inside the workspace "
                                   f"({exc.strerror})", "check the path") from None
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_file(root: Path, path: str, max_bytes: int) -> bytes:
    comps = resolve(root, path)
    if not comps:
        raise InvalidInput(f"path {path!r} is the workspace itself, a directory", "name a file")
    dfd = _walk(root, comps, path)
    try:
        fd = os.open(comps[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except FileNotFoundError:
        raise NotFound(f"no file {path!r} in the workspace") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path!r}: {exc.strerror}", "name a regular file") from None
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"{path!r} is not a regular file", "name a file")
        if st.st_size > max_bytes:
            raise InvalidInput(f"{path!r} is {st.st_size} bytes, more than {max_bytes}",
                               "read it in the sandbox (head, tail, grep) or raise max_bytes")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_file(root: Path, path: str, data: bytes, mode: int) -> None:
    comps = resolve(root, path, follow_last=False)
    if not comps:
        raise InvalidInput(f"path {path!r} is the workspace itself, a directory", "name a file")
    dfd = _walk(root, comps, path, create_dirs=True)
    name = comps[-1]
    tmp = f".lap-tmp-{secrets.token_hex(12)}"  # a name the sandbox cannot plant anything at
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         mode, dir_fd=dfd)
        except OSError as exc:
            raise InvalidInput(f"cannot write {path!r}: {exc.strerror}", "check the path") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # O_EXCL made it: cannot happen, never trusted
                raise InvalidInput(f"cannot write {path!r}: not a regular file", "check the path")
            os.set_blocking(fd, True)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        try:
            # Replaces a symlink itself, never what it points to.
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            os.unlink(tmp, dir_fd=dfd)
            raise InvalidInput(f"cannot write {path!r}: {exc.strerror}", "is it a directory?") from None
    finally:
        os.close(dfd)


def list_dir(root: Path, path: str) -> list[DirEntry]:
    comps = resolve(root, path)
    dfd = _walk(root, comps + ["."], path)
    try:
        try:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=dfd)
        except OSError as exc:
            raise InvalidInput(f"cannot list {path!r}: {exc.strerror}", "name a directory") from None
    finally:
        os.close(dfd)
    entries = []
    try:
        for name in sorted(os.listdir(fd)):
            try:
                st = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                continue
            kind = ("dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode)
                    else "symlink" if stat.S_ISLNK(st.st_mode) else "other")
            entries.append(DirEntry(name, kind, st.st_size, st.st_mtime))
    finally:
        os.close(fd)
    return entries
