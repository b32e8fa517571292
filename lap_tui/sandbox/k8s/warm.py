"""Warm starts: an agent with `sandbox.warm_pool = N` gets a SandboxTemplate and a SandboxWarmPool
(agent-sandbox's extensions), and each new session takes a ready sandbox through a SandboxClaim.

lap-tui owns these objects (labelled managed-by lap-tui, named from the agent's id): `sync`
writes them when the agent is created or edited, `remove` deletes them (and the claims) with
the agent. The claimed Sandbox keeps the name the pool gave it; lap-tui labels it like its own
and records it in the store under that name, so every other call treats it as any sandbox.
A claim made while the pool is empty gets a Sandbox made for it (named as the claim).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lap_tui.domain.clock import now_iso
from lap_tui.domain.names import validate_label
from lap_tui.domain.sandbox import SandboxError, SandboxPhase, SandboxSpec, SandboxStatus
from lap_tui.sandbox.k8s import objects
from lap_tui.sandbox.k8s.ops import SandboxOps
from lap_tui.store.base import SandboxRecord

if TYPE_CHECKING:
    from lap_tui.domain.agent import SandboxSettings

log = logging.getLogger(__name__)

GROUP = "extensions.agents.x-k8s.io"
VERSIONS = ("v1beta1", "v1alpha1")  # preferred first
TEMPLATES, POOLS, CLAIMS = "sandboxtemplates", "sandboxwarmpools", "sandboxclaims"
PREFIX = "lw-"  # lap-tui warm: the template, pool and agent Secret of one agent


# Set by agent-sandbox v0.5.6's controllers: a pool's Sandboxes carry the launch type (kept when a
# claim adopts one; a claim's cold Sandbox has it too) and the template they were made from. A
# waiting Sandbox is controlled by its SandboxWarmPool, a claimed one by its SandboxClaim. Their
# own labels are the controller's, not lap-tui's: lap-tui's (team, agent) are on the pod template,
# copied from lap-tui's SandboxTemplate.
LAUNCH_TYPE = "agents.x-k8s.io/launch-type"
LAUNCH_SELECTOR = LAUNCH_TYPE  # "has the label": every pool's and claim's Sandbox
TEMPLATE_REF = "agents.x-k8s.io/sandbox-template-ref"
POOLED, CLAIMED = "pooled", "claimed"


def origin(obj: dict[str, Any]) -> tuple[str, str, str]:
    """(origin, pool, claim) of a Sandbox: ("pooled", pool, "") while it waits in a pool,
    ("claimed", pool, claim) once a claim holds it, ("", "", "") for any other Sandbox."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or ():
        if not ref.get("controller") or not str(ref.get("apiVersion") or "").startswith(GROUP + "/"):
            continue
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if kind == "SandboxWarmPool":
            return POOLED, name, ""
        if kind == "SandboxClaim":
            return CLAIMED, str((meta.get("annotations") or {}).get(TEMPLATE_REF) or ""), name
    return "", "", ""


def template_labels(obj: dict[str, Any]) -> dict[str, Any]:
    """The labels of the Sandbox's pod template: a pool's Sandbox has lap-tui's from its template."""
    return (((obj.get("spec") or {}).get("podTemplate") or {}).get("metadata") or {}).get("labels") or {}


def is_ours(obj: dict[str, Any]) -> bool:
    """A pool's or claim's Sandbox made from a template lap-tui owns (found without lap-tui's labels)."""
    return template_labels(obj).get(objects.MANAGED_BY) == objects.MANAGER and bool(origin(obj)[0])


def status_of(obj: dict[str, Any], pod: dict[str, Any] | None, *, orphan: bool = False) -> SandboxStatus:
    """objects.status_from, told whether a warm pool holds the Sandbox: a pooled one takes its team
    and agent from its template's labels and is never an orphan (its pool owns it)."""
    st = objects.status_from(obj, pod, orphan=orphan)
    kind, pool, claim = origin(obj)
    if not kind:
        return st
    tl = template_labels(obj)
    return replace(st, origin=kind, pool=pool, claim=claim, team=st.team or str(tl.get(objects.LABEL_TEAM) or ""),
                   agent_id=st.agent_id or tl.get(objects.LABEL_AGENT), orphan=orphan and kind != POOLED)


def pool_name(agent_id: str) -> str:
    """The template's and the pool's name; the pool's Sandboxes are named `<this>-xxxxx`."""
    return PREFIX + objects._label_value(agent_id).lower()[:24]


def _labels(team: str, agent_id: str) -> dict[str, str]:
    return {objects.MANAGED_BY: objects.MANAGER, objects.LABEL_TEAM: team,
            objects.LABEL_AGENT: objects._label_value(agent_id)}


