"""A turn on a CLI harness (opencode, Claude Code, Codex, or any defined in harnesses/).

The CLI runs detached in the session's sandbox (sandbox/detached.py), its JSON lines going to
`.lap/turns/<turn>-<attempt>/out.jsonl` in the workspace. The driver follows that file and
journals what each line stands for (harness/events.py), every event carrying its cursor
`data["cli"] = {"attempt", "at", "n"}`: the line's starting byte offset and the event's index
within the line. A driver that died is replaced by one that reads the journal's last cursor
and continues from that line, skipping the events of it already journaled: nothing is lost or
journaled twice, and the CLI never noticed.

Write-ahead: `harness.event` {"type": "cli.started"} is journaled before the CLI starts; a
turn whose CLI is gone without an exit code (its sandbox's processes were killed) is resumed
through the definition's resume form in a new attempt, journaled as `cli.resumed`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lap_tui.domain.clock import epoch_from_iso
from lap_tui.domain.errors import LapError, StoreError
from lap_tui.domain.journal import EventKind, JournalEvent, Turn, TurnStatus
from lap_tui.domain.lease import LeaseLost
from lap_tui.domain.secrets import RedactStream
from lap_tui.harness.cli import (CLI_MOUNT, FORWARDER, FORWARDER_MOUNT, RELAY_MOUNT, HarnessNotInstalled,
                                 harness_root, install_dir, installed_bin, plan_turn)
from lap_tui.harness.definition import HarnessDefinition, load_definitions, user_harness_dirs
from lap_tui.harness.events import Mapped, map_event, parse_line, session_id_of
from lap_tui.harness.image import with_harness_image

if TYPE_CHECKING:
    from lap_tui.engine.turn_host import TurnHost

READ_CHUNK = 1 << 20
POLL_MIN, POLL_MAX = 0.05, 0.5  # following the output file: fast while it grows, slower when quiet
TRANSCRIPT_MAX = 50_000  # characters of earlier conversation seeded into a new CLI session
MAX_ATTEMPTS = 3  # CLI processes per turn (the first, then resumes after the sandbox lost it)


class CliTurnFailed(LapError):
    pass


class DriverClosing(LeaseLost):
    """lap-tui is closing (the TUI quits, `send` ends): the CLI goes on in its sandbox, the turn
    stays unfinished and the next driver (the worker, the next lap-tui) re-attaches. A LeaseLost
    so the engine leaves the turn as it is."""


def harness_definitions(settings: Any) -> dict[str, HarnessDefinition]:
    found, _problems = load_definitions(*user_harness_dirs(getattr(settings, "config_file", None)))
    return found


@dataclass
class _Cursor:
    attempt: int = 0
    offset: int = 0  # where the next unread line starts
    skip: int = 0  # events of the line at `offset` already journaled


def _progress(mine: list[JournalEvent]) -> tuple[dict[str, Any] | None, _Cursor, dict[str, Any] | None, bool]:
    """The last CLI start of the turn, where its output was journaled up to, that attempt's
    `cli.exited` (if it ended), and whether the turn was retried after that."""
    started: dict[str, Any] | None = None
    cur = _Cursor()
    exited: dict[str, Any] | None = None
    retried = False
    for ev in mine:
        d = ev.data
        if ev.kind == EventKind.HARNESS_EVENT and d.get("type") in ("cli.started", "cli.resumed"):
            started = dict(d, at_epoch=epoch_from_iso(ev.at) if ev.at else time.time())
            cur, exited, retried = _Cursor(int(d.get("attempt", 0))), None, False
        elif ev.kind == EventKind.HARNESS_EVENT and d.get("type") == "cli.exited":
            exited = d
        elif ev.kind == EventKind.TURN_QUEUED and exited is not None:
            retried = True  # `retry` of the failed turn: a new CLI process
        c = d.get("cli") if isinstance(d, dict) else None
        if isinstance(c, dict) and int(c.get("attempt", -1)) == cur.attempt:
            cur.offset, cur.skip = int(c["at"]), int(c["n"]) + 1
    return started, cur, exited, retried


async def run_cli_turn(engine: "TurnHost", turn: Turn, agent: Any, session: Any, mine: list[JournalEvent],
                       h: HarnessDefinition) -> None:
    from lap_tui.engine.relay_service import ensure_relay, issue_token, socket_path, tcp_url
    from lap_tui.sandbox import ensure_for_session

    settings, store = engine.settings, engine.store
    root = harness_root(settings.data_dir)
    # A pod needs the CLI: an agent naming no image gets its harness's (harness/image.py).
    agent = with_harness_image(agent, h, _setting(settings, "harness_image_prefix"))
    status = await ensure_for_session(engine.sandboxes, store, agent, session)
    sid = status.id
    detached = _detached_for(await engine.sandboxes.for_id(sid))  # the concrete backend, also behind a router
    in_pod = getattr(detached, "in_pod", False)  # a pod's image (or LAP_KUBE_HARNESS_DIR) has the CLI
    if not in_pod and installed_bin(root, h) is None:
        raise HarnessNotInstalled(f"the {h.name} CLI ({h.npm}@{h.version}) is not installed",
                                  f"run `lap-tui harnesses install {h.name}`")
    started, cur, exited, retried = _progress(mine)
    name = f"turn-{turn.id}"
    if not (in_pod and _setting(settings, "relay_url")):  # LAP_RELAY_URL: a relay of its own (a cluster's Service)
        await ensure_relay(settings)  # also when re-attaching: the CLI may still need it

    async def launch(kind: str, attempt: int, note: str = "") -> dict[str, Any]:
        session_now = await store.get_session(session.id)
        cli_session = session_now.harness_session_id
        resume = bool(cli_session)
        seed = ""
        if resume and not await _state_present(engine.sandboxes, sid, h):
            # The CLI's own state is gone (workspace reset, files deleted): a new CLI session,
            # seeded with the conversation as the journal has it.
            resume, cli_session = False, None
            await store.update_session(session.id, harness_session_id=None)
            seed = await _transcript(store, session.id, turn.id)
            mine.append(await engine.journal(turn, EventKind.HARNESS_EVENT, {
                "type": "cli.state_lost", "previous_session_id": session_now.harness_session_id,
                "seeded_chars": len(seed)}))
        if h.session_id_from == "uuid" and not cli_session:
            cli_session = str(uuid.uuid4())
            await store.update_session(session.id, harness_session_id=cli_session)
        token = await issue_token(store, session.id)
        await store.set_relay_turn(session.id, turn.id)
        prompt = "\n\n".join(p for p in (seed, note, _prompt(mine)) if p)
        if in_pod:  # reaches the relay over TCP; the CLI from LAP_KUBE_HARNESS_DIR, else the image's PATH
            kdir = str(settings["kube_harness_dir"] or "")
            plan = plan_turn(h, turn_id=turn.id, attempt=attempt, prompt=prompt, model=agent.model, token=token,
                             session_id=cli_session, resume=resume, relay_url=tcp_url(settings),
                             workspace=await detached.workspace(sid),
                             bin_path=f"{kdir}/{install_dir(root, h).name}/node_modules/.bin" if kdir else "")
        else:
            plan = plan_turn(h, turn_id=turn.id, attempt=attempt, prompt=prompt, model=agent.model, token=token,
                             session_id=cli_session, resume=resume)
        data = {"type": kind, "harness": h.name, "version": h.version, "attempt": attempt, "output": plan.output,
                "stderr": plan.stderr, "resume": resume}
        ev = await engine.journal(turn, EventKind.HARNESS_EVENT, data)  # write-ahead
        mine.append(ev)
        # A pod mounts nothing of this host (and a worker on LAP_RELAY_URL has no socket here,
        # so its data directory's length must not matter).
        binds = [] if in_pod else [(str(install_dir(root, h)), CLI_MOUNT),
                                   (str(socket_path(settings).parent), RELAY_MOUNT), (str(FORWARDER), FORWARDER_MOUNT)]
        await detached.start(sid, name, plan.argv, env=plan.env, ro_binds=binds)
        return dict(data, at_epoch=time.time())

    if exited is not None and not retried:
        # Its driver died between the CLI's end and the turn's: finish it as the CLI ended.
        code = exited.get("exit_code")
        if code != 0:
            await store.revoke_relay_tokens(session.id)
            raise CliTurnFailed(f"the {h.name} CLI exited with code {code}")
        await _complete(engine, turn, h)
        await store.revoke_relay_tokens(session.id)
        return
    if started is None or exited is not None:
        started = await launch("cli.started", 0 if started is None else cur.attempt + 1)
        cur = _Cursor(int(started["attempt"]))
    elif (await _state(detached, sid, name)).state == "running":
        mine.append(await engine.journal(turn, EventKind.HARNESS_EVENT, {
            "type": "cli.reattached", "attempt": cur.attempt, "offset": cur.offset}))
    try:
        await _follow(engine, turn, session, mine, h, detached, sid, name, started, cur, launch)
    except asyncio.CancelledError:
        await asyncio.shield(detached.kill(sid, name))
        await asyncio.shield(store.revoke_relay_tokens(session.id))
        raise
    except (LeaseLost, StoreError):
        raise  # the turn goes on (another driver, or later): its CLI keeps its token
    except LapError:
        await store.revoke_relay_tokens(session.id)
        raise
    # The turn is over: nothing left in the sandbox (a background job the agent started, say)
    # may reach the gateway with its token any more.
    await store.revoke_relay_tokens(session.id)


async def _follow(engine: "TurnHost", turn: Turn, session: Any, mine: list[JournalEvent], h: HarnessDefinition,
                  detached: Any, sid: str, name: str, started: dict[str, Any], cur: _Cursor, launch: Any) -> None:
    store = engine.store
    redact = engine.mask(turn)  # the settings' secrets and the values of the env vars the agent names
    known_sid = (await store.get_session(session.id)).harness_session_id
    journaled_sid = next((e.data.get("harness_session_id") for e in reversed(mine)
                          if e.kind == EventKind.HARNESS_EVENT and e.data.get("type") == "cli.session"), None)
    last_error = ""
    poll = POLL_MIN
    buf = b""
    deltas = _Deltas(engine, turn)
    start_at = float(started.get("at_epoch") or time.time())
    while True:
        output = str(started["output"])
        data = await detached.read_from(sid, output, cur.offset + len(buf), READ_CHUNK)
        if data:
            buf += data
            poll = POLL_MIN
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                at = cur.offset
                cur.offset += len(line) + 1
                skip, cur.skip = cur.skip, 0
                obj = parse_line(line)
                if obj is None:
                    continue
                sid_seen = session_id_of(h, obj) if h.session_id_from == "output" else None
                if sid_seen and sid_seen != journaled_sid:  # once per turn, outside the line's count
                    journaled_sid = sid_seen
                    await deltas.flush()
                    await _journal(engine, turn, Mapped("session", {"harness_session_id": sid_seen}),
                                   {"attempt": cur.attempt, "at": at, "n": skip - 1}, redact)
                if sid_seen and sid_seen != known_sid:
                    known_sid = sid_seen
                    await store.update_session(session.id, harness_session_id=sid_seen)
                n = -1
                for m in map_event(h, obj):
                    if m.kind == "raw":
                        continue
                    n += 1
                    if n < skip:
                        continue  # journaled by the driver before us
                    if m.kind == "error":
                        last_error = redact(str(m.data.get("message", "")))
                    elif m.kind in ("text", "tool_use", "tool_result"):
                        last_error = ""  # it recovered (a retry's error, then work): not the turn's end
                    if h.tool_id_scope == "turn" and "tool_call_id" in m.data:  # unique in the session
                        m = Mapped(m.kind, {**m.data, "tool_call_id": f"{turn.id[:12]}-{m.data['tool_call_id']}"})
                    cursor = {"attempt": cur.attempt, "at": at, "n": n}
                    if m.kind == "delta":
                        deltas.add(m.data["text"], cursor)
                        continue
                    await deltas.flush()
                    await _journal(engine, turn, m, cursor, redact)
            await deltas.flush(end=False)  # one checkpoint per read, however many pieces it held
            continue
        st = await _state(detached, sid, name)
        if st.state == "running" and engine.closing:
            raise DriverClosing(f"lap-tui closed; the {h.name} CLI of turn {turn.id[:8]} goes on in its sandbox")
        if st.state == "running":
            if time.time() - start_at > h.timeout:
                await detached.kill(sid, name)
                tail = last_error or redact(await _stderr_tail(detached, sid, str(started.get("stderr", "")), ""))
                raise CliTurnFailed(f"the {h.name} CLI ran longer than its {h.timeout:g} s timeout and was stopped"
                                    + (f"; its last words: {tail}" if tail else ""))
            await asyncio.sleep(poll)
            poll = min(poll * 2, POLL_MAX)
            continue
        # Ended: read once more (it may have written its last lines just before exiting).
        if await detached.read_from(sid, output, cur.offset + len(buf), READ_CHUNK):
            continue
        if st.state == "gone":
            if cur.attempt + 1 >= MAX_ATTEMPTS:
                raise CliTurnFailed(f"the {h.name} CLI was stopped {MAX_ATTEMPTS} times before finishing the turn")
            started = await launch("cli.resumed", cur.attempt + 1,
                                   note="(lap-tui: your previous turn was interrupted before it finished; "
                                        "check the workspace and continue the task.)")
            cur.attempt, cur.offset, cur.skip, buf = int(started["attempt"]), 0, 0, b""
            continue
        err_tail = redact(await _stderr_tail(detached, sid, str(started.get("stderr", "")), st.stderr))
        await engine.journal(turn, EventKind.HARNESS_EVENT, {"type": "cli.exited", "attempt": cur.attempt,
                                                            "exit_code": st.exit_code})
        if st.exit_code != 0 or last_error:
            reason = last_error or f"the {h.name} CLI exited with code {st.exit_code}"
            if err_tail and not last_error:
                reason += f": {err_tail}"
            raise CliTurnFailed(reason)
        await _complete(engine, turn, h)
        return


class _Deltas:
    """Streamed text pieces: shown live at once, journaled as one `model.delta` per read of the
    output (carrying the cursor of its last piece, so a re-attach neither repeats nor drops any)."""

    def __init__(self, engine: "TurnHost", turn: Turn) -> None:
        self.engine, self.turn = engine, turn
        self.parts: list[str] = []
        self.cursor: dict[str, int] | None = None
        # Masked as they stream: a secret split across pieces is held back until it is whole.
        # A held-back tail (shorter than a secret) that a re-attach skips is only missing from the
        # deltas; the whole message event that follows carries it.
        self.mask = RedactStream(engine.mask(turn))

    def add(self, text: str, cursor: dict[str, int]) -> None:
        from lap_tui.engine.api import LiveText

        text = self.mask.feed(text)
        self.cursor = cursor
        if text:
            self.parts.append(text)
            self.engine.publish(self.turn.session_id, LiveText(self.turn.session_id, self.turn.id, text))

    async def flush(self, *, end: bool = True) -> None:
        """Journal the pieces so far; `end` (another event follows) also lets out the held tail."""
        if end and (tail := self.mask.flush()):
            self.parts.append(tail)
        if self.parts:
            text, self.parts = "".join(self.parts), []
            await self.engine.journal(self.turn, EventKind.MODEL_DELTA, {"text": text, "cli": self.cursor})


def _setting(settings: Any, name: str) -> str:
    try:
        return str(settings[name] or "")
    except KeyError:  # settings built by hand (tests) may lack the newer keys
        return ""


def _detached_for(backend: Any) -> Any:
    """Detached commands of the sandbox's backend: bubblewrap keepers on this host, or exec in a pod."""
    if backend.name == "kubernetes":
        from lap_tui.sandbox.k8s.detached import PodDetached

        return PodDetached(backend)
    from lap_tui.sandbox.detached import Detached

    return Detached(backend)


