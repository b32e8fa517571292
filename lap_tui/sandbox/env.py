"""A sandbox's environment: clean, holding only what is given to it.

In order, later wins: a small base (PATH, HOME, LANG), every CONTAINER_ENV_X as X, the
variables the agent names (taken from lap-tui's own environment), and the command's own.
The gateway's key never gets in, under any name.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from lap_tui.config import Settings
from lap_tui.domain.sandbox import WORKSPACE

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": WORKSPACE,
    "LANG": "C.UTF-8",
}
# Names that hold lap-tui's own credentials: never handed to an agent.
NEVER = frozenset({"LITELLM_API_KEY", "LITELLM_MASTER_KEY", "LAP_DATABASE_URL"})


def sandbox_env(settings: Settings, agent_env: Sequence[str], environ: Mapping[str, str],
                extra: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The environment and the names left out (for a log line; values are never returned)."""
    env = dict(BASE_ENV)
    env.update(settings.container_env)
    for name in agent_env:
        if name in environ:
            env[name] = environ[name]
    if extra:
        env.update(extra)
    gateway_key = settings["litellm_api_key"]
    dropped = sorted(k for k, v in env.items() if k in NEVER or (gateway_key and v == gateway_key)
                     or "\0" in k or "=" in k or "\0" in v)
    for k in dropped:
        del env[k]
    return env, dropped


def secret_values(settings: Settings) -> list[str]:
    """What must be masked in anything lap-tui shows or writes about a sandbox."""
    values = list(settings.container_env.values())
    if settings["litellm_api_key"]:
        values.append(settings["litellm_api_key"])
    return values
