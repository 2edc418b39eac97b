"""A secret sealed ``once`` in a job's result (an SFTP account's password) is shown to the
job's creator on their first read only, null afterwards, and never to anyone else; the
stored result never holds it in clear."""

from __future__ import annotations

import threading
import uuid

import pytest

from portcullis.callers import Caller, Role
from portcullis.db import system_session
from portcullis.jobs import service as jobs
from portcullis.jobs.models import Job, JobStatus
from tests.support.factories import make_job, make_member, make_tenant

pytestmark = pytest.mark.usefixtures("stack")

SECRET = "correct horse battery staple"


def _job(creator_role: Role = Role.manager) -> tuple[uuid.UUID, Caller, Caller]:
    tenant = make_tenant("Once Co")
    creator = make_member(tenant, creator_role)
    admin = make_member(tenant, Role.admin)
    job_id = make_job(creator, status=JobStatus.succeeded,
                      result={"username": "pc-1", "password": jobs.seal_result(SECRET, once=True),
                              "url": jobs.seal_result("https://example.test/s/x")})
    return (job_id, Caller.user(tenant, creator.user_id, creator_role),
            Caller.user(tenant, admin.user_id, Role.admin))


def _stored(job_id: uuid.UUID) -> dict[str, object]:
    with system_session() as db:
        job = db.get(Job, job_id)
        assert job is not None and job.result is not None
        return dict(job.result)


def test_the_creator_sees_it_once_then_null() -> None:
    job_id, creator, _admin = _job()
    assert SECRET not in str(_stored(job_id))
    first = jobs.read_job(creator, job_id).result
    assert first is not None and first["password"] == SECRET
    again = jobs.read_job(creator, job_id).result
    assert again is not None and again["password"] is None
    assert again["url"] == "https://example.test/s/x"  # an ordinary sealed secret stays
    assert _stored(job_id)["password"] is None


def test_an_admin_who_did_not_create_it_never_sees_it_nor_spends_it() -> None:
    job_id, creator, admin = _job()
    seen = jobs.read_job(admin, job_id).result
    assert seen is not None and seen["password"] is None
    first = jobs.read_job(creator, job_id).result
    assert first is not None and first["password"] == SECRET


def test_two_first_reads_at_once_reveal_it_once() -> None:
    job_id, creator, _admin = _job()
    seen: list[object] = []
    barrier = threading.Barrier(4)

    def read() -> None:
        barrier.wait()
        result = jobs.read_job(creator, job_id).result
        assert result is not None
        seen.append(result["password"])

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(map(str, seen)) == sorted([SECRET, "None", "None", "None"])
