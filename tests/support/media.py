"""Sample files for the upload tests (built here, nothing downloaded), and helpers to upload
them through the API and wait for the scan worker's verdicts."""

from __future__ import annotations

import io
import random
import struct
import time
import uuid
import wave
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, PngImagePlugin
from sqlalchemy import select
from werkzeug.test import TestResponse

from devstack.clamd import EICAR, MARKER
from portcullis.db import system_session
from portcullis.storage.models import File, Upload
from tests.support.factories import LoggedIn
from tests.support.web import LOCALHOST, csrf_headers, make_client

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "media"
TERMINAL = ("clean", "rejected", "infected")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- images ----------------------------------------------------------------------------------

def _saved(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png(size: tuple[int, int] = (16, 16), color: tuple[int, int, int] = (200, 10, 10),
        text: dict[str, str] | None = None) -> bytes:
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)  # tEXt: stored as is, not compressed
    return _saved(Image.new("RGB", size, color), "PNG", pnginfo=info)


def noisy_png(size: tuple[int, int] = (96, 96), seed: int = 7) -> bytes:
    """Random pixels, so the image data is large and does not compress away."""
    rng = random.Random(seed)
    return _saved(Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3)), "PNG")


def jpeg(size: tuple[int, int] = (16, 16)) -> bytes:
    return _saved(Image.new("RGB", size, (10, 120, 200)), "JPEG", quality=85)


def gif(size: tuple[int, int] = (8, 8)) -> bytes:
    return _saved(Image.new("P", size, 3), "GIF")


def webp(size: tuple[int, int] = (16, 16)) -> bytes:
    return _saved(Image.new("RGB", size, (20, 200, 20)), "WEBP", quality=80)


