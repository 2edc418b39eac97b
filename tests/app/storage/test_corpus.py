"""The upload corpus end to end (intake → quarantine → real clamd, libmagic and decoders):
each sample with the verdict API.md promises, what an infected upload leaves behind (nothing
but an audit event and an alert), clean files of every allowed kind, the size limit and
hostile filenames."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import func, select

from config import get_settings
from devstack.clamd import EICAR, EICAR_SIGNATURE, MARKER_SIGNATURE
from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session
from portcullis.storage.models import File, Upload
from tests.support import media
from tests.support.factories import LoggedIn, make_bucket, make_member, make_session, make_tenant

pytestmark = pytest.mark.usefixtures("worker")


@dataclass(frozen=True)
class Sample:
    filename: str
    declared: str
    data: bytes
    status: str
    reasons: tuple[str, ...]


def _hostile() -> dict[str, Sample]:
    return {
        "eicar-in-png": Sample("photo.png", "image/png", EICAR, "infected", ("malware",)),
        "marker-in-png-text-chunk": Sample("holiday.png", "image/png", media.marker_png(),
                                           "infected", ("malware",)),
        "eicar-after-valid-wav": Sample("song.wav", "audio/wav", media.wav() + EICAR,
                                        "infected", ("malware",)),
        "html-named-png": Sample("page.png", "image/png", media.HTML, "rejected",
                                 ("type_mismatch",)),
        "svg-named-png": Sample("logo.png", "image/png", media.SVG_WITH_SCRIPT, "rejected",
                                ("type_mismatch",)),
        "png-named-mp3": Sample("track.mp3", "audio/mpeg", media.png(), "rejected",
                                ("type_mismatch",)),
        "png-declared-jpeg": Sample("pic.png", "image/jpeg", media.png(), "rejected",
                                    ("type_mismatch",)),
        "gif-javascript-polyglot": Sample("anim.gif", "image/gif", media.gif_js_polyglot(),
                                          "rejected", ("type_mismatch", "corrupt")),
        "gif-with-script-after-trailer": Sample("anim2.gif", "image/gif",
                                                media.gif_with_script(), "rejected",
                                                ("type_mismatch", "corrupt")),
        "png-with-script-and-second-iend": Sample(
            "pic2.png", "image/png", media.png_with_script_and_second_iend(), "rejected",
            ("type_mismatch", "corrupt")),
        "truncated-png": Sample("cut.png", "image/png", media.truncated_png(), "rejected",
                                ("corrupt",)),
        "decompression-bomb-png": Sample("huge.png", "image/png", media.bomb_png(),
                                         "rejected", ("corrupt",)),
        "empty-png": Sample("empty.png", "image/png", b"", "rejected", ("empty",)),
        **_container_polyglots(),
    }


def _container_polyglots() -> dict[str, Sample]:
    """WebP and audio files with HTML and a ZIP after their container's end, and RIFF files
    whose declared size is not the file's: all ``corrupt``."""
    clean = {"webp": ("image/webp", media.webp()), "wav": ("audio/wav", media.wav()),
             "flac": ("audio/flac", media.fixture("clean.flac")),
             "ogg": ("audio/ogg", media.fixture("clean.ogg")),
             "mp3": ("audio/mpeg", media.fixture("clean.mp3")),
             "m4a": ("audio/mp4", media.fixture("clean.m4a"))}
    samples = {f"{ext}-with-html-and-zip": Sample(f"poly.{ext}", declared,
                                                  media.with_html_and_zip(data), "rejected",
                                                  ("corrupt",))
               for ext, (declared, data) in clean.items()}
    for ext in ("webp", "wav"):
        declared, data = clean[ext]
        for label, delta in (("larger", 64), ("smaller", -2)):
            samples[f"{ext}-riff-size-{label}-than-file"] = Sample(
                f"size.{ext}", declared, media.riff_size_off(data, delta), "rejected",
                ("corrupt",))
    samples["flac-with-crc-fixed-trailer"] = Sample(
        "crc.flac", "audio/flac", media.flac_with_crc_fixed_trailer(), "rejected", ("corrupt",))
    return samples


HOSTILE = _hostile()


@dataclass
class Uploaded:
    who: LoggedIn
    bucket: str
    samples: dict[str, Sample]
    upload_ids: dict[str, str]
    verdicts: dict[str, dict]
    rows: dict[str, media.UploadRow]


