"""/api/v1/auth/webauthn: passkeys as a second factor (registration, sign-in, management).

Credentials travel in their JSON form (``PublicKeyCredential.toJSON()``: base64url for
binary fields); the models cap their sizes and refuse unknown fields, and py_webauthn
(``portcullis.accounts.passkeys``) judges the rest.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from pydantic import Field

from app.api.registry import SESSION_ONLY, operation
from app.auth.guards import current_principal
from app.auth.views import (
    LOGIN_ACCOUNT_SCOPE,
    LOGIN_FAILURES,
    Empty,
    ReauthIn,
    _caller_account,
    _locked,
    _mfa_session,
    _proof,
    _wrong_password,
)
from app.extensions import limiter
from app.pagination import PageQuery
from app.validation import Printable, RequestModel, ResponseModel, parse_body, parse_query
from portcullis.accounts import mfa, passkeys

bp = Blueprint("webauthn", __name__, url_prefix="/api/v1/auth/webauthn")

# Far above what an authenticator sends (a packed attestation with its certificate chain
# is a few KiB); the JSON body itself is capped at 64 KiB.
B64 = r"^[A-Za-z0-9_-]+={0,2}$"
CredentialId = Annotated[str, Field(min_length=1, max_length=1400, pattern=B64)]
ClientData = Annotated[str, Field(min_length=1, max_length=8192, pattern=B64)]
Blob = Annotated[str, Field(min_length=1, max_length=32768, pattern=B64)]
Small = Annotated[str, Field(min_length=1, max_length=32)]
PER_SESSION = "5/minute"


class _Credential(RequestModel):
    """What every `PublicKeyCredential` JSON holds (WebAuthn's field names)."""

    id: CredentialId
    rawId: CredentialId
    type: Literal["public-key"]
    authenticatorAttachment: Small | None = None
    clientExtensionResults: dict[str, Any] | None = None


class AttestationResponseIn(RequestModel):
    clientDataJSON: ClientData
    attestationObject: Blob
    transports: list[Small] | None = Field(default=None, max_length=16)
    # What browsers' toJSON() adds; not needed (the attestation object holds them).
    authenticatorData: Blob | None = None
    publicKey: Blob | None = None
    publicKeyAlgorithm: int | None = None


class RegistrationCredentialIn(_Credential):
    response: AttestationResponseIn


class RegisterIn(RequestModel):
    name: Annotated[str, Field(min_length=1, max_length=100), Printable]
    credential: RegistrationCredentialIn


class AssertionResponseIn(RequestModel):
    clientDataJSON: ClientData
    authenticatorData: Blob
    signature: Blob
    userHandle: CredentialId | None = None


class AuthenticationCredentialIn(_Credential):
    response: AssertionResponseIn


class AuthenticateIn(RequestModel):
    credential: AuthenticationCredentialIn


class CreationOptions(ResponseModel):
    challenge: str
    rp: dict[str, str]
    user: dict[str, str]
    pubKeyCredParams: list[dict[str, Any]]
    excludeCredentials: list[dict[str, Any]]
    authenticatorSelection: dict[str, Any]
    timeout: int
    attestation: str


class CreationOptionsOut(ResponseModel):
    publicKey: CreationOptions


class RequestOptions(ResponseModel):
    challenge: str
    rpId: str
    allowCredentials: list[dict[str, Any]]
    userVerification: str
    timeout: int


class RequestOptionsOut(ResponseModel):
    publicKey: RequestOptions


class PasskeyOut(ResponseModel):
    id: uuid.UUID
    name: str
    created_at: datetime


class PasskeyItem(PasskeyOut):
    last_used_at: datetime | None


class PasskeysOut(ResponseModel):
    items: list[PasskeyItem]
    next_cursor: str | None = None


def _credential(model: RequestModel) -> dict[str, Any]:
    return model.model_dump(exclude_none=True)


@bp.post("/register/options")
@limiter.limit(PER_SESSION, key_func=_mfa_session)
@limiter.shared_limit(LOGIN_FAILURES, scope=LOGIN_ACCOUNT_SCOPE, key_func=_caller_account,
                      deduct_when=_wrong_password)
@operation(summary="Start registering a passkey: WebAuthn creation options", tag="auth",
           auth=SESSION_ONLY, allow_restricted=True, refuse_mfa_pending=True,
           request=ReauthIn, response=CreationOptionsOut, errors=(401, 503), extra={
               "description": (
                   "For a full or an `mfa_enrollment` session. From an `mfa_enrollment` "
                   "session (just logged in with the password) no body is needed. From a "
                   "`full` session it needs the same proof as /mfa/enroll (so a stolen "
                   "session cannot add a second factor): `{password}`, or `{code}` (a "
                   "current TOTP or unused recovery code) when TOTP is enrolled, or a proof "
                   "this session gave in the last 5 minutes; else 403 "
                   "`reauthentication_required`. The challenge is this session's, for one "
                   "registration, for 5 minutes; asking again replaces it. The relying party "
                   "id is the host of PUBLIC_BASE_URL."),
               "requestBody": {"required": False, "content": {"application/json": {
                   "schema": {"$ref": "#/components/schemas/ReauthIn"}}}}})
def register_options() -> ResponseReturnValue:
    principal = current_principal()
    try:
        options = passkeys.registration_options(principal, _proof())
    except mfa.Locked as exc:
        raise _locked(exc) from None
    return jsonify({"publicKey": options})


@bp.post("/register")
@limiter.limit(PER_SESSION, key_func=_mfa_session)
@operation(summary="Register a passkey with the authenticator's answer", tag="auth",
           auth=SESSION_ONLY, allow_restricted=True, refuse_mfa_pending=True,
           request=RegisterIn, response=PasskeyOut, status=201, extra={"description": (
               "`credential` is the `PublicKeyCredential` in its JSON form, answering this "
               "session's challenge from /register/options (used up by this call whatever "
               "its outcome). 400 `webauthn_failed` when it does not verify (wrong origin "
               "or rp id, no live challenge, a credential already registered). An "
               "`mfa_enrollment` session becomes full.")})
def register() -> ResponseReturnValue:
    body = parse_body(RegisterIn)
    view = passkeys.register(current_principal(), body.name, _credential(body.credential))
    return jsonify(PasskeyOut.model_validate(view).model_dump(mode="json")), 201


@bp.get("/credentials")
@operation(summary="Your passkeys, newest first", tag="auth", auth=SESSION_ONLY,
           query=PageQuery, response=PasskeysOut)
def list_credentials() -> ResponseReturnValue:
    page = passkeys.list_own(current_principal(), parse_query(PageQuery))
    items = [PasskeyItem.model_validate(p).model_dump(mode="json") for p in page.items]
    return jsonify({"items": items, "next_cursor": page.next_cursor})


@bp.delete("/credentials/<uuid:credential_id>")
@operation(summary="Remove one of your passkeys", tag="auth", auth=SESSION_ONLY, status=204,
           errors=(404, 409), extra={"description": (
               "409 `last_factor` when it is the last second factor (no TOTP, no other "
               "passkey) of a role that needs MFA (every role but viewonly).")})
def remove_credential(credential_id: uuid.UUID) -> ResponseReturnValue:
    passkeys.remove(current_principal(), credential_id)
    return Response(status=204)


@bp.post("/authenticate/options")
@limiter.limit(PER_SESSION, key_func=_mfa_session)
@operation(summary="Start signing in with a passkey: WebAuthn request options", tag="auth",
           auth=SESSION_ONLY, allow_restricted=True, response=RequestOptionsOut,
           errors=(409,), extra={"description": (
               "For an `mfa_pending` session (else 409 `mfa_not_pending`) whose user has a "
               "passkey (else 409 `mfa_not_enrolled`). The challenge is this session's, for "
               "one sign-in, for 5 minutes; asking again replaces it.")})
def authenticate_options() -> ResponseReturnValue:
    return jsonify({"publicKey": passkeys.authentication_options(current_principal())})


@bp.post("/authenticate")
@limiter.limit(PER_SESSION, key_func=_mfa_session)
@operation(summary="Complete login with a passkey", tag="auth", auth=SESSION_ONLY,
           allow_restricted=True, request=AuthenticateIn, response=Empty,
           errors=(401, 409, 503), extra={"description": (
               "`credential` is the `PublicKeyCredential` (an assertion) in its JSON form, "
               "answering this session's challenge from /authenticate/options (used up by "
               "this call whatever its outcome). 401 `webauthn_failed` when it does not "
               "verify: another user's credential, a wrong origin or rp id, a bad signature, "
               "no live challenge, or a signature counter that did not increase (audited "
               "`auth.webauthn_counter_regressed`, critical). Five refusals end the session, "
               "as five wrong codes do; while the user's second-factor step is locked, 429 "
               "`rate_limited` with `Retry-After`.")})
def authenticate() -> ResponseReturnValue:
    principal = current_principal()
    credential = _credential(parse_body(AuthenticateIn).credential)
    try:
        passkeys.authenticate(principal, credential)
    except mfa.Locked as exc:
        raise _locked(exc) from None
    return jsonify({})
