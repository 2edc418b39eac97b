"""Access keys and operator keys, built directly in the database.

A key is ``pck_``/``pco_`` + 256 random bits stored as its SHA-256 digest, exactly as the
service stores it; no ``access_key.created`` event is written (tests of that event create
keys through the API).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from portcullis import secrets_gen
from portcullis.access_keys.models import AccessKey, OperatorKey
from portcullis.db import system_session, tenant_session
from tests.support.factories.accounts import LoggedIn, Member

ACCESS_PREFIX = "pck_"
OPERATOR_PREFIX = "pco_"


class Key(NamedTuple):
    """``key_id, secret = make_access_key(...)`` unpacks it."""

    id: uuid.UUID
    secret: str

    @property
    def prefix(self) -> str:
        return self.secret[:12]

    @property
    def bearer(self) -> dict[str, str]:
        """The ``Authorization`` header that presents the key."""
        return {"Authorization": f"Bearer {self.secret}"}


def make_access_key(owner: Member | LoggedIn, scopes: list[str] | None = None, *,
                    name: str = "test key", expires_in: timedelta = timedelta(days=30),
                    revoked: bool = False) -> Key:
    """A live key of ``owner`` (a member or a member's session) with ``scopes``
    (``jobs:read`` by default)."""
    member = owner.member if isinstance(owner, LoggedIn) else owner
    secret = secrets_gen.new_token(ACCESS_PREFIX)
    now = datetime.now(UTC)
    key = AccessKey(id=uuid.uuid4(), tenant_id=member.tenant_id,
                    created_by_user_id=member.user_id, name=name, prefix=secret[:12],
                    key_hash=secrets_gen.digest(secret),
                    scopes=sorted(set(scopes or ["jobs:read"])), expires_at=now + expires_in,
                    revoked_at=now if revoked else None)
    with tenant_session(member.tenant_id) as db:
        db.add(key)
    return Key(key.id, secret)


def make_operator_key(name: str = "test operator") -> Key:
    secret = secrets_gen.new_token(OPERATOR_PREFIX)
    key = OperatorKey(id=uuid.uuid4(), name=name, prefix=secret[:12],
                      key_hash=secrets_gen.digest(secret))
    with system_session() as db:
        db.add(key)
    return Key(key.id, secret)
