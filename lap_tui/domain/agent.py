"""Agents: a model, a prompt, a harness and the sandbox its sessions run in."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lap_tui.domain.errors import InvalidInput
from lap_tui.domain.names import validate_label

DEFAULT_TEAM = "default"
HARNESSES = ("builtin", "opencode", "claude-code", "codex")
SANDBOX_BACKENDS = ("auto", "local", "kubernetes")
SCOPES = ("session", "context")

# Kubernetes quantities, so the same settings work for the cluster backend.
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY_FACTORS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                   "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
# Below these a sandbox cannot run a shell and a small tool: `--memory 12` (12 bytes) made every
# command die of the limit, `--cpu 0` or `1m` starved it. Same floors for the CLI and the form.
MIN_MEMORY = "64Mi"
MIN_MEMORY_BYTES = 64 * 2**20
MIN_CPU = "100m"
MIN_CPU_CORES = 0.1
MAX_WARM_POOL = 50  # each waiting sandbox holds a pod and a volume
# How a CLI harness's requests reach the gateway (docs/HARNESSES.md): the relay swaps in the
# gateway's key ("relay"), or a LiteLLM virtual key minted per session with a budget and an
# expiry ("virtual"). Either way the sandbox holds only its relay token.
GATEWAY_KEYS = ("relay", "virtual")
_KEY_TTL = re.compile(r"^[1-9][0-9]{0,5}(s|m|h|d|w|mo)$")  # LiteLLM's `duration`: 30s, 12h, 7d, 1mo


@dataclass(frozen=True)
class SandboxSettings:
    backend: str = "auto"
    image: str = ""
    cpu: str = "1"
    memory: str = "1Gi"
    network: bool = False
    scope: str = "session"
    idle_suspend_seconds: int = 900
    env: tuple[str, ...] = ()
    max_lifetime_seconds: int = 0  # 0: none; on Kubernetes it becomes the Sandbox's shutdownTime
    warm_pool: int = 0  # Kubernetes: this many ready sandboxes kept waiting for new sessions (0: none)
    # Kept with the sandbox settings (how the sandbox reaches the gateway): no migration needed.
    gateway_key: str = "relay"
    key_budget_usd: float = 0.0  # "virtual": the session key's max_budget (0: none)
    key_ttl: str = ""  # "virtual": the session key's duration ("": never expires)

    def validate(self) -> SandboxSettings:
        if self.backend not in SANDBOX_BACKENDS:
            raise InvalidInput(f"sandbox backend {self.backend!r} is unknown",
                               "use one of " + ", ".join(SANDBOX_BACKENDS))
        if self.scope not in SCOPES:
            raise InvalidInput(f"sandbox scope {self.scope!r} is unknown", "use session or context")
        if not _CPU.match(self.cpu):
            raise InvalidInput(f"cpu {self.cpu!r} is not a CPU quantity", "use e.g. 1, 0.5 or 500m")
        if self.cpu_cores < MIN_CPU_CORES:
            raise InvalidInput(f"cpu {self.cpu!r} is too little to run anything",
                               f"use at least {MIN_CPU} (0.1 of a core), e.g. 1 or 500m")
        if not _MEMORY.match(self.memory):
            raise InvalidInput(f"memory {self.memory!r} is not a memory quantity", "use e.g. 512Mi or 2Gi")
        if self.memory_bytes < MIN_MEMORY_BYTES:
            shown = f"{self.memory!r} ({self.memory_bytes} bytes)" if self.memory.isdigit() else repr(self.memory)
            raise InvalidInput(f"memory {shown} is too little to run a shell",
                               f"use at least {MIN_MEMORY}, e.g. 512Mi or 2Gi (a bare number means bytes)")
        if self.idle_suspend_seconds < 0:
            raise InvalidInput("idle suspend time is negative", "use 0 to never suspend, or seconds")
        if self.max_lifetime_seconds < 0:
            raise InvalidInput("maximum lifetime is negative", "use 0 for none, or seconds")
        if not 0 <= self.warm_pool <= MAX_WARM_POOL:
            raise InvalidInput(f"warm pool size {self.warm_pool} is out of range",
                               f"use 0 (no pool) to {MAX_WARM_POOL}")
        if self.gateway_key not in GATEWAY_KEYS:
            raise InvalidInput(f"gateway key {self.gateway_key!r} is unknown",
                               "use relay (the relay swaps in the gateway's key) or virtual (a LiteLLM "
                               "virtual key per session)")
        budget = self.key_budget_usd
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 <= budget < 1e9:
            raise InvalidInput(f"key budget {budget!r} is not an amount of US dollars",
                               "use e.g. 5 or 0.5 (0: no budget)")
        if self.key_ttl and not _KEY_TTL.match(self.key_ttl):
            raise InvalidInput(f"key TTL {self.key_ttl!r} is not a duration",
                               "use a number and s, m, h, d, w or mo, e.g. 12h or 7d (empty: no expiry)")
        for name in self.env:
            if not _ENV_NAME.match(name):
                raise InvalidInput(f"env var name {name!r} is invalid",
                                   "use letters, digits and '_', not starting with a digit")
        return self

    @property
    def cpu_cores(self) -> float:
        return int(self.cpu[:-1]) / 1000 if self.cpu.endswith("m") else float(self.cpu)

    @property
    def memory_bytes(self) -> int:
        m = re.match(r"^([0-9]+)([A-Za-z]*)$", self.memory)
        assert m, self.memory
        return int(m.group(1)) * _MEMORY_FACTORS[m.group(2)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["env"] = list(self.env)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "env" in known:
            known["env"] = tuple(known["env"])
        return cls(**known)


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    team: str
    model: str
    system_prompt: str = ""
    harness: str = "builtin"
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    created_at: str = ""
    updated_at: str = ""

    def validate(self) -> Agent:
        validate_label("agent", self.name)
        validate_label("team", self.team)
        if not self.model.strip():
            raise InvalidInput("model is empty", "pass --model, e.g. --model gpt-4o-mini")
        if self.harness not in HARNESSES:  # else a user's own definition: its name is a label
            validate_label("harness", self.harness)
        self.sandbox.validate()
        return self

    def with_changes(self, **changes: Any) -> Agent:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "team": self.team, "model": self.model,
            "system_prompt": self.system_prompt, "harness": self.harness,
            "sandbox": self.sandbox.to_dict(),
            "created_at": self.created_at, "updated_at": self.updated_at,
        }
