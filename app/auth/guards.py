"""Decorators that state who may call a view; they run before any body is parsed."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import request
from flask_login import current_user

from app.auth.loader import CSRF_COOKIE, CSRF_HEADER
from app.problems import Problem
from portcullis.accounts.identity import Identity
from portcullis.accounts.models import SessionState
from portcullis.accounts.tokens import csrf_matches

F = TypeVar("F", bound=Callable[..., Any])
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def current_identity() -> Identity:
    identity = current_user._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(identity, Identity):
        raise Problem(401, "not_authenticated", "Log in or send an access key.")
    return identity


def authenticated(view: F) -> F:
    """A full session (MFA done), with the CSRF double-submit on unsafe methods."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        identity = current_identity()
        if identity.via == "session":
            if request.method in UNSAFE and identity.session_id and not csrf_matches(
                    identity.session_id, request.headers.get(CSRF_HEADER),
                    request.cookies.get(CSRF_COOKIE)):
                raise Problem(403, "csrf_failed", "Missing or wrong X-CSRF-Token header.")
            if identity.session_state is SessionState.mfa_enrollment:
                raise Problem(403, "mfa_enrollment_required", "Enrol TOTP first.")
            if identity.session_state is SessionState.mfa_pending:
                raise Problem(403, "mfa_required", "Verify your MFA code first.")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]
