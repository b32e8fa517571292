"""The Kubernetes backend: each sandbox is an agent-sandbox `Sandbox` whose pod runs the commands.

The cluster is the truth for status (lists and watches); the store keeps only a record
naming the sandbox's team and namespace, so every process and the CLI find it, and orphans
(lap-tui's labels, no record) can be told apart. Secret values go into a Secret the pod reads
with envFrom, never into the Sandbox, the pod, the store or a log.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import time
from dataclasses import replace
from typing import Any, AsyncIterator, Mapping, Sequence

from lap_tui.config import Settings
from lap_tui.domain.clock import epoch_from_iso, now_iso
from lap_tui.domain.errors import InvalidInput, NotFound
from lap_tui.domain.names import validate_label
from lap_tui.domain.sandbox import (DirEntry, ExecResult, SandboxError, SandboxEvent, SandboxPhase, SandboxSpec,
                                    SandboxStatus)
from lap_tui.domain.secrets import Redactor
from lap_tui.sandbox import env as sandbox_env_mod
from lap_tui.sandbox.base import (DEFAULT_TIMEOUT, OutputCallback, SandboxBackend, SandboxGone, check_argv,
                                   forget_sandbox)
from lap_tui.sandbox.k8s import execws, files, objects, sandbox_watch, warm
from lap_tui.sandbox.k8s.client import EXEC_PROTOCOLS, Apis, connect, served_versions
from lap_tui.sandbox.k8s.shell import run_shell
from lap_tui.sandbox.k8s.watching import ApiError, bind, list_raw, watch_raw
from lap_tui.sandbox.output import DEFAULT_MAX_OUTPUT, CappedBuffer
from lap_tui.store.base import SandboxRecord, Store

log = logging.getLogger(__name__)

READY_TIMEOUT = 300.0
DRAIN_AFTER_KILL = 10.0
DEFAULT_MAX_FILE = 64 * 2**20


def namespace_for(settings: Settings, team: str) -> str:
    """The team's namespace: from the explicit map (kube_namespaces "team=ns,..."), else prefix + team."""
    mapping = parse_namespace_map(_setting(settings, "kube_namespaces", ""))
    ns = mapping.get(team) or f"{_setting(settings, 'kube_namespace_prefix', 'lap-')}{team}"
    try:
        return validate_label("namespace", ns)
    except InvalidInput as exc:
        raise InvalidInput(f"team {team!r} maps to an invalid namespace: {exc.message}",
                           "fix kube_namespace_prefix or kube_namespaces") from None


def parse_namespace_map(text: str) -> dict[str, str]:
    out = {}
    for part in (text or "").split(","):
        if part.strip():
            team, sep, ns = part.partition("=")
            if not sep:
                raise InvalidInput(f"kube_namespaces entry {part.strip()!r} is not team=namespace",
                                   "e.g. kube_namespaces = \"default=agents,research=lab\"")
            out[team.strip()] = ns.strip()
    return out


def _reaching(fn: Any) -> Any:
    """Network failures reaching the API become one SandboxError that says so (not a traceback)."""
    @functools.wraps(fn)
    async def call(self: KubernetesBackend, *args: Any, **kw: Any) -> Any:
        try:
            return await fn(self, *args, **kw)
        except OSError as exc:  # aiohttp's connection errors are OSErrors too
            raise SandboxError(f"cannot reach the Kubernetes API ({self.context or 'current context'}): {exc}",
                               "is the cluster up? check kube_context / kubeconfig (`lap-tui config`)") from None
        except Exception as exc:
            if type(exc).__module__.startswith("aiohttp"):
                raise SandboxError(f"the Kubernetes API connection failed: {exc}", "try again") from None
            raise
    return call


def _setting(settings: Settings, name: str, default: Any) -> Any:
    try:
        return settings[name]
    except KeyError:
        return default


