"""Create or edit an agent; every field is checked as it is typed, with the reason inline."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Input, Label, Select, Static, TextArea

from lap_tui.domain.agent import GATEWAY_KEYS, HARNESSES, SANDBOX_BACKENDS, SCOPES, Agent, SandboxSettings
from lap_tui.domain.errors import InvalidInput, LapError
from lap_tui.domain.ids import new_id
from lap_tui.domain.names import clip, label_problem
from lap_tui.tui import keymap
from lap_tui.tui.formatting import plural
from lap_tui.tui.safety import neutralise, one_line
from lap_tui.tui.screens.base import LapScreen
from lap_tui.tui.widgets.check import Check


def _sandbox_problem(**field: Any) -> str | None:
    try:
        SandboxSettings(**field).validate()
    except InvalidInput as exc:
        return str(exc)
    return None


def _env_names(value: str) -> tuple[str, ...]:
    return tuple(n for n in (p.strip() for p in value.replace(",", " ").split()) if n)


def _idle_problem(value: str) -> str | None:
    if not value.strip().isdigit():
        return "idle suspend must be whole seconds (0 never suspends)"
    return None


def _budget_problem(value: str) -> str | None:
    try:
        budget = float(value.strip() or "0")
    except ValueError:
        return f"key budget {clip(value)!r} is not an amount of US dollars: use e.g. 5 or 0.5 (0: no budget)"
    return _sandbox_problem(key_budget_usd=budget)


CHECKS: dict[str, Callable[[str], str | None]] = {
    "name": lambda v: label_problem("agent", v),
    "team": lambda v: label_problem("team", v),
    "model": lambda v: None if v.strip() else "model is empty: pick one from the gateway or type its id",
    "image": lambda v: None,
    "cpu": lambda v: _sandbox_problem(cpu=v.strip()),
    "memory": lambda v: _sandbox_problem(memory=v.strip()),
    "idle": _idle_problem,
    "env": lambda v: _sandbox_problem(env=_env_names(v)),
    "budget": _budget_problem,
    "ttl": lambda v: _sandbox_problem(key_ttl=v.strip()),
}
GATEWAY_KEY_LABELS = {"relay": "relay: the relay swaps in the gateway's key",
                      "virtual": "virtual: a LiteLLM key per session (budget, expiry)"}


class AgentForm(LapScreen):
    TITLE = "New agent"
    BINDINGS = keymap.bindings("form.save", "form.cancel")
    DEFAULT_CSS = """
    AgentForm VerticalScroll { padding: 0 1; }
    AgentForm .row { height: auto; margin-top: 1; }
    AgentForm .row > Label { width: 14; padding-top: 0; }
    AgentForm .row > Input, AgentForm .row > Select { width: 1fr; }
    AgentForm .err { color: $error; padding-left: 14; height: auto; display: none; }
    AgentForm .err.-shown { display: block; }
    AgentForm .hint { color: $text-muted; padding-left: 14; height: auto; }
    AgentForm TextArea { height: 4; width: 1fr; padding: 0; }
    /* Every field shows as a field before it is focused (the empty prompt was invisible). */
    AgentForm .row > Input, AgentForm .row > TextArea { background: $panel; }
    AgentForm .section { margin-top: 1; text-style: bold; color: $secondary; }
    """

    def __init__(self, agent: Agent | None) -> None:
        super().__init__()
        self.agent = agent
        self.TITLE = f"Edit agent {agent.name}" if agent else "New agent"

    def compose_body(self) -> ComposeResult:
        a = self.agent
        sb = a.sandbox if a else SandboxSettings()
        team = a.team if a else self.lap.settings["team"]
        with VerticalScroll():
            yield from self._row("name", "Name", Input(a.name if a else "", placeholder="e.g. code-reviewer",
                                                      compact=True, id="f-name"))
            yield from self._row("team", "Team", Input(team, compact=True, id="f-team"))
            # Inputs write their value to the terminal as it is: a stored model, prompt or image
            # (any process can write the store) is neutralised first, and saved as shown.
            yield from self._row("model", "Model", Input(one_line(a.model) if a else "", placeholder="model id",
                                                        compact=True, id="f-model"))
            yield Static("", classes="hint", id="model-hint")
            harness = a.harness if a else "builtin"
            yield from self._row("harness", "Harness", Select(self._harness_options(harness), value=harness,
                                                               allow_blank=False, compact=True, id="f-harness"))
            yield Static("", classes="hint", id="harness-hint")
            with Horizontal(classes="row"):
                yield Label("System prompt")
                yield TextArea(neutralise(a.system_prompt) if a else "", compact=True, id="f-prompt",
                               tab_behavior="focus")
            yield Static("Sandbox", classes="section")
            yield from self._row("backend", "Backend", Select([(b, b) for b in SANDBOX_BACKENDS], value=sb.backend,
                                                               allow_blank=False, compact=True, id="f-backend"))
            yield from self._row("scope", "Scope", Select([(s, s) for s in SCOPES], value=sb.scope,
                                                           allow_blank=False, compact=True, id="f-scope"))
            yield from self._row("image", "Image", Input(one_line(sb.image), placeholder="default for the harness",
                                                        compact=True, id="f-image"))
            yield from self._row("cpu", "CPU", Input(sb.cpu, compact=True, id="f-cpu"))
            yield from self._row("memory", "Memory", Input(sb.memory, compact=True, id="f-memory"))
            yield from self._row("idle", "Idle suspend", Input(str(sb.idle_suspend_seconds), compact=True,
                                                              id="f-idle"))
            yield from self._row("env", "Env names", Input(" ".join(sb.env), placeholder="e.g. GITHUB_TOKEN (values "
                                                          "come from CONTAINER_ENV_*)", compact=True, id="f-env"))
            with Horizontal(classes="row"):
                yield Label("Network")
                yield Check("allow network access", sb.network, compact=True, id="f-network",
                            tooltip="The host's own network: the sandbox also reaches the host's loopback "
                                    "services and abstract unix sockets (docs/SECURITY.md)")
            # CLI harnesses: what the relay forwards with (docs/HARNESSES.md); the sandbox never holds it.
            yield from self._row("gateway", "Gateway key", Select(
                [(GATEWAY_KEY_LABELS[k], k) for k in GATEWAY_KEYS],
                value=sb.gateway_key if sb.gateway_key in GATEWAY_KEYS else "relay", allow_blank=False,
                compact=True, id="f-gateway"))
            yield from self._row("budget", "Key budget $", Input(f"{sb.key_budget_usd:g}", compact=True,
                                                                placeholder="0: no budget", id="f-budget"))
            yield from self._row("ttl", "Key TTL", Input(sb.key_ttl, placeholder="e.g. 7d (empty: no expiry)",
                                                        compact=True, id="f-ttl"))
            yield Static("ctrl+s saves · esc cancels", classes="hint")

    def _harness_options(self, current: str) -> list[tuple[Text, str]]:
        """Every defined harness, as `lap-tui agents create --harness` takes them (bundled, then the
        config dir's): one whose CLI is not installed is still offered, marked so; the agent's own
        harness stays listed (and selected) when its definition has since gone."""
        from lap_tui.engine.cli_turn import harness_definitions
        from lap_tui.harness.cli import harness_root, installed_bin

        settings = self.lap.settings
        found = harness_definitions(settings)
        root = harness_root(settings.data_dir)
        self._harness_notes: dict[str, str] = {}
        options: list[tuple[Text, str]] = []
        for h in sorted(found.values(), key=lambda h: (h.kind != "builtin", h.name not in HARNESSES, h.name)):
            if h.is_cli and installed_bin(root, h) is None:
                self._harness_notes[h.name] = (f"the {h.name} CLI ({h.npm}@{h.version}) is not installed here: "
                                               f"`lap-tui harnesses install {h.name}` before its first turn")
                options.append((Text(f"{h.name} (not installed)"), h.name))
            else:
                options.append((Text(h.name), h.name))
        if current not in found:
            # Names come from the store (any process writes it): plain text, one line.
            self._harness_notes[current] = (f"harness {clip(one_line(current))!r} is no longer defined (no "
                                            f"harnesses/{clip(one_line(current))}/harness.toml): its turns fail "
                                            "until you pick another or restore the definition")
            options.insert(0, (Text(one_line(f"{current} (definition missing)")), current))
        return options

    @on(Select.Changed, "#f-harness")
    def _harness_changed(self, event: Select.Changed) -> None:
        self._harness_hint()

    def _harness_hint(self) -> None:
        note = getattr(self, "_harness_notes", {}).get(str(self.query_one("#f-harness", Select).value), "")
        hint = self.query_one("#harness-hint", Static)
        hint.update(Text(one_line(note)))
        hint.display = bool(note)  # no empty line under the common case

    def _row(self, key: str, label: str, widget) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label(label)
            yield widget
        yield Static("", classes="err", id=f"err-{key}")

    def on_mount(self) -> None:
        self.query_one("#title").set(title=self.TITLE)
        self.set_focus(self.query_one("#f-name", Input))  # now: keys typed with `n` land here
        self.query_one("#f-prompt", TextArea).placeholder = "optional: how the agent should work"
        self._models_hint()
        self._harness_hint()
        for key in CHECKS:
            self._check(key, show=bool(self.agent))
        self._as_opened = self._snapshot()
        self._unknown_model_ok = ""  # a model not in the gateway's list, saved anyway once said

    def _snapshot(self) -> tuple[object, ...]:
        """Everything the form holds, to tell whether esc would throw typing away."""
        return (tuple(i.value for i in self.query(Input)), tuple(s.value for s in self.query(Select)),
                self.query_one("#f-prompt", TextArea).text, self.query_one("#f-network", Checkbox).value)

    def _models_hint(self) -> None:
        models = self.lap.models
        hint = self.query_one("#model-hint", Static)
        if models:
            self.query_one("#f-model", Input).suggester = SuggestFromList(models, case_sensitive=False)
            shown = ", ".join(models[:4]) + (" …" if len(models) > 4 else "")
            # Model ids come from the gateway: plain text, neutralised.
            hint.update(Text(one_line(f"{plural(len(models), 'model')} from the gateway (→ completes): {shown}")))
        else:
            state, detail = self.lap.health.get("gateway", ("", ""))
            hint.update("gateway unreachable: type the model id" if state == "down" else
                        "no gateway model list: type the model id")

    def _value(self, key: str) -> str:
        return self.query_one(f"#f-{key}", Input).value

    def _duplicate(self) -> str | None:
        """Names are unique per team: said as typed, not only when saving."""
        name, team = self._value("name").strip(), self._value("team").strip()
        mine = self.agent.id if self.agent else None
        if any(a.name == name and a.team == team and a.id != mine for a in self.lap.agents_cache.values()):
            return f"agent {clip(name)!r} already exists in team {clip(team)!r}: pick another name"
        return None

    def _unknown_model(self) -> str | None:
        model, models = self._value("model").strip(), self.lap.models
        if model and models and model not in models:
            return f"model {clip(model)!r} is not served by the gateway ({plural(len(models), 'model')} listed)"
        return None

    def _check(self, key: str, *, show: bool = True) -> str | None:
        problem = CHECKS[key](self._value(key))
        if problem is None and key == "name":
            problem = self._duplicate()
        if key == "model" and problem is None:
            warning = self._unknown_model()  # a warning, not a refusal: the list may be behind
            err = self.query_one("#err-model", Static)
            err.update(Text(one_line(warning or "")))
            err.set_class(bool(warning) and show, "-shown")
            return None
        err = self.query_one(f"#err-{key}", Static)
        err.update(Text(one_line(problem or "")))  # problems quote what was typed: never markup
        err.set_class(bool(problem) and show, "-shown")
        return problem

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        key = (event.input.id or "").removeprefix("f-")
        if key in CHECKS:
            self._check(key)
        if key == "team":
            self._check("name")  # the same name may be taken in one team and free in another

    def build(self) -> Agent | None:
        problems = [k for k in CHECKS if self._check(k)]
        if problems:
            self.query_one(f"#f-{problems[0]}", Input).focus()
            return None
        # Editing keeps the settings the form has no field for (warm_pool, max_lifetime_seconds).
        sandbox = replace(
            self.agent.sandbox if self.agent is not None else SandboxSettings(),
            backend=str(self.query_one("#f-backend", Select).value), image=self._value("image").strip(),
            cpu=self._value("cpu").strip(), memory=self._value("memory").strip(),
            network=self.query_one("#f-network", Checkbox).value, scope=str(self.query_one("#f-scope", Select).value),
            idle_suspend_seconds=int(self._value("idle").strip()), env=_env_names(self._value("env")),
            gateway_key=str(self.query_one("#f-gateway", Select).value),
            key_budget_usd=float(self._value("budget").strip() or "0"), key_ttl=self._value("ttl").strip())
        fields = dict(name=self._value("name").strip(), team=self._value("team").strip(),
                      model=self._value("model").strip(), harness=str(self.query_one("#f-harness", Select).value),
                      system_prompt=self.query_one("#f-prompt", TextArea).text, sandbox=sandbox)
        if self.agent is not None:
            return self.agent.with_changes(**fields)
        return Agent(id=new_id(), **fields)

    def action_save(self) -> None:
        if self.lap.refuse_if_read_only():
            return
        agent = self.build()
        if agent is None:
            return
        unknown = self._unknown_model()
        if unknown and self._unknown_model_ok != agent.model:
            self._unknown_model_ok = agent.model
            self.notify(f"{unknown}; ctrl+s again saves it anyway", severity="warning", timeout=8)
            return
        self._save(agent)

    @work(group="agent-save", exclusive=True)
    async def _save(self, agent: Agent) -> None:
        store = self.lap.store
        try:
            agent.validate()
            saved = await (store.update_agent(agent) if self.agent else store.create_agent(agent))
            from lap_tui.engine.pools import follow_agent

            await follow_agent(self.lap.settings, store, saved,  # its warm pool (on a cold start's image)
                               before=self.agent.sandbox.warm_pool if self.agent else 0)
        except LapError as exc:
            err = self.query_one("#err-name", Static)
            err.update(Text(one_line(str(exc).splitlines()[0])))
            err.add_class("-shown")
            self.notify(str(exc), severity="error")
            return
        self.lap.note("agent_id", saved.id)
        for screen in self.app.screen_stack:  # the list under the form shows the saved agent selected
            if hasattr(screen, "select_agent"):
                screen.select_agent(saved.id)
        await self.lap.refresh_agents()
        self.notify(f"{'saved' if self.agent else 'created'} agent {saved.name}")
        self.dismiss_form()

    def dismiss_form(self) -> None:
        self.app.pop_screen()

    def action_cancel(self) -> None:
        if self._snapshot() == self._as_opened:
            self.dismiss_form()
            return
        self._confirm_discard()

    @work(group="agent-discard", exclusive=True)
    async def _confirm_discard(self) -> None:
        from lap_tui.tui.screens.confirm import ConfirmScreen

        if await self.app.push_screen_wait(ConfirmScreen(
                "Discard the changes?", "What was typed in this form is lost.", yes="Discard")):
            self.dismiss_form()