def _admin_with_bucket(app: Flask) -> tuple[LoggedIn, str]:
    admin = make_session(make_member(make_tenant("Corpus"), Role.admin))
    return admin, str(make_bucket(admin))


def _upload_all(app: Flask, samples: dict[str, Sample]) -> Uploaded:
    """Send every sample at once (the worker scans them in parallel), then read verdicts."""
    admin, bucket = _admin_with_bucket(app)
    client, headers = media.session_client(app, admin)
    ids: dict[str, str] = {}
    for name, sample in samples.items():
        response = media.post_upload(client, headers, bucket, sample.filename, sample.declared,
                                     sample.data)
        assert response.status_code == 202, (name, response.get_json())
        body = response.get_json()
        assert body["status"] == "pending" and body["job_id"], body
        ids[name] = body["id"]
    rows = media.wait_uploads(ids.values(), timeout=120)
    verdicts = {}
    for name, upload_id in ids.items():
        response = client.get(f"/api/v1/uploads/{upload_id}")
        assert response.status_code == 200, response.get_json()
        verdicts[name] = response.get_json()
    return Uploaded(admin, bucket, samples, ids, verdicts,
                    {name: rows[upload_id] for name, upload_id in ids.items()})


@pytest.fixture(scope="module")
def hostile(app: Flask, worker: object) -> Uploaded:
    return _upload_all(app, HOSTILE)


@pytest.fixture(scope="module")
def clean(app: Flask, worker: object) -> Uploaded:
    samples = {name: Sample(name, declared, data, "clean", ())
               for name, declared, data in media.clean_samples()}
    return _upload_all(app, samples)


def _store():  # -> portcullis.clients.object_store.ObjectStore
    from portcullis.clients.object_store import ObjectStore

    return ObjectStore.from_settings(get_settings())


def _files_of_upload(upload_id: str) -> int:
    with system_session() as db:
        return int(db.scalar(select(func.count()).select_from(File)
                             .where(File.upload_id == uuid.UUID(upload_id))) or 0)


# -- hostile samples -------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_sample_gets_its_verdict(hostile: Uploaded, name: str) -> None:
    sample, verdict = hostile.samples[name], hostile.verdicts[name]
    assert verdict["id"] == hostile.upload_ids[name]
    assert verdict["status"] == sample.status, verdict
    assert verdict["reason"] in sample.reasons, verdict
    assert verdict["file_id"] is None
    upload_id = hostile.upload_ids[name]
    assert _files_of_upload(upload_id) == 0  # nothing becomes a file unless clean
    settings = get_settings()
    assert _store().head(settings.S3_QUARANTINE_BUCKET,
                         hostile.rows[name].quarantine_key) is None  # quarantine emptied


def test_no_hostile_sample_is_listed(app: Flask, hostile: Uploaded) -> None:
    client, _ = media.session_client(app, hostile.who)
    listed = client.get(f"/api/v1/buckets/{hostile.bucket}/files")
    assert listed.status_code == 200
    assert listed.get_json()["items"] == []


@pytest.mark.parametrize(("name", "signature"), [("eicar-in-png", EICAR_SIGNATURE),
                                                 ("marker-in-png-text-chunk", MARKER_SIGNATURE)])
def test_infected_upload_is_audited_critical_and_alerted(stack: LocalStack, hostile: Uploaded,
                                                         name: str, signature: str) -> None:
    upload_id = hostile.upload_ids[name]
    tenant_id = hostile.who.member.tenant_id
    with system_session() as db:
        events = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.target_id == upload_id)).all()
        assert db.get(Upload, uuid.UUID(upload_id)).file_id is None  # type: ignore[union-attr]
    actions = {e.action: e for e in events}
    assert "upload.infected" in actions and "upload.clean" not in actions, list(actions)
    infected = actions["upload.infected"]
    assert infected.severity == "critical"
    assert infected.details["reason"] == "malware"
    # The signature name is the only forensic record (the object is deleted): it must reach
    # the audit event in clear, under whatever key.
    assert signature in infected.details.values(), infected.details
    assert infected.actor_type == "user" and infected.actor_id == str(hostile.who.member.user_id)

    siem = stack["siem"]
    alert = siem.wait_for(lambda d: isinstance(d.body, dict)
                          and d.body.get("type") == "alert.malware_detected"
                          and d.body.get("details", {}).get("upload_id") == upload_id,
                          timeout=60)
    assert alert.verified
    assert alert.body["tenant_id"] == str(tenant_id)
    assert alert.body["severity"] == "critical"
    assert signature in alert.raw.decode()
    assert alert.body["details"]["bucket_id"] == hostile.bucket


