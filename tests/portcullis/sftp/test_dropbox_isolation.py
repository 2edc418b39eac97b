"""The drop box's walls: each account's prefix is its own and feeds its own bucket only,
whatever lies elsewhere under ``sftp/`` (a stray object, a tampered row's prefix); a
drop-box upload is an upload like any other to the API's visibility rules; its file name is
the object's sanitised last path segment; directory markers are no uploads; and a drop box
holding more than a run's share is taken in over several runs.

Builds on ``test_dropbox`` (its ``_drop`` puts objects where SFTPGo's S3 filesystem
would); the scans are run here by hand, as there."""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from config import get_settings
from devstack.stack import LocalStack
from portcullis.callers import Caller, Role
from portcullis.clients.object_store import ObjectStore
from portcullis.db import system_session, tenant_session
from portcullis.sftp import service as sftp
from portcullis.sftp.models import SftpAccount
from portcullis.storage import service as storage
from portcullis.storage.models import File, Upload
from tests.portcullis.sftp.test_dropbox import _drop, _exists, _scan, _uploads
from tests.support.factories import make_bucket, make_member, make_session, make_tenant
from tests.support.factories.billing import make_sftp_account
from tests.support.media import png
from tests.support.web import ClientFor

pytestmark = pytest.mark.usefixtures("stack")


@dataclass(frozen=True)
class Box:
    tenant: uuid.UUID
    bucket: uuid.UUID
    account: uuid.UUID

    @property
    def prefix(self) -> str:
        return f"sftp/{self.account.hex}/"


def _box(tenant: uuid.UUID | None = None) -> Box:
    tenant = tenant or make_tenant("Isolation Co")
    bucket = make_bucket(tenant)
    return Box(tenant, bucket, make_sftp_account(tenant, bucket))


def _put(key: str, data: bytes = b"") -> None:
    settings = get_settings()
    ObjectStore.from_settings(settings).client.put_object(
        Bucket=settings.S3_QUARANTINE_BUCKET, Key=key, Body=data)


def _uploads_of_keys(keys: list[str]) -> list[Upload]:
    with system_session() as db:
        rows = list(db.scalars(select(Upload).where(Upload.quarantine_key.in_(keys))))
        db.expunge_all()
        return rows


def _bucket_files(tenant: uuid.UUID, bucket: uuid.UUID) -> list[File]:
    with tenant_session(tenant) as db:
        rows = list(db.scalars(select(File).where(File.bucket_id == bucket)))
        db.expunge_all()
        return rows


@dataclass(frozen=True)
class _Page:
    limit: int = 200
    cursor: str | None = None


def _listed(tenant: uuid.UUID, bucket: uuid.UUID) -> list[str]:
    """File names of ``bucket`` as an admin of ``tenant`` lists them."""
    admin = make_member(tenant, Role.admin)
    caller = Caller.user(tenant, admin.user_id, Role.admin)
    return [f.filename for f in storage.list_files(caller, bucket, _Page()).items]


# --- prefixes ----------------------------------------------------------------------------


def test_many_accounts_get_prefixes_none_of_which_is_a_prefix_of_another(
        stack: LocalStack) -> None:
    tenants = [make_tenant(f"Prefix Co {n}") for n in range(4)]
    made: list[tuple[uuid.UUID, str]] = []
    callers = {}
    for tenant in tenants:
        manager = make_member(tenant, Role.manager)
        callers[tenant] = Caller.user(tenant, manager.user_id, Role.manager)
    for n in range(64):
        tenant = tenants[n % len(tenants)]
        account, _job = sftp.create_account(callers[tenant], make_bucket(tenant), f"box {n}")
        made.append((tenant, account.id))
    with system_session() as db:
        rows = {row.id: (row.key_prefix, row.username) for row in db.scalars(
            select(SftpAccount).where(SftpAccount.id.in_([a for _t, a in made])))}
    assert len(rows) == len(made)
    prefixes = sorted(prefix for prefix, _ in rows.values())
    assert len(set(prefixes)) == len(prefixes)
    assert len({username for _, username in rows.values()}) == len(rows)
    for account_id, (prefix, _) in rows.items():
        assert prefix == f"sftp/{account_id.hex}/"
    # In key order, a prefix of another string is followed at once by one that starts with it.
    for first, second in itertools.pairwise(prefixes):
        assert not second.startswith(first), (first, second)
    # What SFTPGo is given as the jail is that same prefix.
    for tenant, account_id in made[:2]:
        sftp.provision_job(tenant, {"account_id": str(account_id)})
        prefix, username = rows[account_id]
        s3 = stack["sftpgo"].users[username]["filesystem"]["s3config"]
        assert s3["key_prefix"] == prefix
        assert s3["bucket"] == get_settings().S3_QUARANTINE_BUCKET


