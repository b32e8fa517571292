"""A sandbox's environment: clean, holding only what is given to it.

In order, later wins: a small base (PATH, HOME, LANG), every CONTAINER_ENV_X as X, the
sandbox's team's own CONTAINER_ENV_TEAM_<TEAM>__X as X (another team's never), the variables
the agent names (taken from lap-tui's own environment), and the command's own. The gateway's
key never gets in, under any name. Every value handed in this way is a secret: masked
wherever lap-tui shows or writes text (`secret_values`, `named_values`).
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
                extra: Mapping[str, str] | None = None, *, team: str | None = None) -> tuple[dict[str, str], list[str]]:
    """The environment and the names left out (for a log line; values are never returned).
    Without `team` only the operator-wide CONTAINER_ENV_X values get in."""
    env = dict(BASE_ENV)
    env.update(settings.container_env_for(team))
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


def secret_values(settings: Settings, agent_env: Sequence[str] = (), environ: Mapping[str, str] | None = None
                  ) -> list[str]:
    """What must be masked in anything lap-tui shows or writes about a sandbox: every secret the
    settings hold (all teams', the key, the database password) and the values of the variables
    the agent names."""
    return [*settings.redactor.secrets, *named_values(agent_env, environ)]


def named_values(agent_env: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the variables an agent names (`--env NAME`): handed to its sandbox, so
    secrets like the CONTAINER_ENV_* ones."""
    import os

    env = os.environ if environ is None else environ
    return [env[n] for n in agent_env if env.get(n)]
