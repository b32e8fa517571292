"""read_file, write_file and list_dir never leave the workspace, whatever the sandbox put there."""

from __future__ import annotations

from pathlib import Path

import pytest

from lap_tui.domain.errors import InvalidInput, NotFound


async def test_round_trip_and_listing(backend, make):
    sid = await make.sandbox()
    await backend.write_file(sid, "/workspace/a/b/c.txt", b"hello")
    assert await backend.read_file(sid, "a/b/c.txt") == b"hello"
    assert (await backend.exec(sid, ["cat", "a/b/c.txt"])).stdout == b"hello"
    assert [(e.name, e.kind) for e in await backend.list_dir(sid, "a")] == [("b", "dir")]
    assert [(e.name, e.kind, e.size) for e in await backend.list_dir(sid, "a/b")] == [("c.txt", "file", 5)]
    with pytest.raises(NotFound):
        await backend.read_file(sid, "nope.txt")
    with pytest.raises(InvalidInput, match="more than"):
        await backend.read_file(sid, "a/b/c.txt", max_bytes=2)


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "/workspace/../etc/passwd", "/workspacex/y"])
async def test_paths_escaping_the_workspace_are_refused(backend, make, path):
    sid = await make.sandbox()
    with pytest.raises(InvalidInput, match="workspace"):
        await backend.read_file(sid, path)
    with pytest.raises(InvalidInput, match="workspace"):
        await backend.write_file(sid, path, b"x")


async def test_symlinks_out_of_the_workspace_are_refused(backend, make, tmp_path):
    sid = await make.sandbox()
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    # Inside the sandbox these links point at harmless things; read from the host they would not.
    r = await backend.exec(sid, ["sh", "-c", f"ln -s {outside} abs && ln -s ../../.. up && mkdir d && "
                                             f"ln -s /workspace/d/t inside && echo in > d/t && ln -s {tmp_path} dir"])
    assert r.exit_code == 0, r.stderr
    for p in ("abs", "up/x", "dir/outside.txt"):
        with pytest.raises(InvalidInput, match="outside the workspace|escapes"):
            await backend.read_file(sid, p)
    with pytest.raises(InvalidInput):
        await backend.write_file(sid, "dir/outside.txt", b"pwned")
    with pytest.raises(InvalidInput):
        await backend.list_dir(sid, "up")
    assert await backend.read_file(sid, "inside") == b"in\n"  # links that stay inside are fine
    # Writing to a link replaces the link itself, never its target.
    await backend.write_file(sid, "abs", b"new")
    assert outside.read_text() == "host file"
    assert not Path(backend.workspace(sid), "abs").is_symlink()
