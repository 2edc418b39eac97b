"""Deleting a file revokes its share links in the same transaction (the trigger of migration
0007), under the deleting tenant's row-level security: its own links die, no other tenant's
link is touched, whatever file id that link names."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from portcullis.accounts.models import Role
from portcullis.callers import Caller
from portcullis.db import system_session, tenant_session
from portcullis.links import service as links
from portcullis.links.models import ShareLink
from portcullis.storage import service as storage
from tests.support.factories import make_bucket, make_file, make_member, make_tenant

pytestmark = pytest.mark.usefixtures("stack")


def _link(tenant_id: uuid.UUID, file_id: uuid.UUID, bucket_id: uuid.UUID | None) -> uuid.UUID:
    with tenant_session(tenant_id) as db:
        return links.create(db, tenant_id, kind="file", bucket="files", object_key="k",
                            filename="f.png", content_type="image/png", size=1,
                            expires_in=timedelta(hours=1), file_id=file_id,
                            bucket_id=bucket_id).link.id


def _revoked(*link_ids: uuid.UUID) -> dict[uuid.UUID, bool]:
    with system_session() as db:
        return {link.id: link.revoked_at is not None for link in db.scalars(
            select(ShareLink).where(ShareLink.id.in_(link_ids)))}


def test_a_deleted_files_links_are_revoked_and_no_other_tenants() -> None:
    owner, other = make_tenant(), make_tenant()
    admin = make_member(owner, Role.admin)
    bucket = make_bucket(admin)
    doomed, kept = make_file(admin, bucket), make_file(admin, bucket)
    own = _link(owner, doomed.id, bucket)
    sibling = _link(owner, kept.id, bucket)
    foreign = _link(other, doomed.id, None)  # another tenant's row naming the same file id

    storage.delete_file(Caller.user(owner, admin.user_id, Role.admin), doomed.id)

    assert _revoked(own, sibling, foreign) == {own: True, sibling: False, foreign: False}
