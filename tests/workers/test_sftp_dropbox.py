"""The drop box end to end, with the real worker and real beat processes: an object that an
SFTP client leaves under its account's prefix (as SFTPGo's S3 filesystem writes it, at the
prefix SFTPGo was given) is taken in by beat's sweep, scanned by the worker and listed in
the account's bucket once clean; an infected one never becomes a file and is alerted; each
once, with two beats running or the sweep sent twice. A suspended tenant's drop box waits
for its reactivation; a deleted account's leftovers go with it.

Beat here sweeps every second (``SFTP_INGEST_INTERVAL`` overridden for its process only)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from config import get_settings
from devstack.clamd import EICAR_SIGNATURE
from devstack.stack import LocalStack
from portcullis.alerts.models import Alert
from portcullis.audit.models import AuditEvent
from portcullis.callers import Caller, Role
from portcullis.clients.object_store import ObjectStore
from portcullis.db import system_session, tenant_session
from portcullis.jobs.queue import producer
from portcullis.sftp import service as sftp
from portcullis.sftp.models import SftpAccount
from portcullis.storage.models import Upload
from portcullis.tenants import service as tenants
from portcullis.tenants.models import TenantStatus
from tests.support.factories import (
    LoggedIn,
    make_bucket,
    make_member,
    make_operator_key,
    make_session,
    make_tenant,
)
from tests.support.media import eicar_png, png
from tests.support.web import ClientFor
from tests.support.worker import CeleryProcess, start_beat
from tests.workers.test_job_runner import wait_finished

pytestmark = pytest.mark.usefixtures("worker")

INGEST = "tasks.sftp.ingest_drop_boxes"
FAST_BEAT = {"SFTP_INGEST_INTERVAL": "1"}
# What the worker logs as each sweep ends, however it ends.
SWEEP_ENDED = re.compile(rf"Task {re.escape(INGEST)}\[[0-9a-f-]+\] (succeeded in|raised)")
T = TypeVar("T")


@dataclass(frozen=True)
class Box:
    tenant: uuid.UUID
    bucket: uuid.UUID
    account: uuid.UUID
    username: str
    admin: LoggedIn
    caller: Caller
    s3_bucket: str  # where SFTPGo was told to keep the account's files
    s3_prefix: str


def _wait(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)


def _provisioned(stack: LocalStack, name: str) -> Box:
    """An account made through the product and provisioned by the worker: active, with its
    SFTPGo user jailed to its prefix."""
    tenant = make_tenant(name)
    bucket = make_bucket(tenant)
    admin = make_member(tenant, Role.admin)
    caller = Caller.user(tenant, admin.user_id, Role.admin)
    account, job_id = sftp.create_account(caller, bucket, "scanner room")
    job = wait_finished(job_id, timeout=60)
    assert job.status == "succeeded", job.error
    s3 = stack["sftpgo"].users[account.username]["filesystem"]["s3config"]
    return Box(tenant, bucket, account.id, account.username, make_session(admin), caller,
               s3["bucket"], s3["key_prefix"])


def _drop(box: Box, path: str, data: bytes) -> str:
    """What SFTPGo writes when the account's client uploads ``path``."""
    key = box.s3_prefix + path
    ObjectStore.from_settings(get_settings()).client.put_object(
        Bucket=box.s3_bucket, Key=key, Body=data)
    return key


def _left(box: Box) -> list[str]:
    """The keys still under the account's prefix, directory markers too."""
    answer = ObjectStore.from_settings(get_settings()).client.list_objects_v2(
        Bucket=box.s3_bucket, Prefix=box.s3_prefix)
    return [item["Key"] for item in answer.get("Contents", [])]


def _uploads(box: Box) -> list[Upload]:
    with tenant_session(box.tenant) as db:
        rows = list(db.scalars(select(Upload).where(Upload.sftp_account_id == box.account)
                               .order_by(Upload.created_at)))
        db.expunge_all()
        return rows


def _by_key(box: Box) -> dict[str, list[Upload]]:
    found: dict[str, list[Upload]] = {}
    for upload in _uploads(box):
        found.setdefault(upload.quarantine_key, []).append(upload)
    return found


