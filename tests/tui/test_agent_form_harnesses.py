"""The agent form offers every defined harness, as `lap-tui agents create --harness` takes them:
the bundled ones and a user's own definition in the config dir, one whose CLI is not installed
marked so; an agent whose harness definition has since gone opens, says so, and saves."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import Input, Select, Static

from lap_tui.domain.agent import Agent
from lap_tui.tui.app import LapApp
from lap_tui.tui.screens.agent_form import AgentForm
from lap_tui.tui.screens.agents import AgentsScreen
from lap_tui.tui.widgets.table import LapTable
from tests.tui.conftest import seed, seed_basic, wait_for
from tests.tui.test_app import started

GONE_ID = "a0000000000000000000000000000009"


def _user_harness(tmp_path: Path, monkeypatch) -> Path:
    """A real user definition in the app's config dir, its CLI "installed" (an executable where
    `lap-tui harnesses install` puts it); the bundled CLIs are not installed in this data dir."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))  # config_dir(): where user definitions load from
    clis = tmp_path / "clis"
    monkeypatch.setenv("LAP_HARNESS_DIR", str(clis))
    mine = config / "lap-tui" / "harnesses" / "my-cli"
    mine.mkdir(parents=True)
    text = (Path(__file__).parents[2] / "harnesses" / "opencode" / "harness.toml").read_text()
    (mine / "harness.toml").write_text(text.replace('name = "opencode"', 'name = "my-cli"')
                                       .replace('npm = "opencode-ai"', 'npm = "my-cli-pkg"')
                                       .replace('version = "1.18.33"', 'version = "2.0.1"')
                                       .replace('bin = "opencode"', 'bin = "mycli"'))
    binary = clis / "my-cli-pkg-2.0.1" / "node_modules" / ".bin" / "mycli"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    os.chmod(binary, 0o755)
    return mine


def _app_with_a_user_harness(services_factory, tmp_path, monkeypatch) -> LapApp:
    _user_harness(tmp_path, monkeypatch)
    services = services_factory(models=["gpt-4o-mini"])
    seed(services, seed_basic)
    return LapApp(services)


async def _new_agent_form(app: LapApp, pilot) -> AgentForm:
    await started(app, pilot)
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="the new-agent form")
    return app.screen


def _options(form: AgentForm) -> dict[str, str]:
    select = form.query_one("#f-harness", Select)
    return {value: str(prompt) for prompt, value in select._options if value is not Select.BLANK}


async def test_the_form_lists_every_defined_harness_and_marks_the_uninstalled(services_factory, tmp_path, monkeypatch):
    app = _app_with_a_user_harness(services_factory, tmp_path, monkeypatch)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _new_agent_form(app, pilot)
        options = _options(form)
        assert {"builtin", "opencode", "claude-code", "codex", "my-cli"} <= set(options)
        assert options["my-cli"] == "my-cli"  # installed: no mark
        assert options["builtin"] == "builtin"  # nothing to install
        assert options["opencode"] == "opencode (not installed)"
        select = form.query_one("#f-harness", Select)
        select.value = "opencode"
        hint = form.query_one("#harness-hint", Static)
        await wait_for(pilot, lambda: "lap-tui harnesses install opencode" in str(hint.render()),
                       what="the not-installed hint")
        select.value = "my-cli"
        await wait_for(pilot, lambda: str(hint.render()).strip() == "", what="the hint cleared")
        form.query_one("#f-name", Input).value = "custom-one"
        form.query_one("#f-model", Input).value = "gpt-4o-mini"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="saved")
        saved = [a for a in await app.store.list_agents() if a.name == "custom-one"]
        assert [a.harness for a in saved] == ["my-cli"]


async def _seed_gone(store) -> None:
    await seed_basic(store)
    await store.create_agent(Agent(id=GONE_ID, name="orphaned", team="default", model="gpt-4o-mini",
                                   harness="gone-cli"))


async def test_an_agent_whose_harness_definition_is_gone_stays_editable(services_factory, tmp_path, monkeypatch):
    _user_harness(tmp_path, monkeypatch)
    services = services_factory(models=["gpt-4o-mini"])
    seed(services, _seed_gone)
    app = LapApp(services)
    async with app.run_test(size=(100, 40)) as pilot:
        await started(app, pilot)
        table = app.screen.query_one(LapTable)
        await wait_for(pilot, lambda: GONE_ID in app.agents_cache, what="the agent listed")
        table.move_cursor(row=table.get_row_index(GONE_ID))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentForm), what="the edit form")
        form = app.screen
        assert form.query_one("#f-harness", Select).value == "gone-cli"
        assert _options(form)["gone-cli"] == "gone-cli (definition missing)"
        hint = str(form.query_one("#harness-hint", Static).render())
        assert "'gone-cli' is no longer defined" in hint and "pick another" in hint
        form.query_one("#f-memory", Input).value = "2Gi"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="saved")
        agent = await app.store.get_agent_by_id(GONE_ID)
        assert (agent.harness, agent.sandbox.memory) == ("gone-cli", "2Gi")


async def test_the_form_sets_a_virtual_gateway_key_with_budget_and_ttl(services_factory, tmp_path, monkeypatch):
    app = _app_with_a_user_harness(services_factory, tmp_path, monkeypatch)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _new_agent_form(app, pilot)
        form.query_one("#f-name", Input).value = "budgeted"
        form.query_one("#f-model", Input).value = "gpt-4o-mini"
        form.query_one("#f-harness", Select).value = "my-cli"
        form.query_one("#f-gateway", Select).value = "virtual"
        form.query_one("#f-budget", Input).value = "2.5"
        form.query_one("#f-ttl", Input).value = "7 days"
        err = form.query_one("#err-ttl", Static)
        await wait_for(pilot, lambda: err.has_class("-shown"), what="the TTL refused as typed")
        assert "not a duration" in str(err.render())
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, AgentForm)  # not saved
        form.query_one("#f-ttl", Input).value = "7d"
        await wait_for(pilot, lambda: not err.has_class("-shown"), what="the TTL accepted")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen), what="saved")
        (agent,) = [a for a in await app.store.list_agents() if a.name == "budgeted"]
        sb = agent.sandbox
        assert (agent.harness, sb.gateway_key, sb.key_budget_usd, sb.key_ttl) == ("my-cli", "virtual", 2.5, "7d")