@pytest.mark.parametrize("same_tenant", [True, False], ids=["same-tenant", "two-tenants"])
def test_an_object_under_one_accounts_prefix_feeds_that_accounts_bucket_only(
        same_tenant: bool) -> None:
    a = _box()
    b = _box(a.tenant if same_tenant else None)
    a_key = _drop(a.account, "for-a.png", png(color=(10, 20, 30)))
    b_key = _drop(b.account, "for-b.png", png(color=(30, 20, 10)))
    sftp.sweep_drop_boxes()
    [from_a] = _uploads(a.tenant, a.account)
    [from_b] = _uploads(b.tenant, b.account)
    assert (from_a.bucket_id, from_a.quarantine_key) == (a.bucket, a_key)
    assert (from_b.bucket_id, from_b.quarantine_key) == (b.bucket, b_key)
    assert [u.id for u in _uploads_of_keys([a_key])] == [from_a.id]
    assert [u.id for u in _uploads_of_keys([b_key])] == [from_b.id]
    assert _scan(from_a)["status"] == "clean"
    assert _scan(from_b)["status"] == "clean"
    assert [f.filename for f in _bucket_files(a.tenant, a.bucket)] == ["for-a.png"]
    assert [f.filename for f in _bucket_files(b.tenant, b.bucket)] == ["for-b.png"]
    assert _listed(a.tenant, a.bucket) == ["for-a.png"]
    assert _listed(b.tenant, b.bucket) == ["for-b.png"]


def test_objects_under_sftp_but_no_accounts_prefix_are_never_taken_in() -> None:
    box = _box()
    hexa = box.account.hex
    stray = [
        "sftp/stray.png",
        f"sftp/{uuid.uuid4().hex}/no-such-account.png",
        f"sftp/{hexa}-evil/near-miss.png",
        f"sftp/{hexa}x/near-miss.png",
        f"sftp/{hexa[:-1]}/short.png",
        f"sftp/{hexa.upper()}/upper.png",
        f"sftp//{hexa}/double-slash.png",
        f"sftp{hexa}/no-slash.png",
        f"{hexa}/outside.png",
    ]
    for key in stray:
        _put(key, png())
    own = _drop(box.account, "own.png", png())
    sftp.sweep_drop_boxes()
    sftp.sweep_drop_boxes()
    assert [u.quarantine_key for u in _uploads(box.tenant, box.account)] == [own]
    assert _uploads_of_keys(stray) == []
    assert all(_exists(key) for key in stray)  # not ours to touch either


@pytest.mark.parametrize("tampered", ["sftp/", "", "sftp/{other}", "sftp/{other}/inner/",
                                      "sftp/{own}", "sftp/{own}/../{other}/"])
def test_a_tampered_key_prefix_is_refused_by_the_sweep(
        tampered: str, caplog: pytest.LogCaptureFixture) -> None:
    rogue = _box()
    other = _box()  # another tenant's account
    prefix = tampered.format(other=other.account.hex, own=rogue.account.hex)
    other_key = _drop(other.account, "theirs.png", png())
    own_key = _drop(rogue.account, "own.png", png())
    loose = f"sftp/loose-{uuid.uuid4().hex}.png"
    _put(loose, png())
    with tenant_session(rogue.tenant) as db:
        db.execute(update(SftpAccount).where(SftpAccount.id == rogue.account)
                   .values(key_prefix=prefix))
    try:
        with caplog.at_level(logging.ERROR, logger="portcullis.sftp.dropbox"):
            sftp.sweep_drop_boxes()
        assert _uploads(rogue.tenant, rogue.account) == []
        # The other account is swept as usual, into its own bucket only.
        [theirs] = _uploads(other.tenant, other.account)
        assert (theirs.bucket_id, theirs.quarantine_key) == (other.bucket, other_key)
        assert _uploads_of_keys([loose, own_key]) == []
        assert _exists(loose) and _exists(own_key)
        assert str(rogue.account) in caplog.text
    finally:
        with tenant_session(rogue.tenant) as db:
            db.execute(update(SftpAccount).where(SftpAccount.id == rogue.account)
                       .values(key_prefix=rogue.prefix))