def test_rejected_uploads_are_audited_with_their_reason(hostile: Uploaded) -> None:
    tenant_id = hostile.who.member.tenant_id
    with system_session() as db:
        events = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.action == "upload.rejected")).all()
    by_upload = {e.target_id: e for e in events}
    for name, upload_id in hostile.upload_ids.items():
        if hostile.verdicts[name]["status"] == "rejected":
            event = by_upload[upload_id]
            assert event.severity == "warning"
            assert event.details["reason"] == hostile.verdicts[name]["reason"]


# -- refused at once -------------------------------------------------------------------------

@pytest.mark.parametrize(("filename", "declared", "data"), [
    ("drawing.svg", "image/svg+xml", media.SVG_WITH_SCRIPT),
    ("drawing.png", "image/svg+xml", media.SVG_WITH_SCRIPT),
    ("drawing.svg", "image/png", media.SVG_WITH_SCRIPT),
    ("page.html", "text/html", media.HTML),
    ("page.png", "text/html", media.HTML),
    ("page.htm", "image/png", media.HTML),
    ("run.exe", "application/octet-stream", b"MZ\x90\x00"),
    ("noextension", "image/png", media.png()),
], ids=["svg", "svg-declared-as-png-ext", "svg-ext-declared-png", "html", "html-declared",
        "htm-ext", "exe", "no-extension"])
def test_type_outside_the_allow_list_is_refused_at_once(app: Flask, filename: str,
                                                        declared: str, data: bytes) -> None:
    admin, bucket = _admin_with_bucket(app)
    client, headers = media.session_client(app, admin)
    response = media.post_upload(client, headers, bucket, filename, declared, data)
    assert response.status_code == 415, response.get_json()
    assert response.get_json()["code"] == "unsupported_type"
    assert response.mimetype == "application/problem+json"
    with system_session() as db:
        assert db.scalar(select(func.count()).select_from(Upload).where(
            Upload.bucket_id == uuid.UUID(bucket))) == 0


# -- clean files -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(media.CANONICAL))
def test_clean_sample_becomes_a_file(app: Flask, clean: Uploaded, name: str) -> None:
    verdict = clean.verdicts[name]
    assert verdict["status"] == "clean" and verdict["reason"] is None, verdict
    assert verdict["file_id"]
    client, _ = media.session_client(app, clean.who)
    listed = client.get(f"/api/v1/buckets/{clean.bucket}/files?limit=200").get_json()["items"]
    entry = next(f for f in listed if f["id"] == verdict["file_id"])
    data = clean.samples[name].data
    assert entry["filename"] == name
    assert entry["size"] == len(data)
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["content_type"] == media.CANONICAL[name]
    settings = get_settings()
    row = media.file_row(verdict["file_id"])
    assert row is not None
    assert name not in row.storage_key and clean.bucket not in row.storage_key
    stored = _store().head(settings.S3_BUCKET, row.storage_key)
    assert stored is not None and stored["ContentLength"] == len(data)
    assert _store().head(settings.S3_QUARANTINE_BUCKET, clean.rows[name].quarantine_key) is None


# Real-world variations the end-of-container checks must still let through.
VARIATIONS = {
    "wav-odd-chunk-with-pad-byte": Sample("odd.wav", "audio/wav", media.wav_with_odd_chunk(),
                                          "clean", ()),
    "wav-odd-last-chunk-unpadded": Sample("odd2.wav", "audio/wav", media.wav_odd_data(),
                                          "clean", ()),
    "mp3-with-id3v1": Sample("tagged.mp3", "audio/mpeg", media.mp3_with_id3v1(), "clean", ()),
    "mp3-with-apev2-and-id3v1": Sample("tagged2.mp3", "audio/mpeg",
                                       media.fixture("clean.mp3") + media.apev2()
                                       + media.id3v1(), "clean", ()),
}