def wav(seconds: float = 0.25, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = int(seconds * rate)
        out.writeframes(b"".join(struct.pack("<h", (i % 40 - 20) * 800) for i in range(frames)))
    return buffer.getvalue()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


# -- hostile samples -------------------------------------------------------------------------

def eicar_png() -> bytes:
    """The EICAR test string, named and declared as a PNG."""
    return EICAR


def marker_png() -> bytes:
    """A valid PNG carrying the project's test-malware marker in a tEXt chunk."""
    data = png(text={"Comment": MARKER.decode()})
    assert MARKER in data
    return data


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A 1-bit greyscale PNG of width x height pixels (400 Mpx by default) whose zeroed rows
    compress to some tens of KB: a decompression bomb."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none" + the packed pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def truncated_png() -> bytes:
    data = noisy_png()
    return data[: len(data) // 2]


def gif_js_polyglot() -> bytes:
    """``GIF89a/*<a valid GIF>*/=alert(document.domain);``: a real GIF that is also valid
    JavaScript. Width 10799 is 0x2A2F, written little-endian as ``/*``."""
    image = gif((10799, 1)).replace(b"GIF87a", b"GIF89a", 1)
    assert image.startswith(b"GIF89a/*") and b"*/" not in image
    return image + b"*/=alert(document.domain);"


def gif_with_script() -> bytes:
    """A valid GIF with an HTML script appended after its trailer."""
    return gif() + b"<script>alert(document.domain)</script>"


def png_with_script_and_second_iend() -> bytes:
    """A valid PNG, then a script, then another IEND chunk so the file still *ends* like a
    PNG."""
    return png() + b"<script>alert(document.domain)</script>" + png_chunk(b"IEND", b"")


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"
SVG_WITH_SCRIPT = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
                   b'width="10" height="10"><script>alert(document.cookie)</script>'
                   b'<rect width="10" height="10"/></svg>\n')

# -- container polyglots and variants (WebP, WAV, FLAC, Ogg, MP3, M4A) ------------------------

def zip_archive() -> bytes:
    """A small ZIP holding an HTML page: appended to a file, it makes a file/ZIP polyglot
    (ZIP readers look for the archive at the end)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("index.html", HTML)
    return buffer.getvalue()


def with_html_and_zip(data: bytes) -> bytes:
    """``data`` (a valid file) with an HTML page and a ZIP appended after its end."""
    return data + HTML + zip_archive()


def riff_size_off(data: bytes, delta: int) -> bytes:
    """A RIFF file (WAV, WebP) whose declared RIFF size is off by ``delta`` bytes."""
    size = int.from_bytes(data[4:8], "little") + delta
    return data[:4] + struct.pack("<I", size) + data[8:]


def riff_chunk(kind: bytes, payload: bytes) -> bytes:
    """A RIFF chunk, with the zero pad byte an odd size is followed by."""
    return kind + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1)


def wav_with_odd_chunk() -> bytes:
    """A WAV with an odd-sized LIST/INFO chunk (and its pad byte) before the data chunk, as
    tagging tools write them."""
    data = wav()
    fmt_end = 12 + 8 + int.from_bytes(data[16:20], "little")
    info = riff_chunk(b"LIST", b"INFO" + b"ISFT" + struct.pack("<I", 11) + b"Portcullis\x00")
    assert len(info) % 2 == 0 and int.from_bytes(info[4:8], "little") % 2 == 1
    body = data[12:fmt_end] + info + data[fmt_end:]
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def wav_odd_data(frames: int = 801) -> bytes:
    """An 8-bit mono WAV with an odd number of samples: ``wave`` leaves out the data
    chunk's pad byte, so the file ends with the odd-sized chunk."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(bytes(128 + (i % 40 - 20) * 4 for i in range(frames)))
    return buffer.getvalue()


def id3v1(title: bytes = b"Portcullis") -> bytes:
    """A 128-byte ID3v1.1 tag, as appended to the end of MP3 files."""
    return (b"TAG" + title.ljust(30, b"\x00") + b"Artist".ljust(30, b"\x00")
            + b"Album".ljust(30, b"\x00") + b"2024" + b"\x00" * 29 + b"\x01" + b"\x0c")


def apev2(items: dict[bytes, bytes] | None = None) -> bytes:
    """An APEv2 tag with header and footer, as some tools append to MP3 files."""
    items = items or {b"Title": b"Portcullis"}
    body = b"".join(struct.pack("<II", len(value), 0) + key + b"\x00" + value
                    for key, value in items.items())

    def frame(flags: int) -> bytes:
        return (b"APETAGEX" + struct.pack("<IIII", 2000, len(body) + 32, len(items), flags)
                + b"\x00" * 8)

    return frame(0xA0000000) + body + frame(0x80000000)


def mp3_with_id3v1() -> bytes:
    return fixture("clean.mp3") + id3v1()


def flac_crc16(data: bytes) -> int:
    """FLAC's frame CRC-16 (polynomial 0x8005, no reflection), bit by bit."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def flac_with_crc_fixed_trailer() -> bytes:
    """A FLAC with HTML appended and two bytes that keep the last frame's CRC-16 valid over
    the whole tail (the CRC over a frame and its own CRC is 0, so the fix-up is the CRC of
    the payload): a check that trusted the CRC alone would take the HTML for frame data."""
    return fixture("clean.flac") + HTML + struct.pack(">H", flac_crc16(HTML))


# (filename, declared type, bytes) for every clean kind the allow-list takes.
def clean_samples() -> list[tuple[str, str, bytes]]:
    return [
        ("clean.png", "image/png", png()),
        ("clean.jpg", "image/jpeg", jpeg()),
        ("clean.gif", "image/gif", gif()),
        ("clean.webp", "image/webp", webp()),
        ("clean.mp3", "audio/mpeg", fixture("clean.mp3")),
        ("clean.wav", "audio/wav", wav()),
        ("clean.ogg", "audio/ogg", fixture("clean.ogg")),
        ("clean.flac", "audio/flac", fixture("clean.flac")),
        ("clean.m4a", "audio/mp4", fixture("clean.m4a")),
    ]


CANONICAL = {"clean.png": "image/png", "clean.jpg": "image/jpeg", "clean.gif": "image/gif",
             "clean.webp": "image/webp", "clean.mp3": "audio/mpeg", "clean.wav": "audio/wav",
             "clean.ogg": "audio/ogg", "clean.flac": "audio/flac", "clean.m4a": "audio/mp4"}


# -- HTTP helpers ----------------------------------------------------------------------------

def multipart(filename: str, content_type: str, data: bytes,
              field: str = "file") -> tuple[bytes, str]:
    """A multipart/form-data body built by hand, so any filename (NUL, CR/LF, bidi) can be
    sent: plain names as ``filename="..."``, others as RFC 5987 ``filename*``."""
    boundary = f"portcullis-{uuid.uuid4().hex}"
    simple = all(c.isascii() and c.isprintable() and c not in '"\\' for c in filename)
    disposition = (f'filename="{filename}"' if simple
                   else f"filename*=UTF-8''{quote(filename, safe='')}")
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"{disposition}\r\nContent-Type: {content_type}\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def session_client(app: Flask, who: LoggedIn) -> tuple[FlaskClient, dict[str, str]]:
    """A client with the member's cookies, and the headers an unsafe request needs."""
    return make_client(app, who, ip=LOCALHOST), csrf_headers(who)


def key_client(app: Flask, key: str) -> tuple[FlaskClient, dict[str, str]]:
    return make_client(app, ip=LOCALHOST), {"Authorization": f"Bearer {key}"}


def post_upload(client: FlaskClient, headers: dict[str, str], bucket_id: str, filename: str,
                content_type: str, data: bytes) -> TestResponse:
    body, mimetype = multipart(filename, content_type, data)
    return client.post(f"/api/v1/buckets/{bucket_id}/uploads", data=body,
                       content_type=mimetype, headers=headers)


def create_bucket(client: FlaskClient, headers: dict[str, str], prefix: str = "b") -> str:
    response = client.post("/api/v1/buckets", json={"name": f"{prefix}-{uuid.uuid4().hex[:10]}"},
                           headers=headers)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


@dataclass(frozen=True)
class UploadRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    status: str
    reason: str | None
    file_id: uuid.UUID | None
    quarantine_key: str
    file_key: str | None
    job_id: uuid.UUID | None


def upload_row(upload_id: str | uuid.UUID) -> UploadRow:
    with system_session() as db:
        row = db.get(Upload, uuid.UUID(str(upload_id)))
        assert row is not None, f"no upload {upload_id}"
        return UploadRow(row.id, row.tenant_id, row.status, row.reason, row.file_id,
                         row.quarantine_key, row.file_key, row.job_id)


def wait_uploads(upload_ids: Iterable[str], timeout: float = 90) -> dict[str, UploadRow]:
    """Poll the database (not the rate-limited API) until every upload has a verdict."""
    pending = {str(u) for u in upload_ids}
    done: dict[str, UploadRow] = {}
    deadline = time.monotonic() + timeout
    while pending:
        with system_session() as db:
            rows = db.scalars(select(Upload).where(
                Upload.id.in_([uuid.UUID(u) for u in pending]))).all()
            for row in rows:
                if row.status in TERMINAL:
                    done[str(row.id)] = UploadRow(
                        row.id, row.tenant_id, row.status, row.reason, row.file_id,
                        row.quarantine_key, row.file_key, row.job_id)
        pending -= set(done)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"uploads without a verdict after {timeout}s: {pending}")
        time.sleep(0.2)
    return done


