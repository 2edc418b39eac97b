"""What the per-request identity checks write: a session's idle clock is refreshed at most
once a minute and never for a dead session; a key's use (time, address) is recorded at
once from a new address and otherwise at most once a minute. Revocation and suspension
are read on every request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from portcullis.access_keys import service as access_keys
from portcullis.access_keys.models import AccessKey
from portcullis.accounts.identity import (
    TOUCH_EVERY,
    Principal,
    identity_from_access_key,
    identity_from_session,
)
from portcullis.accounts.models import Membership, MemberStatus, Role, UserSession
from portcullis.accounts.tokens import verify
from portcullis.callers import Caller, Origin
from portcullis.db import tenant_session
from tests.support.factories import LoggedIn, make_member, make_session, make_tenant

pytestmark = pytest.mark.usefixtures("stack")

ORIGIN = Origin("198.51.100.7", "tests")


def _session(who: LoggedIn, **values: object) -> UserSession:
    with tenant_session(who.member.tenant_id) as db:
        if values:
            db.execute(update(UserSession).where(UserSession.id == who.session_id)
                       .values(**values))
        return db.scalars(select(UserSession).where(UserSession.id == who.session_id)).one()


def _check(who: LoggedIn) -> Principal | None:
    claims = verify(who.cookie)
    assert claims is not None
    return identity_from_session(claims, ORIGIN)


def test_the_idle_clock_is_refreshed_once_a_minute() -> None:
    who = make_session(make_member(make_tenant(), Role.viewonly))
    recent = datetime.now(UTC) - timedelta(seconds=10)
    _session(who, last_seen_at=recent)
    assert _check(who) is not None
    assert _session(who).last_seen_at == recent  # seen 10 s ago: not rewritten
    stale = datetime.now(UTC) - TOUCH_EVERY - timedelta(seconds=5)
    _session(who, last_seen_at=stale)
    before = datetime.now(UTC)
    assert _check(who) is not None
    assert _session(who).last_seen_at >= before - timedelta(seconds=1)


@pytest.mark.parametrize("dead", ["idle", "revoked", "expired", "suspended"])
def test_a_dead_session_is_no_identity_and_is_not_revived(dead: str) -> None:
    who = make_session(make_member(make_tenant(), Role.viewonly))
    now = datetime.now(UTC)
    idle = now - timedelta(minutes=30, seconds=5)
    values = {"idle": {"last_seen_at": idle},
              "revoked": {"revoked_at": now, "last_seen_at": now - timedelta(minutes=5)},
              "expired": {"expires_at": now - timedelta(seconds=1),
                          "last_seen_at": now - timedelta(minutes=5)},
              "suspended": {"last_seen_at": now - timedelta(minutes=5)}}[dead]
    seen = _session(who, **values).last_seen_at
    if dead == "suspended":
        with tenant_session(who.member.tenant_id) as db:
            db.execute(update(Membership).where(Membership.id == who.member.membership_id)
                       .values(status=MemberStatus.suspended.value))
    assert _check(who) is None
    assert _session(who).last_seen_at == seen


def _key(member_role: Role = Role.admin) -> tuple[str, AccessKey]:
    member = make_member(make_tenant(), member_role)
    new = access_keys.create(Caller.user(member.tenant_id, member.user_id, member_role),
                             "k", ["buckets:read"], 30)
    return new.secret, new.key


def _key_row(key: AccessKey) -> AccessKey:
    with tenant_session(key.tenant_id) as db:
        return db.scalars(select(AccessKey).where(AccessKey.id == key.id)).one()


def test_a_key_use_is_recorded_at_once_from_a_new_address_else_once_a_minute() -> None:
    secret, key = _key()
    first = identity_from_access_key(secret, ORIGIN)
    assert first is not None and first.caller.scopes == frozenset({"buckets:read"})
    row = _key_row(key)
    assert row.last_used_ip == ORIGIN.ip and row.last_used_at is not None
    used_at = row.last_used_at
    assert identity_from_access_key(secret, ORIGIN) is not None
    assert _key_row(key).last_used_at == used_at  # same address within a minute
    other = Origin("203.0.113.9", "tests")
    assert identity_from_access_key(secret, other) is not None
    assert _key_row(key).last_used_ip == other.ip  # a new address: recorded at once
    stale = datetime.now(UTC) - TOUCH_EVERY - timedelta(seconds=5)
    with tenant_session(key.tenant_id) as db:
        db.execute(update(AccessKey).where(AccessKey.id == key.id)
                   .values(last_used_at=stale))
    assert identity_from_access_key(secret, other) is not None
    assert _key_row(key).last_used_at > stale


def test_revocation_and_the_creators_suspension_count_on_the_next_request() -> None:
    secret, key = _key()
    assert identity_from_access_key(secret, ORIGIN) is not None
    with tenant_session(key.tenant_id) as db:
        db.execute(update(Membership).where(
            Membership.user_id == key.created_by_user_id)
            .values(status=MemberStatus.suspended.value))
    assert identity_from_access_key(secret, ORIGIN) is None
    secret, key = _key()
    assert identity_from_access_key(secret, ORIGIN) is not None
    with tenant_session(key.tenant_id) as db:
        db.execute(update(AccessKey).where(AccessKey.id == key.id)
                   .values(revoked_at=datetime.now(UTC)))
    assert identity_from_access_key(secret, ORIGIN) is None
    assert identity_from_access_key("pck_" + "x" * 43, ORIGIN) is None
