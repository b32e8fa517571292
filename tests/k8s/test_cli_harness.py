"""CLI harnesses (opencode, Claude Code, Codex: the real CLIs) running turns in a Kubernetes sandbox: started detached
by exec in the pod (sandbox/k8s/detached.py), calling the relay over TCP, followed by exec reads.

kwok's exec runs the command on this host in the volume's directory, so the CLI is the host's
install (LAP_KUBE_HARNESS_DIR = the install cache; a real cluster's harness image has it on
PATH) and the relay's address is its 127.0.0.1 TCP port (a real cluster: LAP_RELAY_URL, a
Service). That is kwok's behaviour, accepted here; the driver's side is the same.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from lap_tui.domain.sandbox import session_sandbox_id
from lap_tui.harness.definition import load_definitions
from lap_tui.sandbox.k8s import objects
from tests.harness.conftest import CLI_DIR, cli, need_cli
from tests.harness.test_opencode import events_of, is_cli, lap, wait_for
from tests.k8s.lap_backend import k8s_env
from tests.support.scripted_apis import MESSAGES_PATH, RESPONSES_PATH
from tests.support.scripted_gateway import ScriptedGateway, stream, tool_call

MASTER_KEY = "sk-master-key-never-in-a-pod"


@pytest.fixture
def gw():
    with ScriptedGateway(models=["gpt-test"]) as g:
        yield g


@pytest.fixture
def kx_env(tmp_path: Path, gw, k8s_cluster, k8s_namespace):
    data = Path("/tmp") / f"lap-k-{os.getpid()}-{time.monotonic_ns() % 10**9}"  # short: the relay's socket
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_"))}
    env.update(k8s_env(tmp_path, k8s_cluster, k8s_namespace))
    env.update({"XDG_DATA_HOME": str(data), "LITELLM_API_BASE": gw.base_url, "LITELLM_API_KEY": MASTER_KEY,
                "LAP_HARNESS_DIR": str(CLI_DIR), "LAP_KUBE_HARNESS_DIR": str(CLI_DIR)})
    yield env
    _kill_keepers("lap-keeper-s-")  # a failed test may leave the CLI running on this host (kwok)
    pidfile = data / "lap-tui" / "relay" / "relay.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    shutil.rmtree(data, ignore_errors=True)


def _procs() -> dict[int, bytes]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                out[int(name)] = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                pass
    return out


def _session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2:].split()[3])


def _kill_keepers(marker: str) -> None:
    """Every process of the keepers' sessions and their descendants (kwok: host processes), all
    at once as a pod going away: stopped first (until no new one appears), then killed. Killed
    one by one, a keeper could see its CLI die and record exit 137 before its own turn came: a
    pod's restart records nothing (seen on a busy machine)."""
    stopped: set[int] = set()
    while more := _tree(_sessions_of(marker.encode())) - stopped:
        for pid in more:
            try:
                os.kill(pid, signal.SIGSTOP)
            except (ProcessLookupError, PermissionError):
                pass
        stopped |= more
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


WRITE = "printf 'hi from a pod\\n' > hello.txt"
# harness -> (model, API path (None: chat completions), a tool call writing hello.txt, the variable
# that carries the session's token in the CLI's environment)
CLIS = {
    "opencode": ("gpt-test", None, lambda: tool_call("call_w", "bash", json.dumps(
        {"command": WRITE, "description": "write"})), b"OPENCODE_CONFIG_CONTENT="),
    "claude-code": ("claude-test", MESSAGES_PATH, lambda: tool_call("toolu_w", "Bash", json.dumps(
        {"command": WRITE, "description": "write"})), b"ANTHROPIC_API_KEY=lap-"),
    "codex": ("gpt-test", RESPONSES_PATH, lambda: tool_call("call_w", "exec_command", json.dumps(
        {"cmd": WRITE})), b"LAP_RELAY_TOKEN=lap-"),
}


def answer(path, chunks=(), tool_calls=(), **kw):
    # requires_tools: only the CLI's main loop (which offers tools) takes scripted answers.
    extra = {"path": path, "requires_tools": True} if path else {}
    return stream(list(chunks), tool_calls=list(tool_calls), **extra, **kw)


