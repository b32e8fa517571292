"""Retry arithmetic without a network: backoff growth, jitter bounds, Retry-After parsing."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from lap_tui.gateway import RetryPolicy, parse_retry_after
from lap_tui.gateway.retry import is_retryable_status


def test_backoff_grows_exponentially_within_jitter_bounds():
    p = RetryPolicy(base_delay=1.0, multiplier=2.0, max_delay=10.0, rng=random.Random(1))
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        for _ in range(50):
            d = p.backoff(attempt)
            assert full / 2 <= d <= full, (attempt, d)


def test_jitter_spreads_the_delays():
    p = RetryPolicy(base_delay=1.0, rng=random.Random(3))
    assert len({round(p.backoff(3), 6) for _ in range(20)}) > 10


def test_retry_after_wins_over_backoff_and_is_never_shortened():
    p = RetryPolicy(base_delay=0.01, rng=random.Random(5))
    for _ in range(50):
        assert 2.0 <= p.delay(1, 2.0) <= 2.2
    assert p.delay(1, None) <= 0.01


@pytest.mark.parametrize("headers,expected", [
    ({"Retry-After": "2"}, 2.0),
    ({"retry-after": "0.2"}, 0.2),
    ({"Retry-After": " 7 "}, 7.0),
    ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
    ({"Retry-After": "-4"}, 0.0),
    ({}, None),
    ({"Retry-After": "soon"}, None),
    ({"Retry-After": "nan"}, None),
])
def test_parse_retry_after(headers, expected):
    got = parse_retry_after(headers)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_parse_retry_after_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after({"Retry-After": formatdate(now + 30, usegmt=True)}, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after({"Retry-After": formatdate(now - 30, usegmt=True)}, now=now) == 0.0


@pytest.mark.parametrize("status,retry", [(408, True), (409, True), (429, True), (500, True), (503, True),
                                          (599, True), (400, False), (401, False), (403, False), (404, False),
                                          (422, False), (200, False)])
def test_retryable_statuses(status, retry):
    assert is_retryable_status(status) is retry
