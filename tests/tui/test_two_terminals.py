"""Two terminals on one session: two LapApp instances (each with its own engine) on the same
SQLite file. One sends; both show the same streamed reply; only the sender's engine drives the
turn (it holds the session's lease), the other follows the journal's checkpoints."""

from __future__ import annotations


import pytest

from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.chat import ChatScreen
from tests.support.scripted_gateway import ScriptedGateway, stream
from tests.tui.conftest import SESSION_ID, seed, seed_basic, wait_for
from tests.tui.test_chat_flow import services_for

pytestmark = pytest.mark.usefixtures("require_bwrap")  # the engine's sandboxes are real

CHUNKS = [f"part{i} " for i in range(100)] + ["\n\nTWO-TERMINALS-END"]
REPLY = "".join(CHUNKS)


def reply_of(app) -> str | None:
    screen = app.screen
    if not isinstance(screen, ChatScreen):
        return None
    texts = [b.text for b in screen.model.blocks if b.kind == "assistant"]
    return texts[-1] if texts else None


def turn_of(app) -> str | None:
    screen = app.screen
    turns = [b for b in screen.model.blocks if b.kind == "turn"] if isinstance(screen, ChatScreen) else []
    return turns[-1].status if turns else None


async def test_one_sends_both_show_the_same_reply_only_one_drives(tmp_path):
    with ScriptedGateway(models=["gpt-test"]) as gw:
        gw.push(stream(CHUNKS, delay=0.04, usage={"prompt_tokens": 5, "completion_tokens": 101}))  # ~4 s: the watcher polls the journal
        s1 = services_for(tmp_path, gw)
        s2 = services_for(tmp_path, gw)
        assert s1.settings.database_url == s2.settings.database_url  # the same store file
        seed(s1, seed_basic)
        a1 = LapApp(s1, session=SESSION_ID)
        a2 = LapApp(s2, session=SESSION_ID)
        async with a1.run_test(size=(80, 24)) as p1, a2.run_test(size=(80, 24)) as p2:
            for app, pilot in ((a1, p1), (a2, p2)):
                await wait_for(pilot, lambda app=app: isinstance(app.screen, ChatScreen)
                               and app.engine_ready.is_set(), what="chat and engine")
            assert a1.engine.holder != a2.engine.holder
            await p1.press(*"hello both")
            await p1.press("ctrl+j")
            # The watcher sees text while the turn still runs (checkpoints), not only at the end.
            await wait_for(p2, lambda: bool(reply_of(a2)) and turn_of(a2) in ("running", "queued"),
                           timeout=60, what="the watcher sees the reply streaming")
            lease = await a1.store.get_lease(SESSION_ID)
            assert lease is not None and lease.holder == a1.engine.holder  # the sender drives
            await wait_for(p1, lambda: turn_of(a1) == "completed", timeout=60, what="turn done (sender)")
            await wait_for(p2, lambda: turn_of(a2) == "completed", timeout=60, what="turn done (watcher)")
            assert reply_of(a1) == reply_of(a2) == REPLY
            assert len(gw.chat_requests) == 1  # one driver, one model call
            users = [[b.text for b in app.screen.model.blocks if b.kind == "user"] for app in (a1, a2)]
            assert users[0] == users[1] == ["hello both"]
