"""Strip secrets from anything that leaves the process: logs, audit details, errors, Sentry.

One scrubber, used everywhere, so a rule added here protects every outlet at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|authori[sz]ation|cookie"
    r"|otp|totp|recovery|mfa_code|^code$|csrf|tax_id|private|signature|dsn|credential",
    re.IGNORECASE,
)
_SENSITIVE_VALUE = re.compile(
    r"\bpc[ko]_[A-Za-z0-9_-]{16,}"                           # access and operator keys
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"  # JWS / JWT
    r"|\bwhsec_[A-Za-z0-9+/=]{8,}"                           # webhook secrets
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"                      # user:pass in URLs
)
# A share-link token is the whole credential for its file: any "/s/<token>" path is masked,
# whatever its case or percent-encoding ("/S/", "/%73/", "/s%2F", "%252F"...), since the
# server decodes the path before routing while logs print it raw.
_SLASH = r"(?:/|%(?:25)*2f)"
_SHARE_PATH = re.compile(_SLASH + r"(?:s|%(?:25)*(?:73|53))" + _SLASH + r"[^\s?#\"'<>\\]+",
                         re.IGNORECASE)
SHARE_PATH_REDACTED = "/s/<redacted>"
# Credentials in query strings (email links carry ``?token=``): the value of any parameter
# whose (percent-decoded) name says secret, after ``?``, ``&`` or at the start of a bare
# query string (Sentry's ``request.query_string``).
_QUERY_PARAM = re.compile(r"(?<![^?&;])([A-Za-z0-9_.~%+\[\]-]{1,64})=([^&\s\"'#<>]+)")
_SENSITIVE_PARAM = re.compile(r"token|key|code|pass|secret|signature|otp|csrf|credential",
                              re.IGNORECASE)
_extra_secrets: list[str] = []


def register_secrets(values: Iterable[str]) -> None:
    """Configured secrets to mask wherever they show up verbatim."""
    for value in values:
        if value and value not in _extra_secrets:
            _extra_secrets.append(value)


def redact_share_paths(value: str) -> str:
    """``/s/<redacted>`` for every share-link path (and what follows it up to the query)."""
    return _SHARE_PATH.sub(SHARE_PATH_REDACTED, value)


def _mask_param(match: re.Match[str]) -> str:
    name = unquote_plus(match.group(1))
    return f"{match.group(1)}={REDACTED}" if _SENSITIVE_PARAM.search(name) else match.group(0)


def redact_query_params(value: str) -> str:
    """``token=[redacted]`` (and the like) wherever a query string shows a credential."""
    return _QUERY_PARAM.sub(_mask_param, value)


def scrub_text(value: str) -> str:
    value = _SENSITIVE_VALUE.sub(REDACTED, value)
    value = redact_query_params(value)
    value = redact_share_paths(value)
    for secret in _extra_secrets:
        value = value.replace(secret, REDACTED)
    return value


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key))


def scrub(value: Any) -> Any:
    """A copy of ``value`` with sensitive keys' values and secret-looking strings masked."""
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if is_sensitive_key(str(k)) else scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


_EMAIL_SHAPE = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")


def keyed_digest(value: str, length: int = 32) -> str:
    """An HMAC-SHA-256 of ``value`` keyed by ``SESSION_SECRET`` (hex, ``length`` digits): a
    name for something that must not be readable (an address in a Redis key) and, unlike a
    plain hash, cannot be reversed by hashing a list of guesses."""
    import hashlib
    import hmac

    from config import get_settings

    key = get_settings().SESSION_SECRET.get_secret_value().encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:length]


def account_label(typed: str) -> str:
    """What a user typed as their login, safe to record: the address if it looks like one,
    else a keyed digest (a password typed into the email field must never be stored)."""
    value = typed.strip().lower()
    if len(value) <= 254 and _EMAIL_SHAPE.fullmatch(value):
        return value
    return "digest:" + keyed_digest(value, 16)