@pytest.mark.parametrize("name", list(CLIS))
async def test_cli_turn_in_a_pod_survives_its_driver_sigkilled_and_resumes(name, kx_env, gw, k8s_cluster,
                                                                          k8s_namespace, tmp_path):
    env, ns = {**kx_env, "LAP_HARNESS_IMAGE_PREFIX": "registry.example/lap"}, k8s_namespace
    model, path, write, token_var = CLIS[name]
    need_cli(name)
    if path:
        gw.path_defaults[path] = stream(["ok"], path=path)  # the CLI's side requests, if any
    cli(env, "agents", "create", "a", "--model", model, "--harness", name, "--team", "team1",
        "--sandbox-backend", "kubernetes")
    session_id = cli(env, "sessions", "new", "a", "--team", "team1").strip()
    sid = session_sandbox_id(session_id)
    release = tmp_path / "release"
    gw.push(answer(path, tool_calls=[write()], usage={"prompt_tokens": 11, "completion_tokens": 7}, cost=0.004),
            answer(path, ["Wrote ", "hello.txt."], usage={"prompt_tokens": 23, "completion_tokens": 3}, cost=0.005,
                   wait_file=str(release)))
    doomed = lap(env, "send", session_id, "write hello.txt", "--wait")
    try:
        events = await wait_for(env, session_id, lambda evs: any(e.kind in ("tool.finished", "turn.failed")
                                                                 for e in evs), "the tool finished", timeout=240)
        assert not [e.data for e in events if e.kind == "turn.failed"]
        # The CLI runs (on kwok: on this host) with the session's token, never the master key.
        keeper = [p for p, c in _procs().items() if f"lap-keeper-{sid}-".encode() in c]
        assert keeper, "no keeper process of the turn"
        tree = [p for p in _procs() if _session_of(p) == keeper[0]]
        environs = b"".join(Path(f"/proc/{p}/environ").read_bytes() for p in tree)
        assert token_var in environs and b"lap-" in environs
        assert MASTER_KEY.encode() not in environs
        os.kill(doomed.pid, signal.SIGKILL)
    finally:
        doomed.wait(30)
    worker = lap(env, "worker", "--once", "--poll", "0.05")
    try:
        await wait_for(env, session_id, lambda evs: any(is_cli(e, "cli.reattached") for e in evs), "a re-attach",
                       timeout=240)
        release.touch()
        _out, err = worker.communicate(timeout=240)
    finally:
        release.touch()
        worker.kill()
    assert worker.returncode == 0, err
    events, turns, session = await events_of(env, session_id)
    assert turns[-1].status.value == "completed", turns[-1].error
    # Tokens and cost charged by the relay over TCP.
    assert (turns[-1].prompt_tokens, turns[-1].completion_tokens) == (34, 10)
    assert abs(turns[-1].cost_usd - 0.009) < 1e-9
    # Every event once: nothing lost or repeated across the two drivers.
    kinds = Counter(e.kind for e in events)
    assert (kinds["tool.started"], kinds["tool.finished"], kinds["turn.completed"]) == (1, 1, 1), kinds
    assert sum(is_cli(e, "cli.started") for e in events) == 1  # one CLI process did the whole turn
    cursors = [(e.data["cli"]["attempt"], e.data["cli"]["at"], e.data["cli"]["n"]) for e in events if "cli" in e.data]
    assert len(cursors) == len(set(cursors))
    (started,) = [e.data for e in events if e.kind == "tool.started"]
    assert "hello.txt" in started["arguments"]
    (done,) = [e.data for e in events if e.kind == "tool.finished"]
    assert done["tool_call_id"] == started["tool_call_id"]
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["Wrote hello.txt."]
    assert session.harness_session_id
    # The tool's file is on the Sandbox's volume.
    vol = k8s_cluster.volume_dir(ns, objects.pvc_name(sid))
    assert (vol / "hello.txt").read_text() == "hi from a pod\n"
    # The agent names no image: its pod runs the harness's (the name bin/kind-up.sh builds).
    version = load_definitions()[0][name].version
    assert _images(k8s_cluster, ns, sid) == [f"registry.example/lap/lap-tui-harness-{name}:{version}"] * 2

    # A second turn from a new driver resumes the CLI's own session: the model sees turn 1.
    gw.push(answer(path, ["I remember."], usage={"prompt_tokens": 50, "completion_tokens": 2}))
    second = lap(env, "send", session_id, "what did you write?", "--wait")
    _out, err = second.communicate(timeout=240)
    assert second.returncode == 0, err
    last = [r for r in gw.requests if r.path == (path or "/v1/chat/completions") and r.body.get("tools")][-1]
    history = json.dumps(last.body)
    assert "what did you write?" in history and "write hello.txt" in history and "Wrote hello.txt." in history
    events, turns, session2 = await events_of(env, session_id)
    assert session2.harness_session_id == session.harness_session_id
    assert [e.data["resume"] for e in events if is_cli(e, "cli.started")] == [False, True]
    assert turns[-1].status.value == "completed" and turns[-1].prompt_tokens == 50
    # The master key is in no object of the cluster's namespace (Sandbox, Pod, Secret, ...).
    dump = k8s_cluster.kubectl("get", "sandbox,pod,secret,configmap", "-n", ns, "-o", "json", check=True).stdout
    assert sid in dump and MASTER_KEY not in dump
    calls = [r for r in gw.requests if r.path == (path or "/v1/chat/completions")]
    assert calls and all(r.headers.get("authorization") == f"Bearer {MASTER_KEY}" for r in calls)