@pytest.fixture(scope="module")
def variations(app: Flask, worker: object) -> Uploaded:
    return _upload_all(app, VARIATIONS)


@pytest.mark.parametrize("name", list(VARIATIONS))
def test_real_world_variation_is_clean(variations: Uploaded, name: str) -> None:
    verdict = variations.verdicts[name]
    assert verdict["status"] == "clean" and verdict["reason"] is None, verdict
    assert verdict["file_id"]


def test_clean_files_are_all_listed_once(app: Flask, clean: Uploaded) -> None:
    client, _ = media.session_client(app, clean.who)
    listed = client.get(f"/api/v1/buckets/{clean.bucket}/files?limit=200").get_json()["items"]
    assert sorted(f["filename"] for f in listed) == sorted(media.CANONICAL)
    bucket = next(b for b in client.get("/api/v1/buckets").get_json()["items"]
                  if b["id"] == clean.bucket)
    assert bucket["objects"] == len(media.CANONICAL)
    assert bucket["bytes"] == sum(len(s.data) for s in clean.samples.values())


# -- size limit ------------------------------------------------------------------------------

@pytest.fixture
def small_limit_app(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[Flask, bytes]]:
    """An app whose UPLOAD_MAX_BYTES is exactly the size of a small PNG."""
    data = media.png(color=(1, 2, 3))
    monkeypatch.setenv("UPLOAD_MAX_BYTES", str(len(data)))
    get_settings.cache_clear()
    try:
        from app import create_app

        yield create_app(), data
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.mark.usefixtures("worker")
def test_upload_size_limit(small_limit_app: tuple[Flask, bytes]) -> None:
    app, data = small_limit_app
    limit = get_settings().UPLOAD_MAX_BYTES
    assert limit == len(data)
    admin, bucket = _admin_with_bucket(app)
    client, headers = media.session_client(app, admin)

    over = media.post_upload(client, headers, bucket, "over.png", "image/png", data + b"\x00")
    assert over.status_code == 413, over.get_json()
    assert over.get_json()["code"] == "payload_too_large"
    way_over = media.post_upload(client, headers, bucket, "big.png", "image/png",
                                 data + b"\x00" * (256 * 1024))
    assert way_over.status_code == 413
    with system_session() as db:
        assert db.scalar(select(func.count()).select_from(Upload).where(
            Upload.bucket_id == uuid.UUID(bucket))) == 0

    at_limit = media.post_upload(client, headers, bucket, "exact.png", "image/png", data)
    assert at_limit.status_code == 202, at_limit.get_json()
    row = media.wait_uploads([at_limit.get_json()["id"]])[at_limit.get_json()["id"]]
    assert row.status == "clean"


# -- filenames -------------------------------------------------------------------------------

FILENAMES = [
    ("../../../etc/passwd.png", "passwd.png"),
    ("..\\..\\windows\\boot.png", "boot.png"),
    ("/abs/path/x.png", "x.png"),
    ("nul\x00byte.png", "nulbyte.png"),
    ("crlf\r\nX-Injected: yes.png", "crlfX-Injected: yes.png"),
    ("invoice\u202egnp.exe.png", "invoicegnp.exe.png"),
    ("iso\u2066late\u2069d.png", "isolated.png"),
    ("...hidden.png", "hidden.png"),
    ("caf\u0065\u0301.png", "caf\u00e9.png"),  # NFC
]


def test_hostile_filenames_are_stored_sanitised(app: Flask) -> None:
    admin, bucket = _admin_with_bucket(app)
    client, headers = media.session_client(app, admin)
    ids = {}
    for n, (raw, expected) in enumerate(FILENAMES):
        response = media.post_upload(client, headers, bucket, raw, "image/png",
                                     media.png(color=(n, n, n)))
        assert response.status_code == 202, (raw, response.get_json())
        ids[response.get_json()["id"]] = expected
    rows = media.wait_uploads(ids)
    assert {r.status for r in rows.values()} == {"clean"}, rows
    listed = client.get(f"/api/v1/buckets/{bucket}/files?limit=200").get_json()["items"]
    by_file = {f["id"]: f["filename"] for f in listed}
    for upload_id, expected in ids.items():
        assert by_file[str(rows[upload_id].file_id)] == expected
    for name in by_file.values():
        assert not any(c in name for c in "/\\\x00\r\n\u202e\u2066\u2069")
