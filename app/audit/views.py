"""/api/v1/audit-events and /api/v1/audit-exports: admins, or keys with audit:read."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import AwareDatetime, Field, model_validator

from app.api.registry import operation
from app.auth.guards import current_caller
from app.pagination import PageQuery
from app.validation import RequestModel, ResponseModel, parse_body, parse_query
from portcullis.audit import service as audit
from portcullis.audit.service import IDENTIFIER, Severity
from portcullis.callers import Role
from portcullis.exports import service as exports

bp = Blueprint("audit", __name__, url_prefix="/api/v1")
ADMIN = (Role.admin,)
MAX_EXPORT_SPAN = timedelta(days=366)


# The table's own rule for an action (a CHECK); an unknown but well-formed one matches
# nothing, as the contract's filters do, while a malformed one is a 400.
Action = Annotated[str, Field(max_length=64, pattern=IDENTIFIER.strip("'"), description=(
    "An audit action (the AuditAction schema lists them); an unknown one matches nothing."))]


class AuditQuery(PageQuery):
    """Every filter is typed, so a malformed one is a 400, never an empty page."""

    action: Action | None = None
    actor_id: uuid.UUID | None = None
    severity: Severity | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class Party(ResponseModel):
    type: str
    id: str | None


class AuditEventOut(ResponseModel):
    id: uuid.UUID
    occurred_at: datetime
    action: str
    severity: Severity
    actor: Party
    target: Party | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class AuditEventsOut(ResponseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class ExportIn(RequestModel):
    """`until` after `since`, at most 366 days apart (else 400 validation_error)."""

    since: AwareDatetime
    until: AwareDatetime
    format: Literal["jsonl", "csv"]

    @model_validator(mode="after")
    def _span(self) -> ExportIn:
        if self.until <= self.since:
            raise ValueError("until must be after since")
        if self.until - self.since > MAX_EXPORT_SPAN:
            raise ValueError("export at most 366 days at a time")
        return self


class JobAccepted(ResponseModel):
    job_id: uuid.UUID


@bp.get("/audit-events")
@operation(summary="Audit events, newest first (since inclusive, until exclusive)",
           tag="audit", roles=ADMIN, scope="audit:read", query=AuditQuery,
           response=AuditEventsOut)
def list_events() -> ResponseReturnValue:
    params = parse_query(AuditQuery)
    filters = audit.EventFilter(
        action=params.action, actor_id=str(params.actor_id) if params.actor_id else None,
        severity=params.severity.value if params.severity else None, since=params.since,
        until=params.until)
    page = audit.list_events(current_caller(), filters, params)
    return jsonify({"items": page.items, "next_cursor": page.next_cursor})


@bp.post("/audit-exports")
@operation(summary="Export audit events to JSONL or CSV; the job's result holds a link",
           tag="audit", roles=ADMIN, scope="audit:read", request=ExportIn,
           response=JobAccepted, status=202)
def create_export() -> ResponseReturnValue:
    body = parse_body(ExportIn)
    job_id = exports.request_export(current_caller(), body.since, body.until, body.format)
    return jsonify({"job_id": str(job_id)}), 202
