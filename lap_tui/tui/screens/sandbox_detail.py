"""One sandbox: its fields, the changes seen since opening (events), and a following log tail."""

from __future__ import annotations

import asyncio
from typing import Iterable

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Log, Static

from lap_tui.domain.clock import now_iso
from lap_tui.domain.errors import LapError
from lap_tui.tui import keymap
from lap_tui.tui.formatting import age, short_id
from lap_tui.tui.screens.base import LapScreen
from lap_tui.tui.screens.sandboxes import AGE_EVERY, as_row, sandbox_action, sandbox_shell

LOG_TAIL = 500
LOG_EVERY = 1.0


class SandboxDetailScreen(LapScreen):
    TITLE = "Sandbox"
    VIEW = "sandbox_detail"
    BINDINGS = keymap.bindings("sandboxes.describe", "sandboxes.logs", "sandboxes.shell", "sandboxes.suspend",
                               "sandboxes.resume", "sandboxes.delete")
    MUTATING = frozenset({"suspend", "resume", "delete", "shell"})
    DEFAULT_CSS = """
    SandboxDetailScreen #top { height: auto; max-height: 12; }
    SandboxDetailScreen #fields { width: 1fr; height: auto; padding: 0 1; }
    SandboxDetailScreen #events { width: 1fr; height: auto; max-height: 12; padding: 0 1; color: $text-muted; }
    SandboxDetailScreen #bottom { height: 1fr; border-top: solid $panel; }
    SandboxDetailScreen #describe-box { width: 1fr; height: 1fr; padding: 0 1; }
    SandboxDetailScreen Log { width: 2fr; height: 1fr; }
    """

    def __init__(self, sandbox_id: str, *, focus: str = "log") -> None:
        super().__init__()
        self.sandbox_id = sandbox_id
        self.start_focus = focus  # "describe" (d) or "log" (l, enter)
        self.described: dict[str, list[str]] | None = None
        self._events: list[str] = []
        self._last: dict | None = None
        self._lines_seen: list[str] = []

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield Static("loading…", id="fields")
            yield Static("", id="events")
        with Horizontal(id="bottom"):
            with VerticalScroll(id="describe-box"):
                yield Static("describe: loading…", id="describe")
            yield Log(max_lines=5000, id="log")

    def on_mount(self) -> None:
        self.query_one("#title").set(title=f"Sandbox {self.sandbox_id}")
        if not self.lap.services.deterministic:  # a watch only reports changes: the age ticks here
            self.set_interval(AGE_EVERY, lambda: self._last is not None and self._show(self._last))
        self._follow_status()
        self._follow_log()
        self._describe()
        self.query_one("#describe-box" if self.start_focus == "describe" else "#log").focus()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.lap.note("sandbox_id", self.sandbox_id)

    def backend_ready(self) -> None:
        self._follow_status()
        self._follow_log()
        self._describe()

    @work(group="detail-describe", exclusive=True)
    async def _describe(self) -> None:
        """`d`: the Sandbox's conditions, its pod, and the Events of both (cluster sandboxes)."""
        from lap_tui.tui.screens.sandboxes import _backend

        box = self.query_one("#describe", Static)
        backend = self.lap.sandboxes
        if backend is None and not self.lap.sandboxes_tried.is_set():
            backend = await _backend(self.lap)
        if backend is None:
            box.update("describe: no sandbox backend in this terminal")
            return
        describe = getattr(backend, "describe", None)
        found = {} if describe is None else None  # the local backend alone: nothing to describe
        try:
            if found is None:
                found = await describe(self.sandbox_id)
        except LapError as exc:
            box.update(Text(f"describe: {self.lap.clean(str(exc))}"))
            return
        self.described = found
        if not found:
            box.update("describe: a local sandbox has no conditions or events (see its fields and log)")
            return
        t = Text()
        for title in ("namespace", "conditions", "pod", "events"):
            t.append(f"{title}\n", style="bold")
            for line in found.get(title) or ():
                t.append(f"  {self.lap.sanitiser.line(line)}\n")  # the cluster's words: plain text only
        box.update(t)

    def _show(self, row: dict | None) -> None:
        if row is None:
            self.query_one("#fields", Static).update("this sandbox is gone")
            return
        if self._last is None or (row["phase"], row["ready"], row["restarts"], row["message"]) != (
                self._last["phase"], self._last["ready"], self._last["restarts"], self._last["message"]):
            msg = f" — {self.lap.clean(row['message'])}" if row["message"] else ""
            stamp = now_iso()[11:19] if not self.lap.services.deterministic else ""
            self._events.append(self.lap.sanitiser.line(  # a store row: any process can write it
                f"{stamp} {row['phase']} ready={'yes' if row['ready'] else 'no'} restarts={row['restarts']}{msg}"
                .strip()))
            self.query_one("#events", Static).update(Text("events\n" + "\n".join(self._events[-10:])))
        self._last = row
        agent = self.lap.agents_cache.get(row["agent_id"] or "")
        t = Text()
        for k, v in (("backend", row["backend"]), ("team", row["team"]),
                     ("agent", agent.name if agent else short_id(row["agent_id"])),
                     ("session", short_id(row["session_id"])), ("phase", row["phase"]),
                     ("ready", "yes" if row["ready"] else "no"), ("restarts", str(row["restarts"])),
                     ("age", age(row["created_at"], self.lap.services.clock()))):
            t.append(f"{k:<9}", style="bold")
            t.append(f"{self.lap.sanitiser.line(str(v))}\n")  # a store row: any process can write it
        if row.get("origin"):  # a warm pool's: waiting in it, or claimed (by the claim named)
            origin = " ".join(x for x in (row["origin"], f"pool {row['pool']}" if row.get("pool") else "",
                                          f"claim {row['claim']}" if row.get("claim") else "") if x)
            t.append(f"{'origin':<9}", style="bold")
            t.append(f"{self.lap.sanitiser.line(origin)}\n")
        if row.get("warning"):
            t.append(self.lap.sanitiser.line(row["warning"]), style="bold red")
        self.query_one("#fields", Static).update(t)

    @work(group="detail-status", exclusive=True)
    async def _follow_status(self) -> None:
        try:
            rec = await self.lap.store.get_sandbox(self.sandbox_id)
        except LapError as exc:
            self.notify(str(exc), severity="error")
            return
        self._show(as_row(rec) if rec else None)
        backend = self.lap.sandboxes
        if backend is not None and hasattr(backend, "watch"):
            async for ev in backend.watch():
                st = getattr(ev, "status", ev)
                if getattr(st, "id", None) == self.sandbox_id:
                    self._show(as_row(ev))
            return
        while not self.lap.services.deterministic:
            await asyncio.sleep(LOG_EVERY)
            rec = await self.lap.store.get_sandbox(self.sandbox_id)
            self._show(as_row(rec) if rec else None)

    @work(group="detail-log", exclusive=True)
    async def _follow_log(self) -> None:
        log = self.query_one(Log)
        backend = self.lap.sandboxes
        if backend is None or not hasattr(backend, "logs"):
            log.write_line("(no sandbox backend in this terminal: no logs)")
            return
        follow = getattr(backend, "follow_logs", None)
        if follow is not None:  # `l` follows: pods/log with follow on the cluster
            try:
                async for line in follow(self.sandbox_id, tail=LOG_TAIL):
                    self._lines_seen.append(line)
                    log.write_line(self.lap.clean(line))
                del self._lines_seen[:-LOG_TAIL]
            except NotImplementedError:
                pass  # a local sandbox: its log file is re-read below
            except LapError as exc:
                log.write_line(f"(logs: {exc})")
                return
        while True:
            try:
                lines = await backend.logs(self.sandbox_id, tail=LOG_TAIL)
            except LapError as exc:
                log.write_line(f"(logs: {exc})")
                return
            new = _new_lines(self._lines_seen, lines)
            if new:
                log.write_lines([self.lap.clean(line) for line in new])
            self._lines_seen = lines
            if self.lap.services.deterministic:
                return
            await asyncio.sleep(LOG_EVERY)

    def action_describe(self) -> None:
        self._describe()
        self.query_one("#describe-box").focus()

    def action_logs(self) -> None:
        log = self.query_one(Log)
        log.scroll_end(animate=False)
        log.focus()

    def action_suspend(self) -> None:
        self.app.run_worker(sandbox_action(self, "suspend", self.sandbox_id), group="sandbox-suspend")

    def action_resume(self) -> None:
        self.app.run_worker(sandbox_action(self, "resume", self.sandbox_id), group="sandbox-resume")

    def action_delete(self) -> None:
        self.app.run_worker(sandbox_action(self, "delete", self.sandbox_id), group="sandbox-delete")

    def action_shell(self) -> None:
        self.app.run_worker(sandbox_shell(self, self.sandbox_id), group="sandbox-shell", exclusive=True)

    def palette_commands(self) -> Iterable[SystemCommand]:
        if not self.lap.read_only:
            for verb in ("suspend", "resume", "delete", "shell"):
                yield SystemCommand(f"Sandbox: {verb.title()}", f"{verb.title()} {self.sandbox_id}",
                                    getattr(self, f"action_{verb}"))
        yield SystemCommand("Sandbox: Describe", f"Conditions and Events of {self.sandbox_id}", self.action_describe)
        yield SystemCommand("Sandbox: Logs", f"Follow the log of {self.sandbox_id}", self.action_logs)


def _new_lines(old: list[str], new: list[str]) -> list[str]:
    """The lines of a re-read tail that were not in the previous one (overlap found by suffix)."""
    if not old:
        return new
    for k in range(min(len(old), len(new)), 0, -1):
        if old[-k:] == new[:k]:
            return new[k:]
    return new
