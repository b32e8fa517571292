"""deploy/Dockerfile without Docker (it cannot run here): its build stage, given exactly the
files it COPYs, builds a complete lap-tui, and the image agrees with the Deployment that runs
it (user id, entrypoint and command, health port)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    return [(m.group(1).upper(), m.group(2).strip()) for m in
            re.finditer(r"^(\w+)\s+(.*?)(?<!\\)$", DOCKERFILE.read_text().replace("\\\n", " "), re.M)
            if not m.group(0).startswith("#")]


def test_the_build_stage_copies_everything_the_install_needs(tmp_path: Path):
    ctx = tmp_path / "src"
    ctx.mkdir()
    for op, arg in instructions():
        if op == "COPY" and not arg.startswith("--from"):
            *sources, _dest = arg.split()
            for s in sources:
                src = ROOT / s
                if src.is_dir():
                    shutil.copytree(src, ctx / s, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy2(src, ctx / s)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ctx)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("lap_tui-*.whl")
    z = zipfile.ZipFile(wheel)
    names = set(z.namelist())
    assert any(n.startswith("lap_tui/store/migrations/") and n.endswith(".sql") for n in names)
    harnesses = {p.parent.name for p in (ROOT / "harnesses").glob("*/harness.toml")}
    assert {h for h in harnesses if any(f"/data/share/lap-tui/harnesses/{h}/harness.toml" in n for n in names)} \
        == harnesses
    assert any("/data/share/lap-tui/themes/" in n for n in names)
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lap-tui = lap_tui.cli.main:main" in z.read(ep).decode()


def test_the_image_agrees_with_the_deployment():
    ins = instructions()
    dep = yaml.safe_load((ROOT / "deploy/k8s/deployment.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    final = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM"):]
    user = next(arg for op, arg in final if op == "USER")
    assert user.split(":")[0] == str(pod["securityContext"]["runAsUser"])
    assert json.loads(next(arg for op, arg in final if op == "ENTRYPOINT")) == ["lap-tui"]
    cmd = json.loads(next(arg for op, arg in final if op == "CMD"))
    assert cmd[0] == c["args"][0] == "worker"
    port = cmd[cmd.index("--health-port") + 1]
    assert next(arg for op, arg in final if op == "EXPOSE") == port == str(c["ports"][0]["containerPort"])
    # State and caches go under /tmp, the Deployment's writable emptyDir (the root is read-only).
    env = " ".join(arg for op, arg in final if op == "ENV")
    assert all(f"{v}=/tmp/" in env for v in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"))
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
