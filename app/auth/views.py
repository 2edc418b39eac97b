"""/api/v1/auth: signup, verification, login, MFA, logout, sessions, password reset."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import segno
from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import EmailStr, Field, model_validator

from app.api.registry import PUBLIC, SESSION_ONLY, operation
from app.auth.cookies import CSRF_COOKIE, SESSION_COOKIE
from app.auth.guards import current_principal, principal_or_none, public_caller
from app.extensions import limiter, rate_limit_store_up
from app.pagination import PageQuery
from app.problems import Problem
from app.validation import (
    EmailToken,
    NewPassword,
    RequestModel,
    ResponseModel,
    parse_body,
    parse_query,
)
from config import get_settings
from portcullis.accounts import login as login_service
from portcullis.accounts import mfa, sessions, signup
from portcullis.accounts.models import SessionState
from portcullis.accounts.sessions import IssuedSession
from portcullis.accounts.tokens import ABSOLUTE_LIFETIME
from portcullis.errors import DependencyUnavailable
from portcullis.redaction import keyed_digest

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

Password = Field(min_length=1, max_length=1024)  # the policy itself answers weak_password


class SignupIn(RequestModel):
    company_name: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    password: NewPassword


class TokenIn(RequestModel):
    token: EmailToken


class EmailIn(RequestModel):
    email: EmailStr


class LoginIn(RequestModel):
    email: str = Field(min_length=1, max_length=254)
    password: str = Password


class LoginOut(ResponseModel):
    status: Literal["ok", "mfa_required", "mfa_enrollment_required"]


class CodeIn(RequestModel):
    code: str = Field(min_length=1, max_length=32)


class ReauthIn(RequestModel):
    """Proof for replacing an enrolled authenticator: a current TOTP or recovery code, or
    the password; not needed for a first enrolment."""

    code: str | None = Field(default=None, min_length=1, max_length=32)
    password: str | None = Field(default=None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _one_proof(self) -> ReauthIn:
        if self.code is not None and self.password is not None:
            raise ValueError("send either code or password, not both")
        return self


class EnrollOut(ResponseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str = Field(description=(
        "`otpauth_uri` as a QR code: an SVG image in a `data:` URI, for an `<img>` (the "
        "console shows it; nothing else needs to render the code)."))


class RecoveryCodesOut(ResponseModel):
    recovery_codes: list[str]


class ResetIn(RequestModel):
    token: EmailToken
    password: NewPassword


class MeUser(ResponseModel):
    id: uuid.UUID
    email: str
    name: str


class MeTenant(ResponseModel):
    id: uuid.UUID
    name: str
    status: str


class MeOut(ResponseModel):
    user: MeUser
    tenant: MeTenant
    role: str
    mfa_enabled: bool
    session: Literal["full", "mfa_pending", "mfa_enrollment"]


class SessionOut(ResponseModel):
    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class SessionsOut(ResponseModel):
    items: list[SessionOut]
    next_cursor: str | None = None


class Empty(ResponseModel):
    pass


def _accepted() -> ResponseReturnValue:
    return jsonify({}), 202


def _set_cookies(response: Response, issued: IssuedSession) -> None:
    secure = get_settings().secure_cookies
    max_age = int(ABSOLUTE_LIFETIME.total_seconds())
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=max_age, path="/",
                        secure=secure, httponly=True, samesite="Strict")
    response.set_cookie(CSRF_COOKIE, issued.csrf, max_age=max_age, path="/",
                        secure=secure, httponly=False, samesite="Strict")


def _clear_cookies(response: Response) -> None:
    secure = get_settings().secure_cookies
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=http_only,
                               samesite="Strict")


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _login_ip() -> str:
    return f"login-ip:{g.client_ip}"


# Failed logins and wrong re-authentication passwords share one budget per account.
LOGIN_FAILURES = "10/minute"
LOGIN_ACCOUNT_SCOPE = "login-account"


def _account_key(email: str) -> str:
    return f"login-account:{keyed_digest(email.strip().lower())}"


def _login_account() -> str:
    body = request.get_json(silent=True)
    email = body.get("email", "") if isinstance(body, dict) else ""
    return _account_key(str(email))


def _caller_account() -> str:
    principal = principal_or_none()
    return _account_key(principal.email if principal else "")


def _wrong_password(response: Response) -> bool:
    body = response.get_json(silent=True) if response.status_code == 401 else None
    return isinstance(body, dict) and body.get("code") == "invalid_credentials"


def _locked(exc: mfa.Locked) -> Problem:
    return Problem(429, "rate_limited", exc.detail,
                   headers={"Retry-After": str(exc.retry_after)})


def _mfa_session() -> str:
    principal = principal_or_none()
    return f"mfa:{(principal.session_id if principal else None) or g.client_ip}"


@bp.post("/signup")
@operation(summary="Create a tenant and its admin; sends a verification email",
           tag="auth", auth=PUBLIC, request=SignupIn, response=Empty, status=202)
def signup_view() -> ResponseReturnValue:
    body = parse_body(SignupIn)
    signup.signup(public_caller(), body.company_name, body.name, str(body.email),
                  body.password)
    return _accepted()


@bp.post("/verify-email")
@operation(summary="Confirm an email address", tag="auth", auth=PUBLIC, request=TokenIn,
           response=Empty, errors=(410,))
def verify_email() -> ResponseReturnValue:
    signup.verify_email(public_caller(), parse_body(TokenIn).token)
    return jsonify({})


@bp.post("/verify-email/resend")
@operation(summary="Send the verification email again", tag="auth", auth=PUBLIC,
           request=EmailIn, response=Empty, status=202)
def resend_verification() -> ResponseReturnValue:
    signup.resend_verification(str(parse_body(EmailIn).email))
    return _accepted()


@bp.post("/login")
@limiter.limit(LOGIN_FAILURES, key_func=_login_ip, deduct_when=_failed)
@limiter.shared_limit(LOGIN_FAILURES, scope=LOGIN_ACCOUNT_SCOPE, key_func=_login_account,
                      deduct_when=_failed)
@operation(summary="Log in; sets the session and CSRF cookies", tag="auth", auth=PUBLIC,
           request=LoginIn, response=LoginOut, errors=(401, 403, 503))
def login() -> ResponseReturnValue:
    if not rate_limit_store_up():
        raise DependencyUnavailable("redis", "login rate limits cannot be enforced")
    body = parse_body(LoginIn)
    issued = login_service.login(public_caller(), body.email, body.password)
    status = {SessionState.full: "ok", SessionState.mfa_pending: "mfa_required",
              SessionState.mfa_enrollment: "mfa_enrollment_required"}[issued.state]
    response = jsonify({"status": status})
    _set_cookies(response, issued)
    return response


@bp.post("/mfa/verify")
@limiter.limit("5/minute", key_func=_mfa_session)
@operation(summary="Complete login with a TOTP or recovery code", tag="auth",
           auth=SESSION_ONLY, allow_restricted=True, request=CodeIn, response=Empty,
           errors=(401, 409, 503), extra={"description": (
               "Wrong codes also count per user across sessions: past MFA_LOCKOUT_FAILURES "
               "in MFA_LOCKOUT_WINDOW_SECONDS (10 in 15 minutes) the second-factor step is "
               "locked for MFA_LOCKOUT_SECONDS (15 minutes); meanwhile every code, even a "
               "correct one, answers 429 `rate_limited` with `Retry-After`. 503 "
               "`dependency_unavailable` when the lockout cannot be checked.")})
def mfa_verify() -> ResponseReturnValue:
    principal = current_principal()
    code = parse_body(CodeIn).code
    try:
        mfa.verify(principal, code)
    except mfa.Locked as exc:
        raise _locked(exc) from None
    return jsonify({})


def _proof() -> mfa.Proof | None:
    """The optional body of /mfa/enroll: no body at all is no proof."""
    if not request.get_data(cache=True):
        return None
    body = parse_body(ReauthIn)
    return mfa.Proof(code=body.code, password=body.password)


@bp.post("/mfa/enroll")
@limiter.limit("5/minute", key_func=_mfa_session)
@limiter.shared_limit(LOGIN_FAILURES, scope=LOGIN_ACCOUNT_SCOPE, key_func=_caller_account,
                      deduct_when=_wrong_password)
@operation(summary="Start TOTP enrolment; from a full session it needs proof",
           tag="auth", auth=SESSION_ONLY, allow_restricted=True, refuse_mfa_pending=True,
           request=ReauthIn,
           response=EnrollOut, errors=(401, 503), extra={
               "description": (
                   "From an `mfa_enrollment` session (just logged in with the password) a "
                   "first enrolment needs no body. From a `full` session it needs proof, so "
                   "a stolen session can neither add a second factor (locking its owner "
                   "out) nor move it: `{password}`, or, when TOTP is already enrolled, "
                   "`{code}` (a current TOTP or unused recovery code) instead. The "
                   "proof also covers this session for 5 minutes (so a retry needs none) and "
                   "replacing needs it still fresh at /mfa/enroll/confirm. Without it: 403 "
                   "`reauthentication_required`; a wrong password 401 `invalid_credentials` "
                   "(counted with failed logins), a wrong code 401 `invalid_mfa_code` "
                   "(counted toward the per-user lockout; while it lasts, 429 `rate_limited` "
                   "with `Retry-After`)."),
               "requestBody": {"required": False, "content": {"application/json": {
                   "schema": {"$ref": "#/components/schemas/ReauthIn"}}}}})
def mfa_enroll() -> ResponseReturnValue:
    principal = current_principal()
    try:
        enrolment = mfa.enroll(principal, _proof())
    except mfa.Locked as exc:
        raise _locked(exc) from None
    return jsonify({"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri,
                    "qr_svg": segno.make(enrolment.otpauth_uri, error="m").svg_data_uri(
                        scale=4, border=4)})


@bp.post("/mfa/enroll/confirm")
@limiter.limit("5/minute", key_func=_mfa_session)
@operation(summary="Confirm TOTP enrolment; returns 10 recovery codes once", tag="auth",
           auth=SESSION_ONLY, allow_restricted=True, refuse_mfa_pending=True, request=CodeIn,
           response=RecoveryCodesOut, errors=(401, 409, 503), extra={"description": (
               "Replacing an enrolled authenticator: 403 `reauthentication_required` unless "
               "this session proved itself at /mfa/enroll in the last 5 minutes.")})
def mfa_confirm() -> ResponseReturnValue:
    principal = current_principal()
    codes = mfa.confirm(principal, parse_body(CodeIn).code)
    return jsonify({"recovery_codes": codes})


@bp.post("/logout")
@operation(summary="Log out; the session is revoked server-side", tag="auth",
           auth=SESSION_ONLY, allow_restricted=True, status=204)
def logout() -> ResponseReturnValue:
    login_service.logout(current_principal())
    response = Response(status=204)
    _clear_cookies(response)
    return response


@bp.get("/me")
@operation(summary="The caller, their tenant, role and session state", tag="auth",
           auth=SESSION_ONLY, allow_restricted=True, response=MeOut)
def me() -> ResponseReturnValue:
    principal = current_principal()  # the loader's one query already read all of this
    caller = principal.caller
    assert caller.role is not None
    return jsonify({
        "user": {"id": str(caller.user_id), "email": principal.email, "name": principal.name},
        "tenant": {"id": str(caller.tenant_id), "name": principal.tenant_name,
                   "status": principal.tenant_status},
        "role": caller.role.value,
        "mfa_enabled": principal.mfa_enabled,
        "session": principal.session_state.value,
    })


@bp.get("/sessions")
@operation(summary="Your live sessions, newest first", tag="auth", auth=SESSION_ONLY,
           query=PageQuery, response=SessionsOut)
def list_sessions() -> ResponseReturnValue:
    page = sessions.list_own(current_principal(), parse_query(PageQuery))
    items = [SessionOut.model_validate(s).model_dump(mode="json") for s in page.items]
    return jsonify({"items": items, "next_cursor": page.next_cursor})


@bp.delete("/sessions/<uuid:session_id>")
@operation(summary="Revoke one of your sessions", tag="auth", auth=SESSION_ONLY,
           status=204, errors=(404,))
def revoke_session(session_id: uuid.UUID) -> ResponseReturnValue:
    sessions.revoke_own(current_principal(), session_id)
    return Response(status=204)


@bp.post("/password/forgot")
@operation(summary="Email a password-reset link", tag="auth", auth=PUBLIC,
           request=EmailIn, response=Empty, status=202)
def forgot_password() -> ResponseReturnValue:
    login_service.forgot_password(public_caller(), str(parse_body(EmailIn).email))
    return _accepted()


@bp.post("/password/reset")
@operation(summary="Set a new password with a reset token; every session is revoked",
           tag="auth", auth=PUBLIC, request=ResetIn, response=Empty, errors=(410,))
def reset_password() -> ResponseReturnValue:
    body = parse_body(ResetIn)
    login_service.reset_password(public_caller(), body.token, body.password)
    return jsonify({})