# --- visibility --------------------------------------------------------------------------


def test_a_drop_box_upload_is_visible_to_its_tenants_admin_only(client_for: ClientFor) -> None:
    box = _box()
    _drop(box.account, "seen.png", png())
    sftp.sweep_drop_boxes()
    [upload] = _uploads(box.tenant, box.account)
    path = f"/api/v1/uploads/{upload.id}"

    def get(client: FlaskClient) -> tuple[int, dict[str, object]]:
        response = client.get(path)
        return response.status_code, response.get_json(force=True, silent=True) or {}

    admin = client_for(make_session(make_member(box.tenant, Role.admin)))
    status, body = get(admin)
    assert status == 200, body
    assert body["id"] == str(upload.id)
    assert body["status"] in ("pending", "scanning", "clean")
    outsider = client_for(make_session(make_member(make_tenant("Outsider Co"), Role.admin)))
    status, body = get(outsider)
    assert status == 404, body
    assert str(upload.id) not in str(body)
    # Only the uploader (here the account, no member) and admins see an upload.
    manager = client_for(make_session(make_member(box.tenant, Role.manager)))
    assert get(manager)[0] == 404

    assert _scan(upload)["status"] == "clean"
    status, body = get(admin)
    assert (status, body["status"]) == (200, "clean")
    assert body["file_id"] is not None
    assert get(outsider)[0] == 404


# --- names -------------------------------------------------------------------------------


NAMES = [
    ("a/b/c.png", "c.png"),
    ("deep/er/still/deeper/x.png", "x.png"),
    ("fóto ñandú 写真.png", "fóto ñandú 写真.png"),
    ("cafe\u0301.png", "caf\u00e9.png"),  # NFC
    ("  holiday photo  .png", "holiday photo  .png"),
    ("holiday photo.png  ", "holiday photo.png"),
    (".hidden.png", "hidden.png"),
    ("... . .dots.png", "dots.png"),
    ("../../etc/escape.png", "escape.png"),
    ("dir\\windows.png", "windows.png"),
    # (moto's server cannot take a key with a line feed; every other control character)
    ("bell\x07tab\tcr\resc\x1bdel\x7fnel\x85.png", "belltabcrescdelnel.png"),
    ("rtl\u202egnp.exe.png", "rtlgnp.exe.png"),
    ("zero\u200bwidth.png", "zerowidth.png"),
]


def test_a_dropped_objects_file_name_is_its_sanitised_last_segment() -> None:
    box = _box()
    keys = {_drop(box.account, path, png(color=(n, n, n))): expected
            for n, (path, expected) in enumerate(NAMES)}
    sftp.sweep_drop_boxes()
    uploads = _uploads(box.tenant, box.account)
    assert {u.quarantine_key: u.filename for u in uploads} == keys
    for upload in uploads:
        assert _scan(upload)["status"] == "clean", upload.filename
    assert sorted(_listed(box.tenant, box.bucket)) == sorted(keys.values())
    assert not any(_exists(key) for key in keys)


@pytest.mark.parametrize("path", ["..", "...", "sub/..", " . ", "\x01\x02", "dir/.png"])
def test_a_name_with_nothing_left_or_no_extension_is_refused_as_unsupported(path: str) -> None:
    box = _box()
    key = _drop(box.account, path, png())
    sftp.sweep_drop_boxes()
    [upload] = _uploads(box.tenant, box.account)
    assert upload.quarantine_key == key
    assert (upload.status, upload.reason) == ("rejected", "unsupported_type")
    assert upload.filename and "/" not in upload.filename and ".." not in upload.filename
    assert not _exists(key)


