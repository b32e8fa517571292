"""The App: owns the services, navigation, UI state, themes, keymap and health."""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import time
from pathlib import Path
from typing import Any, Iterable

from textual import events
from textual.app import App, SystemCommand
from textual.reactive import var
from textual.screen import ModalScreen, Screen

from lap_tui.domain.agent import Agent
from lap_tui.domain.errors import LapError
from lap_tui.store.base import Store
from lap_tui.tui import cluster, commands, keymap  # cluster registers :ctx and :ns
from lap_tui.tui.collector import QUIET, Collector
from lap_tui.tui.formatting import plural
from lap_tui.tui.key_order import KeyOrder
from lap_tui.tui.loop import after_refresh, import_in_thread
from lap_tui.tui.safety import Sanitiser
from lap_tui.tui.services import Services
from lap_tui.tui.state import UiState, load_state, save_state, state_for
from lap_tui.tui.themes import DEFAULT, load_themes, user_theme_dirs

HEALTH_EVERY = 10.0  # seconds between store/gateway checks
GATEWAY_TIMEOUT = 5.0  # a gateway that retries for long is "down" here; the form says so
PAINT_GRACE = 0.05  # seconds after the first screen's refreshes before heavy imports (engine)
STORE_RETRY = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # seconds before each new try to open the store
STANDBY_AFTER = 3.0  # seconds a turn may sit untouched before this terminal drives it itself