def _agent_spec(agent_id: str, team: str, settings: SandboxSettings) -> SandboxSpec:
    """The spec the template is built from: the agent's, with the pool's name as its id (so its
    Secret is `<pool>-env`, shared by the agent's warm sandboxes: the values are per agent)."""
    return SandboxSpec(id=pool_name(agent_id), team=team, settings=settings, agent_id=agent_id)


def template_object(agent_id: str, team: str, settings: SandboxSettings, *, namespace: str, version: str,
                    image: str, plain_env: dict[str, str], workspace_size: str = objects.DEFAULT_WORKSPACE_SIZE,
                    storage_class: str = "") -> dict[str, Any]:
    """The Sandbox blueprint (objects.sandbox_object's pod and volume), without per-sandbox fields."""
    spec = _agent_spec(agent_id, team, settings)
    sb = objects.sandbox_object(spec, namespace=namespace, version="v1beta1", image=image, plain_env=plain_env,
                                has_secret=True, workspace_size=workspace_size, storage_class=storage_class)
    container = sb["spec"]["podTemplate"]["spec"]["containers"][0]
    # A warm sandbox starts before any session: the agent's Secret may not exist yet.
    container["envFrom"] = [{"secretRef": {"name": objects.secret_name(spec.id), "optional": True}}]
    return {"apiVersion": f"{GROUP}/{version}", "kind": "SandboxTemplate",
            "metadata": {"name": spec.id, "namespace": namespace, "labels": _labels(team, agent_id)},
            "spec": {"podTemplate": sb["spec"]["podTemplate"],
                     "volumeClaimTemplates": sb["spec"]["volumeClaimTemplates"]}}


def pool_object(agent_id: str, team: str, size: int, *, namespace: str, version: str) -> dict[str, Any]:
    name = pool_name(agent_id)
    spec: dict[str, Any] = {"replicas": size, "sandboxTemplateRef": {"name": name}}
    if version == "v1beta1":  # an edited agent's waiting sandboxes are replaced at once, not when claimed
        spec["updateStrategy"] = {"type": "Recreate"}
    return {"apiVersion": f"{GROUP}/{version}", "kind": "SandboxWarmPool",
            "metadata": {"name": name, "namespace": namespace, "labels": _labels(team, agent_id)}, "spec": spec}


def claim_object(spec: SandboxSpec, *, namespace: str, version: str) -> dict[str, Any]:
    """A claim named as the session's sandbox id: v1beta1 names the pool, v1alpha1 the template."""
    pool = pool_name(spec.agent_id or "")
    body: dict[str, Any] = ({"warmPoolRef": {"name": pool}} if version == "v1beta1"
                            else {"sandboxTemplateRef": {"name": pool}, "warmpool": pool})
    return {"apiVersion": f"{GROUP}/{version}", "kind": "SandboxClaim",
            "metadata": {"name": spec.id, "namespace": namespace, "labels": objects.labels(spec)}, "spec": body}


def claimed_name(claim: dict[str, Any] | None) -> str:
    return str((((claim or {}).get("status") or {}).get("sandbox") or {}).get("name") or "")


async def ext_version(backend: SandboxOps) -> str:
    """The extensions version spoken: v1beta1 where served (the backend's own choice otherwise)."""
    if backend.warm_version:
        return backend.warm_version
    apis = await backend.apis()
    try:
        groups = await apis.client.ApisApi(apis.api).get_api_versions()
    except apis.client.ApiException as exc:
        raise backend.api_failed("cannot list the cluster's API groups", exc) from None
    have: set[str] = set()
    for g in groups.groups or ():
        if g.name == GROUP:
            have = {v.version for v in g.versions}
    found = [v for v in VERSIONS if v in have]
    if not found:
        raise SandboxError(f"the cluster serves no {GROUP} API (warm pools)",
                           "install agent-sandbox v0.5.6 with its extensions, or set the agent's warm pool to 0")
    version = await backend.version() if await backend.version() in found else found[0]
    backend.warm_version = version
    return version


