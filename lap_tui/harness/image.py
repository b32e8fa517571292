"""A CLI harness's cluster image: what a pod of an agent on that harness runs when the agent names
no image of its own.

`<harness_image_prefix>lap-tui-harness-<name>:<version>`, from the definition (its name and its
pinned npm version): the image `harnesses/<name>/Dockerfile` builds. bin/kind-up.sh builds and
loads the same names (tests/platform/test_kind_scripts.py holds the two to one rule); a
registry prefix (LAP_HARNESS_IMAGE_PREFIX, e.g. an ECR repository's `<account>.dkr.ecr.<region>.
amazonaws.com/`) says where a real cluster pulls them from.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lap_tui.harness.definition import HarnessDefinition


def harness_image(h: HarnessDefinition, prefix: str = "") -> str:
    prefix = prefix.strip()
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # "registry/team" and "registry/team/" name the same place
    tag = h.version.replace("+", "_") or "dev"  # a tag has no '+'; "dev": nothing pinned (builtin)
    return f"{prefix}lap-tui-harness-{h.name}:{tag}"


def with_harness_image(agent: Any, h: HarnessDefinition, prefix: str = "") -> Any:
    """The agent, its sandbox's image set to the harness's when it names none (a CLI harness).
    Only the Kubernetes backend reads the image; a local sandbox ignores it."""
    if agent.sandbox.image or not h.is_cli:
        return agent
    return replace(agent, sandbox=replace(agent.sandbox, image=harness_image(h, prefix)))
