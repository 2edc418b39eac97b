"""Read a job's state: its creator or a tenant admin; any other caller gets a 404."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from app.api.registry import operation
from app.auth.guards import current_caller
from app.problems import Problem
from app.validation import ResponseModel
from portcullis.jobs import service as jobs

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
    if request.method == "HEAD":  # would spend a secret shown once without showing it
        raise Problem(405, "method_not_allowed", "Use GET.")
    job = jobs.read_job(current_caller(), job_id)
    response = jsonify(JobOut.model_validate(job).model_dump(mode="json"))
    response.headers["Cache-Control"] = "private, no-store"  # results may hold secrets
    return response
