"""bin/kind-up.sh and bin/kind-down.sh: shellcheck-clean, and what they do, read from their
output and from stand-ins for kind, kubectl and docker that record every call (Docker cannot
run images on the build machines; the real tools are the users')."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lap_tui.harness.definition import load_definitions
from lap_tui.harness.image import harness_image
from tests.conftest import ROOT, need

UP, DOWN = ROOT / "bin" / "kind-up.sh", ROOT / "bin" / "kind-down.sh"
RELEASE = "https://github.com/kubernetes-sigs/agent-sandbox/releases/download/v0.5.6"
HARNESSES = sorted(p.parent.name for p in (ROOT / "harnesses").glob("*/Dockerfile"))
DEFINITIONS = load_definitions()[0]
LAP_IMAGE = re.search(r"image: (lap-tui:\S+)", (ROOT / "deploy/k8s/deployment.yaml").read_text()).group(1)

# One stand-in for the three tools: it appends its argv to $FAKE_LOG and answers from $FAKE_STATE.
FAKE = """#!{python}
import json, os, sys
tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps([tool] + args) + "\\n")
state = os.environ.get("FAKE_STATE", "fresh")
if tool == "kind" and args[:2] == ["get", "clusters"]:
    print("other" if state == "fresh" else "other\\nagent-sbx")
elif tool == "kind" and args[:2] == ["load", "docker-image"]:
    print("Image: \\"%s\\" with ID \\"sha256:1\\" found to be already present on all nodes." % args[2]
          if state == "existing" else "loaded")
elif tool == "kubectl" and "get" in args:
    if state == "fresh":
        sys.exit(1)
    if "deployments" in args:
        print("registry.k8s.io/agent-sandbox/agent-sandbox-controller:v0.5.6", end="")
"""


@pytest.fixture
def tools(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "fake"
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(0o755)
    for name in ("kind", "kubectl", "docker"):
        (bindir / name).symlink_to(fake)
    log = tmp_path / "calls.jsonl"

    def run(script: Path, *args: str, state: str = "fresh", **env: str) -> tuple[subprocess.CompletedProcess, list]:
        log.write_text("")
        e = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_LOG": str(log), "FAKE_STATE": state,
             **env}
        r = subprocess.run(["bash", str(script), *args], env=e, capture_output=True, text=True, timeout=60)
        return r, [json.loads(line) for line in log.read_text().splitlines()]

    return run


def commands(out: str) -> list[str]:
    return [line[2:] for line in out.splitlines() if line.startswith("+ ")]


def read_only(calls: list[list[str]]) -> bool:
    return all(c[:3] == ["kind", "get", "clusters"] or (c[0] == "kubectl" and "get" in c) for c in calls)


def test_shellcheck_is_clean():
    need(shutil.which("shellcheck") is not None, "shellcheck (Debian package shellcheck; .ci/run installs it)")
    r = subprocess.run(["shellcheck", "-x", str(UP), str(DOWN)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout


def test_dry_run_on_a_fresh_machine_prints_every_step_and_changes_nothing(tools):
    r, calls = tools(UP, "--dry-run")
    assert r.returncode == 0, r.stderr
    ctx = "kubectl --context kind-agent-sbx"
    want = ["kind create cluster --name agent-sbx --wait 120s",
            f"{ctx} apply --server-side --force-conflicts -f {RELEASE}/manifest.yaml",
            f"{ctx} apply --server-side --force-conflicts -f {RELEASE}/extensions.yaml",
            f"{ctx} rollout status -n agent-sandbox-system deployment --timeout=180s"]
    for h in HARNESSES:  # the names a CLI agent with no image of its own gets (harness/image.py)
        image = harness_image(DEFINITIONS[h])
        want += [f"docker build -t {image} -f {ROOT}/harnesses/{h}/Dockerfile {ROOT}/harnesses/{h}",
                 f"kind load docker-image {image} --name agent-sbx"]
    want += [f"docker build -t {LAP_IMAGE} -f {ROOT}/deploy/Dockerfile {ROOT}",
             f"kind load docker-image {LAP_IMAGE} --name agent-sbx",
             f"{ctx} apply --server-side -k {ROOT}/deploy/k8s"]
    assert commands(r.stdout) == want
    assert "dry run, nothing changed" in r.stdout
    assert "did:      created kind cluster agent-sbx" in r.stdout and "existed:" not in r.stdout
    assert "NOT created: Secret lap-tui/lap-tui-secrets" in r.stdout
    assert calls and read_only(calls), calls  # it looked, and did nothing


def test_dry_run_on_an_existing_cluster_says_what_is_there(tools):
    r, calls = tools(UP, "--dry-run", state="existing")
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stdout)
    assert not any(c.startswith("kind create") or "agent-sandbox/releases" in c for c in cmds), cmds
    for line in ("existed:  kind cluster agent-sbx", "existed:  agent-sandbox v0.5.6",
                 "existed:  Secret lap-tui/lap-tui-secrets"):
        assert line in r.stdout
    assert cmds[-1].endswith("apply --server-side -k " + str(ROOT / "deploy/k8s"))
    assert read_only(calls), calls


def test_a_real_run_through_the_tools_keeps_secret_values_off_command_lines(tools):
    db, key = "postgresql://lap:pw-6610@10.0.0.1/lap", "sk-kind-up-key-8812"
    r, calls = tools(UP, LAP_DATABASE_URL=db, LITELLM_API_KEY=key)
    assert r.returncode == 0, r.stderr
    assert ["docker", "info"] in calls and ["kind", "create", "cluster", "--name", "agent-sbx", "--wait", "120s"] in calls
    builds = [c for c in calls if c[:2] == ["docker", "build"]]
    loads = [c for c in calls if c[:2] == ["kind", "load"]]
    assert len(builds) == len(loads) == len(HARNESSES) + 1
    secret = [c for c in calls if c[:4] == ["kubectl", "--context", "kind-agent-sbx", "create"] and "secret" in c]
    assert len(secret) == 1 and any(a.startswith("--from-file=database-url=") for a in secret[0])
    everything = json.dumps(calls) + r.stdout + r.stderr
    assert db not in everything and key not in everything
    assert "did:      created Secret lap-tui/lap-tui-secrets" in r.stdout
    # Again, on what the first run left: the images were already on the nodes.
    r, calls = tools(UP, state="existing")
    assert r.returncode == 0, r.stderr
    assert f"existed:  image {LAP_IMAGE} on the nodes" in r.stdout
    assert not any(c[:2] == ["kind", "create"] for c in calls)


def test_kind_down(tools):
    r, calls = tools(DOWN, "--dry-run", state="existing")
    assert r.returncode == 0 and commands(r.stdout) == ["kind delete cluster --name agent-sbx"]
    assert read_only(calls), calls
    r, calls = tools(DOWN, state="existing")
    assert r.returncode == 0 and ["kind", "delete", "cluster", "--name", "agent-sbx"] in calls
    r, calls = tools(DOWN)
    assert r.returncode == 0 and "nothing to do" in r.stdout and read_only(calls)
