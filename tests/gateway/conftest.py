from __future__ import annotations

import random
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

from lap_tui.gateway import GatewayClient, RetryNotice, RetryPolicy, Timeouts
from tests.support.scripted_gateway import ScriptedGateway

KEY = "sk-test-very-secret-key-1234"


@pytest.fixture
def gateway() -> Iterator[ScriptedGateway]:
    with ScriptedGateway(models=["gpt-test", "claude-test"]) as gw:
        yield gw


def fast_policy(max_attempts: int = 4, **kw: Any) -> RetryPolicy:
    """Tiny backoff so retry tests run fast; a seeded rng keeps jitter reproducible."""
    kw.setdefault("base_delay", 0.01)
    kw.setdefault("max_delay", 0.05)
    return RetryPolicy(max_attempts=max_attempts, rng=random.Random(7), **kw)


@pytest.fixture
def notices() -> list[RetryNotice]:
    return []


@pytest.fixture
async def make_client(gateway: ScriptedGateway, notices: list[RetryNotice]) -> AsyncIterator[Callable[..., GatewayClient]]:
    made: list[GatewayClient] = []

    def make(base_url: str | None = None, api_key: str = KEY, **kw: Any) -> GatewayClient:
        kw.setdefault("retry", fast_policy())
        kw.setdefault("timeouts", Timeouts(connect=2, first_byte=10, idle=10))
        kw.setdefault("on_retry", notices.append)
        c = GatewayClient(base_url or gateway.base_url, api_key, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        await c.aclose()


async def collect(agen: AsyncIterator[Any]) -> list[Any]:
    return [ev async for ev in agen]
