"""Turns end to end: scripted gateway (real HTTP) -> engine -> builtin tools in a bwrap sandbox."""

from __future__ import annotations

import asyncio
import json
import threading

from lap_tui.domain.journal import TurnStatus
from lap_tui.domain.secrets import MASK
from lap_tui.engine.api import LiveText
from tests.conftest import make_session
from tests.engine.conftest import MASTER_KEY, SANDBOX_SECRET
from tests.support.scripted_gateway import error, stream, tool_call


async def run(engine, session_id: str, text: str):
    turn_id = await engine.send(session_id, text)
    await engine.start(session_id)
    return await engine.store.get_turn(turn_id)


def kinds(events, turn_id=None):
    """Event kinds in order, without the timing-dependent model.delta checkpoints."""
    return [e.kind for e in events if (turn_id is None or e.turn_id == turn_id) and e.kind != "model.delta"]


def bash(id_: str, command: str):
    return tool_call(id_, "bash", json.dumps({"command": command}), fragment_size=7)


async def test_turn_with_tool_calls(engine, store, gw):
    s = await make_session(store)
    gw.push(stream(["Let me ", "look."], tool_calls=[bash("c1", "echo hello > f.txt; cat f.txt"),
                                                     tool_call("c2", "read_file", '{"path": "f.txt"}')],
                   usage={"prompt_tokens": 10, "completion_tokens": 5}, cost=0.001),
            stream(["It says ", "hello."], usage={"prompt_tokens": 30, "completion_tokens": 4}, cost=0.002))
    turn = await run(engine, s.id, "what is in f.txt?")
    assert turn.status is TurnStatus.COMPLETED, turn.error
    events = await store.read_events(s.id)
    assert kinds(events) == ["turn.queued", "user.message", "turn.started", "model.requested", "model.message",
                             "tool.started", "tool.finished", "tool.started", "tool.finished", "model.requested",
                             "model.message", "turn.completed"]
    finished = [e.data for e in events if e.kind == "tool.finished"]
    assert finished[0]["output"].strip() == "hello" and finished[0]["exit_code"] == 0
    assert finished[1]["output"] == "hello\n"
    # The second model call saw both tool results, once each, after the assistant's tool calls.
    msgs = gw.chat_requests[1].body["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in msgs if m["role"] == "tool"] == ["c1", "c2"]
    assert gw.chat_requests[0].body["tools"][0]["function"]["name"] == "bash"
    assert (turn.prompt_tokens, turn.completion_tokens) == (40, 9) and abs(turn.cost_usd - 0.003) < 1e-9
    session = await store.get_session(s.id)
    assert session.prompt_tokens == 40 and session.status.value == "idle" and session.sandbox_ref


async def test_second_turn_sees_the_first(engine, store, gw):
    s = await make_session(store)
    gw.push(stream(["one"]), stream(["two"]))
    await run(engine, s.id, "first")
    await run(engine, s.id, "second")
    msgs = gw.chat_requests[1].body["messages"]
    assert [(m["role"], m["content"]) for m in msgs] == [("user", "first"), ("assistant", "one"),
                                                         ("user", "second")]


async def test_secrets_stay_out_of_the_journal_and_the_gateway_key_out_of_the_sandbox(engine, store, gw):
    s = await make_session(store)
    gw.push(stream([], tool_calls=[bash("c1", "env")]), stream(["done"]))
    turn = await run(engine, s.id, "show env")
    assert turn.status is TurnStatus.COMPLETED
    events = await store.read_events(s.id)
    out = next(e.data["output"] for e in events if e.kind == "tool.finished")
    assert f"GH_TOKEN={MASK}" in out  # it reached the sandbox, prefix stripped, and was masked
    dump = json.dumps([e.to_dict() for e in events])
    assert SANDBOX_SECRET not in dump and MASTER_KEY not in dump
    assert MASTER_KEY not in out and "LITELLM" not in out
    assert SANDBOX_SECRET not in json.dumps(gw.chat_requests[1].body)


# Kinds no built-in turn writes, and where their secrets are covered instead.
NOT_WRITTEN_BY_BUILTIN_TURNS = {
    "harness.event": "CLI harness turns only (engine/cli_turn.py)",
    "sandbox.event": "not written by anything yet",
    "turn.cancel_requested": "written by a process that does not drive the turn; its data is {}",
}
# Kinds that carry text a secret can reach: the test makes the secret reach each of them.
CARRIES_TEXT = {"model.delta", "model.message", "tool.started", "tool.finished", "turn.failed"}


async def test_no_event_kind_carries_a_secret(store, settings, gw):
    """The model repeats a secret in its text (also split across chunks and in a broken stream),
    in tool-call arguments, a tool prints it, the gateway's error names it; a turn is retried and
    one is cancelled mid-tool. Every event of every kind is masked."""
    from lap_tui.domain.journal import EventKind
    from lap_tui.engine.engine import EngineOptions
    from lap_tui.engine.services import build_engine
    from tests.support.waiting import until

    sec, key = SANDBOX_SECRET, MASTER_KEY
    half = len(sec) // 2
    # Every chunk is checkpointed (model.delta), so a split secret lands in two checkpoints.
    eng = build_engine(settings, store, options=EngineOptions(lease_ttl=5.0, checkpoint_interval=0.0))
    try:
        s = await make_session(store)
        gw.push(stream(["the key is ", sec[:half], sec[half:] + " and ", key], drop_after=4),
                stream([f"I will echo {sec}"], tool_calls=[bash("c1", f"echo {sec}; echo {key}")]),
                stream(["done: ", sec[:half], sec[half:]]))
        assert (await run(eng, s.id, "first")).status is TurnStatus.COMPLETED

        gw.push(error(400, f"bad request: the prompt contains {sec} and {key}"))
        failed = await run(eng, s.id, "second")
        assert failed.status is TurnStatus.FAILED
        gw.push(stream(["fine"]))
        await eng.retry(failed.id)
        await asyncio.wait_for(eng.start(s.id), 60)
        assert (await store.get_turn(failed.id)).status is TurnStatus.COMPLETED

        gw.push(stream([], tool_calls=[bash("c2", f"sleep 30 # {sec}")]))
        turn_id = await eng.send(s.id, "third")
        await until(lambda: _started(store, s.id, "c2"), "the sleeping tool to start")
        await eng.cancel(turn_id)
        await asyncio.wait_for(eng.start(s.id), 60)
        assert (await store.get_turn(turn_id)).status is TurnStatus.CANCELLED
    finally:
        await eng.close()

    events = await store.read_events(s.id)
    seen = {e.kind for e in events}
    assert seen == {k.value for k in EventKind} - set(NOT_WRITTEN_BY_BUILTIN_TURNS), seen
    masked = {e.kind for e in events if MASK in json.dumps(e.data)}
    leaks = sorted({e.kind for e in events if sec in json.dumps(e.data) or key in json.dumps(e.data)}
                   | ({"model.delta (joined)"} if _joined_deltas_leak(events, sec) else set()))
    assert not leaks, f"secrets journaled in: {leaks} (masked in: {sorted(masked)})"
    assert CARRIES_TEXT <= masked, f"the secret never reached {CARRIES_TEXT - masked}: the test proves nothing there"


async def _started(store, session_id: str, call_id: str) -> bool:
    return any(e.kind == "tool.started" and e.data.get("tool_call_id") == call_id
               for e in await store.read_events(session_id))


def _joined_deltas_leak(events, secret: str) -> bool:
    """A secret split across two checkpoints is whole again in what a reader joins."""
    by_turn: dict[str, str] = {}
    for e in events:
        if e.kind == "model.delta":
            by_turn[e.turn_id] = by_turn.get(e.turn_id, "") + e.data.get("text", "")
        elif e.kind == "model.requested":  # a new attempt: a reader starts over
            by_turn[e.turn_id] = ""
    return any(secret in text for text in by_turn.values())


async def test_streamed_text_reaches_watchers_live(engine, store, gw):
    s = await make_session(store)
    gw.push(stream([f"w{i} " for i in range(30)], delay=0.01))
    got: list[str] = []
    seen_kinds: list[str] = []

    async def watch():
        async for item in engine.watch(s.id):
            if isinstance(item, LiveText):
                got.append(item.text)
            else:
                seen_kinds.append(item.kind)
                if item.kind == "turn.completed":
                    return

    from tests.support.waiting import until

    watcher = asyncio.create_task(watch())
    await until(lambda: engine._watchers.get(s.id), "the watcher to subscribe")  # else it misses live text
    await run(engine, s.id, "stream please")
    await asyncio.wait_for(watcher, 60)
    assert "".join(got) == "".join(f"w{i} " for i in range(30))
    assert "model.delta" not in seen_kinds  # the same text already came live
    deltas = [e.data["text"] for e in await store.read_events(s.id) if e.kind == "model.delta"]
    assert deltas and "".join(deltas) == "".join(got)[: len("".join(deltas))]  # checkpoints, in order


async def test_gateway_failure_fails_the_turn_and_retry_continues(engine, store, gw, tmp_path):
    s = await make_session(store)
    gw.push(stream([], tool_calls=[bash("c1", "echo ran >> effects.log")]),
            error(401))
    turn = await run(engine, s.id, "do it")
    assert turn.status is TurnStatus.FAILED and "rejected the key" in turn.error
    assert (await store.get_session(s.id)).status.value == "failed"
    gw.push(stream([], tool_calls=[bash("c2", "cat effects.log")]), stream(["all good"]))
    await engine.retry(turn.id)
    await engine.start(s.id)
    turn = await store.get_turn(turn.id)
    assert turn.status is TurnStatus.COMPLETED, turn.error
    events = await store.read_events(s.id, turn_id=turn.id)
    ks = kinds(events)
    assert ks.count("turn.failed") == 1 and "turn.resumed" in ks
    outputs = {e.data["tool_call_id"]: e.data["output"] for e in events if e.kind == "tool.finished"}
    assert outputs == {"c1": "", "c2": "ran\n"}  # the completed tool call did not run again


async def test_stream_broken_mid_way_is_retried(engine, store, gw):
    s = await make_session(store)
    gw.push(stream(["par", "tial ", "text"], drop_after=2), stream(["whole answer"]))
    turn = await run(engine, s.id, "hi")
    assert turn.status is TurnStatus.COMPLETED
    events = await store.read_events(s.id)
    assert kinds(events).count("model.requested") == 2
    assert [e.data["text"] for e in events if e.kind == "model.message"] == ["whole answer"]


async def test_cancel_kills_a_running_tool(engine, store, gw):
    s = await make_session(store)
    gw.push(stream([], tool_calls=[bash("c1", "sleep 30; echo never >> effects.log")]))
    turn_id = await engine.send(s.id, "sleep")
    for _ in range(600):  # a readiness wait (the sandbox may start slowly on a loaded machine)
        if "tool.started" in kinds(await store.read_events(s.id)):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the tool never started: {kinds(await store.read_events(s.id))}")
    await engine.cancel(turn_id)
    await asyncio.wait_for(engine.start(s.id), 10)
    turn = await store.get_turn(turn_id)
    assert turn.status is TurnStatus.CANCELLED
    events = await store.read_events(s.id)
    assert kinds(events)[-2:] == ["tool.interrupted", "turn.cancelled"]
    assert (await store.get_session(s.id)).status.value == "idle"


async def test_cancel_a_turn_nobody_drives(engine, store, gw):
    s = await make_session(store)
    turn_id = await engine.queue(s.id, "later")
    await engine.cancel(turn_id)
    assert (await store.get_turn(turn_id)).status is TurnStatus.CANCELLED
    assert kinds(await store.read_events(s.id))[-1] == "turn.cancelled"


async def test_step_limit_fails_the_turn(store, settings, gw):
    from lap_tui.engine.engine import EngineOptions
    from lap_tui.engine.services import build_engine

    engine = build_engine(settings, store, options=EngineOptions(max_steps=2))
    try:
        s = await make_session(store)
        gw.push(*[stream([], tool_calls=[bash(f"c{i}", "true")]) for i in range(3)])
        turn = await run(engine, s.id, "loop forever")
        assert turn.status is TurnStatus.FAILED and "step limit" in turn.error
    finally:
        await engine.close()


async def test_empty_message_is_refused(engine, store):
    import pytest

    from lap_tui.domain.errors import InvalidInput

    s = await make_session(store)
    with pytest.raises(InvalidInput):
        await engine.send(s.id, "   ")
    assert await store.read_events(s.id) == []


async def test_sandbox_command_killed_mid_way_is_reported(engine, store, gw):
    import os
    import signal

    from tests.support.waiting import my_processes, until

    s = await make_session(store)
    gw.push(stream([], tool_calls=[bash("c1", "sleep 31.25")]), stream(["it was killed"]))
    turn_id = await engine.send(s.id, "sleep")
    # Only the sleep this test's sandbox runs (a descendant of this process), by its pid.
    pids = await until(lambda: my_processes(["sleep", "31.25"]), "the tool's sleep to start")
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    await asyncio.wait_for(engine.start(s.id), 60)
    turn = await store.get_turn(turn_id)
    assert turn.status is TurnStatus.COMPLETED
    finished = next(e.data for e in await store.read_events(s.id) if e.kind == "tool.finished")
    assert finished["exit_code"] == 128 + 9
    assert "[exit code 137]" in gw.chat_requests[1].body["messages"][-1]["content"]


async def test_standby_worker_leaves_fresh_turns_to_others(engine, store, gw):
    from lap_tui.engine.worker import run_worker

    s = await make_session(store)
    turn_id = await engine.queue(s.id, "hello")
    assert await run_worker(engine, once=True, standby=60.0, poll_interval=0.01) == 0
    assert (await store.get_turn(turn_id)).status is TurnStatus.QUEUED
    gw.push(stream(["hi"]))
    assert await run_worker(engine, once=True, poll_interval=0.01) == 1
    assert (await store.get_turn(turn_id)).status is TurnStatus.COMPLETED


async def test_a_turn_whose_message_was_never_recorded_fails_clearly(engine, store):
    from lap_tui.domain.ids import new_id
    from lap_tui.domain.journal import Turn

    s = await make_session(store)  # as if lap-tui died between creating the turn and its message
    turn = await store.create_turn(Turn(id=new_id(), session_id=s.id))
    await store.append(s.id, "turn.queued", {}, turn_id=turn.id)
    await engine.start(s.id)
    turn = await store.get_turn(turn.id)
    assert turn.status is TurnStatus.FAILED and "never recorded" in turn.error


async def test_prepare_builds_the_gateway_client_off_the_event_loop(store, settings, gw):
    """A UI calls prepare() after its first paint: the client (httpx, TLS setup) is built in a
    thread, once, and the first turn then uses it."""
    from lap_tui.engine.engine import Engine
    from lap_tui.gateway import GatewayClient
    from lap_tui.sandbox import backend_for

    built: list[tuple[threading.Thread, GatewayClient]] = []

    def factory() -> GatewayClient:
        built.append((threading.current_thread(), GatewayClient.from_settings(settings)))
        return built[-1][1]

    eng = Engine(store, settings, sandboxes=lambda: backend_for(settings, store), gateway=factory)
    try:
        await eng.prepare()
        await eng.prepare()
        assert len(built) == 1 and built[0][0] is not threading.main_thread()
        assert eng.gateway is built[0][1]
        s = await make_session(store)
        gw.push(stream(["ready."]))
        turn = await run(eng, s.id, "hi")
        assert turn.status is TurnStatus.COMPLETED, turn.error
        assert len(built) == 1 and len(gw.chat_requests) == 1
    finally:
        await eng.close()


async def test_closing_hands_a_builtin_turn_back_at_its_checkpoint(store, settings, gw):
    """Quitting the TUI mid-turn: close() does not wait for the turn (here a command that would
    run for 10 minutes); the turn stays unfinished, not cancelled, its lease is free, and the
    next engine resumes it: the cut command is reported as interrupted, never run again."""
    from lap_tui.engine.engine import EngineOptions
    from lap_tui.engine.services import build_engine
    from tests.support.waiting import until

    first = build_engine(settings, store, options=EngineOptions(lease_ttl=60.0))
    s = await make_session(store)
    gw.push(stream([], tool_calls=[bash("c1", "echo ran >> effects.log; sleep 600")]))
    turn_id = await first.send(s.id, "work")
    await until(lambda: _started(store, s.id, "c1"), "the long tool to start")
    # Bounded only so that a regression fails instead of hanging; it ends in well under a second.
    await asyncio.wait_for(first.close(), 120)
    assert first.handed_back == [turn_id]
    turn = await store.get_turn(turn_id)
    assert not turn.status.finished, turn.status
    assert "turn.cancelled" not in kinds(await store.read_events(s.id))
    assert await store.get_lease(s.id) is None  # released, not left to expire (60 s)

    gw.push(stream(["resumed"]))
    second = build_engine(settings, store, options=EngineOptions(lease_ttl=60.0))
    try:
        await asyncio.wait_for(second.start(s.id), 120)
    finally:
        await second.close()
    turn = await store.get_turn(turn_id)
    assert turn.status is TurnStatus.COMPLETED, turn.error
    events = await store.read_events(s.id)
    assert kinds(events, turn_id)[-6:] == ["tool.started", "tool.interrupted", "turn.resumed", "model.requested",
                                           "model.message", "turn.completed"]
    assert [e.data["tool_call_id"] for e in events if e.kind == "tool.interrupted"] == ["c1"]
    assert not any(e.kind == "tool.finished" for e in events)
