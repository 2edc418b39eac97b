"""/api/v1/access-keys: admins create, list and revoke programmatic keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from pydantic import Field

from app.api.registry import SESSION_ONLY, operation
from app.auth.guards import current_caller
from app.pagination import PageQuery
from app.validation import RequestModel, ResponseModel, parse_body, parse_query
from portcullis.access_keys import service
from portcullis.access_keys.models import AccessKey
from portcullis.callers import Role

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
    page = service.list_keys(current_caller(), parse_query(PageQuery))
    return jsonify({"items": [_out(k) for k in page.items], "next_cursor": page.next_cursor})


@bp.post("")
@operation(summary="Create a key; the key itself is shown in this response only",
           tag="access-keys", auth=SESSION_ONLY, roles=ADMIN, writes=True, request=KeyIn,
           response=NewKeyOut, status=201)
def create_key() -> ResponseReturnValue:
    body = parse_body(KeyIn)
    created = service.create(current_caller(), body.name, list(body.scopes),
                             body.expires_in_days)
    return jsonify({**_out(created.key), "key": created.secret}), 201


@bp.delete("/<uuid:key_id>")
@operation(summary="Revoke a key; it stops working at once", tag="access-keys",
           auth=SESSION_ONLY, roles=ADMIN, writes=True, status=204, errors=(404,))
def revoke_key(key_id: uuid.UUID) -> ResponseReturnValue:
    service.revoke(current_caller(), key_id)
    return Response(status=204)
