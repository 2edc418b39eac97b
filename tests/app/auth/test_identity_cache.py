"""The identity cache (portcullis/accounts/identity_cache.py) through the front door: a
credential checked once is served from memory, and every change that could alter the
principal is seen by the very next request, in any process, whatever wrote it; what a lost
epoch bump, a Redis that lost its data and a Redis that is down leave behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError

from portcullis.access_keys.models import AccessKey
from portcullis.accounts import identity, identity_cache, sessions
from portcullis.accounts.models import Membership, MemberStatus, Role, User, UserSession
from portcullis.alerts.models import Alert
from portcullis.db import system_session, tenant_session
from portcullis.tenants.models import Tenant, TenantStatus
from tests.support.factories import make_access_key, make_member, make_session, make_tenant
from tests.support.factories.accounts import LoggedIn
from tests.support.web import fresh_ip, make_client, problem_code

pytestmark = pytest.mark.usefixtures("stack")

ME = "/api/v1/auth/me"
BUCKETS = "/api/v1/buckets"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the identity checks that went to the database."""
    count = [0]
    real = identity.one_round_trip

    def counted(steps: Any) -> Any:
        count[0] += 1
        return real(steps)

    monkeypatch.setattr(identity, "one_round_trip", counted)
    return count


@pytest.fixture
def lost_bumps(monkeypatch: pytest.MonkeyPatch) -> list[set[Any]]:
    """Every epoch bump is lost (as when the writer cannot reach Redis)."""
    lost: list[set[Any]] = []
    monkeypatch.setattr(identity_cache, "bump", lambda tenants: lost.append(set(tenants)))
    return lost


def _member_session(role: Role = Role.viewonly) -> LoggedIn:
    return make_session(make_member(make_tenant(), role))


def _warm(app: Flask, who: LoggedIn, ip: str) -> Any:
    """A client whose session is now served from memory (so that a test of what must
    invalidate it cannot pass by never having used the cache)."""
    client = make_client(app, who, ip=ip)
    for _ in range(2):
        response = client.get(ME)
        assert response.status_code == 200
    entry = identity_cache.principals.get(("session", who.session_id))
    assert entry is not None and entry.stamp is not None
    return client


def test_a_live_session_is_read_once_then_served_from_memory(app: Flask,
                                                             reads: list[int]) -> None:
    who, ip = _member_session(), fresh_ip()
    client = make_client(app, who, ip=ip)
    bodies = [client.get(ME).get_json() for _ in range(4)]
    assert reads[0] == 1
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["user"]["id"] == str(who.member.user_id)


def test_a_key_is_read_until_its_tenant_is_known_then_served_from_memory(
        app: Flask, reads: list[int]) -> None:
    admin = make_member(make_tenant(), Role.admin)
    key = make_access_key(admin, ["buckets:read"])
    client = make_client(app, ip=fresh_ip())
    headers = {"Authorization": f"Bearer {key.secret}"}
    for _ in range(5):
        assert client.get(BUCKETS, headers=headers).status_code == 200
    # first use (recorded), then read under no stamp, then under its tenant's, then memory
    assert reads[0] <= 3
    before = reads[0]
    for _ in range(3):
        assert client.get(BUCKETS, headers=headers).status_code == 200
    assert reads[0] == before


def _revoke_session(who: LoggedIn) -> None:
    with tenant_session(who.member.tenant_id) as db:
        sessions.revoke(db, who.session_id)


def _suspend_member(who: LoggedIn) -> None:
    with tenant_session(who.member.tenant_id) as db:  # the unit of work's flush
        member = db.scalars(select(Membership).where(
            Membership.id == who.member.membership_id)).one()
        member.status = MemberStatus.suspended.value


def _raw_sql_revoke(who: LoggedIn) -> None:
    with tenant_session(who.member.tenant_id) as db:
        db.execute(text("UPDATE user_sessions SET revoked_at = now() WHERE id = :id"),
                   {"id": who.session_id})


def _expect_401(response: Any) -> None:
    assert response.status_code == 401 and problem_code(response) == "not_authenticated"


def _promote(who: LoggedIn) -> None:
    with tenant_session(who.member.tenant_id) as db:  # a bulk UPDATE
        db.execute(update(Membership).where(Membership.id == who.member.membership_id)
                   .values(role=Role.staff.value))


def _expect_restricted(response: Any) -> None:
    # staff needs MFA: the session is now restricted to enrolling it
    assert response.status_code == 200
    assert response.get_json()["role"] == "staff"
    assert response.get_json()["session"] == "mfa_enrollment"


def _suspend_tenant(who: LoggedIn) -> None:
    with system_session() as db:  # only the system role may change a tenant's status
        db.get_one(Tenant, who.member.tenant_id).status = TenantStatus.suspended.value


def _expect_suspended(response: Any) -> None:
    assert response.status_code == 200
    assert response.get_json()["tenant"]["status"] == "suspended"