async def _state(detached: Any, sid: str, name: str) -> Any:
    st = detached.state(sid, name)  # the local one reads host files; a pod's asks by exec
    return await st if asyncio.iscoroutine(st) else st


async def _complete(engine: "TurnHost", turn: Turn, h: HarnessDefinition) -> None:
    t = await engine.store.get_turn(turn.id)  # tokens and cost as the relay charged them
    await engine.journal(turn, EventKind.TURN_COMPLETED, {
        "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens, "cost_usd": t.cost_usd,
        "harness": h.name})
    await engine.store.update_turn(turn.id, status=TurnStatus.COMPLETED)
    await engine.session_after(turn, TurnStatus.COMPLETED)


async def _journal(engine: "TurnHost", turn: Turn, m: Mapped, cursor: dict[str, int], redact: Any) -> None:
    d = m.data
    if m.kind == "text":
        await engine.journal(turn, EventKind.MODEL_MESSAGE, {
            "text": redact(d["text"]), "tool_calls": [], "usage": {}, "cost_usd": 0.0, "cli": cursor})
    elif m.kind == "tool_use":
        await engine.journal(turn, EventKind.TOOL_STARTED, {
            "tool_call_id": d["tool_call_id"], "name": d["name"], "arguments": redact(d["arguments"]), "cli": cursor})
    elif m.kind == "tool_result":
        from lap_tui.harness.builtin import cap

        output, truncated = cap(redact(d["output"]))  # the built-in tools' cap: the journal stays light
        await engine.journal(turn, EventKind.TOOL_FINISHED, {
            "tool_call_id": d["tool_call_id"], "output": output, "exit_code": d.get("exit_code"),
            "truncated": truncated, "error": d.get("error"), "cli": cursor})
    elif m.kind == "usage":
        await engine.journal(turn, EventKind.HARNESS_EVENT, {"type": "usage", **d, "cli": cursor})
    elif m.kind == "error":
        await engine.journal(turn, EventKind.HARNESS_EVENT, {"type": "error", "message": redact(d["message"]),
                                                            "cli": cursor})
    elif m.kind == "session":
        await engine.journal(turn, EventKind.HARNESS_EVENT, {"type": "cli.session", **d, "cli": cursor})