async def _apply(backend: SandboxOps, plural: str, body: dict[str, Any]) -> None:
    """Create, or replace the spec of the existing object (a merge patch would keep removed keys)."""
    apis = await backend.apis()
    version = body["apiVersion"].split("/", 1)[1]
    meta = body["metadata"]
    c = apis.custom
    try:
        await c.create_namespaced_custom_object(GROUP, version, meta["namespace"], plural, body,
                                                field_validation="Strict")
        return
    except apis.client.ApiException as exc:
        if exc.status != 409:
            raise backend.api_failed(f"cannot create {body['kind']} {meta['name']}", exc) from None
    for attempt in range(8):  # the controller writes the pool too: a 409 means read it again
        try:
            old = await c.get_namespaced_custom_object(GROUP, version, meta["namespace"], plural, meta["name"])
            fresh = dict(body, metadata=dict(meta, resourceVersion=old["metadata"]["resourceVersion"]))
            await c.replace_namespaced_custom_object(GROUP, version, meta["namespace"], plural, meta["name"], fresh,
                                                     field_validation="Strict")
            return
        except apis.client.ApiException as exc:
            if exc.status != 409 or attempt == 7:
                raise backend.api_failed(f"cannot update {body['kind']} {meta['name']}", exc) from None


async def _delete(backend: SandboxOps, plural: str, ns: str, name: str, policy: str = "Background") -> None:
    apis = await backend.apis()
    try:
        await apis.custom.delete_namespaced_custom_object(GROUP, await ext_version(backend), ns, plural, name,
                                                          propagation_policy=policy)
    except apis.client.ApiException as exc:
        if exc.status != 404:
            raise backend.api_failed(f"cannot delete {plural} {name}", exc) from None


async def sync(backend: SandboxOps, agent_id: str, team: str, settings: SandboxSettings) -> None:
    """Make the cluster match the agent: its template and pool (and Secret), or none at size 0."""
    if settings.warm_pool <= 0:
        await remove(backend, agent_id, team)
        return
    settings.validate()
    ns = backend.namespace(team)
    version = await ext_version(backend)
    await backend.ensure_namespace(ns)
    spec = _agent_spec(agent_id, team, settings)
    plain, secret = backend.env(spec)
    await backend.apply_secret(objects.secret_object(spec, ns, secret))
    await _apply(backend, TEMPLATES, template_object(
        agent_id, team, settings, namespace=ns, version=version, image=backend.image, plain_env=plain,
        workspace_size=backend.workspace_size, storage_class=backend.storage_class))
    await _apply(backend, POOLS, pool_object(agent_id, team, settings.warm_pool, namespace=ns, version=version))
    log.info("warm pool %s (%d) in %s synced", pool_name(agent_id), settings.warm_pool, ns)


async def remove(backend: SandboxOps, agent_id: str, team: str, *, keep: bool = False) -> list[str]:
    """Delete the agent's claims (their Sandboxes go with them unless `keep`), pool, template and
    Secret. Returns the names of the claims deleted."""
    ns = backend.namespace(team)
    apis = await backend.apis()
    version = await ext_version(backend)
    selector = f"{objects.SELECTOR},{objects.LABEL_AGENT}={objects._label_value(agent_id)}"
    try:
        claims = await apis.custom.list_namespaced_custom_object(GROUP, version, ns, CLAIMS, label_selector=selector)
    except apis.client.ApiException as exc:
        if exc.status != 404:
            raise backend.api_failed(f"cannot list the claims of agent {agent_id}", exc) from None
        claims = {}
    # A claim already being deleted (an orphaning delete waits for the garbage collector's
    # finalizer) is not deleted again, nor reported.
    names = [c["metadata"]["name"] for c in claims.get("items") or ()
             if not c["metadata"].get("deletionTimestamp")]
    for name in names:
        await _delete(backend, CLAIMS, ns, name, policy="Orphan" if keep else "Background")
    await _delete(backend, POOLS, ns, pool_name(agent_id))
    await _delete(backend, TEMPLATES, ns, pool_name(agent_id))
    try:
        await apis.core.delete_namespaced_secret(objects.secret_name(pool_name(agent_id)), ns)
    except apis.client.ApiException as exc:
        if exc.status != 404:
            raise backend.api_failed(f"cannot delete the Secret of agent {agent_id}", exc) from None
    return names


async def release(backend: SandboxOps, ns: str, sandbox_id: str) -> None:
    """Before deleting a claimed sandbox: delete its claim, orphaning the Sandbox (the backend's
    delete then decides about its volume); a claim left behind would get a new sandbox."""
    rec = await backend.store.get_sandbox(sandbox_id)
    claim = ((rec.data or {}) if rec is not None else {}).get("claim")
    if claim:
        await _delete(backend, CLAIMS, ns, str(claim), policy="Orphan")