def upload_and_wait(client: FlaskClient, headers: dict[str, str], bucket_id: str,
                    filename: str, content_type: str, data: bytes) -> dict[str, Any]:
    """Upload, wait for the verdict, answer GET /api/v1/uploads/{id}'s body."""
    response = post_upload(client, headers, bucket_id, filename, content_type, data)
    assert response.status_code == 202, response.get_json()
    upload_id = response.get_json()["id"]
    wait_uploads([upload_id])
    verdict = client.get(f"/api/v1/uploads/{upload_id}", headers=headers)
    assert verdict.status_code == 200, verdict.get_json()
    return dict(verdict.get_json())


def clean_files(client: FlaskClient, headers: dict[str, str], bucket_id: str,
                count: int) -> list[str]:
    """``count`` distinct clean PNGs in the bucket, uploaded at once; their file ids."""
    ids = []
    for n in range(count):
        response = post_upload(client, headers, bucket_id, f"f{n}.png", "image/png",
                               png(color=(n % 256, 40, 90)))
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    rows = wait_uploads(ids)
    assert all(rows[u].status == "clean" for u in ids), rows
    return [str(rows[u].file_id) for u in ids]


def file_row(file_id: str | uuid.UUID) -> File | None:
    with system_session() as db:
        row = db.get(File, uuid.UUID(str(file_id)))
        if row is not None:
            db.expunge(row)
        return row
