"""The access guard every documented view runs before its body is read, and the caller the
view hands to its service.

Order: authenticated → kind of credential (session, key, operator) → CSRF for cookies on
unsafe methods → MFA state → key scope → role → tenant suspension.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import request
from flask_login import current_user

from app.api.operation import OPERATOR, PUBLIC, SESSION_ONLY, Operation
from app.auth.cookies import CSRF_COOKIE, CSRF_HEADER
from app.auth.loader import request_origin
from app.problems import Problem
from portcullis.accounts.identity import Principal
from portcullis.accounts.models import SessionState
from portcullis.accounts.tokens import csrf_matches
from portcullis.callers import Caller, Kind
from portcullis.tenants.models import TenantStatus

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _not_authenticated(detail: str = "Log in or send an access key.") -> Problem:
    return Problem(401, "not_authenticated", detail)


def principal_or_none() -> Principal | None:
    """The request's authenticated principal, if any (loading it on first use)."""
    principal = current_user._get_current_object()
    return principal if isinstance(principal, Principal) else None


def current_principal() -> Principal:
    """The request's authenticated principal (401 without one)."""
    principal = principal_or_none()
    if principal is None:
        raise _not_authenticated()
    return principal


def current_caller() -> Caller:
    """Who acts in this request, as every service takes it: a member's session, an access
    key (acting as itself with its creator's role and its own scopes) or an operator key;
    the guard has already decided which of them the route accepts."""
    return current_principal().caller


def public_caller() -> Caller:
    """The caller of a public route (signup, login, resets): nobody yet, from this address.
    It never reads a credential, so a public route costs no identity check."""
    return Caller.anonymous(request_origin())


def _check(op: Operation) -> None:
    principal = current_principal()
    caller = principal.caller
    if caller.kind is Kind.operator:
        if op.auth == OPERATOR or op.operator_may_read:
            return
        raise _not_authenticated("Operator keys are not accepted here.")
    if op.auth == OPERATOR:
        raise Problem(403, "forbidden", "This route needs an operator key.")
    if caller.kind is Kind.access_key:
        if op.auth == SESSION_ONLY:
            raise Problem(403, "session_required", "This route needs a browser session.")
        if op.scope is None or caller.scopes is None or op.scope not in caller.scopes:
            raise Problem(403, "insufficient_scope", f"This key lacks the {op.scope} scope.")
    else:
        if request.method in UNSAFE and principal.session_id and not csrf_matches(
                principal.session_id, request.headers.get(CSRF_HEADER),
                request.cookies.get(CSRF_COOKIE)):
            raise Problem(403, "csrf_failed", "Missing or wrong X-CSRF-Token header.")
        pending = principal.session_state is SessionState.mfa_pending
        if not op.allow_restricted:
            if principal.session_state is SessionState.mfa_enrollment:
                raise Problem(403, "mfa_enrollment_required", "Enrol TOTP first.")
            if pending:
                raise Problem(403, "mfa_required", "Verify your MFA code first.")
        elif pending and op.refuse_mfa_pending:
            raise Problem(403, "mfa_required", "Verify your MFA code first.")
    if op.roles is not None and caller.role not in op.roles:
        raise Problem(403, "forbidden", "Your role does not allow this.")
    if op.writes and principal.tenant_status == TenantStatus.suspended:
        raise Problem(403, "tenant_suspended", "This tenant is suspended: read-only.")


def guard(op: Operation, view: Callable[..., Any]) -> Callable[..., Any]:
    if op.auth == PUBLIC:
        return view

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check(op)
        return view(*args, **kwargs)

    return guarded
