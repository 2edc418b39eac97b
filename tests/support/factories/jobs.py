"""Job rows, built directly in the database: no task is sent for them."""

from __future__ import annotations

import uuid
from typing import Any

from portcullis.db import system_session, tenant_session
from portcullis.jobs.models import Job, JobStatus
from tests.support.factories.accounts import LoggedIn, Member

UNREGISTERED_TASK = "tasks.default.never_registered"


def make_job(owner: Member | LoggedIn | uuid.UUID | None, *, kind: str = "sample",
             task_name: str = UNREGISTERED_TASK, status: JobStatus = JobStatus.queued,
             operator_key_id: uuid.UUID | None = None, **values: Any) -> uuid.UUID:
    """A job of ``owner``: a member (or session) who created it, a tenant id (nobody created
    it), or None (a job of no tenant, an operator's when ``operator_key_id`` is given).
    ``values`` sets any other column (``args``, ``result``, ``error``, ``progress``,
    ``created_by_user_id`` ...)."""
    member = owner.member if isinstance(owner, LoggedIn) else owner
    tenant_id = member.tenant_id if isinstance(member, Member) else member
    user_id = member.user_id if isinstance(member, Member) else None
    columns = {"args": {}, "progress": 0, "attempts": 0, "created_by_user_id": user_id} | values
    job = Job(id=uuid.uuid4(), tenant_id=tenant_id, kind=kind, task_name=task_name,
              status=status.value, created_by_operator_key_id=operator_key_id, **columns)
    with tenant_session(tenant_id) if tenant_id else system_session() as db:
        db.add(job)
    return job.id
