"""Daily usage: each bucket's stored bytes and objects and each tenant's SFTP accounts,
recorded per day by set-based statements (a rerun for a day replaces, never adds); egress is
storage's own per-day count. Reading answers one item per bucket and day with a storage
record or egress."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from portcullis.billing.models import StorageUsage, TenantUsage
from portcullis.pagination import Page, PageRequest, decode_cursor, encode_cursor
from portcullis.sftp import service as sftp
from portcullis.storage import service as storage
from portcullis.tenants import service as tenants

MAX_CATCH_UP_DAYS = 366  # beat down longer than this: the oldest days stay unrecorded


def record_day(db: Session, day: date) -> int:
    """Record the storage and SFTP accounts as they stand now under ``day``, replacing what
    that day had; returns the number of buckets recorded. A tenant created after ``day``
    has no figures for it (a catch-up or a date given by hand must not bill it for days
    before it existed)."""
    existing = tenants.existing_before(
        datetime.combine(day + timedelta(days=1), time(), UTC)).subquery("tenant")
    stored = storage.stored_per_bucket().subquery("stored")
    recorded = db.execute(
        insert(StorageUsage)
        .from_select(["id", "tenant_id", "bucket_id", "day", "bytes", "objects"],
                     select(func.gen_random_uuid(), stored.c.tenant_id, stored.c.bucket_id,
                            literal(day), stored.c.bytes, stored.c.objects)
                     .join(existing, existing.c.id == stored.c.tenant_id))
        .on_conflict_do_update(constraint="uq_storage_usage_daily_bucket_day",
                               set_={"bytes": insert(StorageUsage).excluded.bytes,
                                     "objects": insert(StorageUsage).excluded.objects})
        .returning(StorageUsage.bucket_id))
    accounts = sftp.accounts_per_tenant().subquery("accounts")
    db.execute(
        insert(TenantUsage)
        .from_select(["id", "tenant_id", "day", "sftp_accounts"],
                     select(func.gen_random_uuid(), existing.c.id, literal(day),
                            func.coalesce(accounts.c.accounts, 0))
                     .select_from(existing)
                     .outerjoin(accounts, accounts.c.tenant_id == existing.c.id))
        .on_conflict_do_update(constraint="uq_tenant_usage_daily_tenant_day",
                               set_={"sftp_accounts":
                                     insert(TenantUsage).excluded.sftp_accounts}))
    return len(recorded.all())


def days_to_record(db: Session, today: date) -> list[date]:
    """The day that just ended and every day before it since the last one recorded (a day
    recorded ahead by hand, ``collect-usage --date`` in the future, does not count)."""
    yesterday = today - timedelta(days=1)
    last = db.scalar(select(func.max(TenantUsage.day)).where(TenantUsage.day <= yesterday))
    first = yesterday if last is None else max(last + timedelta(days=1),
                                                yesterday - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + timedelta(days=n) for n in range((yesterday - first).days + 1)]


@dataclass(frozen=True)
class UsageItem:
    date: date
    bucket_id: uuid.UUID
    bytes: int
    objects: int
    egress_bytes: int


def list_usage(db: Session, tenant_id: uuid.UUID, since: date, until: date,
               page: PageRequest) -> Page[UsageItem]:
    """The tenant's usage from ``since`` to ``until`` (both included), by day then bucket."""
    egress = storage.egress_per_day()
    kept = (select(StorageUsage.bucket_id, StorageUsage.day, StorageUsage.bytes,
                   StorageUsage.objects)
            .where(StorageUsage.tenant_id == tenant_id,
                   StorageUsage.day.between(since, until)).subquery("kept"))
    served = (select(egress.c.bucket_id, egress.c.day, egress.c.bytes)
              .where(egress.c.tenant_id == tenant_id, egress.c.day.between(since, until))
              .subquery("served"))
    joined = (select(func.coalesce(kept.c.day, served.c.day).label("day"),
                     func.coalesce(kept.c.bucket_id, served.c.bucket_id).label("bucket_id"),
                     func.coalesce(kept.c.bytes, 0).label("bytes"),
                     func.coalesce(kept.c.objects, 0).label("objects"),
                     func.coalesce(served.c.bytes, 0).label("egress_bytes"))
              .select_from(kept)
              .join(served, (kept.c.bucket_id == served.c.bucket_id)
                    & (kept.c.day == served.c.day), full=True)
              .subquery("usage"))
    stmt: Any = select(joined)
    if page.cursor:
        after = decode_cursor(page.cursor, [date, uuid.UUID])
        stmt = stmt.where(tuple_(joined.c.day, joined.c.bucket_id) > tuple_(*after))
    rows = db.execute(stmt.order_by(joined.c.day, joined.c.bucket_id)
                      .limit(page.limit + 1)).all()
    items = [UsageItem(r.day, r.bucket_id, int(r.bytes), int(r.objects),
                       int(r.egress_bytes)) for r in rows[: page.limit]]
    next_cursor = (encode_cursor([items[-1].date, items[-1].bucket_id])
                   if len(rows) > page.limit else None)
    return Page(items, next_cursor)
