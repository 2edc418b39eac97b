"""The default limit's moving window (app/rate_limits.py), against the real Redis and in
its in-memory fallback: at most N hits in any window, refused hits do not count, every
limit of a list must have room, and the numbers the RateLimit-* headers show."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import update

from app.rate_limits import DefaultLimit, parse
from config import get_settings
from portcullis.accounts.models import Role, UserSession
from portcullis.db import tenant_session
from tests.support.factories import make_member, make_session, make_tenant
from tests.support.web import app_with, fresh_ip, make_client

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


def test_a_hit_sent_ahead_counts_like_one_and_a_refund_takes_it_back(
        limit: DefaultLimit) -> None:
    items, who = parse("3/minute"), _identity()
    assert limit.hit(who, items).remaining == 2
    pending = limit.start(who, items)
    assert pending is not None
    assert limit.hit(_identity(), items).allowed  # the thread's socket is busy: no mix-up
    outcome = pending.outcome()
    assert outcome.allowed and outcome.remaining == 1
    pending.refund()
    assert limit.hit(who, items).remaining == 1  # the refunded hit left the window
    assert limit.hit(who, items).remaining == 0
    refused = limit.start(who, items)
    assert refused is not None and not refused.outcome().allowed
    refused.refund()  # nothing was recorded for it: nothing to take back
    assert not limit.hit(who, items).allowed


def test_without_redis_nothing_is_sent_ahead() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limit = DefaultLimit(f"redis://127.0.0.1:{port}/0")
    assert limit.start(_identity(), parse("3/minute")) is None
    assert limit.hit(_identity(), parse("3/minute")).allowed  # in memory


@pytest.fixture
def three_a_minute() -> Iterator[Flask]:
    """An app built with RATE_LIMIT_DEFAULT=3/minute; the settings are restored."""
    with app_with(RATE_LIMIT_DEFAULT="3/minute") as app:
        yield app


def test_a_dead_sessions_requests_count_against_the_address_not_the_user(
        three_a_minute: Flask) -> None:
    """A session's count is sent to Redis while its row is checked; when the row says the
    session is over, that count is taken back and the address pays, as before."""
    member = make_member(make_tenant(), Role.viewonly)
    live, dead = make_session(member), make_session(member)
    with tenant_session(member.tenant_id) as db:
        db.execute(update(UserSession).where(UserSession.id == dead.session_id)
                   .values(revoked_at=datetime.now(UTC)))
    ip = fresh_ip()
    for remaining in ("2", "1", "0"):
        answer = make_client(three_a_minute, dead, ip=ip).get("/api/v1/auth/me")
        assert answer.status_code == 401
        assert answer.headers["RateLimit-Remaining"] == remaining  # the address's budget
    assert make_client(three_a_minute, dead, ip=ip).get("/api/v1/auth/me").status_code == 429
    first = make_client(three_a_minute, live, ip=ip).get("/api/v1/auth/me")
    assert first.status_code == 200 and first.headers["RateLimit-Remaining"] == "2"


def test_counts_sent_ahead_are_each_counted_once_and_never_on_exempt_routes(
        three_a_minute: Flask) -> None:
    """Once a route is known to count per address, its count is sent before Flask builds
    the request; each request still counts exactly once, a credential's request counts
    against the credential, and exempt or unknown paths are never counted."""
    ip = fresh_ip()
    for _ in range(3):  # exempt: never counted, however often
        assert make_client(three_a_minute, ip=ip).get("/healthz").status_code == 200
    assert make_client(three_a_minute, ip=ip).get("/nowhere").status_code == 404
    remaining = [make_client(three_a_minute, ip=ip).get("/api/v1/auth/me")
                 .headers["RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]  # anonymous: the address's budget, one each
    assert make_client(three_a_minute, ip=ip).get("/api/v1/auth/me").status_code == 429
    member = make_session(make_member(make_tenant(), Role.viewonly))
    answer = make_client(three_a_minute, member, ip=ip).get("/api/v1/auth/me")
    assert answer.status_code == 200 and answer.headers["RateLimit-Remaining"] == "2"


def test_a_keys_count_sent_ahead_is_taken_back_once_the_key_is_revoked(
        three_a_minute: Flask) -> None:
    """A key's later requests send their count while the key is checked; once the key is
    revoked, its requests count against the address and the key's budget is untouched."""
    from portcullis.access_keys.models import AccessKey
    from tests.support.factories import make_access_key

    admin = make_member(make_tenant(), Role.admin)
    key = make_access_key(admin, ["buckets:read"])
    ip = fresh_ip()
    seen = [make_client(three_a_minute, ip=ip).get("/api/v1/buckets", headers=key.bearer)
            for _ in range(2)]
    assert [a.status_code for a in seen] == [200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in seen] == ["2", "1"]
    with tenant_session(admin.tenant_id) as db:
        db.execute(update(AccessKey).where(AccessKey.id == key.id)
                   .values(revoked_at=datetime.now(UTC)))
    refused = make_client(three_a_minute, ip=ip).get("/api/v1/buckets", headers=key.bearer)
    assert refused.status_code == 401 and refused.headers["RateLimit-Remaining"] == "2"
    with tenant_session(admin.tenant_id) as db:  # back in use: its budget as it was
        db.execute(update(AccessKey).where(AccessKey.id == key.id).values(revoked_at=None))
    again = make_client(three_a_minute, ip=fresh_ip()).get("/api/v1/buckets",
                                                          headers=key.bearer)
    assert again.status_code == 200 and again.headers["RateLimit-Remaining"] == "0"
