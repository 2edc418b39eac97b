"""Read a job's state: its creator or a tenant admin; any other caller gets a 404."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.api.registry import operation
from app.auth.guards import current_identity, current_operator
from app.problems import Problem
from app.validation import ResponseModel
from portcullis.db import system_session, tenant_session
from portcullis.jobs.models import Job
from portcullis.jobs.results import reveal
from portcullis.jobs.service import get_job

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")


class JobError(ResponseModel):
    code: str
    detail: str


class JobOut(ResponseModel):
    id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: int
    result: dict[str, Any] | None
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@bp.get("/<uuid:job_id>")
@operation(summary="A job's status, progress and result", tag="jobs", response=JobOut,
           scope="jobs:read", operator_may_read=True, errors=(404,))
def get(job_id: uuid.UUID) -> ResponseReturnValue:
    operator = current_operator()
    if operator is not None:
        with system_session() as db:
            job = get_job(db, job_id)
            if job is None or job.created_by_operator_key_id != operator.operator_key_id:
                raise Problem(404, "not_found", "No such job.")
            return jsonify(_out(job))
    identity = current_identity()
    with tenant_session(identity.tenant_id) as db:
        job = get_job(db, job_id)
        if job is None or job.tenant_id != identity.tenant_id or not (
                identity.is_admin or job.created_by_user_id == identity.user_id):
            raise Problem(404, "not_found", "No such job.")
        body = _out(job)
    return jsonify(body)


def _out(job: Job) -> dict[str, Any]:
    body = JobOut.model_validate(job).model_dump(mode="json")
    body["result"] = reveal(body["result"])
    return body