async def ensure_claimed(backend: SandboxOps, spec: SandboxSpec) -> SandboxStatus | None:
    """The session's sandbox through its claim (made now if new); None when the session already
    has a Sandbox of its own (made before the agent had a pool): the caller ensures that one."""
    ns = backend.namespace(spec.team)
    apis = await backend.apis()
    version = await ext_version(backend)
    c = apis.custom
    try:
        claim = await c.get_namespaced_custom_object(GROUP, version, ns, CLAIMS, spec.id)
    except apis.client.ApiException as exc:
        if exc.status != 404:
            raise backend.api_failed(f"cannot read the claim {spec.id}", exc) from None
        claim = None
    if claim is None:
        if await backend.get(ns, spec.id) is not None:
            return None
        try:  # the pool is made by `agents create/edit`; here too, for an agent made elsewhere
            await c.get_namespaced_custom_object(GROUP, version, ns, POOLS, pool_name(spec.agent_id or ""))
        except apis.client.ApiException as exc:
            if exc.status != 404:
                raise backend.api_failed("cannot read the warm pool", exc) from None
            await sync(backend, spec.agent_id or "", spec.team, spec.settings)
        await backend.ensure_namespace(ns)
        try:
            await c.create_namespaced_custom_object(GROUP, version, ns, CLAIMS,
                                                    claim_object(spec, namespace=ns, version=version),
                                                    field_validation="Strict")
        except apis.client.ApiException as exc:
            if exc.status != 409:
                raise backend.api_failed(f"cannot claim a sandbox for {spec.id}", exc) from None
    name = claimed_name(claim)
    if not name:  # the controller names the sandbox in the claim's status: wait for it there
        from lap_tui.sandbox.k8s.watching import ApiError, bind, list_raw

        call = bind(c.list_namespaced_custom_object_without_preload_content, GROUP, version, ns, CLAIMS)
        try:  # once first: a missing right fails now (the wait below retries any error until its timeout)
            listed = await list_raw(call, field_selector=f"metadata.name={spec.id}")
        except ApiError as exc:
            raise SandboxError(f"cannot list the claim {spec.id} in {ns}: {backend.redact(str(exc))}",
                               "the team Role must grant sandboxclaims get/list/watch "
                               "(deploy/k8s/team-default.yaml)") from None
        name = next((claimed_name(o) for o in listed.get("items") or () if claimed_name(o)), "")
        if not name:
            got = await backend.wait_for(call, spec.id, lambda o: bool(claimed_name(o)),
                                         time.monotonic() + backend.ready_timeout, "the claim to be given a sandbox")
            name = claimed_name(got)
    name = validate_label("sandbox", name)  # from the cluster: used as a name and a store key below
    sandbox = await backend.get(ns, name)
    if sandbox is None:
        raise SandboxError(f"the sandbox {name} of claim {spec.id} is gone", "try again: the claim gets another")
    # lap-tui's labels, so lists and watches (label-selected) show it like any other.
    await c.patch_namespaced_custom_object(objects.GROUP, await backend.version(), ns, objects.PLURAL, name,
                                           {"metadata": {"labels": objects.labels(spec)}},
                                           field_validation="Strict",
                                           _content_type="application/merge-patch+json")
    if not objects.is_running_mode(sandbox):
        await backend.set_mode(ns, name, running=True)
    backend.namespaces[name] = ns
    now = now_iso()
    data = {"namespace": ns, "settings": spec.settings.to_dict(), "claim": spec.id}
    rec = await backend.store.get_sandbox(name)
    if rec is None:
        rec = SandboxRecord(id=name, backend=backend.name, team=spec.team, phase=SandboxPhase.PENDING.value,
                            agent_id=spec.agent_id, session_id=spec.session_id, context_key=spec.context_key,
                            created_at=now, last_used_at=now, data=data)
    else:
        rec = replace(rec, last_used_at=now, data=data)
    await backend.store.put_sandbox(rec)
    status = await backend.wait_ready(ns, name)
    # Compare-and-set, as the backend's ensure: a row another process deleted or moved on stays so.
    await backend.store.update_sandbox(name, phase_was=rec.phase, phase=status.phase.value, ready=status.ready,
                                       suspended_at=None)
    return status


async def follow_agent(settings: Any, store: Any, agent: Any, *, before: int = 0, deleted: bool = False,
                       keep: bool = False) -> bool:
    """After `agents create/edit/delete`: the agent's pool as it now asks (`before`: its size
    before an edit, so shrinking to 0 removes it). False when there is nothing to do here (no
    cluster configured, a local agent, no pool before or now)."""
    from lap_tui.sandbox import backend_for, kubernetes_configured

    size = 0 if deleted else agent.sandbox.warm_pool
    before = agent.sandbox.warm_pool if deleted else before
    if not (size or before) or agent.sandbox.backend == "local" or not kubernetes_configured(settings):
        return False
    backend = backend_for(settings, store, "kubernetes")
    try:
        if size:
            await sync(backend, agent.id, agent.team, agent.sandbox)
        else:
            await remove(backend, agent.id, agent.team, keep=keep)
    finally:
        await backend.close()
    return True
