"""/api/v1/access-keys: admins create, list and revoke programmatic keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from pydantic import Field

from app.api.registry import SESSION_ONLY, operation
from app.auth.guards import current_identity
from app.auth.loader import request_origin
from app.pagination import PageQuery, paginate
from app.validation import RequestModel, ResponseModel, parse_body, parse_query
from portcullis.access_keys import service
from portcullis.access_keys.models import AccessKey
from portcullis.accounts.models import Role
from portcullis.db import tenant_session

bp = Blueprint("access_keys", __name__, url_prefix="/api/v1/access-keys")

Scope = Literal["buckets:read", "buckets:write", "files:read", "files:write", "files:delete",
                "sftp:write", "billing:read", "audit:read", "jobs:read"]
ADMIN = (Role.admin,)


class KeyIn(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=len(service.SCOPES))
    expires_in_days: int = Field(ge=1, le=365)


class KeyOut(ResponseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    last_used_ip: str | None
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    key: str


class KeysOut(ResponseModel):
    items: list[KeyOut]
    next_cursor: str | None = None


def _out(key: AccessKey) -> dict[str, object]:
    return KeyOut.model_validate(key).model_dump(mode="json")


@bp.get("")
@operation(summary="The tenant's access keys", tag="access-keys", auth=SESSION_ONLY,
           roles=ADMIN, query=PageQuery, response=KeysOut)
def list_keys() -> ResponseReturnValue:
    identity = current_identity()
    page = parse_query(PageQuery)
    with tenant_session(identity.tenant_id) as db:
        rows, next_cursor = paginate(db, service.keys_query(identity.tenant_id),
                                     [AccessKey.created_at, AccessKey.id],
                                     [datetime, uuid.UUID], page)
        items = [_out(k) for k in rows]
    return jsonify({"items": items, "next_cursor": next_cursor})


@bp.post("")
@operation(summary="Create a key; the key itself is shown in this response only",
           tag="access-keys", auth=SESSION_ONLY, roles=ADMIN, writes=True, request=KeyIn,
           response=NewKeyOut, status=201)
def create_key() -> ResponseReturnValue:
    identity = current_identity()
    body = parse_body(KeyIn)
    created = service.create(identity.tenant_id, identity.user_id, body.name,
                             list(body.scopes), body.expires_in_days, request_origin())
    return jsonify({**_out(created.key), "key": created.secret}), 201


@bp.delete("/<uuid:key_id>")
@operation(summary="Revoke a key; it stops working at once", tag="access-keys",
           auth=SESSION_ONLY, roles=ADMIN, writes=True, status=204, errors=(404,))
def revoke_key(key_id: uuid.UUID) -> ResponseReturnValue:
    identity = current_identity()
    service.revoke(identity.tenant_id, identity.user_id, key_id, request_origin())
    return Response(status=204)
