"""The default limit's moving window (app/rate_limits.py), against the real Redis and in
its in-memory fallback: at most N hits in any window, refused hits do not count, every
limit of a list must have room, and the numbers the RateLimit-* headers show."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from app.rate_limits import DefaultLimit, parse
from config import get_settings

pytestmark = pytest.mark.usefixtures("stack")


def _identity() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def limit() -> DefaultLimit:
    return DefaultLimit(get_settings().REDIS_URL)


def test_n_hits_then_refused_with_the_headers_numbers(limit: DefaultLimit) -> None:
    items, who = parse("3/minute"), _identity()
    outcomes = [limit.hit(who, items) for _ in range(5)]
    assert [o.allowed for o in outcomes] == [True, True, True, False, False]
    assert [o.remaining for o in outcomes] == [2, 1, 0, 0, 0]
    assert {o.limit for o in outcomes} == {3}
    now = time.time()
    for o in outcomes:
        assert now < o.reset_at <= now + 62 and 0 <= o.retry_after <= 61
    assert limit.hit(_identity(), items).allowed  # another identity has its own budget


def test_the_window_moves_and_refused_hits_do_not_count(limit: DefaultLimit) -> None:
    items, who = parse("2 per 2 seconds"), _identity()
    assert limit.hit(who, items).allowed
    time.sleep(1.0)
    assert limit.hit(who, items).allowed
    for _ in range(5):  # refused: they must not push the window on
        assert not limit.hit(who, items).allowed
    time.sleep(1.2)  # the first hit has left the window, the second has not
    assert limit.hit(who, items).allowed
    assert not limit.hit(who, items).allowed
    time.sleep(2.1)
    assert limit.hit(who, items).allowed


def test_every_limit_of_a_list_needs_room(limit: DefaultLimit) -> None:
    items, who = parse("2/second;3/minute"), _identity()
    assert [i.amount for i in items] == [2, 3]  # shortest window first
    first = limit.hit(who, items)
    assert first.allowed and first.limit == 2 and first.remaining == 1
    assert limit.hit(who, items).allowed
    refused = limit.hit(who, items)
    assert not refused.allowed and refused.limit == 2 and refused.remaining == 0
    time.sleep(1.1)
    assert limit.hit(who, items).allowed  # the per-second window has room again
    time.sleep(1.1)
    blocked = limit.hit(who, items)  # but the minute has had its three
    assert not blocked.allowed and blocked.limit == 3 and blocked.remaining == 0


def test_without_redis_the_same_limit_holds_in_memory() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limit = DefaultLimit(f"redis://127.0.0.1:{port}/0")
    items, who = parse("3/minute"), _identity()
    assert [limit.hit(who, items).allowed for _ in range(5)] == [True, True, True, False,
                                                                 False]
    assert limit.hit(_identity(), items).allowed
