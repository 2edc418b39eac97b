"""Session JWTs: HS256 with JWT_SECRET, an explicit algorithm list, every claim required.

The token only names a session; the server-side row decides whether it is still alive.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from config import get_settings

ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ["sub", "tid", "sid", "jti", "iat", "exp"]
ABSOLUTE_LIFETIME = timedelta(hours=12)
IDLE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class SessionClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    session_id: uuid.UUID


def issue(claims: SessionClaims, expires_at: datetime) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": str(claims.user_id), "tid": str(claims.tenant_id), "sid": str(claims.session_id),
        "jti": str(uuid.uuid4()), "iat": int(now.timestamp()), "exp": int(expires_at.timestamp()),
    }
    return jwt.encode(payload, get_settings().JWT_SECRET.get_secret_value(), algorithm="HS256")


def verify(token: str) -> SessionClaims | None:
    """The claims of a valid, unexpired token signed with our key; None for anything else."""
    try:
        payload = jwt.decode(
            token, get_settings().JWT_SECRET.get_secret_value(), algorithms=ALGORITHMS,
            options={"require": REQUIRED_CLAIMS},
        )
        return SessionClaims(uuid.UUID(payload["sub"]), uuid.UUID(payload["tid"]),
                             uuid.UUID(payload["sid"]))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None


def csrf_token(session_id: uuid.UUID) -> str:
    """The double-submit token, bound to the session so a planted cookie is useless."""
    key = get_settings().SESSION_SECRET.get_secret_value().encode()
    return hmac.new(key, f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def csrf_matches(session_id: uuid.UUID, header: str | None, cookie: str | None) -> bool:
    expected = csrf_token(session_id)
    return bool(header and cookie and hmac.compare_digest(header, expected)
                and hmac.compare_digest(cookie, expected))
