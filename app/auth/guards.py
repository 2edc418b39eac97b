"""The access guard every documented view runs before its body is read.

Order: authenticated → kind of credential (session, key, operator) → CSRF for cookies on
unsafe methods → MFA state → key scope → role → tenant suspension.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import request
from flask_login import current_user

from app.auth.loader import CSRF_COOKIE, CSRF_HEADER
from app.problems import Problem
from portcullis.accounts.caller import Caller
from portcullis.accounts.identity import Identity, OperatorIdentity
from portcullis.accounts.models import SessionState
from portcullis.accounts.tokens import csrf_matches
from portcullis.audit.service import Actor
from portcullis.tenants.models import TenantStatus

if TYPE_CHECKING:
    from app.api.registry import Operation

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def current_identity() -> Identity:
    identity = current_user._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(identity, Identity):
        raise Problem(401, "not_authenticated", "Log in or send an access key.")
    return identity


def current_operator() -> OperatorIdentity | None:
    identity = current_user._get_current_object()  # type: ignore[attr-defined]
    return identity if isinstance(identity, OperatorIdentity) else None


def _check(op: Operation) -> None:
    from app.api.registry import OPERATOR, SESSION_ONLY

    caller = current_user._get_current_object()  # type: ignore[attr-defined]
    if not getattr(caller, "is_authenticated", False):
        raise Problem(401, "not_authenticated", "Log in or send an access key.")
    if isinstance(caller, OperatorIdentity):
        if op.auth == OPERATOR or op.operator_may_read:
            return
        raise Problem(401, "not_authenticated", "Operator keys are not accepted here.")
    assert isinstance(caller, Identity)
    if op.auth == OPERATOR:
        raise Problem(403, "forbidden", "This route needs an operator key.")
    if caller.via == "access_key":
        if op.auth == SESSION_ONLY:
            raise Problem(403, "session_required", "This route needs a browser session.")
        if op.scope is None or caller.scopes is None or op.scope not in caller.scopes:
            raise Problem(403, "insufficient_scope", f"This key lacks the {op.scope} scope.")
    else:
        if request.method in UNSAFE and caller.session_id and not csrf_matches(
                caller.session_id, request.headers.get(CSRF_HEADER),
                request.cookies.get(CSRF_COOKIE)):
            raise Problem(403, "csrf_failed", "Missing or wrong X-CSRF-Token header.")
        if not op.allow_restricted:
            if caller.session_state is SessionState.mfa_enrollment:
                raise Problem(403, "mfa_enrollment_required", "Enrol TOTP first.")
            if caller.session_state is SessionState.mfa_pending:
                raise Problem(403, "mfa_required", "Verify your MFA code first.")
    if op.roles is not None and caller.role not in op.roles:
        raise Problem(403, "forbidden", "Your role does not allow this.")
    if op.writes and caller.tenant_status == TenantStatus.suspended:
        raise Problem(403, "tenant_suspended", "This tenant is suspended: read-only.")


def guard(op: Operation, view: Callable[..., Any]) -> Callable[..., Any]:
    from app.api.registry import PUBLIC

    if op.auth == PUBLIC:
        return view

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check(op)
        return view(*args, **kwargs)

    return guarded


def current_caller() -> Caller:
    """The identity as domain services take it; a key acts as itself with its creator's role."""
    from app.auth.loader import request_origin

    identity = current_identity()
    actor = (Actor("access_key", str(identity.access_key_id)) if identity.access_key_id
             else Actor("user", str(identity.user_id)))
    return Caller(identity.tenant_id, identity.user_id, identity.role, actor, request_origin())
