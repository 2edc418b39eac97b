"""The links service's download rules below the front door: the budget is taken by the
conditional UPDATE (not by the check before it), the table refuses more downloads than the
budget, a storage failure costs no download, and a password is kept only as a slow hash."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from config import get_settings
from portcullis.accounts.passwords import verify_password
from portcullis.callers import Caller, Origin, Role
from portcullis.clients.object_store import ObjectStore
from portcullis.db import system_session, tenant_session
from portcullis.errors import DependencyUnavailable, Gone
from portcullis.links import service as links
from portcullis.links.models import ShareLink
from tests.support.factories import (
    Link,
    Member,
    StoredFile,
    make_bucket,
    make_file,
    make_file_link,
    make_member,
    make_tenant,
)

pytestmark = pytest.mark.usefixtures("stack")

VISITOR = Caller.anonymous(Origin("198.51.100.20", "pytest"))
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def admin(stack: object) -> Member:
    return make_member(make_tenant("Link Budget Co"))


@pytest.fixture(scope="module")
def stored(admin: Member) -> StoredFile:
    return make_file(admin, make_bucket(admin), b"budgeted bytes")


def _downloads(link: Link) -> int:
    with system_session() as db:
        return int(db.scalar(select(ShareLink.downloads).where(ShareLink.id == link.id)) or 0)


def _fetch(link: Link, password: str | None = None) -> bytes:
    served = links.download(VISITOR, link.token, password)
    try:
        return b"".join(served.body)
    finally:
        served.close()


def test_the_update_decides_when_another_request_took_the_last_download(
        stored: StoredFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check before opening the object passes; meanwhile another request takes the last
    download: the conditional UPDATE refuses this one (a read-then-write count would serve
    it, a fourth download of a 3-download link)."""
    link = make_file_link(stored, max_downloads=3, downloads=2)
    real_resolve = links.resolve

    def resolve_then_lose_the_race(caller: Caller, token: str) -> links.Download:
        found = real_resolve(caller, token)
        with system_session() as db:
            db.execute(update(ShareLink).where(ShareLink.id == link.id)
                       .values(downloads=ShareLink.downloads + 1))
        return found

    monkeypatch.setattr(links, "resolve", resolve_then_lose_the_race)
    with pytest.raises(Gone) as refused:
        links.download(VISITOR, link.token)
    assert refused.value.code == "link_used_up"
    assert _downloads(link) == 3


def test_each_download_takes_one_until_the_budget_is_spent(stored: StoredFile) -> None:
    link = make_file_link(stored, max_downloads=2)
    assert _fetch(link) == b"budgeted bytes"
    assert _downloads(link) == 1
    assert _fetch(link) == b"budgeted bytes"
    with pytest.raises(Gone) as refused:
        links.download(VISITOR, link.token)
    assert refused.value.code == "link_used_up"
    assert _downloads(link) == 2


def test_a_head_takes_nothing(stored: StoredFile) -> None:
    link = make_file_link(stored, max_downloads=1)
    links.download(VISITOR, link.token, count=False).close()
    assert _downloads(link) == 0


def test_the_table_refuses_more_downloads_than_the_budget(stored: StoredFile) -> None:
    link = make_file_link(stored, max_downloads=1, downloads=1)
    with pytest.raises(IntegrityError, match="ck_share_links_download_budget"), \
            tenant_session(link.tenant_id) as db:
        db.execute(update(ShareLink).where(ShareLink.id == link.id)
                   .values(downloads=ShareLink.downloads + 1))


def test_storage_down_costs_no_download(stored: StoredFile,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    link = make_file_link(stored, max_downloads=1)

    def down(self: ObjectStore, bucket: str, key: str, **_: object) -> object:
        raise DependencyUnavailable("storage", "get: ConnectTimeoutError")

    monkeypatch.setattr(ObjectStore, "open_stream", down)
    with pytest.raises(DependencyUnavailable):
        links.download(VISITOR, link.token)
    assert _downloads(link) == 0


def test_a_password_is_kept_only_as_a_slow_hash(admin: Member, stored: StoredFile) -> None:
    owner = Caller.user(admin.tenant_id, admin.user_id, Role.admin)
    created = links.create_for_file(owner, stored.id, 600, password=PASSWORD)
    assert created.password_protected
    with system_session() as db:
        row = db.get_one(ShareLink, created.id)
        stored_hash = row.password_hash
    assert stored_hash is not None and PASSWORD not in stored_hash
    assert stored_hash.startswith("$2b$")  # bcrypt, the accounts' helper
    assert f"$2b${get_settings().BCRYPT_ROUNDS:02d}$" in stored_hash
    assert verify_password(PASSWORD, stored_hash)
    found = links.resolve(VISITOR, created.token)
    assert stored_hash not in repr(found)  # kept out of any repr (logs, Sentry frames)
