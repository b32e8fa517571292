"""Offline: the objects the Kubernetes backend sends, checked strictly against the agent-sandbox
CRD schemas of v0.5.6 (../shared/fixtures), and the exec/status parsing. No cluster needed.

The strict walk mirrors the API server's `fieldValidation=Strict`: a field the schema does not
declare is an error (the server would prune it silently otherwise), as are wrong types, enums,
patterns and missing required fields. The live tests send the same objects to a real server.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from lap_tui.config import load_settings
from lap_tui.domain.agent import Agent, SandboxSettings
from lap_tui.domain.errors import InvalidInput
from lap_tui.domain.sandbox import SandboxPhase, SandboxSpec
from lap_tui.sandbox.k8s import execws, files, objects

CRDS = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "agent-sandbox-crds"


def _schema(version: str) -> dict[str, Any]:
    path = CRDS / "agents.x-k8s.io_sandboxes.yaml"
    if not path.exists():
        pytest.skip(f"no CRD fixtures at {CRDS}")
    crd = yaml.safe_load(path.read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]


def strict_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    errs: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)):
            errs.append(f"{path}: not int-or-string")
        elif isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{path}: {value!r} does not match {schema['pattern']}")
        return errs
    if "anyOf" in schema and "type" not in schema:
        return errs
    t = schema.get("type")
    if t == "object":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        props = schema.get("properties")
        for k, v in value.items():
            if props is not None and k in props:
                errs += strict_errors(v, props[k], f"{path}.{k}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errs += strict_errors(v, schema["additionalProperties"], f"{path}.{k}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and props is not None:
                errs.append(f"{path}.{k}: unknown field")
        for r in schema.get("required", ()):
            if r not in value:
                errs.append(f"{path}.{r}: required")
    elif t == "array":
        if not isinstance(value, list):
            return [f"{path}: not an array"]
        for i, item in enumerate(value):
            errs += strict_errors(item, schema.get("items", {}), f"{path}[{i}]")
    elif t == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        if "enum" in schema and value not in schema["enum"]:
            errs.append(f"{path}: {value!r} not in {schema['enum']}")
        if schema.get("format") == "date-time":
            datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    elif t == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: not an integer"]
        if "maximum" in schema and value > schema["maximum"] or "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{path}: {value} out of range")
    elif t == "boolean" and not isinstance(value, bool):
        errs.append(f"{path}: not a boolean")
    return errs


def _spec(**settings: Any) -> SandboxSpec:
    agent = Agent(id="0f" * 16, name="coder", team="research", model="m",
                  sandbox=SandboxSettings(**settings).validate())
    return SandboxSpec(id="s-0123456789ab", team="research", settings=agent.sandbox, agent_id=agent.id,
                       session_id="0123456789ab" + "cd" * 10)


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
def test_sandbox_object_is_valid_for_each_version(version: str) -> None:
    spec = _spec(image="busybox:1.36", cpu="500m", memory="512Mi", max_lifetime_seconds=3600)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    body = objects.sandbox_object(spec, namespace="lap-research", version=version, image="x", has_secret=True,
                                  plain_env={"PATH": "/bin", "HOME": "/workspace", "LANG": "C.UTF-8"}, now=now)
    schema = _schema(version)
    assert strict_errors(body, schema) == []
    s = body["spec"]
    if version == "v1beta1":
        assert s["operatingMode"] == "Running" and "replicas" not in s
    else:
        assert s["replicas"] == 1 and "operatingMode" not in s
    assert s["shutdownTime"] == "2026-01-02T04:04:05Z"
    c = s["podTemplate"]["spec"]["containers"][0]
    assert c["image"] == "busybox:1.36" and c["workingDir"] == "/workspace"
    assert c["volumeMounts"] == [{"name": "workspace", "mountPath": "/workspace"}]
    assert c["envFrom"] == [{"secretRef": {"name": "s-0123456789ab-env"}}]
    assert c["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert s["volumeClaimTemplates"][0]["metadata"]["name"] == "workspace"
    lbl = body["metadata"]["labels"]
    assert lbl[objects.MANAGED_BY] == "lap-tui" and lbl[objects.LABEL_TEAM] == "research"
    assert lbl[objects.LABEL_SESSION] == spec.session_id and lbl[objects.LABEL_AGENT] == spec.agent_id
    assert s["podTemplate"]["metadata"]["labels"] == lbl
    # The validator is not a rubber stamp: an unknown field and a bad enum are caught.
    bad = json.loads(json.dumps(body))
    bad["spec"]["podTemplate"]["spec"]["containers"][0]["workdir"] = "/x"
    bad["spec"]["shutdownPolicy"] = "Never"
    errs = strict_errors(bad, schema)
    assert any("workdir: unknown field" in e for e in errs) and any("shutdownPolicy" in e for e in errs)


def test_no_lifetime_no_shutdown_time_and_default_image() -> None:
    body = objects.sandbox_object(_spec(), namespace="n", version="v1beta1", image="python:3.12-slim",
                                  plain_env={}, has_secret=False)
    assert "shutdownTime" not in body["spec"]
    c = body["spec"]["podTemplate"]["spec"]["containers"][0]
    assert c["image"] == "python:3.12-slim" and "envFrom" not in c


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
def test_mode_patches_are_valid(version: str) -> None:
    schema = _schema(version)["properties"]["spec"]
    for running in (True, False):
        patch = objects.mode_patch(version, running)
        assert strict_errors(patch["spec"], {**schema, "required": []}) == []
        obj = {"spec": patch["spec"]}
        assert objects.is_running_mode(obj) is running


def test_secret_holds_the_values_and_the_sandbox_does_not() -> None:
    spec = _spec(env=("API_TOKEN",))
    secret = objects.secret_object(spec, "ns", {"API_TOKEN": "tok-123456", "DB": "pw-98765"})
    assert base64.b64decode(secret["data"]["API_TOKEN"]) == b"tok-123456"
    body = objects.sandbox_object(spec, namespace="ns", version="v1beta1", image="i", has_secret=True,
                                  plain_env={"PATH": "/bin"})
    text = json.dumps(body)
    assert "tok-123456" not in text and "pw-98765" not in text and "s-0123456789ab-env" in text


def test_status_mapping() -> None:
    obj = {"metadata": {"name": "s-1", "namespace": "n", "creationTimestamp": "2026-01-01T00:00:00Z",
                        "labels": {objects.LABEL_TEAM: "t", objects.LABEL_SESSION: "abc"}},
           "spec": {"operatingMode": "Running"},
           "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "DependenciesReady",
                                      "lastTransitionTime": "2026-01-01T00:00:01Z", "message": ""}]}}
    pod = {"metadata": {"name": "s-1"}, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}], "containerStatuses": [{"restartCount": 2}]}}
    st = objects.status_from(obj, pod)
    assert (st.phase, st.ready, st.restarts, st.team, st.session_id) == (SandboxPhase.RUNNING, True, 2, "t", "abc")
    assert st.created_at == "2026-01-01T00:00:00.000000Z"
    gone = dict(pod, metadata={"name": "s-1", "deletionTimestamp": "2026-01-01T00:00:02Z"})
    assert objects.status_from(obj, gone).ready is False
    suspended = dict(obj, spec={"operatingMode": "Suspended"})
    assert objects.status_from(suspended, None).phase is SandboxPhase.SUSPENDED
    alpha = dict(obj, spec={"replicas": 0})
    assert objects.status_from(alpha, None).phase is SandboxPhase.SUSPENDED
    orphan = objects.status_from(obj, pod, orphan=True)
    assert orphan.orphan and "ORPHAN" in (orphan.warning or "")


def test_exit_codes_real_kubelet_and_kwok() -> None:
    assert execws.exit_code(b'{"metadata":{},"status":"Success"}') == 0
    real = {"metadata": {}, "status": "Failure", "message": "command terminated with non-zero exit code: 3",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    assert execws.exit_code(json.dumps(real)) == 3
    kwok = {"metadata": {}, "status": "Failure", "message": "Internal error occurred: exit status 42",
            "reason": "InternalError", "details": {"causes": [{"message": "exit status 42"}]}, "code": 500}
    assert execws.exit_code(json.dumps(kwok)) == 42
    assert execws.exit_code(json.dumps(dict(kwok, message="error: signal: killed"))) == 137
    from lap_tui.domain.sandbox import SandboxError

    with pytest.raises(SandboxError, match="container not found"):
        execws.exit_code(json.dumps({"status": "Failure", "message": 'container not found ("sandbox")'}))


def test_paths_are_made_relative_and_kept_inside() -> None:
    assert files.relative("/workspace") == "."
    assert files.relative("/workspace/a/./b/") == "a/b"
    assert files.relative("a/../b") == "b"
    for bad in ("/etc/passwd", "../x", "/workspace/../etc", "a/../../x", "/workspacex/y"):
        with pytest.raises(InvalidInput):
            files.relative(bad)
    assert files.cwd_arg(None) == "." and files.cwd_arg("/workspace/src") == "src" and files.cwd_arg("/tmp") == "/tmp"


def test_listing_parse() -> None:
    data = b"f\t3\t1700000000.5\ta b\0d\t4096\t1700000001.0\tsub\0l\t7\t1.0\tlink\0"
    entries = files.parse_listing(data)
    assert [(e.name, e.kind, e.size) for e in entries] == [("a b", "file", 3), ("link", "symlink", 7),
                                                           ("sub", "dir", 4096)]


def test_wrapper_runs_under_sh_with_cwd_env_stdin_and_records_its_pid(tmp_path: Path) -> None:
    """The exec wrapper, run by the local sh exactly as a pod would: cwd, env, stdin by length, pid file."""
    import subprocess

    (tmp_path / "sub").mkdir()
    token = execws.new_token()
    argv = execws.wrapped(["sh", "-c", 'pwd; echo "$GREETING"; cat; exit 3'], token=token, cwd="sub",
                          env={"GREETING": "hi"}, stdin_len=5)
    # stdin stays open (no EOF, as on kwok): only the announced 5 bytes are read.
    proc = subprocess.Popen(argv, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"hello, and more")
    proc.stdin.flush()
    out = proc.stdout.read()
    assert proc.wait(timeout=30) == 3
    proc.stdin.close()
    assert out == f"{tmp_path}/sub\nhi\nhello".encode()
    assert not Path(execws.pid_file(token)).exists()


def test_killer_kills_the_whole_tree(tmp_path: Path) -> None:
    import subprocess

    token = execws.new_token()
    argv = execws.wrapped(["sh", "-c", "sleep 300 & sleep 300; echo never"], token=token, cwd=".", env=None,
                          stdin_len=None)
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE)
    subprocess.run(execws.killer(token), check=True, timeout=30)
    assert proc.wait(timeout=30) == 137
    assert proc.stdout is not None and proc.stdout.read() == b""  # both sleeps died: the pipe closed


def test_backend_selection_and_lazy_import() -> None:
    from lap_tui.sandbox import backend_for, kubernetes_configured

    base = {"HOME": "/nonexistent", "XDG_DATA_HOME": "/tmp/x", "XDG_CONFIG_HOME": "/tmp/x",
            "XDG_STATE_HOME": "/tmp/x"}
    assert not kubernetes_configured(load_settings(environ=base))
    assert kubernetes_configured(load_settings(environ={**base, "LAP_KUBE_CONTEXT": "kind-x"}))
    assert kubernetes_configured(load_settings(environ={**base, "LAP_SANDBOX_BACKEND": "kubernetes"}))
    assert not kubernetes_configured(load_settings(environ={**base, "LAP_SANDBOX_BACKEND": "local",
                                                            "LAP_KUBE_CONTEXT": "kind-x"}))
    before = {m for m in sys.modules if m.startswith("kubernetes")}
    b = backend_for(load_settings(environ={**base, "LAP_KUBE_CONTEXT": "kind-x"}), None)  # type: ignore[arg-type]
    assert b.name == "kubernetes"
    assert {m for m in sys.modules if m.startswith("kubernetes")} == before  # nothing loaded until used


def test_namespaces_from_prefix_or_map() -> None:
    from lap_tui.sandbox.k8s import namespace_for

    base = {"HOME": "/nonexistent", "XDG_CONFIG_HOME": "/tmp/x"}
    assert namespace_for(load_settings(environ=base), "research") == "lap-research"
    s = load_settings(environ={**base, "LAP_KUBE_NAMESPACES": "research=lab, ops=ops-prod",
                               "LAP_KUBE_NAMESPACE_PREFIX": "team-"})
    assert namespace_for(s, "research") == "lab" and namespace_for(s, "other") == "team-other"
    with pytest.raises(InvalidInput):
        namespace_for(load_settings(environ={**base, "LAP_KUBE_NAMESPACE_PREFIX": "Bad_"}), "x")