class LapApp(App):
    TITLE = "lap-tui"
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    BINDINGS = keymap.bindings("app.quit", "app.back", "app.command_line", "app.help", "app.palette",
                               "app.agents", "app.sessions", "app.sandboxes")

    health: var[dict[str, tuple[str, str]]] = var(dict, always_update=True)

    def __init__(self, services: Services, *, view: str | None = None, session: str | None = None,
                 read_only: bool = False, state: UiState | None = None) -> None:
        super().__init__()
        self.services = services
        self.settings = services.settings
        self.read_only = read_only
        self.start_view, self.start_session = view, session
        self.state_path = state_for(services.state_path, view=view, read_only=read_only)
        if state is None:
            state = load_state(self.state_path) if self.state_path else UiState()
        self.state = state
        # What to reopen, kept apart: screens update `state` as soon as they show.
        self.initial = copy.deepcopy(state)
        self._state_dirty = False
        self.store: Store | None = None
        self.engine: Any = None
        self._standby: asyncio.Task[int] | None = None
        self.sandboxes: Any = None  # the backend, once built (None: store records only)
        self.models: list[str] | None = None
        self.agents_cache: dict[str, Agent] = {}
        self.agents_loaded = False
        self.store_down: tuple[Exception, int, float] | None = None  # why the store cannot be opened yet
        self.sanitiser = Sanitiser(self.settings.redactor)
        self.store_ready = asyncio.Event()
        self.busy_at = 0.0  # monotonic time streamed text last reached the screen (see widgets/transcript.py)
        self.input_at = 0.0  # monotonic time of the last keypress (the chat lets its frame go first)
        self.collector = Collector()  # when Python's garbage collector may walk the heap (collector.py)
        self.engine_ready = asyncio.Event()  # set once `engine` is the engine (or the watch-only stand-in)
        self.sandboxes_tried = asyncio.Event()  # set once opening the sandbox backend succeeded or failed
        self._mounted = asyncio.Event()
        self._key_order = KeyOrder(self, self._deliver_key)
        if services.deterministic:
            self.animation_level = "none"
        # set_reactive: assigning a reactive before the app runs would wait for a loop that is not there
        self.set_reactive(LapApp.health, {"store": ("…", "opening"), "gateway": ("…", ""), "sandboxes": ("…", "")})

    # -- start-up
    def _on_load_store(self) -> None:
        if self.services.store is not None and self.services.agents is not None:
            # Opened before Textual loaded: the first frame shows the agents.
            self.store = self.services.store
            self.health = {**self.health, "store": ("ok", self.store.kind)}
            self.agents_cache = {a.id: a for a in self.services.agents}
            self.agents_loaded = True
            self.store_ready.set()
        # Otherwise the store opens while the first screen is built: first paint = max(both).
        self.run_worker(self._start(), name="start", group="start")

    async def on_event(self, event: events.Event) -> None:
        # A paste is input too: pasted text then ctrl+j must send the pasted text.
        if isinstance(event, (events.Key, events.Paste)):
            if not event.is_forwarded:  # from the terminal: after the keys typed before it
                if isinstance(event, events.Key):
                    self.input_at = time.monotonic()
                await self._key_order.key(event)
                return
            await super().on_event(event)  # back from the focused widget: the app's own bindings
            await self._key_order.landed_at_app(event)
            return
        await super().on_event(event)

    async def _deliver_key(self, event: events.Key | events.Paste) -> None:
        await super().on_event(event)

    def on_load(self) -> None:
        self._on_load_store()
        # Themes and keys before the first screen is composed (it is the default screen).
        themes, self._theme_problems = load_themes(*user_theme_dirs(self.settings.config_file))
        for t in themes:
            self.register_theme(t)
        self.theme = self._start_theme()
        remap, bad = keymap.check_keymap(dict(self.settings.keys))
        self._theme_problems += bad
        if remap:
            self.set_keymap(remap)

    def get_default_screen(self) -> Screen:
        # The agents list is the bottom screen: no blank default screen drawn first. With
        # `lap-tui --session ID` and its history read before Textual loaded, the chat is: the
        # agents list built under it cost ~40 ms of that start-up (the list is built when the
        # chat is left: `_to_base`).
        if self.services.first_chat is not None and self.start_session:
            from lap_tui.tui.screens.chat import ChatScreen

            session = self.services.first_chat[0]
            self.state.agent_id = session.agent_id
            chat = ChatScreen(session.id)
            # Textual 8.2.8 gives a pushed screen a result callback, not the default one, and
            # switching a screen away pops it: without one, `_to_base` could not replace it.
            chat._push_result_callback(self, None)
            return chat
        from lap_tui.tui.screens.agents import AgentsScreen

        return AgentsScreen()

    def on_mount(self) -> None:
        for p in self._theme_problems:
            self.notify(p, severity="warning", timeout=8)
        self._mounted.set()
        if self.state_path and not self.services.deterministic:
            self.set_interval(1.0, self._save_if_dirty)

    def _start_theme(self) -> str:
        configured = self.settings["theme"]
        st = self.state
        wanted = st.theme if st.theme and st.theme_config == configured else configured
        if wanted not in self.available_themes:
            self.notify(f"theme {wanted!r} not found; using {DEFAULT}", severity="warning")
            wanted = DEFAULT
        return wanted

    async def _start(self) -> None:
        if self.store is None:
            await self._open_store_retrying()
            self.health = {**self.health, "store": ("ok", self.store.kind)}
            await self.refresh_agents()
            self.store_ready.set()
        await self._mounted.wait()
        await self._restore()  # a chat shows its history from the store; the engine joins later
        shown = getattr(self.screen, "shown", None)  # a restored chat: its history first
        if shown is not None:
            try:
                await asyncio.wait_for(shown.wait(), 3.0)
            except asyncio.TimeoutError:
                pass
        await self._painted()  # the first screen reaches the terminal before any heavy import
        await self._open_engine()
        # The chat's code (Markdown, its parser) in a thread now, not on the loop when the
        # user first opens a session (~40-70 ms there).
        await import_in_thread("lap_tui.tui.screens.chat")
        # What start-up built lives as long as the app: out of the collector's passes, which
        # otherwise pause a streaming chat for tens of milliseconds; full passes run when the
        # app is quiet (collector.py; over a 20,000-chunk reply Python's default made 7 full
        # passes, 136 ms, max 32 ms; none with this).
        self.collector.start()
        self.set_interval(QUIET / 5, self._collect_when_quiet)
        # Everything below may import heavy libraries: after the first useful paint.
        self.run_worker(self._open_sandboxes(), name="sandboxes", group="services")
        self.run_worker(self._health_loop(), name="health", group="services")

    async def _open_store_retrying(self) -> None:
        """Open the store; while it cannot be opened (a PostgreSQL server down or unreachable),
        say why and how to fix it where the list would be, and try again with back-off."""
        for attempt in itertools.count(1):
            try:
                self.store = await self.services.open_store()
            except Exception as exc:  # noqa: BLE001 - LapError carries the fix; anything else is shown as is
                wait = STORE_RETRY[min(attempt, len(STORE_RETRY)) - 1]
                self.health = {**self.health, "store": ("down", str(exc).splitlines()[0])}
                self._show_store_problem(exc, attempt, wait)
                await asyncio.sleep(wait)
                continue
            self._show_store_problem(None, attempt, 0)
            return

    def _show_store_problem(self, exc: Exception | None, attempt: int, wait: float) -> None:
        self.store_down = (exc, attempt, wait) if exc is not None else None
        for screen in self.screen_stack:
            if hasattr(screen, "store_problem"):
                screen.store_problem(exc, attempt, wait)

    async def _painted(self) -> None:
        """Wait until the screen as it is now has been drawn (the engine's imports hold the loop)."""
        # A table shows its rows a refresh or two after they are added (column widths are
        # measured on idle): wait for a few refreshes, then give the driver time to write.
        for _ in range(3):
            await after_refresh(self)
        await asyncio.sleep(PAINT_GRACE)

    async def _open_engine(self) -> None:
        from lap_tui.tui.observer import JournalObserver

        engine = None
        if self.services.make_engine is not None:
            try:
                engine = self.services.make_engine(self.store)
                if inspect.isawaitable(engine):
                    engine = await engine
            except Exception as exc:  # noqa: BLE001 - shown, and the UI stays usable
                self.notify(f"engine: {exc}", severity="error", timeout=15)
        self.engine = engine or JournalObserver(self.store)
        self.engine_ready.set()
        if engine is not None and hasattr(engine, "prepare"):
            try:
                await engine.prepare()
            except Exception as exc:  # noqa: BLE001 - a broken gateway setting shows at the first send
                self.log.warning(f"preparing the gateway client failed: {exc}")
        if engine is not None and not self.read_only:
            # When no worker runs, this terminal does: turns nobody has touched for a few
            # seconds (queued by `lap-tui send`, or cut off by a crash) are driven here.
            from lap_tui.engine.worker import run_worker

            self._standby = asyncio.create_task(run_worker(engine, standby=STANDBY_AFTER, poll_interval=1.0))

    async def _open_sandboxes(self) -> None:
        try:
            await self._open_sandbox_backend()
        finally:
            self.sandboxes_tried.set()

    async def _open_sandbox_backend(self) -> None:
        if self.services.make_sandboxes is None:
            self.health = {**self.health, "sandboxes": ("off", "store only")}
            return
        try:
            backend = self.services.make_sandboxes(self.store)
            if inspect.isawaitable(backend):
                backend = await backend
        except Exception as exc:  # noqa: BLE001
            self.health = {**self.health, "sandboxes": ("down", str(exc).splitlines()[0])}
            return
        self.sandboxes = backend
        name = getattr(backend, "name", None) or getattr(backend, "kind", None) or type(backend).__name__
        self.health = {**self.health, "sandboxes": ("ok" if backend else "off", str(name) if backend else "none")}
        for screen in self.screen_stack:
            if hasattr(screen, "backend_ready"):
                screen.backend_ready()

    async def _health_loop(self) -> None:
        while True:
            await self._check_gateway()
            try:
                await self.store.list_agents(limit=1)
                self.health = {**self.health, "store": ("ok", self.store.kind)}
            except Exception as exc:  # noqa: BLE001
                self.health = {**self.health, "store": ("down", str(exc))}
            if self.services.deterministic:
                return
            await asyncio.sleep(HEALTH_EVERY)

    async def _check_gateway(self) -> None:
        if self.services.list_models is None:
            self.health = {**self.health, "gateway": ("off", "not configured")}
            return
        try:
            self.models = sorted(await asyncio.wait_for(self.services.list_models(), GATEWAY_TIMEOUT))
            self.health = {**self.health, "gateway": ("ok", plural(len(self.models), "model"))}
        except asyncio.TimeoutError:
            self.health = {**self.health, "gateway": ("down", "no answer")}
        except LapError as exc:  # e.g. "the gateway rejected the key"
            self.health = {**self.health, "gateway": ("down", str(exc))}  # whole: the bar ellipsises, its tooltip shows all
        except Exception as exc:  # noqa: BLE001
            self.health = {**self.health, "gateway": ("down", type(exc).__name__)}

    async def refresh_agents(self) -> list[Agent]:
        agents = await self.store.list_agents()
        self.agents_cache = {a.id: a for a in agents}
        self.agents_loaded = True  # set with the cache, so a screen mounting now sees both
        from lap_tui.tui.screens.agents import AgentsScreen

        for screen in self.screen_stack:
            if isinstance(screen, AgentsScreen):
                screen.show_agents(agents)
        return agents

    async def _restore(self) -> None:
        st = self.initial
        if self.start_session:
            if getattr(self.screen_stack[0], "VIEW", "") == "chat":
                return  # the first screen already (get_default_screen)
            try:
                s = await self.store.get_session(self.start_session)
            except LapError as exc:
                self.notify(str(exc), severity="error")
                return
            await self.open_chat(s.id, s.agent_id, with_list=False)
            return
        view = self.start_view or st.screen
        try:
            if view == "chat" and st.session_id:
                s = await self.store.get_session(st.session_id)
                await self.open_chat(s.id, s.agent_id, with_list=False)
            elif view == "sessions":
                self.state.agent_id, self.state.sessions_all = st.agent_id, st.sessions_all
                self.go("sessions")
            elif view in ("sandboxes", "sandbox_detail"):
                self.go("sandboxes")
                if view == "sandbox_detail" and st.sandbox_id and not self.start_view:
                    self.open_sandbox(st.sandbox_id)
        except LapError:
            pass  # what was open is gone: stay on the agents list

    # -- navigation
    def _to_base(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if getattr(self.screen_stack[0], "VIEW", "") != "agents":  # started straight into a chat
            from lap_tui.tui.screens.agents import AgentsScreen

            self.switch_screen(AgentsScreen())

    def go(self, view: str, arg: str | None = None) -> None:
        from lap_tui.tui.screens.sandboxes import SandboxesScreen
        from lap_tui.tui.screens.sessions import SessionsScreen

        if view not in ("agents", "sessions", "sandboxes"):
            self.notify(f"unknown view {view!r}", severity="error")
            return
        agent_id = self.state.agent_id
        if view == "sessions" and arg:
            match = [a for a in self.agents_cache.values() if a.name == arg or a.id.startswith(arg)]
            if not match:  # said where the user is: the screen stays
                self.notify(f"no agent {arg!r}", severity="error")
                return
            agent_id = match[0].id
        self._to_base()
        if view == "sessions":
            all_agents = self.state.sessions_all or agent_id not in self.agents_cache
            self.push_screen(SessionsScreen(None if all_agents and not arg else agent_id))
        elif view == "sandboxes":
            self.push_screen(SandboxesScreen())
        self.note("screen", view if view in ("sessions", "sandboxes") else "agents")

    async def open_chat(self, session_id: str, agent_id: str | None, *, with_list: bool = True) -> None:
        """The chat over its agent's sessions list; without the list (start-up: the chat shows
        sooner), esc builds the list when leaving the chat."""
        from lap_tui.tui.screens.chat import ChatScreen

        self._to_base()
        if agent_id:
            self.state.agent_id = agent_id
        if with_list:
            from lap_tui.tui.screens.sessions import SessionsScreen

            self.push_screen(SessionsScreen(None if self.state.sessions_all else agent_id))
        self.push_screen(ChatScreen(session_id))

    def open_sandbox(self, sandbox_id: str) -> None:
        from lap_tui.tui.screens.sandbox_detail import SandboxDetailScreen

        self.push_screen(SandboxDetailScreen(sandbox_id))

    def action_go(self, view: str) -> None:
        self.go(view)

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    # -- state
    def note(self, name: str, value: Any) -> None:
        if getattr(self.state, name) != value:
            setattr(self.state, name, value)
            self._state_dirty = True

    def _collect_when_quiet(self) -> None:
        # Once per quiet spell (no key, no streamed text): an idle app must not walk its heap
        # every few seconds, and a key must not wait behind a full pass.
        self.collector.quiet(max(self.busy_at, self.input_at))

    def pop_screen(self):
        screen = self.screen
        done = super().pop_screen()
        if not isinstance(screen, ModalScreen):  # a view closed: its widgets may be frozen cycles
            self.collector.released()
        return done

    def _save_if_dirty(self) -> None:
        if self._state_dirty:
            self.save_state()

    def save_state(self) -> None:
        for screen in self.screen_stack:
            if hasattr(screen, "capture_state"):
                screen.capture_state()
        self._state_dirty = False
        if self.state_path:
            try:
                save_state(self.state_path, self.state)
            except OSError as exc:
                self.log.warning(f"UI state not saved: {exc}")

    async def action_quit(self) -> None:
        self.save_state()
        self.exit()

    # -- themes
    def theme_names(self) -> list[str]:
        return sorted(n for n in self.available_themes if n.startswith("lap-")) + sorted(
            n for n in self.available_themes if not n.startswith("lap-"))

    def choose_theme(self, name: str) -> None:
        if name not in self.available_themes:
            self.notify(f"no theme {name!r}; try :theme and tab", severity="error")
            return
        self.theme = name
        self.note("theme", name)
        self.note("theme_config", self.settings["theme"])

    # -- commands
    def action_command_line(self, initial: str = ":") -> None:
        from lap_tui.tui.widgets.command_line import CommandLine

        hint = "  ".join(":" + c.name for c in commands.unique())
        self.push_screen(CommandLine(commands.completions(self), hint, initial), self._run_command_line)

    async def _run_command_line(self, line: str | None) -> None:
        if not line or not line.strip(":").strip():
            return
        await self.run_command(line)

    async def run_command(self, line: str) -> None:
        cmd, arg, typed = commands.parse(line)
        if cmd is None:
            self.notify(f"unknown command :{typed} — try :help or tab", severity="error")
            return
        if cmd.mutates and self.read_only:
            self.notify("read-only mode: nothing is changed", severity="warning")
            return
        result = cmd.run(self, arg)
        if inspect.isawaitable(result):
            await result

    def cluster_label(self) -> str:
        """The status bar's "ctx NAME  ns NAMESPACE" (empty off the cluster)."""
        return cluster.label(self)

    def action_help(self) -> None:
        from lap_tui.tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen.active_bindings))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for c in commands.unique():
            if c.name in ("theme", "help"):
                continue
            yield SystemCommand(c.help.split(":")[0] if ":" in c.help else c.name.title(), c.help,
                                lambda c=c: self.call_later(self.run_command, c.name))
        for name in self.theme_names():
            yield SystemCommand(f"Theme: {name}", "Switch the colour theme", lambda n=name: self.choose_theme(n))
        yield SystemCommand("Keys", "List the active keys and their ids", self.action_help)
        provider = getattr(screen, "palette_commands", None)
        if provider is not None:
            yield from provider()

    def refuse_if_read_only(self) -> bool:
        if self.read_only:
            self.notify("read-only mode: nothing is changed", severity="warning")
        return self.read_only

    def clean(self, text: str) -> str:
        return self.sanitiser.clean(text)

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = True) -> None:
        """Notifications quote names, titles and errors from the store, a gateway or a sandbox:
        always plain text (never markup, whatever a caller asks), neutralised and masked."""
        kw = {} if timeout is None else {"timeout": timeout}
        super().notify(self.sanitiser.clean(message), title=self.sanitiser.line(title), severity=severity,
                       markup=False, **kw)

    def _fatal_error(self) -> None:
        """Textual 8.2.8 prints a crash's traceback with show_locals=True: a local holding a
        secret (a key, a database password) would reach the screen. The same, without locals."""
        import rich
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        traceback = Traceback(show_locals=False, width=None, suppress=[rich])
        self._exit_renderables.append(Segments(self.console.render(traceback, self.console.options)))
        self._close_messages_no_wait()

    async def on_unmount(self) -> None:
        # Hand running turns back first: the standby worker's drivers would otherwise wait for
        # them to finish before the app could exit (Engine.stop_driving).
        stop_driving = getattr(self.engine, "stop_driving", None)
        if stop_driving is not None:
            stop_driving()
        if self._standby is not None:
            self._standby.cancel()
            await asyncio.gather(self._standby, return_exceptions=True)
        for obj in (self.engine, self.sandboxes):
            close = getattr(obj, "aclose", None) or getattr(obj, "close", None)
            if close is not None and obj is not self.store:
                try:
                    r = close()
                    if inspect.isawaitable(r):
                        await r
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
        if self.store is not None:
            await self.store.close()