def _rename(who: LoggedIn) -> None:
    with tenant_session(who.member.tenant_id) as db:
        db.get_one(User, who.member.user_id).name = "Renamed"


def _expect_renamed(response: Any) -> None:
    assert response.status_code == 200 and response.get_json()["user"]["name"] == "Renamed"


CHANGES: dict[str, tuple[Callable[[LoggedIn], None], Callable[[Any], None]]] = {
    "session revoked": (_revoke_session, _expect_401),
    "member suspended": (_suspend_member, _expect_401),
    "session revoked by raw SQL": (_raw_sql_revoke, _expect_401),
    "role changed": (_promote, _expect_restricted),
    "tenant suspended": (_suspend_tenant, _expect_suspended),
    "user renamed": (_rename, _expect_renamed),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_change_is_seen_by_the_next_request(app: Flask, change: str) -> None:
    write, expect = CHANGES[change]
    who, ip = _member_session(), fresh_ip()
    client = _warm(app, who, ip)
    write(who)
    expect(client.get(ME))


def test_a_revocation_in_another_process_is_seen_by_the_next_request(app: Flask) -> None:
    """Only Redis carries the change: the writer is another Python process."""
    who, ip = _member_session(), fresh_ip()
    client = _warm(app, who, ip)
    script = ("import uuid, portcullis.models\n"
              "from portcullis.db import tenant_session\n"
              "from portcullis.accounts import sessions\n"
              f"with tenant_session(uuid.UUID('{who.member.tenant_id}')) as db:\n"
              f"    sessions.revoke(db, uuid.UUID('{who.session_id}'))\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, env=dict(os.environ),
                   timeout=60)
    _expect_401(client.get(ME))


def test_a_key_revoked_or_its_creator_suspended_is_seen_by_the_next_request(
        app: Flask) -> None:
    admin = make_member(make_tenant(), Role.admin)
    spare = make_member(admin.tenant_id, Role.admin)  # so the first may be suspended
    revoked, orphaned = (make_access_key(admin, ["buckets:read"]),
                         make_access_key(spare, ["buckets:read"]))
    client = make_client(app, ip=fresh_ip())
    for key in (revoked, orphaned):
        for _ in range(4):
            assert client.get(BUCKETS, headers={
                "Authorization": f"Bearer {key.secret}"}).status_code == 200
    with tenant_session(admin.tenant_id) as db:
        db.execute(update(AccessKey).where(AccessKey.id == revoked.id)
                   .values(revoked_at=datetime.now(UTC)))
        db.get_one(Membership, spare.membership_id).status = MemberStatus.suspended.value
    for key in (revoked, orphaned):
        _expect_401(client.get(BUCKETS, headers={"Authorization": f"Bearer {key.secret}"}))


def test_a_lost_bump_lives_no_longer_than_max_age(app: Flask, lost_bumps: list[set[Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity_cache, "MAX_AGE", 2.0)
    who, ip = _member_session(), fresh_ip()
    read_at = time.monotonic()
    client = _warm(app, who, ip)
    _revoke_session(who)
    assert [b for b in lost_bumps if b] == [{who.member.tenant_id}]
    stale = client.get(ME)  # the documented bound: still served from memory, briefly
    if time.monotonic() - read_at < 1.5:
        assert stale.status_code == 200
    time.sleep(max(0.0, read_at + 2.1 - time.monotonic()))
    _expect_401(client.get(ME))


def test_redis_that_lost_its_data_matches_no_stamp(app: Flask, stack: Any,
                                                   lost_bumps: list[set[Any]]) -> None:
    who, ip = _member_session(), fresh_ip()
    client = _warm(app, who, ip)
    _revoke_session(who)  # its bump is lost...
    stack["redis"].flushall()  # ...and Redis loses everything: the epochs come back new
    _expect_401(client.get(ME))


def test_another_address_takes_the_database_path_and_raises_the_alert(
        app: Flask, reads: list[int]) -> None:
    who, home = _member_session(), fresh_ip()
    with tenant_session(who.member.tenant_id) as db:
        db.execute(update(UserSession).where(UserSession.id == who.session_id)
                   .values(ip=home))
    _warm(app, who, home)
    before = reads[0]
    assert make_client(app, who, ip=fresh_ip()).get(ME).status_code == 200
    assert reads[0] == before + 1
    with tenant_session(who.member.tenant_id) as db:
        alerts = db.scalars(select(Alert).where(Alert.tenant_id == who.member.tenant_id)).all()
    assert any(a.type == "alert.session_ip_change" for a in alerts)


def test_a_forged_session_id_in_a_cached_tenant_is_still_refused(app: Flask) -> None:
    """The cache is keyed by the verified token's session id and checks its user."""
    who, ip = _member_session(), fresh_ip()
    _warm(app, who, ip)
    other = make_member(who.member.tenant_id, Role.viewonly)
    from portcullis.accounts.tokens import SessionClaims, issue

    token = issue(SessionClaims(other.user_id, other.tenant_id, who.session_id),
                  datetime.fromtimestamp(time.time() + 600, UTC))
    client = make_client(app, ip=ip)
    client.set_cookie("portcullis_session", token, domain="localhost")
    _expect_401(client.get(ME))


# ------------------------------------------------ writes the listener must not miss (review)

def test_a_failed_savepoint_keeps_what_was_noted_before_it(app: Flask) -> None:
    who, ip = _member_session(), fresh_ip()
    client = _warm(app, who, ip)
    with tenant_session(who.member.tenant_id) as db:
        sessions.revoke(db, who.session_id)
        with contextlib.suppress(DBAPIError), db.begin_nested():
            db.execute(text("SELECT 1/0"))
    _expect_401(client.get(ME))


def test_a_released_savepoint_bumps_only_after_the_real_commit(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bumped at RELEASE SAVEPOINT, a concurrent request would read the new epoch and the
    old row, and keep the revoked session under the current epoch."""
    who, ip = _member_session(), fresh_ip()
    client = _warm(app, who, ip)
    real, seen = identity_cache.bump, []

    def bump_then_read(tenants: set[Any]) -> None:
        real(tenants)
        if tenants:  # a request right after the bump
            seen.append(client.get(ME).status_code)

    monkeypatch.setattr(identity_cache, "bump", bump_then_read)
    with tenant_session(who.member.tenant_id) as db, db.begin_nested():
        sessions.revoke(db, who.session_id)
    assert seen == [401]
    _expect_401(client.get(ME))


def test_an_upsert_and_a_write_inside_a_cte_are_writes(app: Flask) -> None:
    upserted, in_cte = _member_session(), _member_session()
    upserts, ctes = _warm(app, upserted, fresh_ip()), _warm(app, in_cte, fresh_ip())
    m = upserted.member
    with tenant_session(m.tenant_id) as db:
        db.execute(insert(Membership).values(id=uuid.uuid4(), tenant_id=m.tenant_id,
                                             user_id=m.user_id, role="admin")
                   .on_conflict_do_update(index_elements=["user_id"],
                                          set_={"role": "admin"}))
    assert upserts.get(ME).get_json()["role"] == "admin"
    revoked = (update(UserSession).where(UserSession.id == in_cte.session_id)
               .values(revoked_at=datetime.now(UTC)).returning(UserSession.id).cte("r"))
    with tenant_session(in_cte.member.tenant_id) as db:
        assert db.execute(select(revoked.c.id)).all()
    _expect_401(ctes.get(ME))


@pytest.mark.parametrize("sql", [
    'UPDATE "user_sessions" SET revoked_at = now() WHERE id = :id',
    "UPDATE ONLY user_sessions SET revoked_at = now() WHERE id = :id",
    "WITH r AS (UPDATE user_sessions SET revoked_at = now() WHERE id = :id RETURNING id) "
    "SELECT id FROM r",
])
def test_raw_sql_that_names_an_identity_table_is_a_write(app: Flask, sql: str) -> None:
    who, ip = _member_session(), fresh_ip()
    client = _warm(app, who, ip)
    with tenant_session(who.member.tenant_id) as db:
        db.execute(text(sql), {"id": who.session_id})
    _expect_401(client.get(ME))


def test_a_keys_last_use_alone_bumps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bookkeeping that no principal depends on (a key's cached entry runs out on that
    clock by itself) leaves the tenant's other cached principals alone."""
    admin = make_member(make_tenant(), Role.admin)
    key = make_access_key(admin, ["buckets:read"])
    bumped: list[set[Any]] = []
    monkeypatch.setattr(identity_cache, "bump", lambda t: bumped.append(set(t)))
    with tenant_session(admin.tenant_id) as db:
        db.execute(update(AccessKey).where(AccessKey.id == key.id)
                   .values(last_used_at=datetime.now(UTC), last_used_ip="198.18.0.9"))
    assert not any(bumped)
    with tenant_session(admin.tenant_id) as db:
        db.execute(update(AccessKey).where(AccessKey.id == key.id)
                   .values(last_used_ip="198.18.0.9", revoked_at=datetime.now(UTC)))
    assert [b for b in bumped if b] == [{admin.tenant_id}]


# Last in this file: the default limit stays on its in-memory fallback for a few seconds
# after Redis comes back, and nothing is served from memory meanwhile.
def test_without_redis_every_request_reads_the_database(app: Flask, stack: Any,
                                                        reads: list[int]) -> None:
    who, ip = _member_session(), fresh_ip()
    client = _warm(app, who, ip)
    stack["redis"].stop()
    try:
        _revoke_session(who)  # the bump cannot reach Redis
        before = reads[0]
        _expect_401(client.get(ME))
        assert reads[0] == before + 1
    finally:
        stack["redis"].start()
