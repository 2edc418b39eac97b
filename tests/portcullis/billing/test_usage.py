"""Daily usage (``portcullis.billing.usage`` through ``service.collect_usage`` and
``collect_missing_usage``): each bucket's clean files and each tenant's SFTP accounts as they
stand now, under a given day; collecting a day again replaces its figures, and the daily job
fills every day missed since the last one recorded.

Every collection records every bucket and tenant in the shared database, so the days used
here are far in the future (2090 on), where no test bills a period.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from portcullis.billing import service as billing
from portcullis.billing.models import StorageUsage, TenantUsage
from portcullis.callers import Caller, Role
from portcullis.db import system_session, tenant_session
from portcullis.sftp.models import SftpAccount
from portcullis.storage import service as storage
from portcullis.storage.models import UploadStatus
from tests.portcullis.billing.helpers import utc
from tests.support.factories import (
    make_bucket,
    make_file,
    make_member,
    make_sftp_account,
    make_tenant,
    make_upload,
)

pytestmark = pytest.mark.usefixtures("stack")

FUTURE = date(2090, 1, 1)


def stored(bucket_id: uuid.UUID) -> dict[date, tuple[int, int]]:
    """The bucket's recorded ``(bytes, objects)`` per day."""
    with system_session() as db:
        return {row.day: (row.bytes, row.objects) for row in db.scalars(
            select(StorageUsage).where(StorageUsage.bucket_id == bucket_id))}


def accounts(tenant_id: uuid.UUID) -> dict[date, int]:
    """The tenant's recorded SFTP account count per day."""
    with system_session() as db:
        return {row.day: row.sftp_accounts for row in db.scalars(
            select(TenantUsage).where(TenantUsage.tenant_id == tenant_id))}


def test_collecting_a_day_again_replaces_its_figures() -> None:
    """A rerun for a date (by hand, or a retried job) records the storage as it stands
    now, never adding to what the date had."""
    tenant = make_tenant("Recollected Co")
    admin = make_member(tenant, Role.admin)
    bucket = make_bucket(admin)
    first = make_file(admin, bucket, b"a" * 3000, filename="a.txt", content_type="text/plain")
    day = FUTURE + timedelta(days=10)

    assert billing.collect_usage(day) >= 1
    assert stored(bucket) == {day: (3000, 1)}

    make_file(admin, bucket, b"b" * 500, filename="b.txt", content_type="text/plain")
    billing.collect_usage(day)
    assert stored(bucket) == {day: (3500, 2)}

    storage.delete_file(Caller.user(tenant, admin.user_id, Role.admin), first.id)
    billing.collect_usage(day)
    assert stored(bucket) == {day: (500, 1)}
    assert accounts(tenant) == {day: 0}  # one row for the tenant and the day, too


def test_only_clean_files_count_and_an_empty_bucket_records_zero() -> None:
    """Files exist only once scanned clean: an upload still pending or scanning, or refused,
    stores nothing billable; a bucket with nothing in it still has its day, at 0."""
    tenant = make_tenant("Scanning Co")
    full, empty = make_bucket(tenant), make_bucket(tenant)
    clean = make_file(tenant, full, b"c" * 1234, filename="c.txt", content_type="text/plain")
    for status in (UploadStatus.pending, UploadStatus.scanning, UploadStatus.rejected,
                   UploadStatus.infected):
        make_upload(tenant, full, status=status, size=10_000,
                    reason=None if status in (UploadStatus.pending, UploadStatus.scanning)
                    else "test")
    make_upload(tenant, empty, status=UploadStatus.scanning, size=777)
    day = FUTURE + timedelta(days=20)

    billing.collect_usage(day)

    assert stored(full) == {day: (clean.size, 1)}
    assert stored(empty) == {day: (0, 0)}


def test_sftp_accounts_are_counted_per_tenant_as_they_exist_in_sftpgo() -> None:
    """Active accounts and those not yet deleted exist in SFTPGo and count; one still
    provisioning or that failed to provision does not. Each tenant has its own count."""
    a, b, c = (make_tenant(f"SFTP {n} Co") for n in "ABC")
    bucket_a, bucket_b = make_bucket(a), make_bucket(b)
    kept = make_sftp_account(a, bucket_a, status="active")
    for status in ("active", "deleting", "failed", "provisioning"):
        make_sftp_account(a, bucket_a, status=status)
    make_sftp_account(b, bucket_b, status="active")
    make_sftp_account(b, bucket_b, status="provisioning")
    day = FUTURE + timedelta(days=30)

    billing.collect_usage(day)
    assert (accounts(a), accounts(b), accounts(c)) == ({day: 3}, {day: 1}, {day: 0})

    with tenant_session(a) as db:
        db.execute(update(SftpAccount).where(SftpAccount.id == kept).values(status="failed"))
    billing.collect_usage(day)
    assert accounts(a) == {day: 2}


def test_a_tenant_has_no_figures_for_a_day_before_it_existed() -> None:
    """A date given by hand or a catch-up does not bill a tenant for days before its
    creation, neither its storage nor its accounts; its creation day counts."""
    created = utc(2090, 3, 10, 23, 59)
    tenant = make_tenant("Late Co", created_at=created)
    bucket = make_bucket(tenant)
    make_file(tenant, bucket, b"x" * 42, filename="x.txt", content_type="text/plain")
    make_sftp_account(tenant, bucket)

    billing.collect_usage(created.date() - timedelta(days=1))
    assert stored(bucket) == {} and accounts(tenant) == {}

    billing.collect_usage(created.date())
    assert stored(bucket) == {created.date(): (42, 1)}
    assert accounts(tenant) == {created.date(): 1}


def test_the_daily_job_fills_every_day_missed_since_the_last_one_recorded() -> None:
    """Beat missed days D-2..D: the next daily run records each of them (with the figures as
    they stand now) and the day that just ended, and nothing twice.

    The job decides from the last day recorded by anyone, and other tests record days too:
    the days here start after whatever the database holds."""
    tenant = make_tenant("Gap Co")
    bucket = make_bucket(tenant)
    make_file(tenant, bucket, b"g" * 99, filename="g.txt", content_type="text/plain")
    make_sftp_account(tenant, bucket)
    with system_session() as db:
        latest = db.scalar(select(func.max(TenantUsage.day)))
    last = max(FUTURE + timedelta(days=200), (latest or FUTURE) + timedelta(days=1))
    billing.collect_usage(last)  # D-3, the last day the job recorded

    reported: list[tuple[int, int]] = []
    today = last + timedelta(days=4)  # D+1
    days = billing.collect_missing_usage(today, progress=lambda n, of: reported.append((n, of)))

    missed = [last + timedelta(days=n) for n in (1, 2, 3)]
    assert days == missed
    assert reported == [(1, 3), (2, 3), (3, 3)]
    assert stored(bucket) == {day: (99, 1) for day in [last, *missed]}
    assert accounts(tenant) == {day: 1 for day in [last, *missed]}

    assert billing.collect_missing_usage(today) == []  # nothing left to catch up
