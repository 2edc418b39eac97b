"""/api/v1/operator/*: operator keys only; each action lands in the tenant's audit chain."""

from __future__ import annotations

import uuid
from typing import Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.api.registry import OPERATOR, operation
from app.auth.guards import current_operator
from app.auth.loader import request_origin
from app.validation import RequestModel, ResponseModel, parse_body
from portcullis.audit.service import Actor
from portcullis.tenants import service as tenants
from portcullis.tenants.models import TenantStatus

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
    operator = current_operator()
    assert operator is not None
    body = parse_body(TenantStatusIn)
    tenant = tenants.set_status(tenant_id, TenantStatus(body.status),
                                Actor("operator", str(operator.operator_key_id)),
                                request_origin(), "operator")
    return jsonify({"id": str(tenant.id), "name": tenant.name, "status": tenant.status})
