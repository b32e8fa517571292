"""Offline: the warm-pool objects lap-tui sends (k8s/warm.py) against the v0.5.6 extension CRD
schemas, both versions, with the strict walk of test_objects.py (a field the schema lacks is an
error, as with fieldValidation=Strict). The real server takes them in tests/k8s/test_warm.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from lap_tui.domain.agent import SandboxSettings
from lap_tui.domain.sandbox import SandboxSpec
from lap_tui.sandbox.k8s import warm
from tests.k8s.test_objects import CRDS, strict_errors

AGENT = "0123456789abcdef0123456789abcdef"


def _schema(plural: str, version: str) -> dict[str, Any]:
    path = CRDS / f"extensions.agents.x-k8s.io_{plural}.yaml"
    if not path.exists():
        pytest.skip(f"no CRD fixtures at {CRDS}")
    crd = yaml.safe_load(path.read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]


def _spec_only(obj: dict[str, Any]) -> dict[str, Any]:
    return {"spec": obj["spec"]}  # metadata is the API server's, not the CRD's


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
def test_template_pool_and_claim_fit_the_schemas(version):
    settings = SandboxSettings(warm_pool=2, cpu="500m", memory="512Mi", env=("TOKEN",))
    tmpl = warm.template_object(AGENT, "team1", settings, namespace="lap-team1", version=version,
                                image="python:3.12-slim", plain_env={"PATH": "/usr/bin"}, storage_class="fast")
    pool = warm.pool_object(AGENT, "team1", 2, namespace="lap-team1", version=version)
    claim = warm.claim_object(SandboxSpec(id="s-0123456789ab", team="team1", settings=settings, agent_id=AGENT,
                                          session_id="0123456789ab" * 2), namespace="lap-team1", version=version)
    for plural, obj in ((warm.TEMPLATES, tmpl), (warm.POOLS, pool), (warm.CLAIMS, claim)):
        assert obj["apiVersion"] == f"{warm.GROUP}/{version}"
        assert strict_errors(_spec_only(obj), _schema(plural, version)) == [], (plural, obj)
    # Named from the agent, a DNS label; the claim refers to the pool (or, v1alpha1, its template).
    assert tmpl["metadata"]["name"] == pool["metadata"]["name"] == warm.pool_name(AGENT) == "lw-" + AGENT[:24]
    ref = claim["spec"].get("warmPoolRef") or claim["spec"].get("sandboxTemplateRef")
    assert ref == {"name": warm.pool_name(AGENT)}
    container = tmpl["spec"]["podTemplate"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "lw-" + AGENT[:24] + "-env", "optional": True}}]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert tmpl["spec"]["podTemplate"]["spec"]["automountServiceAccountToken"] is False
    for obj in (tmpl, pool, claim):
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "lap-tui"