# --- directory markers and the per-run bound ------------------------------------------------


def test_a_directory_marker_is_not_an_upload_and_stays() -> None:
    box = _box()
    marker = f"{box.prefix}photos/"
    _put(marker)
    inside = _drop(box.account, "photos/inside.png", png())
    sftp.sweep_drop_boxes()
    sftp.sweep_drop_boxes()
    assert [u.quarantine_key for u in _uploads(box.tenant, box.account)] == [inside]
    assert _uploads_of_keys([marker]) == []
    assert _exists(marker)


def test_directory_markers_do_not_use_up_a_runs_share() -> None:
    """Empty folders an SFTP client made (SFTPGo writes a marker object per folder) are no
    uploads, so they must not take the places of files in a run: else a client with as many
    empty folders as a run's share, sorted before its files, never has a file taken in."""
    box = _box()
    for name in ("a-empty/", "b-empty/", "c-empty/", "d-empty/"):
        _put(box.prefix + name)
    key = _drop(box.account, "z-photo.png", png())
    for _ in range(3):
        sftp.sweep_drop_boxes(per_account=3)
    assert [u.quarantine_key for u in _uploads(box.tenant, box.account)] == [key]


def test_more_than_a_runs_share_is_taken_in_over_several_runs() -> None:
    box = _box()
    keys = [_drop(box.account, f"batch/{n:02d}.png", png(color=(n, 0, 0))) for n in range(8)]
    runs = 0
    while len(_uploads(box.tenant, box.account)) < len(keys):
        runs += 1
        assert runs <= 5, f"{len(_uploads(box.tenant, box.account))} of {len(keys)} taken in"
        before = {u.id for u in _uploads(box.tenant, box.account)}
        sftp.sweep_drop_boxes(per_account=3)
        new = [u for u in _uploads(box.tenant, box.account) if u.id not in before]
        assert 1 <= len(new) <= 3
        for upload in new:
            assert _scan(upload)["status"] == "clean"
    assert runs == 3
    uploads = _uploads(box.tenant, box.account)
    assert sorted(u.quarantine_key for u in uploads) == keys
    assert sorted(_listed(box.tenant, box.bucket)) == [f"{n:02d}.png" for n in range(8)]
    assert not any(_exists(key) for key in keys)
    sftp.sweep_drop_boxes(per_account=3)
    assert len(_uploads(box.tenant, box.account)) == len(keys)


def test_a_leftover_with_a_verdict_is_removed_by_the_next_sweep_not_taken_again() -> None:
    """A version whose verdict is in but whose removal failed is removed by a later sweep,
    and no second upload is made of it."""
    box = _box()
    key = _drop(box.account, "left.png", png())
    sftp.sweep_drop_boxes()
    [upload] = _uploads(box.tenant, box.account)
    with tenant_session(box.tenant) as db:  # the verdict, as if the removal had failed
        db.execute(update(Upload).where(Upload.id == upload.id)
                   .values(status="rejected", reason="corrupt"))
    sftp.sweep_drop_boxes()
    assert not _exists(key)
    assert [u.id for u in _uploads(box.tenant, box.account)] == [upload.id]


def test_an_object_whose_name_the_database_cannot_hold_does_not_block_the_drop_box() -> None:
    """An SFTP client controls the names it writes: one the uploads table cannot store (a
    NUL character, which S3 keys may hold and PostgreSQL text may not) must not stop the
    sweep, nor keep the account's other objects from being taken in."""
    box = _box()
    poison = _drop(box.account, "nul\x00name.png", png())
    fine = _drop(box.account, "fine.png", png())
    try:
        sftp.sweep_drop_boxes()
        assert fine in [u.quarantine_key for u in _uploads(box.tenant, box.account)]
    finally:  # else every later sweep of the session meets it too
        settings = get_settings()
        ObjectStore.from_settings(settings).delete(settings.S3_QUARANTINE_BUCKET, poison)
