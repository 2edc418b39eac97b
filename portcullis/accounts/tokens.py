"""Session JWTs: HS256 with JWT_SECRET (JWT_SECRET_PREVIOUS still verifies during a
rotation), an explicit algorithm list, every claim required.

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


def _jwt_keys() -> list[str]:
    """JWT_SECRET, then JWT_SECRET_PREVIOUS while a rotation is under way."""
    settings = get_settings()
    return [k for k in (settings.JWT_SECRET.get_secret_value(),
                        settings.JWT_SECRET_PREVIOUS.get_secret_value()) if k]


def verify(token: str) -> SessionClaims | None:
    """The claims of a valid, unexpired token signed with our key (or, during a rotation,
    the previous one); None for anything else."""
    for key in _jwt_keys():
        try:
            payload = jwt.decode(token, key, algorithms=ALGORITHMS,
                                 options={"require": REQUIRED_CLAIMS})
            return SessionClaims(uuid.UUID(payload["sub"]), uuid.UUID(payload["tid"]),
                                 uuid.UUID(payload["sid"]))
        except jwt.InvalidSignatureError:
            continue  # perhaps signed with the other key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None
    return None


def _csrf(key: str, session_id: uuid.UUID) -> str:
    return hmac.new(key.encode(), f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def csrf_token(session_id: uuid.UUID) -> str:
    """The double-submit token, bound to the session so a planted cookie is useless."""
    return _csrf(get_settings().SESSION_SECRET.get_secret_value(), session_id)


def csrf_matches(session_id: uuid.UUID, header: str | None, cookie: str | None) -> bool:
    """Header and cookie both carry the session's token, made with SESSION_SECRET or,
    during a rotation, SESSION_SECRET_PREVIOUS."""
    if not header or not cookie or not hmac.compare_digest(header, cookie):
        return False
    settings = get_settings()
    keys = [k for k in (settings.SESSION_SECRET.get_secret_value(),
                        settings.SESSION_SECRET_PREVIOUS.get_secret_value()) if k]
    return any(hmac.compare_digest(header, _csrf(key, session_id)) for key in keys)
