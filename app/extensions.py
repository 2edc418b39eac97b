"""Flask extensions, created here and initialised once in the app factory."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flask import Flask, current_app, g, request
from flask_limiter import HeaderNames, Limiter
from flask_login import current_user
from werkzeug.exceptions import TooManyRequests

from app import rate_limits
from app.request_context import RATE_LIMIT
from config import get_settings
from portcullis.accounts.identity_cache import epoch_keys

log = logging.getLogger(__name__)


def _needs_identity() -> bool:
    """Whether the matched route takes a credential (documented and not public)."""
    from app.api.operation import PUBLIC

    view = current_app.view_functions.get(request.endpoint or "")
    op = getattr(view, "__openapi__", None)
    return op is not None and op.auth != PUBLIC


def rate_limit_key() -> str:
    """Per identity (user, key, operator) on routes that take one; per client address when
    anonymous and on public routes whatever the headers, so a ``Bearer`` key (which any admin
    can mint) never buys a fresh budget for signup, login, resets or share links."""
    if _needs_identity():
        caller = current_user._get_current_object()
        if getattr(caller, "is_authenticated", False):
            return str(caller.rate_key)
    return f"ip:{getattr(g, 'client_ip', None) or 'unknown'}"


class _RouteLimiter(Limiter):
    """flask-limiter for the limits of single routes (its decorators: failed logins, MFA
    codes), which it checks inside the decorated view. It limits nothing app-wide, so its
    per-request check before every view would only work out that there is nothing to do;
    the default limit is ``app.rate_limits`` (hooks below). Its after-request and teardown
    hooks run only on requests where a route limit was checked (``_when_route_limited``).
    """

    def _check_request_limit(self, callable_name: str | None = None,
                             in_middleware: bool = True) -> None:
        if in_middleware:
            return
        g.route_limit_checked = True
        super()._check_request_limit(callable_name=callable_name, in_middleware=False)


def _when_route_limited(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def guarded(value: Any) -> Any:
        return hook(value) if g.get("route_limit_checked") else value

    return guarded


limiter = _RouteLimiter(
    rate_limit_key,
    headers_enabled=True,
    header_name_mapping={
        HeaderNames.LIMIT: "RateLimit-Limit",
        HeaderNames.REMAINING: "RateLimit-Remaining",
        HeaderNames.RESET: "RateLimit-Reset",
        HeaderNames.RETRY_AFTER: "Retry-After",
    },
    retry_after="delta-seconds",
    strategy="moving-window",
    key_prefix="portcullis-rl",
    # Route limits degrade to per-process memory while Redis is away; login checks the
    # store itself and fails closed (app/auth/views.py).
    swallow_errors=True,
    in_memory_fallback_enabled=True,
)

_EXEMPT_BLUEPRINTS: set[str] = set()


def exempt_from_default_limit(*blueprints: object) -> None:
    """Routes of these blueprints (and of blueprints nested in them) are never counted."""
    _EXEMPT_BLUEPRINTS.update(str(getattr(b, "name", b)) for b in blueprints)


@lru_cache(maxsize=1)
def _default_limit(url: str) -> rate_limits.DefaultLimit:
    return rate_limits.DefaultLimit(url)


@dataclass
class Attempt:
    """One attempt counted against a limit before the slow work it guards (a password's
    hash): concurrent attempts cannot all pass a check that only counts afterwards."""

    outcome: rate_limits.Outcome
    pending: rate_limits.Pending | None  # None: counted in memory while Redis is away

    def refund(self) -> None:
        """The attempt turned out not to count (the right password): take it back."""
        if self.pending is not None:
            self.pending.refund()


def count_attempt(key: str, limit: str) -> Attempt:
    """Count an attempt for ``key`` against ``limit`` (flask-limiter's notation) now, in the
    same atomic Redis script as the default limit."""
    store = _default_limit(get_settings().REDIS_URL)
    items = rate_limits.parse(limit)
    pending = store.start(key, items)
    if pending is None:
        return Attempt(store.hit(key, items), None)
    return Attempt(pending.outcome(), pending)


PENDING = "portcullis.rate_limit_pending"  # WSGI environ: a count sent by EarlyLimit
HINTS = "portcullis.route_hints"  # app.extensions: how each (method, path) was counted
PER_ADDRESS, PER_IDENTITY = "per-address", "per-identity"
_MAX_HINTS = 4096


class EarlyLimit:
    """WSGI middleware: a request to a route already seen to be counted per client address
    (a route that takes no credential, or one that does when the request carries none) has
    its count sent to Redis before Flask even builds the request, so that the answer is
    usually there when ``_check_default_limit`` reads it: the thread goes on instead of
    sleeping on the round trip. ``_check_default_limit`` still decides the key; a count
    sent for another key (or for a request that never reached it) is taken back."""

    def __init__(self, wsgi_app: Callable[..., Any], hints: dict[tuple[str, str], str],
                 session_cookie: str) -> None:
        self.wsgi_app = wsgi_app
        self.hints = hints
        self.session_cookie = f"{session_cookie}="

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        hint = self.hints.get((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
        if hint is None or (hint == PER_IDENTITY and (
                "HTTP_AUTHORIZATION" in environ
                or self.session_cookie in environ.get("HTTP_COOKIE", ""))):
            return self.wsgi_app(environ, start_response)
        from app.request_context import CLIENT_IP, client_ip_of

        settings = get_settings()
        ip = environ[CLIENT_IP] = client_ip_of(environ)
        pending = _default_limit(settings.REDIS_URL).start(
            f"ip:{ip}", rate_limits.parse(settings.RATE_LIMIT_DEFAULT))
        if pending is None:
            return self.wsgi_app(environ, start_response)
        environ[PENDING] = pending
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            if environ.pop(PENDING, None) is not None:  # never reached the limit's check
                pending.refund()


def _check_default_limit() -> None:
    """RATE_LIMIT_DEFAULT per identity, before the view; unmatched paths are not counted.
    The outcome's headers are written by ``FrontDoorHeaders`` (app/request_context.py).

    Counts are sent ahead where the key can be known early, so that the answer is read
    after other work instead of waited for: per address by ``EarlyLimit``, and, on a route
    that takes a credential, a session cookie's count against its user before its row is
    checked (two round trips at once, not one after the other). A count sent for a key the
    request turns out not to have (a session that is not live, say) is taken back and the
    request counted against its real key, as if in that order."""
    pending: rate_limits.Pending | None = request.environ.pop(PENDING, None)
    if request.endpoint is None or not _EXEMPT_BLUEPRINTS.isdisjoint(request.blueprints):
        if pending is not None:
            pending.refund()
        return
    settings = get_settings()
    limit = _default_limit(settings.REDIS_URL)
    items = rate_limits.parse(settings.RATE_LIMIT_DEFAULT)
    needs_identity = _needs_identity()
    bearer = None
    if pending is None and needs_identity:
        from app.auth.loader import IDENTITY_EPOCHS, session_claims

        # The same call reads the identity cache's epochs of the credential's tenant.
        claims = session_claims(request)
        if claims is not None:  # the rate key of a session's principal (see rate_key)
            pending = limit.start(f"user:{claims.user_id}", items,
                                  epoch_keys(claims.tenant_id))
            if pending is not None:
                g.setdefault(IDENTITY_EPOCHS, (claims.tenant_id, pending))
        elif authorization := request.headers.get("Authorization"):
            bearer = _digest(authorization)
            known = _bearer_keys.get(bearer)  # this credential's key, the last time
            if known is not None:
                rate_key, tenant_id = known
                pending = limit.start(rate_key, items,
                                      epoch_keys(tenant_id) if tenant_id else ())
                if pending is not None and tenant_id:
                    g.setdefault(IDENTITY_EPOCHS, (tenant_id, pending))
    if pending is None:
        key = rate_limit_key()
        outcome = limit.hit(key, items)
    else:
        try:
            key = rate_limit_key()  # for a credential, its check: while Redis counts
        except BaseException:
            pending.refund()  # not counted: the request failed before the limit
            raise
        outcome = pending.outcome()
        if key != pending.identity or items != pending.items:
            pending.refund()
            outcome = limit.hit(key, items)
    if bearer is not None:
        _remember_bearer(bearer, key, getattr(getattr(current_user, "caller", None),
                                              "tenant_id", None))
    _learn(PER_IDENTITY if needs_identity else PER_ADDRESS)
    request.environ[RATE_LIMIT] = outcome
    if not outcome.allowed:
        log.info("ratelimit %s/window exceeded for %s", outcome.limit, key)
        raise TooManyRequests()


# The rate key and tenant each bearer credential (access or operator key) turned out to have,
# by a digest of its header (never the secret itself): the next request with it sends its
# count (and reads its tenant's identity epochs) while the key is checked. Wrong (a key
# revoked meanwhile) costs a refund, never a count.
_bearer_keys: dict[bytes, tuple[str, uuid.UUID | None]] = {}
_MAX_BEARERS = 4096


def _digest(authorization: str) -> bytes:
    return hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest()


def _remember_bearer(bearer: bytes, key: str, tenant_id: uuid.UUID | None) -> None:
    if key.startswith("ip:"):  # not a live credential: nothing to remember
        _bearer_keys.pop(bearer, None)
    elif _bearer_keys.get(bearer) != (key, tenant_id):
        if len(_bearer_keys) >= _MAX_BEARERS:
            _bearer_keys.clear()
        _bearer_keys[bearer] = (key, tenant_id)


def _learn(hint: str) -> None:
    hints: dict[tuple[str, str], str] = current_app.extensions[HINTS]
    where = (request.environ.get("REQUEST_METHOD", ""), request.environ.get("PATH_INFO", ""))
    if hints.get(where) != hint:
        if len(hints) >= _MAX_HINTS:
            hints.clear()
        hints[where] = hint


def init_rate_limits(app: Flask) -> None:
    from app.auth.cookies import SESSION_COOKIE

    hints = app.extensions[HINTS] = {}
    app.wsgi_app = EarlyLimit(app.wsgi_app, hints, SESSION_COOKIE)  # type: ignore[method-assign]
    app.config["RATELIMIT_STORAGE_URI"] = get_settings().REDIS_URL
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": 2,
                                               "socket_timeout": 2}
    app.before_request(_check_default_limit)
    before = app.before_request_funcs[None]
    after, teardown = app.after_request_funcs[None], app.teardown_request_funcs[None]
    n_before, n_after, n_teardown = len(before), len(after), len(teardown)
    limiter.init_app(app)
    # Its before-request check limits nothing here (_RouteLimiter): not run at all.
    before[n_before:] = [f for f in before[n_before:]
                         if getattr(f, "__func__", None) is not _RouteLimiter._check_request_limit]
    after[n_after:] = [_when_route_limited(f) for f in after[n_after:]]
    teardown[n_teardown:] = [_when_route_limited(f) for f in teardown[n_teardown:]]


def rate_limit_store_up() -> bool:
    try:
        return bool(limiter.storage.check())
    except Exception:  # noqa: BLE001 - any storage failure means "down"
        return False


HSTS = "max-age=63072000; includeSubDomains"
CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
# API.md's headers, on every response (errors included), whatever the scheme: TLS ends at
# gunicorn or a proxy. Fixed for the whole app, so they are set as one precomputed list.
SECURITY_HEADERS = (
    ("Strict-Transport-Security", HSTS),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("Referrer-Policy", "no-referrer"),
)


def init_security_headers(app: Flask) -> None:
    """The headers API.md puts on every response, errors included (``FrontDoorHeaders``)."""
    from app.request_context import FrontDoorHeaders

    # Flask's own session cookie is off (app/__init__.py); should it ever be used, it is
    # Secure and HttpOnly.
    app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True)
    app.wsgi_app = FrontDoorHeaders(app.wsgi_app, SECURITY_HEADERS)  # type: ignore[method-assign]
