"""Snapshots of each main screen at 80x24 and 120x40: fixed ids and timestamps, a frozen clock,
no cursor blink, animations off. Update with `pytest tests/tui --snapshot-update` and review."""

from __future__ import annotations

import pytest

from lap_tui.tui.app import LapApp
from tests.tui.conftest import SESSION_ID, FakeSandboxBackend, frozen_store_clock, seed, seed_chat, seed_sandboxes

SIZES = [(80, 24), (120, 40)]


async def settle(pilot) -> None:
    app = pilot.app
    for _ in range(100):
        if app.store is not None and app.engine is not None and app.health.get("gateway", ("…",))[0] != "…":
            break
        await pilot.pause(0.05)
    await pilot.pause(0.3)
    app.screen.set_focus(app.screen.focused)  # steady focus; the cursor does not blink
    if app.screen.focused is not None and hasattr(app.screen.focused, "cursor_blink"):
        app.screen.focused.cursor_blink = False


def build(tmp_path, monkeypatch, seeder, **app_kw):
    from tests.tui.conftest import make_services

    backend = FakeSandboxBackend() if app_kw.pop("backend", False) else None
    services = make_services(tmp_path, models=["gpt-4o-mini", "claude-sonnet"], sandboxes=backend)
    with frozen_store_clock(monkeypatch):
        seed(services, seeder)
    return LapApp(services, **app_kw)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_agents(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(build(tmp_path, monkeypatch, seed_chat), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sessions(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(build(tmp_path, monkeypatch, seed_chat, view="sessions"), terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_chat(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(build(tmp_path, monkeypatch, seed_chat, session=SESSION_ID), terminal_size=size,
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sandboxes(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(build(tmp_path, monkeypatch, seed_sandboxes, view="sandboxes", backend=True),
                        terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_agent_form(snap_compare, tmp_path, monkeypatch, size):
    async def open_form(pilot):
        from lap_tui.tui.screens.agent_form import AgentForm

        await settle(pilot)
        await pilot.press("n")
        for _ in range(100):  # wait for the form, not a fixed time: CI machines are slow
            if isinstance(pilot.app.screen, AgentForm):
                break
            await pilot.pause(0.05)
        await pilot.press(*"Bad")
        for _ in range(100):  # until the inline error for the name is shown
            if pilot.app.screen.query(".-shown"):
                break
            await pilot.pause(0.05)
        focused = pilot.app.screen.focused
        if focused is not None and hasattr(focused, "cursor_blink"):
            focused.cursor_blink = False  # the cursor is drawn steadily, whatever the timer's phase
        await pilot.pause(0.2)

    assert snap_compare(build(tmp_path, monkeypatch, seed_chat), terminal_size=size, run_before=open_form)


@pytest.mark.parametrize("theme", ["lap-light", "lap-mono"])
def test_themes(snap_compare, tmp_path, monkeypatch, theme):
    async def themed(pilot):
        await settle(pilot)
        pilot.app.choose_theme(theme)
        await pilot.pause(0.2)

    assert snap_compare(build(tmp_path, monkeypatch, seed_chat, session=SESSION_ID), terminal_size=(80, 24),
                        run_before=themed)


def test_help(snap_compare, tmp_path, monkeypatch):
    async def helped(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(build(tmp_path, monkeypatch, seed_chat), terminal_size=(80, 24), run_before=helped)