async def _state_present(backend: Any, sid: str, h: HarnessDefinition) -> bool:
    """Whether the CLI's state directories still hold something (else it cannot resume)."""
    for d in h.state_dirs:
        try:
            if not await backend.list_dir(sid, d):
                return False
        except LapError:
            return False
    return True


async def _transcript(store: Any, session_id: str, turn_id: str) -> str:
    """The session's earlier turns as plain text, newest kept when long."""
    lines: list[str] = []
    for ev in await store.read_events(session_id):
        if ev.turn_id == turn_id:
            continue
        d = ev.data
        if ev.kind == EventKind.USER_MESSAGE:
            lines.append(f"User: {d.get('text', '')}")
        elif ev.kind == EventKind.MODEL_MESSAGE and d.get("text"):
            lines.append(f"Assistant: {d['text']}")
        elif ev.kind == EventKind.TOOL_STARTED:
            lines.append(f"(tool {d.get('name', '')}: {str(d.get('arguments', ''))[:300]})")
        elif ev.kind == EventKind.TOOL_FINISHED:
            lines.append(f"(result: {str(d.get('output') or '')[:600]})")
    if not lines:
        return ""
    body = "\n".join(lines)[-TRANSCRIPT_MAX:]
    return ("(lap-tui: your earlier session's state was lost; this is the conversation so far, from lap-tui's "
            f"journal.)\n{body}\n(end of the conversation so far)")


def _prompt(mine: list[JournalEvent]) -> str:
    for ev in mine:
        if ev.kind == EventKind.USER_MESSAGE:
            return str(ev.data.get("text", ""))
    return ""


async def _stderr_tail(detached: Any, sid: str, path: str, keeper_err: str) -> str:
    text = ""
    if path:
        try:
            text = (await detached.read_from(sid, path, 0, 1 << 20)).decode("utf-8", "replace")
        except LapError:
            text = ""
    text = (text + "\n" + keeper_err).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-600:]
