"""The bin/k8s-dev cluster itself, driven with the real `kubernetes` client: what the sandbox
backend's tests rely on (a Sandbox gets a pod, exec runs in the claim's directory, files outlive
the pod, conversion, strict server-side apply)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from tests.support.k8s_cluster import K8sCluster

GROUP = "agents.x-k8s.io"


@pytest.fixture
def api(k8s_cluster: K8sCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(k8s_cluster.kubeconfig), context=k8s_cluster.context)


def sandbox_manifest(name: str, *, claim: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "lap-tui.invalid/harness:never-pulled"}
    spec: dict[str, Any] = {"podTemplate": {"spec": {"containers": [container]}}}
    if claim:
        container["volumeMounts"] = [{"name": "workspace", "mountPath": "/workspace"}]
        spec["volumeClaimTemplates"] = [{
            "metadata": {"name": "workspace"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }]
    return {"apiVersion": f"{GROUP}/v1beta1", "kind": "Sandbox", "metadata": {"name": name}, "spec": spec}


def wait_until(list_fn: Callable[..., Any], pred: Callable[[Any], bool], what: str,
               timeout: float = 60, **kw: Any) -> Any:
    """The first object of list_fn(**kw) that satisfies pred: a list, then a watch from its
    resourceVersion (no polling)."""
    deadline = time.monotonic() + timeout
    listed = list_fn(**kw)
    items = listed["items"] if isinstance(listed, dict) else listed.items
    for obj in items:
        if pred(obj):
            return obj
    rv = listed["metadata"]["resourceVersion"] if isinstance(listed, dict) else listed.metadata.resource_version
    w = watch.Watch()
    remaining = max(1, int(deadline - time.monotonic()))
    for ev in w.stream(list_fn, resource_version=rv, timeout_seconds=remaining, **kw):
        if ev["type"] in ("ADDED", "MODIFIED") and pred(ev["object"]):
            w.stop()
            return ev["object"]
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def is_ready(sbx: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in sbx.get("status", {}).get("conditions") or [])


def pod_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def owned_by(uid: str) -> Callable[[client.V1Pod], bool]:
    return lambda p: any(o.uid == uid for o in p.metadata.owner_references or [])


class Cluster:
    """The calls these tests make, on one namespace."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.ns = ns
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def create_sandbox(self, body: dict[str, Any], version: str = "v1beta1") -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, version, self.ns, "sandboxes", body)

    def get_sandbox(self, name: str, version: str = "v1beta1") -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, version, self.ns, "sandboxes", name)

    def ready_sandbox(self, name: str) -> dict[str, Any]:
        return wait_until(self.custom.list_namespaced_custom_object, is_ready, f"Sandbox {name} Ready",
                          group=GROUP, version="v1beta1", namespace=self.ns, plural="sandboxes",
                          field_selector=f"metadata.name={name}")

    def ready_pod(self, owner_uid: str, not_uid: str | None = None) -> client.V1Pod:
        def pred(p: client.V1Pod) -> bool:
            return owned_by(owner_uid)(p) and p.metadata.uid != not_uid and pod_ready(p) \
                and p.metadata.deletion_timestamp is None
        return wait_until(self.core.list_namespaced_pod, pred, "a Ready pod of the Sandbox", namespace=self.ns)

    def exec(self, pod: str, command: list[str]) -> tuple[str, str, dict[str, Any]]:
        """stdout, stderr and the error channel's Status of a command run in the pod."""
        ws = stream(self.core.connect_get_namespaced_pod_exec, pod, self.ns, command=command,
                    stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
        out, err = [], []
        status: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            out.append(ws.read_stdout() if ws.peek_stdout() else "")
            err.append(ws.read_stderr() if ws.peek_stderr() else "")
            if ws.peek_channel(3):
                status = yaml.safe_load(ws.read_channel(3))
        ws.close()
        return "".join(out), "".join(err), status


@pytest.fixture
def kube(api: client.ApiClient, k8s_namespace: str) -> Cluster:
    return Cluster(api, k8s_namespace)


def claim_of(pod: client.V1Pod) -> str:
    claims = [v.persistent_volume_claim.claim_name for v in pod.spec.volumes or [] if v.persistent_volume_claim]
    assert claims, f"pod {pod.metadata.name} mounts no PVC"
    return claims[0]


def test_a_sandbox_with_a_volume_claim_becomes_ready_with_a_pod_and_a_bound_claim(kube: Cluster):
    sbx = kube.create_sandbox(sandbox_manifest("ready"))
    kube.ready_sandbox("ready")
    pod = kube.ready_pod(sbx["metadata"]["uid"])
    assert pod.status.phase == "Running"
    assert pod.spec.node_name, "the scheduler placed the pod on kwok's node"
    claim = claim_of(pod)
    pvc = wait_until(kube.core.list_namespaced_persistent_volume_claim, lambda c: c.status.phase == "Bound",
                     f"PVC {claim} Bound", namespace=kube.ns, field_selector=f"metadata.name={claim}")
    assert pvc.spec.volume_name, "kwok's volume Stages provisioned and bound a PV"


def test_exec_runs_in_the_claims_directory_and_its_files_outlive_the_pod(kube: Cluster, k8s_cluster: K8sCluster):
    sbx = kube.create_sandbox(sandbox_manifest("files"))
    kube.ready_sandbox("files")
    pod = kube.ready_pod(sbx["metadata"]["uid"])
    claim = claim_of(pod)
    out, err, status = kube.exec(pod.metadata.name, ["sh", "-c", "pwd; echo kept > note.txt; echo oops >&2"])
    assert status.get("status") == "Success", status
    assert out.strip() == str(k8s_cluster.volume_dir(kube.ns, claim))
    assert err.strip() == "oops"

    kube.core.delete_namespaced_pod(pod.metadata.name, kube.ns, grace_period_seconds=0)
    new = kube.ready_pod(sbx["metadata"]["uid"], not_uid=pod.metadata.uid)
    assert claim_of(new) == claim
    out, _, status = kube.exec(new.metadata.name, ["cat", "note.txt"])
    assert (out, status.get("status")) == ("kept\n", "Success")


def test_a_non_zero_exit_comes_back_in_kwoks_shape(kube: Cluster):
    # kwok's gap from a kubelet (docs/KUBERNETES-DEV.md): a kubelet answers
    # Failure/NonZeroExitCode with an ExitCode cause; kwok answers a 500 "exit status N".
    sbx = kube.create_sandbox(sandbox_manifest("exit", claim=False))
    pod = kube.ready_pod(sbx["metadata"]["uid"])
    _, _, status = kube.exec(pod.metadata.name, ["sh", "-c", "exit 3"])
    assert status.get("status") == "Failure"
    assert "exit status 3" in status.get("message", ""), status


def test_the_v1alpha1_view_goes_through_the_conversion_webhook(kube: Cluster):
    kube.create_sandbox(sandbox_manifest("conv", claim=False))
    assert kube.get_sandbox("conv", "v1alpha1")["spec"]["replicas"] == 1
    # And back: a v1alpha1 object with replicas 0 is stored (v1beta1) as Suspended.
    alpha = sandbox_manifest("conv-alpha", claim=False)
    alpha["apiVersion"] = f"{GROUP}/v1alpha1"
    alpha["spec"]["replicas"] = 0
    kube.create_sandbox(alpha, "v1alpha1")
    assert kube.get_sandbox("conv-alpha")["spec"]["operatingMode"] == "Suspended"
    assert kube.get_sandbox("conv-alpha", "v1alpha1")["spec"]["replicas"] == 0


def test_an_unknown_field_is_an_error_with_server_side_apply_or_strict_validation(kube: Cluster):
    body = sandbox_manifest("strict", claim=False)
    body["metadata"]["namespace"] = kube.ns
    body["spec"]["notAField"] = True

    # Server-side apply on the CRD refuses a field its schema does not declare, whatever the
    # fieldValidation (v1.36 answers 500 "failed to create typed patch object ... field not
    # declared in schema", not a 400).
    with pytest.raises(ApiException) as e:
        kube.custom.patch_namespaced_custom_object(
            GROUP, "v1beta1", kube.ns, "sandboxes", "strict", body, field_manager="lap-tui-test",
            field_validation="Strict", _content_type="application/apply-patch+yaml")
    assert "notAField" in (e.value.body or "") and "not declared in schema" in e.value.body

    # A create with fieldValidation=Strict is a 400 naming the field.
    with pytest.raises(ApiException) as e:
        kube.custom.create_namespaced_custom_object(GROUP, "v1beta1", kube.ns, "sandboxes", body,
                                                    field_validation="Strict")
    assert e.value.status == 400 and 'unknown field \\"spec.notAField\\"' in (e.value.body or ""), e.value.body

    # Without it the same create is accepted with the field silently pruned: what strict
    # validation protects against.
    stored = kube.custom.create_namespaced_custom_object(GROUP, "v1beta1", kube.ns, "sandboxes", body,
                                                         field_validation="Ignore")
    assert "notAField" not in stored["spec"]


def test_after_compact_etcd_and_a_restart_a_watch_from_an_older_resource_version_is_gone(
        kube: Cluster, k8s_cluster: K8sCluster, api: client.ApiClient):
    old_rv = kube.core.list_namespaced_config_map(kube.ns).metadata.resource_version
    kube.core.create_namespaced_config_map(kube.ns, {"metadata": {"name": "bump"}, "data": {"a": "1"}})
    assert k8s_cluster.compact_etcd() > int(old_rv)
    # Until it restarts, the API server's watch cache may still serve a recent version.
    k8s_cluster.restart_apiserver()
    kube = Cluster(api, kube.ns)
    with pytest.raises(ApiException) as e:
        for _ in watch.Watch().stream(kube.core.list_namespaced_config_map, kube.ns, resource_version=old_rv,
                                      timeout_seconds=10):
            pass
    assert e.value.status == 410


def test_after_restart_apiserver_sandboxes_become_ready_and_exec_works(kube: Cluster, k8s_cluster: K8sCluster,
                                                                       api: client.ApiClient):
    seen_down: list[bool] = []
    k8s_cluster.restart_apiserver(while_down=lambda: seen_down.append(k8s_cluster.api_ready()))
    assert seen_down == [False]
    kube = Cluster(api, kube.ns)
    sbx = kube.create_sandbox(sandbox_manifest("after-restart"))
    kube.ready_sandbox("after-restart")
    pod = kube.ready_pod(sbx["metadata"]["uid"])
    out, _, status = kube.exec(pod.metadata.name, ["sh", "-c", "echo ok"])
    assert (out, status.get("status")) == ("ok\n", "Success"), status
