"""/api/v1/sftp-accounts: admins and managers, or keys with ``sftp:write``. Each view parses,
calls one service function and renders; the work is a job (its result holds the
credentials, the password shown to the creator once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import Field

from app.api.registry import operation
from app.auth.guards import current_caller
from app.pagination import PageQuery
from app.validation import Printable, RequestModel, ResponseModel, parse_body, parse_query
from portcullis.callers import Role
from portcullis.sftp import service as sftp

bp = Blueprint("sftp", __name__, url_prefix="/api/v1/sftp-accounts")
MANAGERS = (Role.admin, Role.manager)
SCOPE = "sftp:write"


class AccountIn(RequestModel):
    bucket_id: uuid.UUID
    label: Annotated[str, Field(min_length=1, max_length=100), Printable]


class AccountBrief(ResponseModel):
    id: uuid.UUID
    username: str = Field(description="Derived by the product; never reused")
    status: Literal["provisioning"]


class AccountAccepted(ResponseModel):
    account: AccountBrief
    job_id: uuid.UUID


class AccountOut(ResponseModel):
    id: uuid.UUID
    username: str
    bucket_id: uuid.UUID
    label: str
    status: Literal["provisioning", "active", "failed", "deleting"]
    created_at: datetime


class AccountsOut(ResponseModel):
    items: list[AccountOut]
    next_cursor: str | None


class JobAccepted(ResponseModel):
    job_id: uuid.UUID


@bp.post("")
@operation(summary="Create an SFTP account (a drop box feeding a bucket); a job provisions it",
           tag="sftp", roles=MANAGERS, scope=SCOPE, writes=True, request=AccountIn,
           response=AccountAccepted, status=202, errors=(404,))
def create_account() -> ResponseReturnValue:
    body = parse_body(AccountIn)
    account, job_id = sftp.create_account(current_caller(), body.bucket_id, body.label)
    return jsonify({"account": {"id": str(account.id), "username": account.username,
                                "status": account.status}, "job_id": str(job_id)}), 202


@bp.get("")
@operation(summary="The tenant's SFTP accounts, newest first", tag="sftp", roles=MANAGERS,
           scope=SCOPE, query=PageQuery, response=AccountsOut)
def list_accounts() -> ResponseReturnValue:
    page = sftp.list_accounts(current_caller(), parse_query(PageQuery))
    return jsonify({"items": [AccountOut.model_validate(a).model_dump(mode="json")
                              for a in page.items], "next_cursor": page.next_cursor})


@bp.post("/<uuid:account_id>/rotate-password")
@operation(summary="Give an active account a new password (a job; shown once)", tag="sftp",
           roles=MANAGERS, scope=SCOPE, writes=True, response=JobAccepted, status=202,
           errors=(404, 409))
def rotate_password(account_id: uuid.UUID) -> ResponseReturnValue:
    return jsonify({"job_id": str(sftp.rotate_password(current_caller(), account_id))}), 202


@bp.delete("/<uuid:account_id>")
@operation(summary="Delete an account: its SFTPGo user and what is left under its prefix",
           tag="sftp", roles=MANAGERS, scope=SCOPE, writes=True, response=JobAccepted,
           status=202, errors=(404,))
def delete_account(account_id: uuid.UUID) -> ResponseReturnValue:
    return jsonify({"job_id": str(sftp.delete_account(current_caller(), account_id))}), 202
