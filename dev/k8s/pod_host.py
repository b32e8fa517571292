"""The k8s-dev "pod host": stands in for the kubelet's volume mounts, env and logs under kwok.

kwok marks pods Running without running anything; `kubectl exec` runs the command on this
host in the `workDir` of a kwok `Exec` object named like the pod. For every pod this watcher
gives the pod:

- an `Exec` whose workDir is `<state>/volumes/<namespace>/<claim>`: the claimName of the pod's
  first PVC volume (else the pod's name), created if missing. A pod recreated for the same
  Sandbox mounts the same PVC, so it sees the same files, as with a real volume. The exec env
  is the container's env resolved like the kubelet does (value, secretKeyRef,
  configMapKeyRef, envFrom), so the Secret values live in that Exec object, as they live in a
  real container's environment. Nothing is isolated: commands run as this user on this host.
- a `Logs` object pointing at `<state>/logs/<namespace>/<pod>.log` (CRI format,
  `<RFC3339Nano> stdout F <line>`), with a first line written when a new pod is seen; the
  previous pod of that name keeps its file as `<pod>.log.previous` (`kubectl logs -p`).

Once the pod is scheduled and an exec of `true` in it works (a readiness probe: kwok serves
exec from its own informer on Exec objects, which can lag), it annotates the pod
`k8s-dev.lap-tui.dev/pod-host: "true"`: kwok's pod-ready Stage waits for that, so a Ready pod
always has a working exec in its volume directory (as a kubelet mounts volumes before starting
the containers). Both objects are owned by the pod, so the garbage collector deletes them with it.
Watch-based:
list, then watch from the list's resourceVersion with bookmarks; a 410 Gone re-lists; a lost
connection (API server restarting) retries with backoff. Started in the background by
`bin/k8s-dev up`: python pod_host.py STATE_DIR KUBECONFIG CONTEXT.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

log = logging.getLogger("pod-host")
KWOK_GROUP, KWOK_VERSION = "kwok.x-k8s.io", "v1alpha1"
READY_ANNOTATION = "k8s-dev.lap-tui.dev/pod-host"
# Names used as path parts: DNS-1123 labels/subdomains, as the API server validates them; checked
# again here because they end up in paths on this host.
SAFE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def cri_line(text: str) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return f"{now} stdout F {text}\n"


def safe(name: str) -> str:
    if not SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"refusing an unexpected name as a path part: {name!r}")
    return name


class PodHost:
    def __init__(self, state: Path, api: client.ApiClient) -> None:
        self.state = state
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.done: dict[str, str] = {}  # pod key "ns/name" -> uid whose objects exist
        self.probes: queue.Queue[tuple[str, str, str, str]] = queue.Queue()
        self.probing: set[str] = set()  # uids queued or being probed
        self.lock = threading.Lock()

    # ---- the volume, env and log of one pod ----

    def volume_dir(self, pod: dict[str, Any]) -> Path:
        meta = pod["metadata"]
        key = meta["name"]
        for vol in pod.get("spec", {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                key = claim
                break
        d = self.state / "volumes" / safe(meta["namespace"]) / safe(key)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _from_secret_or_cm(self, ns: str, kind: str, name: str) -> dict[str, str]:
        if kind == "secret":
            obj = self.core.read_namespaced_secret(name, ns)
            return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.data or {}).items()}
        obj = self.core.read_namespaced_config_map(name, ns)
        return dict(obj.data or {})

    def container_env(self, ns: str, container: dict[str, Any]) -> list[dict[str, str]]:
        """The env a kubelet would give the container; unresolvable optional sources are skipped."""
        env: dict[str, str] = {}
        for src in container.get("envFrom") or []:
            for kind, ref in (("secret", src.get("secretRef")), ("configmap", src.get("configMapRef"))):
                if ref:
                    try:
                        for k, v in self._from_secret_or_cm(ns, kind, ref["name"]).items():
                            env[src.get("prefix", "") + k] = v
                    except ApiException as e:
                        log.warning("pod env: %s %s/%s: %s", kind, ns, ref["name"], e.reason)
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            vf = var.get("valueFrom") or {}
            for kind, ref in (("secret", vf.get("secretKeyRef")), ("configmap", vf.get("configMapKeyRef"))):
                if ref:
                    try:
                        data = self._from_secret_or_cm(ns, kind, ref["name"])
                    except ApiException as e:
                        log.warning("pod env: %s %s/%s: %s", kind, ns, ref["name"], e.reason)
                        continue
                    if ref["key"] in data:
                        env[var["name"]] = data[ref["key"]]
        return [{"name": k, "value": v} for k, v in env.items()]

    def ensure(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if meta.get("deletionTimestamp"):
            return
        if self.done.get(f"{ns}/{name}") != uid:
            self.prepare(pod)
        self.maybe_probe(pod)

    def maybe_probe(self, pod: dict[str, Any]) -> None:
        """Queue the readiness probe of a scheduled pod not yet marked ready."""
        meta = pod["metadata"]
        if (meta.get("annotations") or {}).get(READY_ANNOTATION) == "true" or not pod["spec"].get("nodeName"):
            return
        with self.lock:
            if meta["uid"] in self.probing:
                return
            self.probing.add(meta["uid"])
        self.probes.put((meta["namespace"], meta["name"], meta["uid"], pod["spec"]["containers"][0]["name"]))

    def prepare(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        work = self.volume_dir(pod)
        logs_dir = self.state / "logs" / safe(ns)
        logs_dir.mkdir(parents=True, exist_ok=True)
        log_file = logs_dir / f"{safe(name)}.log"
        owner = [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid,
                  "controller": False, "blockOwnerDeletion": False}]
        execs = [{"containers": [c["name"]],
                  "local": {"workDir": str(work), "envs": self.container_env(ns, c)}}
                 for c in pod["spec"]["containers"]]
        exec_obj = {"apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}", "kind": "Exec",
                    "metadata": {"name": name, "namespace": ns, "ownerReferences": owner},
                    "spec": {"execs": execs}}
        new_pod = self._put("execs", exec_obj, uid)
        if new_pod:
            if log_file.exists():
                log_file.replace(log_file.with_name(log_file.name + ".previous"))
            with open(log_file, "a", encoding="utf-8") as f:
                f.write(cri_line(f"k8s-dev pod host: pod {ns}/{name} started, volume {work.name}"))
        log_obj = {"apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}", "kind": "Logs",
                   "metadata": {"name": name, "namespace": ns, "ownerReferences": owner},
                   "spec": {"logs": [{"logsFile": str(log_file),
                                      "previousLogsFile": str(log_file) + ".previous",
                                      "follow": True}]}}
        log_file.touch()
        self._put("logs", log_obj, uid)
        self.done[f"{ns}/{name}"] = uid
        log.info("pod %s/%s (%s): workDir %s%s", ns, name, uid, work, " (new)" if new_pod else "")

    def _put(self, plural: str, obj: dict[str, Any], uid: str) -> bool:
        """Create the object, or replace one left by an earlier pod of that name.

        True when it did not exist for this pod yet (a new pod, not a pod-host restart)."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        try:
            self.custom.create_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, ns, plural, obj)
            return True
        except ApiException as e:
            if e.status != 409:
                raise
        old = self.custom.get_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, ns, plural, name)
        owners = {o.get("uid") for o in old["metadata"].get("ownerReferences") or []}
        if uid in owners and old.get("spec") == obj["spec"]:
            return False
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        self.custom.replace_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, ns, plural, name, obj)
        return uid not in owners

    # ---- the readiness probe ----

    def probe_loop(self, api: client.ApiClient) -> None:
        """Mark a pod ready for kwok once an exec in it works: kwok serves exec from its own
        informer on Exec objects, which can lag its Pod informer (seen after API restarts).
        Like a kubelet's readiness probe it retries, backing off to 2 s, until the pod is gone."""
        core = client.CoreV1Api(api)  # its own client: stream() patches the client it uses
        while True:
            ns, name, uid, container = self.probes.get()
            delay = 0.05
            try:
                while True:
                    try:
                        pod = core.read_namespaced_pod(name, ns)
                        if pod.metadata.uid != uid or pod.metadata.deletion_timestamp is not None:
                            break
                        if (pod.metadata.annotations or {}).get(READY_ANNOTATION) == "true":
                            break
                        if exec_works(core, ns, name, container):
                            # kwok's pod-ready Stage (kwok-stages.yaml) waits for this. The uid in
                            # the patch makes it fail on a newer pod of the same name.
                            core.patch_namespaced_pod(name, ns, {"metadata": {
                                "uid": uid, "annotations": {READY_ANNOTATION: "true"}}})
                            log.info("pod %s/%s (%s): exec works, marked ready", ns, name, uid)
                            break
                    except ApiException as e:
                        if e.status in (404, 409, 422):
                            break
                        log.warning("probe %s/%s: %s %s", ns, name, e.status, e.reason)
                    except Exception as e:  # the API server restarting
                        log.warning("probe %s/%s: %s: %s", ns, name, type(e).__name__, e)
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
            finally:
                with self.lock:
                    self.probing.discard(uid)

    # ---- the watch ----

    def handle(self, pod: dict[str, Any]) -> None:
        try:
            self.ensure(pod)
        except (ApiException, ValueError, OSError) as e:
            # The next event for the pod retries; the pod just has no exec/logs until then.
            log.warning("pod %s/%s: %s", pod["metadata"].get("namespace"), pod["metadata"].get("name"), e)

    def run(self) -> None:
        rv: str | None = None
        backoff = 0.5
        while True:
            try:
                if rv is None:
                    listed = self.core.list_pod_for_all_namespaces(_preload_content=False)
                    body = _json(listed)
                    for item in body.get("items") or []:
                        item.setdefault("metadata", {})
                        self.handle(item)
                    rv = body["metadata"]["resourceVersion"]
                w = watch.Watch()
                # Deserialized events: only then does the client turn an ERROR event (410 Gone)
                # into an ApiException; the plain dict of each object is its raw_object.
                for ev in w.stream(self.core.list_pod_for_all_namespaces, resource_version=rv,
                                   allow_watch_bookmarks=True, timeout_seconds=300):
                    obj = ev["raw_object"]
                    rv = obj["metadata"].get("resourceVersion") or rv
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.handle(obj)
                    elif ev["type"] == "DELETED":
                        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
                        if self.done.get(key) == obj["metadata"]["uid"]:
                            del self.done[key]
                backoff = 0.5
            except ApiException as e:
                if e.status == 410:
                    log.info("watch: 410 Gone, listing again")
                    rv = None
                    continue
                log.warning("watch: %s %s; retrying in %.1f s", e.status, e.reason, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as e:  # connection refused/reset while the API server restarts
                log.warning("watch: %s: %s; retrying in %.1f s", type(e).__name__, e, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def exec_works(core: client.CoreV1Api, ns: str, name: str, container: str) -> bool:
    ws = stream(core.connect_get_namespaced_pod_exec, name, ns, container=container, command=["true"],
                stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    try:
        deadline = time.monotonic() + 10
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            if ws.peek_channel(3):
                return json.loads(ws.read_channel(3)).get("status") == "Success"
        return False
    finally:
        ws.close()


def _json(resp: Any) -> dict[str, Any]:
    try:
        return json.loads(resp.data)
    finally:
        resp.release_conn()


def main() -> None:
    state, kubeconfig, context = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    api = config.new_client_from_config(config_file=kubeconfig, context=context)
    os.umask(0o022)
    log.info("pod host for %s (context %s), state %s", kubeconfig, context, state)
    host = PodHost(state, api)
    for _ in range(4):  # a few probes at once: each exec takes 10-40 ms
        probe_api = config.new_client_from_config(config_file=kubeconfig, context=context)
        threading.Thread(target=host.probe_loop, args=(probe_api,), daemon=True).start()
    host.run()


if __name__ == "__main__":
    main()