def _images(cluster, ns: str, sid: str) -> list[str]:
    """The container image of the Sandbox object and of its pod, as the API server has them."""
    box = json.loads(cluster.kubectl("get", "sandbox", sid, "-n", ns, "-o", "json", check=True).stdout)
    pod = json.loads(cluster.kubectl("get", "pod", sid, "-n", ns, "-o", "json", check=True).stdout)
    return [box["spec"]["podTemplate"]["spec"]["containers"][0]["image"], pod["spec"]["containers"][0]["image"]]


def _sessions_of(keeper_marker: bytes) -> set[int]:
    return {p for p, c in _procs().items() if keeper_marker in c and c.startswith(b"sh\0-c\0")}


def _stat(pid: int) -> list[bytes]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2:].split()


def _tree(sessions: set[int]) -> set[int]:
    """Live processes in those sessions and their descendants (opencode's bash tool has a session
    of its own)."""
    stats = {p: st for p in _procs() if (st := _stat(p)) and st[0] != b"Z"}
    tree = {p for p, st in stats.items() if int(st[3]) in sessions}
    while more := {p for p, st in stats.items() if p not in tree and int(st[1]) in tree}:
        tree |= more
    return tree


@pytest.mark.parametrize("name", list(CLIS))
async def test_the_pods_processes_killed_mid_turn_resume_the_cli_session(name, kx_env, gw, k8s_cluster,
                                                                        k8s_namespace, tmp_path):
    """What a pod restarted mid-turn leaves (kwok keeps its processes on this host, so they are
    killed here): no exit code, the keeper gone. The driver resumes through the resume form."""
    env, ns = kx_env, k8s_namespace
    model, path, write, _token_var = CLIS[name]
    need_cli(name)
    if path:
        gw.path_defaults[path] = stream(["ok"], path=path)
    cli(env, "agents", "create", "a", "--model", model, "--harness", name, "--team", "team1",
        "--sandbox-backend", "kubernetes")
    session_id = cli(env, "sessions", "new", "a", "--team", "team1").strip()
    sid = session_sandbox_id(session_id)
    release = tmp_path / "release"
    gw.push(answer(path, tool_calls=[write()]), answer(path, ["never seen"], wait_file=str(release)))
    driver = lap(env, "send", session_id, "write hello.txt", "--wait")
    try:
        from tests.harness.test_opencode import wait_until

        api = path or "/v1/chat/completions"
        # The CLI's next call (after the tool) is held at the gateway: the turn is mid-way.
        await wait_until(lambda: sum(1 for r in gw.requests if r.path == api and r.body.get("tools")) >= 2,
                         "the call after the tool, held", timeout=240)
        gw.push(answer(path, ["resumed and done"]))
        _kill_keepers(f"lap-keeper-{sid}-")
        _out, err = driver.communicate(timeout=240)
    finally:
        release.touch()
        driver.kill()
    assert driver.returncode == 0, err
    events, (turn,), _s = await events_of(env, session_id)
    resumed = [e.data for e in events if is_cli(e, "cli.resumed")]
    assert len(resumed) == 1 and resumed[0]["resume"] is True, [e.data for e in events if e.kind == "harness.event"]
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["resumed and done"]
    assert sum(e.kind == "tool.started" for e in events) == 1
    assert (k8s_cluster.volume_dir(ns, objects.pvc_name(sid)) / "hello.txt").read_text() == "hi from a pod\n"
    assert turn.status.value == "completed"
    # The resumed CLI has the interrupted turn's tool call in its own session's history (the
    # new prompt only says it was interrupted).
    last = [r for r in gw.requests if r.path == (path or "/v1/chat/completions") and r.body.get("tools")][-1]
    assert "hi from a pod" in json.dumps(last.body) and "interrupted" in json.dumps(last.body)


