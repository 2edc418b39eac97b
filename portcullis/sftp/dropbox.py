"""The drop-box sweep (beat, every ``SFTP_INGEST_INTERVAL`` seconds): each active
account's prefix is listed (bounded per run) and handed to storage, which makes an upload
of every object version it has not seen. A suspended tenant's drop boxes wait (its
SFTPGo users are disabled meanwhile); a deleted account's are emptied by its deletion.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select

from config import get_settings
from portcullis.clients.object_store import ObjectStore
from portcullis.db import system_session
from portcullis.errors import DependencyUnavailable
from portcullis.sftp.models import SftpAccount, SftpAccountStatus
from portcullis.sftp.provisioning import Failed, prefix_of
from portcullis.storage import service as storage
from portcullis.tenants import service as tenants

log = logging.getLogger(__name__)
PER_ACCOUNT = 500  # objects taken in per account and run; the rest wait for the next
PARALLEL = 4  # accounts listed at once


@dataclass(frozen=True)
class Swept:
    accounts: int
    queued: int
    rejected: int
    removed: int


@dataclass(frozen=True)
class _Box:
    tenant_id: uuid.UUID
    account_id: uuid.UUID
    bucket_id: uuid.UUID
    key_prefix: str


def _take_in(box: _Box, per_account: int) -> storage.TakenIn:
    """One account's drop box. Only an outage stops the whole sweep: anything else is
    logged and the other accounts go on."""
    try:
        return _take_in_one(box, per_account)
    except DependencyUnavailable:
        raise
    except Exception:
        log.exception("the drop box of SFTP account %s failed", box.account_id)
        return storage.TakenIn(0, 0, 0)


def _take_in_one(box: _Box, per_account: int) -> storage.TakenIn:
    settings = get_settings()
    try:
        prefix = prefix_of(box.account_id, box.key_prefix)
    except Failed:
        log.error("SFTP account %s has a key prefix that is not its own", box.account_id)
        return storage.TakenIn(0, 0, 0)
    listed = ObjectStore.from_settings(settings).list_objects(
        settings.S3_QUARANTINE_BUCKET, prefix, per_account)
    return storage.take_in_dropped(box.tenant_id, box.bucket_id, box.account_id, listed)


def sweep(per_account: int = PER_ACCOUNT) -> Swept:
    """Take in what every active account's client dropped. Storage down raises
    DependencyUnavailable (the next run goes on: nothing is lost or taken twice)."""
    with system_session() as db:
        boxes = [_Box(tenant_id, account_id, bucket_id, key_prefix)
                 for tenant_id, account_id, bucket_id, key_prefix in db.execute(
            select(SftpAccount.tenant_id, SftpAccount.id, SftpAccount.bucket_id,
                   SftpAccount.key_prefix)
            .where(SftpAccount.status == SftpAccountStatus.active,
                   SftpAccount.bucket_id.is_not(None),
                   SftpAccount.tenant_id.not_in(tenants.suspended()))
            .order_by(SftpAccount.created_at))
                 if bucket_id is not None]
    if not boxes:
        return Swept(0, 0, 0, 0)
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(boxes)),
                            thread_name_prefix="dropbox") as pool:
        results = list(pool.map(lambda box: _take_in(box, per_account), boxes))
    return Swept(len(boxes), sum(r.queued for r in results), sum(r.rejected for r in results),
                 sum(r.removed for r in results))
