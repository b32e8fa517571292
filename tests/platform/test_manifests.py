"""deploy/k8s applies to the real API server (server-side apply, strict field validation), and
the worker Deployment's pod template refers only to things that exist: its ServiceAccount, its
ConfigMap, the Secret keys docs/DEPLOY.md tells operators to create, its health port, and a
`lap-tui worker` command line lap-tui accepts. kwok then runs its pods (no image is pulled)."""

from __future__ import annotations

import copy
import json
import time

from lap_tui.cli.main import build_parser
from tests.platform.manifests import SYSTEM_NS, TEAM_NS, apply, delete_namespaces, find, render, unique_names

def wait_for(cond, what: str, timeout: float = 120.0) -> None:
    """A condition the controllers bring about in their own time, bounded."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# What docs/DEPLOY.md tells operators to create (kubectl create secret generic ...).
SECRET_NAME = "lap-tui-secrets"
SECRET_KEYS = ("database-url", "litellm-api-key")


def test_manifests_apply_strictly_and_their_references_exist(k8s_cluster):
    names = unique_names()
    sys_ns = names[SYSTEM_NS]
    objs = render(k8s_cluster, names)
    assert {o["kind"] for o in objs} == {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Role",
                                         "RoleBinding", "Service", "NetworkPolicy"}
    try:
        # A field the schema lacks is refused, not pruned: so a clean apply below means something.
        broken = copy.deepcopy(objs)
        find(broken, "Deployment", "lap-tui-worker")["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Never"
        r = apply(k8s_cluster, [o for o in broken if o["kind"] in ("Namespace", "Deployment")])
        assert r.returncode != 0 and "imagePullPolicyy: field not declared in schema" in r.stderr, (r.stdout, r.stderr)

        r = apply(k8s_cluster, objs)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("serverside-applied") == len(objs), r.stdout
        r = apply(k8s_cluster, objs)  # idempotent: the same manager owns every field
        assert r.returncode == 0, r.stderr

        dep = find(objs, "Deployment", "lap-tui-worker")
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        # The references of the pod template.
        k8s_cluster.kubectl("get", "serviceaccount", pod["serviceAccountName"], "-n", sys_ns, check=True)
        for src in container["envFrom"]:
            if "configMapRef" in src:
                k8s_cluster.kubectl("get", "configmap", src["configMapRef"]["name"], "-n", sys_ns, check=True)
            else:
                assert src["secretRef"].get("optional") is True, src  # only optional Secrets beyond the documented one
        refs = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
                for e in container["env"] if "valueFrom" in e}
        assert refs == {(SECRET_NAME, k) for k in SECRET_KEYS}
        k8s_cluster.kubectl("create", "secret", "generic", SECRET_NAME, "-n", sys_ns,
                            *(f"--from-literal={k}=placeholder" for k in SECRET_KEYS), check=True)
        # The command line is one lap-tui accepts, its health port is the probes' port.
        args = build_parser().parse_args(container["args"])
        health = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
        assert args.health_port == health
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert args.grace < pod["terminationGracePeriodSeconds"]
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        # The RoleBinding binds that ServiceAccount in the team namespace.
        rb = find(objs, "RoleBinding")
        assert rb["metadata"]["namespace"] == names[TEAM_NS]
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": sys_ns}]
        # The relay: the same Secret keys and ConfigMap, a `lap-tui relay` command line lap-tui
        # accepts, listening on the port its probes and its Service name.
        relay = find(objs, "Deployment", "lap-tui-relay")
        (rc,) = relay["spec"]["template"]["spec"]["containers"]
        assert {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
                for e in rc["env"] if "valueFrom" in e} == {(SECRET_NAME, k) for k in SECRET_KEYS}
        assert [s["configMapRef"]["name"] for s in rc["envFrom"]] == [find(objs, "ConfigMap")["metadata"]["name"]]
        rargs = build_parser().parse_args(rc["args"])
        assert rargs.handler.__name__ == "relay" and rargs.idle_exit == float("inf")
        port = {p["name"]: p["containerPort"] for p in rc["ports"]}["relay"]
        listen = {e["name"]: e.get("value") for e in rc["env"]}["LAP_RELAY_LISTEN"]
        assert listen == f"0.0.0.0:{port}" and rc["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "relay"}
        grace = float({e["name"]: e.get("value") for e in rc["env"]}["LAP_RELAY_GRACE"])
        prestop = float(rc["lifecycle"]["preStop"]["exec"]["command"][1])
        assert prestop + grace < relay["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert rc["resources"]["requests"]["cpu"] and rc["resources"]["requests"]["memory"]
        svc = find(objs, "Service", "lap-tui-relay")
        assert svc["spec"]["selector"] == relay["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"] != dep["spec"]["template"]["metadata"]["labels"]
        (sp,) = svc["spec"]["ports"]
        assert sp["targetPort"] == "relay"
        # The workers hand sandboxes that Service's address.
        url = find(objs, "ConfigMap")["data"]["LAP_RELAY_URL"]
        assert url == f"http://{svc['metadata']['name']}.{sys_ns}.svc:{sp['port']}"
        # The pods are admitted (ServiceAccount admission, Secret refs) and become ready on kwok.
        for d in (dep, relay):
            r = k8s_cluster.kubectl("rollout", "status", f"deployment/{d['metadata']['name']}", "-n", sys_ns,
                                    "--timeout=120s", timeout=180)
            assert r.returncode == 0, (r.stdout, r.stderr)
        # The Service finds the relay's pods (its EndpointSlices, written by the controller
        # manager after the pods are ready), not the workers'.
        def slices() -> list[dict]:
            return json.loads(k8s_cluster.kubectl("get", "endpointslices", "-n", sys_ns, "-l",
                                                  f"kubernetes.io/service-name={svc['metadata']['name']}", "-o",
                                                  "json", check=True).stdout)["items"]

        def ready_pods(eps: list[dict]) -> set[str]:
            return {e["targetRef"]["name"] for s in eps for e in s.get("endpoints") or ()
                    if (e.get("conditions") or {}).get("ready")}

        wait_for(lambda: len(ready_pods(slices())) >= relay["spec"]["replicas"], "the relay Service's endpoints")
        eps = slices()
        pods = ready_pods(eps)
        assert len(pods) == relay["spec"]["replicas"] and all(p.startswith("lap-tui-relay-") for p in pods), pods
        assert {p["port"] for s in eps for p in s.get("ports") or ()} == {port}
    finally:
        delete_namespaces(k8s_cluster, names)