def _settled(box: Box, keys: list[str]) -> dict[str, list[Upload]] | None:
    """Every key's uploads once each key has one with a verdict, else None."""
    found = _by_key(box)
    done = all(any(u.status in ("clean", "rejected", "infected") for u in found.get(key, []))
               for key in keys)
    return found if done else None


def _sweeps_ended(worker: CeleryProcess) -> int:
    return len(SWEEP_ENDED.findall(worker.log.read_text(errors="replace")))


def _more_sweeps(worker: CeleryProcess, count: int, *, send: bool = False) -> None:
    """Wait until the worker has ended ``count`` more sweeps (sent by hand, or by beat)."""
    mark = _sweeps_ended(worker)
    if send:
        for _ in range(count):
            producer().send_task(INGEST, ignore_result=True)
    _wait(f"{count} more sweeps", lambda: _sweeps_ended(worker) >= mark + count)


def _files(client_for: ClientFor, box: Box) -> list[dict[str, Any]]:
    response = client_for(box.admin).get(f"/api/v1/buckets/{box.bucket}/files")
    assert response.status_code == 200, response.get_data(as_text=True)
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def _events(box: Box, upload_id: uuid.UUID) -> list[AuditEvent]:
    with system_session() as db:
        rows = list(db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == box.tenant, AuditEvent.target_id == str(upload_id))))
        db.expunge_all()
        return rows


def _malware_alerts(tenant: uuid.UUID) -> list[dict[str, Any]]:
    with system_session() as db:
        return [a.payload for a in db.scalars(select(Alert).where(
            Alert.tenant_id == tenant, Alert.type == "alert.malware_detected"))]


@pytest.fixture
def beats(tmp_path: Path, stack: LocalStack) -> Iterator[Callable[[int], list[CeleryProcess]]]:
    """``beats(n)``: n beat processes at once, each sweeping the drop boxes every second."""
    started: list[CeleryProcess] = []

    def start(count: int) -> list[CeleryProcess]:
        for _ in range(count):
            name = f"beat{len(started) + 1}"
            started.append(start_beat(tmp_path / f"{name}.log", name, env=FAST_BEAT))
        for beat in started:
            beat.wait_live(timeout=30)
        return started

    try:
        yield start
    finally:
        for beat in started:
            beat.stop()


@pytest.fixture
def operator() -> Caller:
    return Caller.operator(make_operator_key("drop box tests").id)


# --- taken in once ---------------------------------------------------------------------------


