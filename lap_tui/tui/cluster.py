"""`:ctx` and `:ns`, as k9s users expect: which kubeconfig context and which namespace (team) the
app looks at, shown in the status bar and offered in the command palette.

`:ctx NAME` builds a sandbox backend on that context of the same kubeconfig and swaps it in
(the Sandboxes view, describe, logs and shell use it at once; nothing restarts). Turns keep
the engine's backend, on the context the app started with: a session's sandbox stays where it
was made. `:ns TEAM` (or the team's namespace) narrows the Sandboxes view to that team and makes
it the default team of new agents; `:ns all` shows every team again.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from lap_tui.config import Setting, Settings
from lap_tui.domain.errors import LapError
from lap_tui.tui import commands
from lap_tui.tui.commands import Command

if TYPE_CHECKING:
    from lap_tui.tui.app import LapApp

ALL = ("all", "*", "-A")


def with_values(settings: Settings, **values: Any) -> Settings:
    """A copy of `settings` with some values changed in this app (source "app")."""
    return dataclasses.replace(settings, values={**settings.values,
                                                 **{k: Setting(v, "app") for k, v in values.items()}})


def on_cluster(app: LapApp) -> bool:
    from lap_tui.sandbox import kubernetes_configured

    try:
        return kubernetes_configured(app.settings)
    except LapError:
        return False


def kubeconfig_contexts(app: LapApp) -> tuple[list[str], str]:
    """(context names, current-context) of the kubeconfig in force; ([], "") when unreadable."""
    import yaml

    from lap_tui.sandbox.k8s.summary import kube_summary

    path = kube_summary(app.settings)["kubeconfig"].split(os.pathsep)[0]
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        names = [str(c.get("name")) for c in data.get("contexts") or () if isinstance(c, dict) and c.get("name")]
        return names, str(data.get("current-context") or "")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return [], ""


def current_context(app: LapApp) -> str:
    from lap_tui.sandbox.k8s.summary import kube_summary

    return str(kube_summary(app.settings)["context"])


def label(app: LapApp) -> str:
    """The status bar's "ctx NAME  ns NAMESPACE" (empty off the cluster, or before the backend opens)."""
    if getattr(app, "sandboxes", None) is None or not on_cluster(app):
        return ""
    cached = getattr(app, "_cluster_label", None)
    if cached is None:
        from lap_tui.sandbox.k8s.backend import namespace_for

        team = getattr(app, "team_scope", None)
        try:
            ns = namespace_for(app.settings, team) if team else "all"
        except LapError:
            ns = "?"
        cached = app._cluster_label = f"ctx {current_context(app)}  ns {ns}"  # type: ignore[attr-defined]
    return cached


def _refresh(app: LapApp) -> None:
    app._cluster_label = None  # type: ignore[attr-defined]
    app.health = {**app.health}  # the status bar redraws on every health assignment


def teams(app: LapApp) -> list[str]:
    from lap_tui.sandbox.k8s.backend import parse_namespace_map

    known = {a.team for a in app.agents_cache.values()} | {app.settings["team"]}
    try:
        known |= set(parse_namespace_map(app.settings["kube_namespaces"] or ""))
    except (LapError, KeyError):
        pass
    return sorted(known)


async def switch_context(app: LapApp, arg: str) -> None:
    if not on_cluster(app):
        app.notify("no Kubernetes backend configured: set kube_context or kubeconfig (`lap-tui config`)",
                   severity="warning")
        return
    names, _ = kubeconfig_contexts(app)
    now = current_context(app)
    if not arg:
        app.notify("contexts: " + ", ".join(f"{n} (current)" if n == now else n for n in names) if names else
                   "no contexts in the kubeconfig", title=":ctx")
        return
    if arg not in names:
        app.notify(f"no context {arg!r} in the kubeconfig; :ctx and tab lists them", severity="error")
        return
    if arg == now:
        app.notify(f"already on context {arg}", title=":ctx")
        return
    from lap_tui.sandbox import backend_for

    settings = with_values(app.settings, kube_context=arg)
    backend = backend_for(settings, app.store)
    try:  # reach it before swapping: a context that does not answer leaves the app as it was
        kube = backend.backend("kubernetes") if hasattr(backend, "backend") else backend
        await kube.version()
    except Exception as exc:  # noqa: BLE001 - shown; the old context stays in force
        await _close(backend)
        app.notify(f"context {arg}: {exc}", severity="error")
        return
    old, app.sandboxes, app.settings = app.sandboxes, backend, settings
    for screen in app.screen_stack:
        if hasattr(screen, "cluster_switched"):
            screen.cluster_switched()
        elif hasattr(screen, "backend_ready"):
            screen.backend_ready()
    _refresh(app)
    app.notify(f"context {arg}", title=":ctx")
    await _close(old)


async def switch_namespace(app: LapApp, arg: str) -> None:
    from lap_tui.domain.names import validate_label
    from lap_tui.sandbox.k8s.backend import namespace_for

    choices = teams(app)
    if not arg:
        scope = getattr(app, "team_scope", None)
        shown = [f"{t} ({_ns(app, t)})" + (" (current)" if t == scope else "") for t in choices]
        app.notify("teams: " + ", ".join(shown) + ("; all (current)" if scope is None else "; all"), title=":ns")
        return
    if arg in ALL:
        app.team_scope = None  # type: ignore[attr-defined]
    else:
        team = next((t for t in choices if t == arg), None) or next(
            (t for t in choices if _ns(app, t) == arg), None)
        if team is None:
            try:
                team = validate_label("team", arg)  # a new team: its first agent makes it
                namespace_for(app.settings, team)
            except LapError as exc:
                app.notify(f":ns {arg}: {exc}", severity="error")
                return
        app.team_scope = team  # type: ignore[attr-defined]
        app.settings = with_values(app.settings, team=team)
    for screen in app.screen_stack:
        if hasattr(screen, "scope_changed"):
            screen.scope_changed()
    _refresh(app)
    scope = getattr(app, "team_scope", None)
    app.notify(f"team {scope} ({_ns(app, scope)})" if scope else "every team", title=":ns")


def _ns(app: LapApp, team: str) -> str:
    from lap_tui.sandbox.k8s.backend import namespace_for

    try:
        return namespace_for(app.settings, team)
    except LapError:
        return "?"


async def _close(backend: Any) -> None:
    close = getattr(backend, "close", None)
    if close is not None:
        try:
            await close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def _context_names(app: LapApp) -> list[str]:
    # Only once the backend is open (its modules are loaded then): `:` must open at once.
    return kubeconfig_contexts(app)[0] if app.sandboxes is not None and on_cluster(app) else []


def _team_names(app: LapApp) -> list[str]:
    return [*teams(app), "all"] if app.sandboxes is not None and on_cluster(app) else []


commands.register(Command("ctx", "Context: switch the kubeconfig context, :ctx NAME (:ctx lists them)",
                          switch_context, complete=_context_names, aliases=("context",)))
commands.register(Command("ns", "Namespace: show one team's sandboxes, :ns TEAM (or its namespace; :ns all)",
                          switch_namespace, complete=_team_names, aliases=("namespace",)))
