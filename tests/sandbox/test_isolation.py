"""What bubblewrap must keep apart: workspaces, the host's files, the network, the environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lap_tui.sandbox.env import BASE_ENV
from tests.conftest import ROOT
from tests.sandbox.conftest import GATEWAY_KEY, SECRET


async def test_two_sandboxes_cannot_reach_each_others_workspace(backend, make):
    a = await make.sandbox()
    b = await make.sandbox()
    assert a != b
    await backend.write_file(a, "secret.txt", b"only for a\n")
    host_a = backend.workspace(a)
    script = (f"cat {host_a}/secret.txt; echo x > {host_a}/evil; ls {backend.root}; "
              f"cat /workspace/secret.txt; ls -A /workspace")
    r = await backend.exec(b, ["sh", "-c", script])
    assert b"only for a" not in r.stdout
    assert r.stdout.strip() == b""  # b's own workspace is empty, a's is not there at all
    assert (host_a / "secret.txt").read_bytes() == b"only for a\n"
    assert not (host_a / "evil").exists()
    # and the other way round, while a can see its own file
    r = await backend.exec(a, ["cat", "/workspace/secret.txt"])
    assert r.stdout == b"only for a\n"
    r = await backend.exec(a, ["sh", "-c", f"ls {backend.workspace(b)}"])
    assert r.exit_code != 0


async def test_nothing_outside_the_workspace_is_writable(backend, make, tmp_path):
    sid = await make.sandbox()
    dirs = ["/", "/usr", "/usr/bin", "/etc", "/bin", "/opt", "/var", "/proc/sys/kernel", "/sys",
            str(tmp_path), str(Path.home()), "/workspace"]
    script = "; ".join(f"(echo x > '{d}/lap-probe') 2>/dev/null && echo 'WROTE {d}'" for d in dirs)
    r = await backend.exec(sid, ["sh", "-c", script])
    assert r.stdout.decode().splitlines() == ["WROTE /workspace"]  # the workspace is the positive control
    for d in dirs[:-1]:
        assert not Path(d, "lap-probe").exists()
    # /tmp is writable but private to one command
    r = await backend.exec(sid, ["sh", "-c", "echo t > /tmp/lap-private && cat /tmp/lap-private"])
    assert r.stdout == b"t\n"
    assert not Path("/tmp/lap-private").exists()
    r = await backend.exec(sid, ["sh", "-c", "test -e /tmp/lap-private && echo still-there"])
    assert r.stdout == b""


async def test_host_secrets_are_hidden(backend, make):
    sid = await make.sandbox()
    r = await backend.exec(sid, ["sh", "-c", "cat /etc/shadow"])
    assert r.exit_code != 0 and b"root:" not in r.stdout
    # Home directories and the checkout (wherever it is) show nothing of the host's files.
    places = ["/root", "/home", str(Path.home()), str(ROOT.parent)]
    hidden = [p for p in places if Path(p).is_dir() and any(Path(p).iterdir())]
    assert str(ROOT.parent) in hidden  # the control: there is something there to hide
    script = "; ".join(f"echo '== {p}'; ls -A '{p}' 2>/dev/null" for p in hidden)
    r = await backend.exec(sid, ["sh", "-c", script])
    shown: dict[str, list[str]] = {}
    for line in r.stdout.decode().splitlines():
        if line.startswith("== "):
            shown[line[3:]] = []
        else:
            shown[list(shown)[-1]].append(line)
    assert set(shown) == set(hidden), r.stdout
    assert all(names == [] for names in shown.values()), f"visible in the sandbox: {shown}"


async def _listener():
    got = asyncio.Queue()

    async def handle(reader, writer):
        got.put_nowait(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], got


async def test_network_off_by_default_and_on_when_allowed(backend, make):
    server, port, got = await _listener()
    probe = ["bash", "-c", f"echo hello > /dev/tcp/127.0.0.1/{port}"]
    async with server:
        closed = await make.sandbox()
        r = await backend.exec(closed, probe, timeout=30)
        assert r.exit_code != 0
        assert got.empty()

        opened = await make.sandbox(network=True)
        r = await backend.exec(opened, probe, timeout=30)
        assert r.exit_code == 0, r.stderr
        assert (await asyncio.wait_for(got.get(), 10)) == b"hello\n"


async def test_environment_holds_exactly_what_was_given(backend, make, sb_store, tmp_path):
    sid = await make.sandbox(env=("AGENT_VISIBLE", "LITELLM_API_KEY", "MISSING_ONE"))
    r = await backend.exec(sid, ["/usr/bin/env", "-0"], env={"PER_EXEC": "1", "SNEAKY": GATEWAY_KEY})
    env = dict(item.split("=", 1) for item in r.stdout.decode().split("\0") if item)
    expected = dict(BASE_ENV, PWD="/workspace", API_TOKEN=SECRET, REGION="eu-west", AGENT_VISIBLE="yes",
                    PER_EXEC="1")
    assert env == expected  # no LITELLM_API_KEY under any name, nothing of the host's environment
    # secret values are nowhere on disk but in the process that holds them
    await backend.exec(sid, ["sh", "-c", f"echo {SECRET}"])
    log = "\n".join(await backend.logs(sid))
    assert SECRET not in log and GATEWAY_KEY not in log
    assert "********" in log  # the command line was logged, masked
    db = Path(tmp_path / "lap.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("lap.db*") if p.is_file())
    assert SECRET.encode() not in db and GATEWAY_KEY.encode() not in db