class KubernetesBackend(SandboxBackend):
    name = "kubernetes"

    def __init__(self, store: Store, settings: Settings, *, kubeconfig: str | None = None,
                 context: str | None = None, environ: Mapping[str, str] | None = None,
                 sandbox_version: str | None = None, max_output: int = DEFAULT_MAX_OUTPUT,
                 ready_timeout: float = READY_TIMEOUT, image: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.kubeconfig = kubeconfig if kubeconfig is not None else _setting(settings, "kubeconfig", "")
        self.context = context if context is not None else _setting(settings, "kube_context", "")
        self.environ = dict(os.environ if environ is None else environ)
        self.forced_version = sandbox_version
        self.max_output = max_output
        self.ready_timeout = ready_timeout
        self.image = image or _setting(settings, "sandbox_image", "") or objects.DEFAULT_IMAGE
        self.workspace_size = _setting(settings, "kube_workspace_size", "") or objects.DEFAULT_WORKSPACE_SIZE
        self.storage_class = _setting(settings, "kube_storage_class", "")
        self._apis_: Apis | None = None
        self._connecting = asyncio.Lock()
        self._version: str | None = None
        self.warm_version: str | None = None  # the extensions API's, found by warm.ext_version
        self.namespaces: dict[str, str] = {}  # sandbox id -> namespace, as learned
        self._ns_ready: set[str] = set()
        self.redact = Redactor(sandbox_env_mod.secret_values(settings))
        self._running: dict[str, set[asyncio.Task[Any]]] = {}

    # --- connection ----------------------------------------------------------------------
    async def apis(self) -> Apis:
        if self._apis_ is None:
            async with self._connecting:
                if self._apis_ is None:
                    apis = await connect(kubeconfig=self.kubeconfig, context=self.context)
                    apis.core_ws = apis.client.CoreV1Api(apis.ws)  # type: ignore[attr-defined]
                    self._apis_ = apis
        return self._apis_

    async def version(self) -> str:
        """The agent-sandbox version spoken: v1beta1 where served, else v1alpha1 (or as forced)."""
        if self._version is None:
            if self.forced_version:
                self._version = self.forced_version
            else:
                self._version = (await served_versions(await self.apis()))[0]
        return self._version

    def namespace(self, team: str) -> str:
        return namespace_for(self.settings, team)

    async def close(self) -> None:
        for tasks in list(self._running.values()):
            for t in list(tasks):
                t.cancel()
        if self._apis_ is not None:
            await self._apis_.close()
            self._apis_ = None

    # --- lifecycle -----------------------------------------------------------------------
    @_reaching
    async def ensure(self, spec: SandboxSpec) -> SandboxStatus:
        spec.settings.validate()
        if getattr(spec.settings, "warm_pool", 0) > 0 and spec.agent_id:  # a claim from the agent's pool (warm.py)
            claimed = await warm.ensure_claimed(self, spec)
            if claimed is not None:
                return claimed
        rec = await self.store.get_sandbox(spec.id)
        if rec is not None and (rec.team != spec.team or rec.backend != self.name):
            raise SandboxError(f"sandbox {spec.id} belongs to team {rec.team} ({rec.backend} backend)",
                               "sandboxes are never shared across teams or backends")
        ns = self.namespace(spec.team)
        apis = await self.apis()
        version = await self.version()
        await self.ensure_namespace(ns)
        plain, secret = self.env(spec)
        if secret:
            await self.apply_secret(objects.secret_object(spec, ns, secret))
        obj = await self.get(ns, spec.id)
        if obj is None:
            body = objects.sandbox_object(spec, namespace=ns, version=version, image=self.image, plain_env=plain,
                                          has_secret=bool(secret), workspace_size=self.workspace_size,
                                          storage_class=self.storage_class)
            try:
                await apis.custom.create_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, body,
                                                                  field_validation="Strict")
                log.info("sandbox %s created in %s", spec.id, ns)
            except apis.client.ApiException as exc:
                if exc.status != 409:
                    raise self.api_failed(f"cannot create sandbox {spec.id}", exc) from None
        else:
            team = ((obj.get("metadata") or {}).get("labels") or {}).get(objects.LABEL_TEAM)
            if team != spec.team:
                raise SandboxError(f"sandbox {spec.id} in {ns} belongs to team {team!r}",
                                   "sandboxes are never shared across teams")
            if not objects.is_running_mode(obj):
                await self.set_mode(ns, spec.id, running=True)
        self.namespaces[spec.id] = ns
        now = now_iso()
        data = {"namespace": ns, "settings": spec.settings.to_dict()}
        if rec is None:
            rec = SandboxRecord(id=spec.id, backend=self.name, team=spec.team, phase=SandboxPhase.PENDING.value,
                                agent_id=spec.agent_id, session_id=spec.session_id, context_key=spec.context_key,
                                created_at=now, last_used_at=now, data=data)
        else:
            rec = replace(rec, agent_id=spec.agent_id or rec.agent_id, last_used_at=now, data=data)
        await self.store.put_sandbox(rec)
        status = await self.wait_ready(ns, spec.id)
        # Compare-and-set: a row deleted or moved on by another process meanwhile stays as it is.
        await self.store.update_sandbox(spec.id, phase_was=rec.phase, phase=status.phase.value,
                                        ready=status.ready, suspended_at=None)
        return status

    def env(self, spec: SandboxSpec) -> tuple[dict[str, str], dict[str, str]]:
        """(plain, secret): the base environment is plain; everything else goes into the Secret."""
        # The team's own CONTAINER_ENV_TEAM_<TEAM>__X values too (another team's never).
        env, _dropped = sandbox_env_mod.sandbox_env(self.settings, spec.settings.env, self.environ, team=spec.team)
        base = sandbox_env_mod.BASE_ENV
        plain = {k: v for k, v in base.items()}
        secret = {k: v for k, v in env.items() if base.get(k) != v}
        return plain, secret

    @_reaching
    async def suspend(self, sandbox_id: str) -> SandboxStatus:
        ns = await self.locate(sandbox_id)
        await self._kill_running(sandbox_id, "suspended")
        await self.set_mode(ns, sandbox_id, running=False)
        rec = await self.store.get_sandbox(sandbox_id)
        if rec is not None:  # compare-and-set, never a whole row from a stale read
            await self.store.update_sandbox(sandbox_id, phase_was=rec.phase, phase=SandboxPhase.SUSPENDED.value,
                                            ready=False, suspended_at=now_iso())
        return await self.status(sandbox_id)

    @_reaching
    async def resume(self, sandbox_id: str) -> SandboxStatus:
        ns = await self.locate(sandbox_id)
        await self.set_mode(ns, sandbox_id, running=True)
        status = await self.wait_ready(ns, sandbox_id)
        rec = await self.store.get_sandbox(sandbox_id)
        if rec is not None:  # compare-and-set, never a whole row from a stale read
            await self.store.update_sandbox(sandbox_id, phase_was=rec.phase, phase=status.phase.value,
                                            ready=status.ready, suspended_at=None)
            await self.store.touch_sandbox(sandbox_id, now_iso())
        return status

    @_reaching
    async def delete(self, sandbox_id: str, *, keep_volume: bool = False) -> None:
        """Delete the Sandbox, its pod and Secret; its workspace PVC too unless `keep_volume`."""
        ns = await self.locate(sandbox_id)
        await self._kill_running(sandbox_id, "deleted")
        await warm.release(self, ns, sandbox_id)  # a claimed one: its claim first, or it gets another
        apis = await self.apis()
        version = await self.version()
        # The PVC is owned by the Sandbox: orphan it to keep it, else let it go with the rest.
        policy = "Orphan" if keep_volume else "Background"
        try:
            await apis.custom.delete_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, sandbox_id,
                                                              propagation_policy=policy)
        except apis.client.ApiException as exc:
            if exc.status != 404:
                raise self.api_failed(f"cannot delete sandbox {sandbox_id}", exc) from None
        # Explicitly too: the garbage collector of a young cluster may not know the kinds yet.
        deletions = [apis.core.delete_namespaced_pod(sandbox_id, ns, grace_period_seconds=0),
                     apis.core.delete_namespaced_secret(objects.secret_name(sandbox_id), ns)]
        if not keep_volume:
            deletions.append(apis.core.delete_namespaced_persistent_volume_claim(objects.pvc_name(sandbox_id), ns))
        for r in await asyncio.gather(*deletions, return_exceptions=True):
            if isinstance(r, apis.client.ApiException) and r.status != 404:
                log.warning("deleting part of sandbox %s: %s %s", sandbox_id, r.status, r.reason)
        rec = await self.store.get_sandbox(sandbox_id)
        await forget_sandbox(self.store, sandbox_id, rec.session_id if rec is not None else None)
        self.namespaces.pop(sandbox_id, None)

    @_reaching
    async def status(self, sandbox_id: str) -> SandboxStatus:
        ns = await self.locate(sandbox_id)
        obj = await self.get(ns, sandbox_id)
        if obj is None:
            raise NotFound(f"no sandbox {sandbox_id!r} in namespace {ns}", "`lap-tui sandboxes list` shows them")
        pod = await self.get_pod(ns, sandbox_id)
        return objects.status_from(obj, pod, orphan=await self.is_orphan(obj))

    @_reaching
    async def list(self) -> list[SandboxStatus]:
        apis = await self.apis()
        version = await self.version()
        scopes = await self.scopes()
        out = []
        for ns in scopes:
            call, kw = self.sandbox_calls(apis, version, ns)
            sandboxes = {sandbox_watch.key(o): o for o in (await list_raw(call, **kw)).get("items") or ()}
            # A warm pool's waiting Sandboxes carry the controller's labels only (warm.py).
            for o in (await list_raw(call, **dict(kw, label_selector=warm.LAUNCH_SELECTOR))).get("items") or ():
                if warm.is_ours(o):
                    sandboxes.setdefault(sandbox_watch.key(o), o)
            call, kw = self.pod_calls(apis, ns)
            pods = await list_raw(call, **kw)
            by_name = {sandbox_watch.key(p): p for p in pods.get("items") or ()}
            known = await self.known()
            for obj in sandboxes.values():
                self.namespaces[_name(obj)] = _ns(obj)
                out.append(warm.status_of(obj, by_name.get(sandbox_watch.key(obj)), orphan=await self.is_orphan(obj, known)))
        return sorted(out, key=lambda s: s.id)

    async def suspend_idle(self, *, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        done = []
        for rec in await self.store.list_sandboxes(backend=self.name):
            if rec.phase != SandboxPhase.RUNNING.value or self._running.get(rec.id):
                continue
            idle = int((rec.data or {}).get("settings", {}).get("idle_suspend_seconds", 0))
            last = rec.last_used_at or rec.created_at
            if idle <= 0 or not last or now - epoch_from_iso(last) < idle:
                continue
            await self.suspend(rec.id)
            done.append(rec.id)
        return done

    # --- watching ------------------------------------------------------------------------
    async def watch(self, *, poll_interval: float = 1.0) -> AsyncIterator[SandboxEvent]:
        """Sandboxes (lap-tui's and its warm pools') and their pods from watches: sandbox_watch.py
        (`poll_interval` is unused: nothing polls)."""
        async for ev in sandbox_watch.watch(self):
            yield ev

    def sandbox_calls(self, apis: Apis, version: str, ns: str | None) -> tuple[Any, dict[str, Any]]:
        """The raw list/watch call over lap-tui's Sandboxes in `ns` (None: every namespace)."""
        c = apis.custom
        if ns is None:
            call = bind(c.list_custom_object_for_all_namespaces_without_preload_content, objects.GROUP, version,
                        objects.PLURAL)
        else:
            call = bind(c.list_namespaced_custom_object_without_preload_content, objects.GROUP, version, ns,
                        objects.PLURAL)
        return call, {"label_selector": objects.SELECTOR}

    def pod_calls(self, apis: Apis, ns: str | None) -> tuple[Any, dict[str, Any]]:
        if ns is None:
            call = bind(apis.core.list_pod_for_all_namespaces_without_preload_content)
        else:
            call = bind(apis.core.list_namespaced_pod_without_preload_content, ns)
        return call, {"label_selector": objects.SELECTOR}

    async def scopes(self) -> list[str | None]:
        """Where lap-tui's sandboxes may be: the whole cluster if we may list it, else the teams' namespaces."""
        if getattr(self, "_scope_cache", None) is not None:
            return self._scope_cache
        apis = await self.apis()
        version = await self.version()
        try:
            call, kw = self.sandbox_calls(apis, version, None)
            await list_raw(call, **kw, limit=1)
            scopes: list[str | None] = [None]
        except ApiError as exc:
            if exc.status not in (401, 403):
                raise SandboxError(f"cannot list sandboxes: {exc}") from None
            teams = {a.team for a in await self.store.list_agents()} | {_setting(self.settings, "team", "default")}
            scopes = sorted({self.namespace(t) for t in teams})
        self._scope_cache = scopes
        return scopes

    async def known(self) -> tuple[dict[str, SandboxRecord], set[str]]:
        """The store's records of this backend's sandboxes, and the ids it calls orphans."""
        records = {r.id: r for r in await self.store.list_sandboxes(backend=self.name)}
        return records, set(await self.store.orphan_sandbox_ids())

    async def is_orphan(self, obj: Mapping[str, Any],
                        known: tuple[dict[str, SandboxRecord], set[str]] | None = None) -> bool:
        """lap-tui's labels, but no record in the store, or no session uses it any more."""
        records, orphans = known if known is not None else await self.known()
        return _name(obj) not in records or _name(obj) in orphans

    # --- commands ------------------------------------------------------------------------
    @_reaching
    async def exec(self, sandbox_id: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: str | None = None, timeout: float | None = DEFAULT_TIMEOUT, stdin: bytes | None = None,
                   on_output: OutputCallback | None = None, max_output: int | None = None) -> ExecResult:
        argv = check_argv(argv)
        workdir = files.cwd_arg(cwd)
        ns = await self.locate(sandbox_id)
        cap = self.max_output if max_output is None else max_output
        out, err = CappedBuffer(cap), CappedBuffer(cap)
        token = execws.new_token()
        command = execws.wrapped(argv, token=token, cwd=workdir, env=dict(env) if env else None,
                                 stdin_len=None if stdin is None else len(stdin))
        started = time.monotonic()
        code, killed = await self._run(ns, sandbox_id, command, stdin=stdin, token=token, timeout=timeout,
                                       sinks={"stdout": out, "stderr": err}, on_output=on_output)
        duration = time.monotonic() - started
        log.info("exec in %s: %s -> exit %s in %.0f ms%s", sandbox_id, self.redact(_show(argv)), code,
                 duration * 1000, f" (killed: {killed})" if killed else "")
        await self._touch(sandbox_id)
        return ExecResult(exit_code=code, stdout=out.value(), stderr=err.value(), stdout_truncated=out.truncated,
                          stderr_truncated=err.truncated, timed_out=killed == "timeout", killed=killed,
                          duration_s=duration)

    async def _run(self, ns: str, name: str, command: list[str], *, stdin: bytes | None, token: str | None,
                   timeout: float | None, sinks: Mapping[str, Any], on_output: OutputCallback | None = None
                   ) -> tuple[int, str | None]:
        """Run `command` in the pod; (exit code, why it was killed). SandboxGone if the pod goes."""
        pod = await self._ready_pod(ns, name)
        uid = (pod.get("metadata") or {}).get("uid")
        main = asyncio.create_task(self._stream(ns, name, command, stdin, sinks, on_output))
        gone = asyncio.create_task(self.pod_gone(ns, name, uid, (pod.get("metadata") or {}).get("resourceVersion")))
        me = asyncio.current_task()
        running = self._running.setdefault(name, set())
        if me is not None:
            running.add(me)
        killed: str | None = None
        try:
            done, _ = await asyncio.wait({main, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if main in done:
                return main.result(), None
            if gone in done and gone.exception() is None:
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
                # On a real node the command died with its container. (kwok runs it as a host process,
                # which outlives the pod: it is no longer ours to kill.)
                raise SandboxGone(f"the pod of sandbox {name} went away while the command ran ({gone.result()})",
                                  "the command's outcome is unknown; the sandbox comes back with its workspace")
            killed = "timeout"
            await self._kill(ns, name, token, main)
            return (main.result() if not main.cancelled() and main.exception() is None else 137), killed
        except asyncio.CancelledError:
            killed = getattr(me, "_lap_killed", None) or "cancelled"
            await asyncio.shield(self._kill(ns, name, token, main))
            raise
        finally:
            gone.cancel()
            if not main.done():
                main.cancel()
            await asyncio.gather(main, gone, return_exceptions=True)
            if me is not None:
                running.discard(me)

    async def _kill(self, ns: str, name: str, token: str | None, main: asyncio.Task[int]) -> None:
        """Kill the command's process tree through a second exec, then let its stream drain."""
        if token is not None and not main.done():
            try:
                await asyncio.wait_for(self._stream(ns, name, execws.killer(token), None, {}, None), DRAIN_AFTER_KILL)
            except Exception as exc:  # noqa: BLE001 - the pod may be gone too; the stream is closed below
                log.warning("could not kill a command in %s: %s", name, exc)
        done, _ = await asyncio.wait({main}, timeout=DRAIN_AFTER_KILL)
        if not done:
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)

    async def _stream(self, ns: str, name: str, command: list[str], stdin: bytes | None, sinks: Mapping[str, Any],
                      on_output: OutputCallback | None) -> int:
        import aiohttp

        apis = await self.apis()
        try:
            cm = await apis.core_ws.connect_get_namespaced_pod_exec_without_preload_content(  # type: ignore
                name, ns, command=command, container=objects.CONTAINER, stdin=stdin is not None, stdout=True,
                stderr=True, tty=False)
            async with cm as ws:
                if ws.protocol not in EXEC_PROTOCOLS:
                    raise SandboxError(f"the cluster offered exec protocol {ws.protocol!r}",
                                       "lap-tui needs v4.channel.k8s.io or newer (Kubernetes 1.10+)")
                if stdin is not None:
                    for i in range(0, len(stdin), execws.STDIN_CHUNK):
                        await ws.send_bytes(execws.frame(execws.STDIN, stdin[i:i + execws.STDIN_CHUNK]))
                    if ws.protocol == "v5.channel.k8s.io":
                        await ws.send_bytes(bytes([execws.CLOSE, execws.STDIN]))
                status = b""
                async for ch, payload in execws.frames(ws):
                    if ch == execws.ERROR:
                        status += payload
                    elif ch in execws.CHANNELS and payload:
                        stream = execws.CHANNELS[ch]
                        sink = sinks.get(stream)
                        if sink is not None:
                            sink.add(payload)
                        if on_output is not None:
                            r = on_output(stream, payload)
                            if inspect.isawaitable(r):
                                await r
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 404:
                raise SandboxGone(f"the pod of sandbox {name} is gone", "it is being recreated") from None
            raise SandboxError(f"cannot exec in sandbox {name}: {exc.status} {exc.message}",
                               "is the pod running? `lap-tui sandboxes list`") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SandboxError(f"the exec stream of sandbox {name} broke: {exc}") from None
        if not status:
            raise SandboxGone(f"the exec stream of sandbox {name} ended without an exit status",
                              "the pod may have been deleted or restarted")
        return execws.exit_code(status)

    async def pod_gone(self, ns: str, name: str, uid: str | None, rv: str | None) -> str:
        """Returns (why) when the pod the command runs in is deleted, replaced or stops being ready."""
        apis = await self.apis()
        call = bind(apis.core.list_namespaced_pod_without_preload_content, ns)
        while True:
            try:
                async for ev in watch_raw(call, resource_version=rv, field_selector=f"metadata.name={name}"):
                    obj = ev.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if ev.get("type") == "BOOKMARK":
                        continue
                    if ev.get("type") == "DELETED":
                        return "deleted"
                    if uid and (obj.get("metadata") or {}).get("uid") != uid:
                        return "replaced"
                    if (obj.get("metadata") or {}).get("deletionTimestamp"):
                        return "being deleted"
                    if (obj.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                        return "its container stopped"
            except Exception:  # noqa: BLE001 - the API restarting: look again after a pause
                await asyncio.sleep(0.5)
                rv = None
                pod = await self.get_pod(ns, name)
                if pod is None or (pod.get("metadata") or {}).get("uid") != uid:
                    return "deleted"

    async def _ready_pod(self, ns: str, name: str) -> dict[str, Any]:
        """The sandbox's pod, ready: waits for it (resuming a suspended sandbox) when it is not."""
        pod = await self.get_pod(ns, name)
        if objects.pod_ready(pod):
            return pod  # type: ignore[return-value]
        obj = await self.get(ns, name)
        if obj is None:
            raise NotFound(f"no sandbox {name!r} in namespace {ns}", "`lap-tui sandboxes list` shows them")
        if not objects.is_running_mode(obj):
            await self.set_mode(ns, name, running=True)
            log.info("sandbox %s resumed on use", name)
        await self.wait_ready(ns, name)
        pod = await self.get_pod(ns, name)
        if not objects.pod_ready(pod):
            raise SandboxGone(f"the pod of sandbox {name} went away again", "try again")
        return pod  # type: ignore[return-value]

    async def wait_ready(self, ns: str, name: str) -> SandboxStatus:
        """Until the pod is ready and the Sandbox says Ready: from watches, never polling."""
        apis = await self.apis()
        version = await self.version()
        deadline = time.monotonic() + self.ready_timeout
        pod = await self.wait_for(bind(apis.core.list_namespaced_pod_without_preload_content, ns), name,
                                  objects.pod_ready, deadline, "its pod to be ready")
        obj = await self.wait_for(bind(apis.custom.list_namespaced_custom_object_without_preload_content,
                                       objects.GROUP, version, ns, objects.PLURAL), name,
                                  lambda o: objects.is_running_mode(o) and bool(
                                      (c := objects.condition(o, "Ready")) and c.get("status") == "True"),
                                  deadline, "the Sandbox to report Ready")
        return objects.status_from(obj, pod)

    async def wait_for(self, call: Any, name: str, ok: Any, deadline: float, what: str) -> dict[str, Any]:
        backoff = 0.1
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxError(f"sandbox {name} did not become ready in {self.ready_timeout:g} s (waiting for "
                                   f"{what})", "see `lap-tui sandboxes logs` and the cluster's events")
            try:
                # No resourceVersion: the watch opens with the object as it is now, then its changes.
                async for ev in watch_raw(call, resource_version=None, timeout=max(1, min(left, 240)),
                                          bookmarks=False, field_selector=f"metadata.name={name}"):
                    obj = ev.get("object") or {}
                    if ev.get("type") in ("ADDED", "MODIFIED") and ok(obj):
                        return obj
            except (ApiError, OSError, asyncio.TimeoutError) as exc:
                if isinstance(exc, ApiError) and exc.status in (401, 403):
                    # Refused is not slow: waiting out the ready timeout would only hide why.
                    raise SandboxError(f"waiting for {what} of sandbox {name} was refused: {self.redact(str(exc))}",
                                       "check the kube context and that its Role grants watch here "
                                       "(docs/DEPLOY.md)") from None
                log.info("waiting for %s: %s", name, exc)
                await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:  # noqa: BLE001 - aiohttp errors while the API restarts
                log.info("waiting for %s: %s", name, exc)
                await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, 5.0)

    async def _kill_running(self, sandbox_id: str, reason: str) -> None:
        for task in list(self._running.get(sandbox_id, ())):
            task._lap_killed = reason  # type: ignore[attr-defined]
            task.cancel()
        tasks = list(self._running.get(sandbox_id, ()))
        if tasks:
            await asyncio.wait(tasks, timeout=DRAIN_AFTER_KILL)

    async def shell(self, sandbox_id: str, argv: Sequence[str] | None = None) -> int:
        """Interactive: pods/exec with a TTY, relayed by lap-tui (k8s/shell.py): the pod never
        holds this terminal, and the terminal is restored however the shell ends."""
        ns = await self.locate(sandbox_id)
        pod = await self._ready_pod(ns, sandbox_id)
        return await run_shell(self, ns, sandbox_id, pod, argv)

    # --- files -----------------------------------------------------------------------------
    async def script(self, sandbox_id: str, script: str, args: list[str], *, stdin: bytes | None = None,
                      limit: int = 1 << 20) -> tuple[int, bytes, bytes]:
        ns = await self.locate(sandbox_id)
        out, err = _Collect(limit), _Collect(1 << 16)
        command = ["sh", "-c", script, "lap-file", *args]
        if stdin is not None:  # the script reads exactly len(stdin) bytes (head -c); no EOF needed
            command = execws.wrapped(command, token=execws.new_token(), cwd=".", env=None, stdin_len=len(stdin))
        code, _ = await self._run(ns, sandbox_id, command, stdin=stdin, token=None, timeout=DEFAULT_TIMEOUT,
                                  sinks={"stdout": out, "stderr": err})
        return code, out.value(), err.value()

    @_reaching
    async def read_file(self, sandbox_id: str, path: str, *, max_bytes: int | None = None) -> bytes:
        rel = files.relative(path)
        if rel == ".":
            raise InvalidInput(f"path {path!r} is the workspace itself, a directory", "name a file")
        limit = DEFAULT_MAX_FILE if max_bytes is None else max_bytes
        code, out, err = await self.script(sandbox_id, files.READ, [rel, str(limit)], limit=limit + 1)
        files.raise_for(code, path, err, max_bytes=limit)
        return out

    @_reaching
    async def write_file(self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o644) -> None:
        rel = files.relative(path)
        if rel == ".":
            raise InvalidInput(f"path {path!r} is the workspace itself, a directory", "name a file")
        code, _, err = await self.script(sandbox_id, files.WRITE, [rel, str(len(data)), f"{mode & 0o7777:o}"],
                                          stdin=bytes(data))
        files.raise_for(code, path, err)
        await self._touch(sandbox_id)

    @_reaching
    async def list_dir(self, sandbox_id: str, path: str = ".") -> list[DirEntry]:
        rel = files.relative(path)
        code, out, err = await self.script(sandbox_id, files.LIST, [rel], limit=16 << 20)
        files.raise_for(code, path, err, listing=True)
        return files.parse_listing(out)

    @_reaching
    async def logs(self, sandbox_id: str, *, tail: int | None = None) -> list[str]:
        """The pod's log (its container's output); empty while it has no pod (suspended)."""
        ns = await self.locate(sandbox_id)
        apis = await self.apis()
        try:
            text = await apis.core.read_namespaced_pod_log(sandbox_id, ns, container=objects.CONTAINER,
                                                           tail_lines=tail, timestamps=False)
        except apis.client.ApiException as exc:
            if exc.status in (400, 404):
                return []
            raise self.api_failed(f"cannot read the log of sandbox {sandbox_id}", exc) from None
        return [self.redact(line) for line in (text or "").splitlines()]

    async def follow_logs(self, sandbox_id: str, *, tail: int | None = 10) -> AsyncIterator[str]:
        """The pod's log as it grows (pods/log with follow), until the pod ends or the caller stops."""
        ns = await self.locate(sandbox_id)
        apis = await self.apis()
        resp = await apis.core.read_namespaced_pod_log_without_preload_content(
            sandbox_id, ns, container=objects.CONTAINER, tail_lines=tail, follow=True, _request_timeout=24 * 3600)
        if resp.status >= 400:  # no pod (suspended, recreated): nothing to follow; its body is no log line
            resp.release()
            return
        try:
            buf = b""
            while chunk := await resp.content.readany():
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    yield self.redact(line.decode(errors="replace"))
        finally:
            resp.release()

    # --- helpers -----------------------------------------------------------------------------
    async def locate(self, sandbox_id: str) -> str:
        ns = self.namespaces.get(sandbox_id)
        if ns:
            return ns
        rec = await self.store.get_sandbox(sandbox_id)
        if rec is not None and rec.backend == self.name:
            ns = (rec.data or {}).get("namespace") or self.namespace(rec.team)
        else:  # an orphan, or one made by another lap-tui: find it by its labels
            for st in await self.list():
                if st.id == sandbox_id:
                    break
            ns = self.namespaces.get(sandbox_id)
        if not ns:
            raise NotFound(f"no sandbox {sandbox_id!r}", "`lap-tui sandboxes list` shows them")
        self.namespaces[sandbox_id] = ns
        return ns

    async def get(self, ns: str, name: str) -> dict[str, Any] | None:
        apis = await self.apis()
        version = await self.version()
        try:
            return await apis.custom.get_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, name)
        except apis.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise self.api_failed(f"cannot read sandbox {name}", exc) from None

    async def get_pod(self, ns: str, name: str) -> dict[str, Any] | None:
        apis = await self.apis()
        resp = await apis.core.read_namespaced_pod_without_preload_content(name, ns)
        try:
            if resp.status == 404:
                return None
            if resp.status >= 400:
                raise SandboxError(f"cannot read the pod of sandbox {name}: {resp.status} {(await resp.text())[:200]}")
            return await resp.json(content_type=None)
        finally:
            resp.release()

    async def set_mode(self, ns: str, name: str, *, running: bool) -> None:
        apis = await self.apis()
        version = await self.version()
        try:
            await apis.custom.patch_namespaced_custom_object(objects.GROUP, version, ns, objects.PLURAL, name,
                                                             objects.mode_patch(version, running),
                                                             field_validation="Strict",
                                                             _content_type="application/merge-patch+json")
        except apis.client.ApiException as exc:
            raise self.api_failed(f"cannot {'resume' if running else 'suspend'} sandbox {name}", exc) from None

    async def ensure_namespace(self, ns: str) -> None:
        if ns in self._ns_ready:
            return
        apis = await self.apis()
        try:
            await apis.core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": ns, "labels": {objects.MANAGED_BY: objects.MANAGER}}},
                                             field_validation="Strict")
        except apis.client.ApiException as exc:
            if exc.status not in (403, 409):  # exists, or we may not create namespaces (then it must exist)
                raise self.api_failed(f"cannot create namespace {ns}", exc) from None
        self._ns_ready.add(ns)

    async def apply_secret(self, body: dict[str, Any]) -> None:
        apis = await self.apis()
        meta = body["metadata"]
        try:
            await apis.core.create_namespaced_secret(meta["namespace"], body, field_validation="Strict")
        except apis.client.ApiException as exc:
            if exc.status != 409:
                raise self.api_failed(f"cannot write the Secret {meta['name']}", exc) from None
            try:
                await apis.core.replace_namespaced_secret(meta["name"], meta["namespace"], body,
                                                          field_validation="Strict")
            except apis.client.ApiException as exc2:
                raise self.api_failed(f"cannot write the Secret {meta['name']}", exc2) from None

    async def _touch(self, sandbox_id: str) -> None:
        rec = await self.store.get_sandbox(sandbox_id)
        if rec is not None and (not rec.last_used_at or time.time() - epoch_from_iso(rec.last_used_at) >= 1.0):
            await self.store.touch_sandbox(sandbox_id, now_iso())  # only that column, only an existing row

    def api_failed(self, what: str, exc: Any) -> SandboxError:
        body = self.redact(str(getattr(exc, "body", "") or ""))[:300]
        return SandboxError(f"{what}: {exc.status} {exc.reason} {body}".strip(),
                            "check the kube context, the namespace and your access")


class _Collect:
    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.total = limit, [], 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total <= self.limit:
            self.parts.append(chunk)

    def value(self) -> bytes:
        return b"".join(self.parts)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _ns(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


def _show(argv: Sequence[str]) -> str:
    text = " ".join(a if a and all(c.isalnum() or c in "-_./=:" for c in a) else repr(a) for a in argv)
    return text[:200] + ("..." if len(text) > 200 else "")