@pytest.mark.parametrize("sweeper", ["two-beats", "sent-twice"])
def test_each_dropped_object_gets_one_verdict_and_leaves_the_prefix(
        stack: LocalStack, worker: CeleryProcess, beats: Callable[[int], list[CeleryProcess]],
        client_for: ClientFor, sweeper: str) -> None:
    box = _provisioned(stack, f"Drop box E2E {sweeper}")
    running = beats(2) if sweeper == "two-beats" else []
    photo = png(color=(200, 100, 50))
    clean_key = _drop(box, "inbox/2024/Holiday photo.png", photo)
    infected_key = _drop(box, "inbox/eicar.png", eicar_png())
    if sweeper == "sent-twice":
        for _ in range(2):  # at once: the worker runs both side by side
            producer().send_task(INGEST, ignore_result=True)
    found = _wait("both verdicts", lambda: _settled(box, [clean_key, infected_key]), 90)
    # Any second take-in would come from a sweep after the verdicts: let a few more run.
    _more_sweeps(worker, 2, send=sweeper == "sent-twice")
    assert sorted(_by_key(box)) == sorted([clean_key, infected_key])
    [clean] = _by_key(box)[clean_key]
    [infected] = _by_key(box)[infected_key]
    assert found[clean_key][0].id == clean.id and found[infected_key][0].id == infected.id

    assert (clean.status, clean.reason, clean.bucket_id) == ("clean", None, box.bucket)
    assert clean.filename == "Holiday photo.png"
    [listed] = _files(client_for, box)
    assert listed["id"] == str(clean.file_id)
    assert (listed["filename"], listed["size"]) == ("Holiday photo.png", len(photo))
    assert listed["content_type"] == "image/png"

    assert (infected.status, infected.reason, infected.file_id) == ("infected", "malware", None)
    assert _left(box) == []  # both gone from the drop box

    alerts = [a for a in _malware_alerts(box.tenant)
              if a["details"].get("upload_id") == str(infected.id)]
    assert len(alerts) == 1, alerts
    assert alerts[0]["actor"] == {"type": "sftp_account", "id": str(box.account)}
    assert alerts[0]["details"]["bucket_id"] == str(box.bucket)
    siem = stack["siem"]
    siem.wait_for(lambda d: isinstance(d.body, dict)
                  and d.body.get("type") == "alert.malware_detected"
                  and d.body.get("details", {}).get("upload_id") == str(infected.id),
                  timeout=30)
    delivered = {d.body["id"] for d in siem.deliveries
                 if isinstance(d.body, dict)
                 and d.body.get("details", {}).get("upload_id") == str(infected.id)}
    assert delivered == {alerts[0]["id"]}

    for upload, verdict in ((clean, "upload.clean"), (infected, "upload.infected")):
        events = _events(box, upload.id)
        assert [e.action for e in events] == [verdict], [e.action for e in events]
        assert {(e.actor_type, e.actor_id) for e in events} == {
            ("sftp_account", str(box.account))}
    [infected_event] = _events(box, infected.id)
    assert EICAR_SIGNATURE in infected_event.details.values()
    if running:
        sent = [beat.log.read_text(errors="replace").count("Sending due task ingest-drop-boxes")
                for beat in running]
        assert sum(sent) >= 1 and min(sent) == 0, sent  # one beat sends, the other waits


# --- suspension and deletion -----------------------------------------------------------------


def test_a_suspended_tenants_drop_box_waits_for_its_reactivation(
        stack: LocalStack, worker: CeleryProcess, beats: Callable[[int], list[CeleryProcess]],
        client_for: ClientFor, operator: Caller) -> None:
    box = _provisioned(stack, "Suspended Drop Box Co")
    tenants.set_status(operator, box.tenant, TenantStatus.suspended)
    beats(1)
    key = _drop(box, "waiting.png", png())
    _more_sweeps(worker, 3)
    assert _uploads(box) == []
    assert _left(box) == [key]

    tenants.set_status(operator, box.tenant, TenantStatus.active)
    found = _wait("the upload after reactivation", lambda: _settled(box, [key]), 60)
    [upload] = found[key]
    assert upload.status == "clean", upload.reason
    assert [f["filename"] for f in _files(client_for, box)] == ["waiting.png"]
    assert _left(box) == []


def test_a_deleted_accounts_leftovers_are_removed_and_never_taken_in(
        stack: LocalStack, worker: CeleryProcess,
        beats: Callable[[int], list[CeleryProcess]]) -> None:
    box = _provisioned(stack, "Deleted Drop Box Co")
    keys = [_drop(box, "left/behind.png", png()), _drop(box, "eicar.png", eicar_png())]
    job_id = sftp.delete_account(box.caller, box.account)  # before any sweep saw them
    beats(1)
    job = wait_finished(job_id, timeout=60)
    assert job.status == "succeeded", job.error
    assert job.result is not None and job.result["objects_removed"] == len(keys)
    _more_sweeps(worker, 2)
    assert _uploads(box) == []
    assert _left(box) == []
    assert _malware_alerts(box.tenant) == []
    assert box.username not in stack["sftpgo"].users
    with tenant_session(box.tenant) as db:
        account = db.get(SftpAccount, box.account)
        assert account is not None
        assert (account.status, account.bucket_id) == ("deleted", None)
    # A key written there later (a write SFTPGo finished after the user was removed) is no
    # account's any more: it is never taken in.
    late = _drop(box, "late.png", png())
    try:
        _more_sweeps(worker, 2)
        assert _uploads(box) == []
    finally:
        settings = get_settings()
        ObjectStore.from_settings(settings).delete(settings.S3_QUARANTINE_BUCKET, late)