async def test_cancel_in_a_pod_kills_the_clis_process_tree(kx_env, gw, k8s_cluster, k8s_namespace, monkeypatch):
    from lap_tui.config import load_settings
    from lap_tui.engine.services import build_engine
    from lap_tui.store import open_store
    from tests.harness.test_opencode import wait_until

    env, ns = kx_env, k8s_namespace
    need_cli("opencode")
    for k in [k for k in os.environ if k.startswith(("LAP_", "LITELLM_", "CONTAINER_ENV_"))]:
        monkeypatch.delenv(k)
    for k, v in env.items():  # this process plays lap-tui: the relay it starts inherits this
        monkeypatch.setenv(k, v)
    cli(env, "agents", "create", "oc", "--model", "gpt-test", "--harness", "opencode", "--team", "team1",
        "--sandbox-backend", "kubernetes", "--image", "registry.example/own/agent-image:7")
    session_id = cli(env, "sessions", "new", "oc", "--team", "team1").strip()
    sid = session_sandbox_id(session_id)
    vol = k8s_cluster.volume_dir(ns, objects.pvc_name(sid))
    gw.push(stream([], tool_calls=[tool_call("call_s", "bash", json.dumps(
        {"command": "echo started > started.txt; sleep 600; echo never > after.txt", "description": "wait"}))]))
    settings = load_settings()
    store = await open_store(settings.database_url)
    engine = build_engine(settings, store)
    try:
        turn_id = await engine.send(session_id, "sleep a long time")
        await wait_until(lambda: (vol / "started.txt").exists(), "the CLI's tool started in the pod", timeout=240)
        assert _images(k8s_cluster, ns, sid) == ["registry.example/own/agent-image:7"] * 2  # the agent's own wins
        keepers = _sessions_of(f"lap-keeper-{sid}-".encode())
        doomed: set[int] = set()  # taken before the cancel: orphans lose their parent link

        def tool_running() -> bool:
            doomed.clear()
            doomed.update(_tree(keepers))
            return any(b"sleep\x00600" in c for p, c in _procs().items() if p in doomed)

        await wait_until(tool_running, "the tool's sleep among the CLI's processes")
        await engine.cancel(turn_id)
        await wait_until(lambda: not any(_stat(p) and _stat(p)[0] != b"Z" for p in doomed),
                         "every process of the CLI, its tool's too, gone after the cancel")
        await engine.start(session_id)  # the driver ends once the cancelled turn is journaled
        assert (await store.get_turn(turn_id)).status.value == "cancelled"
        assert not (vol / "after.txt").exists()
    finally:
        await engine.close()
        await store.close()
