"""/api/v1/operator/*: operator keys only; each action lands in the tenant's audit chain."""

from __future__ import annotations

import uuid
from typing import Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.api.registry import OPERATOR, operation
from app.auth.guards import current_caller
from app.validation import RequestModel, ResponseModel, parse_body
from portcullis.tenants import service as tenants
from portcullis.tenants.service import TenantStatus

bp = Blueprint("operator", __name__, url_prefix="/api/v1/operator")


class TenantStatusIn(RequestModel):
    status: Literal["active", "suspended"]


class TenantOut(ResponseModel):
    id: uuid.UUID
    name: str
    status: str


@bp.post("/tenants/<uuid:tenant_id>/status")
@operation(summary="Suspend (read-only) or reactivate a tenant", tag="operator",
           auth=OPERATOR, request=TenantStatusIn, response=TenantOut, errors=(404,))
def tenant_status(tenant_id: uuid.UUID) -> ResponseReturnValue:
    body = parse_body(TenantStatusIn)
    tenant = tenants.set_status(current_caller(), tenant_id, TenantStatus(body.status))
    return jsonify(TenantOut.model_validate(tenant).model_dump(mode="json"))
