"""Malformed multipart bodies on POST /buckets/{id}/uploads: a 400 problem, never a 500.

Each shape is refused before anything is stored: no upload row is written for the bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from portcullis.accounts.models import Role
from portcullis.db import system_session
from portcullis.storage.models import Upload
from tests.support.factories import make_bucket, make_member, make_session, make_tenant
from tests.support.media import multipart, png, session_client

B = "X"
CT = f"multipart/form-data; boundary={B}"
PNG_HEAD = (f'--{B}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode()
END = f"\r\n--{B}--\r\n".encode()
Send = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def target(app: Flask) -> tuple[FlaskClient, dict[str, str], str]:
    admin = make_session(make_member(make_tenant(), Role.admin))
    client, headers = session_client(app, admin)
    return client, headers, str(make_bucket(admin))


@pytest.fixture
def post(target: tuple[FlaskClient, dict[str, str], str]) -> Iterator[Send]:
    client, headers, bucket = target

    def send(body: bytes, content_type: str = CT, **kwargs: Any) -> dict[str, Any]:
        response = client.post(f"/api/v1/buckets/{bucket}/uploads", data=body,
                               content_type=content_type, headers=headers, **kwargs)
        assert response.mimetype == "application/problem+json", response.data[:300]
        return {"status": response.status_code, **response.get_json()}

    before = _uploads(bucket)
    yield send
    assert _uploads(bucket) == before, "a malformed body was stored"


def _uploads(bucket: str) -> int:
    with system_session() as db:
        return int(db.scalar(select(func.count()).select_from(Upload)
                             .where(Upload.bucket_id == uuid.UUID(bucket))) or 0)


def _bad(answer: dict[str, Any], loc: list[str] | None = None) -> None:
    assert answer["status"] == 400 and answer["code"] == "validation_error", answer
    assert "Traceback" not in str(answer)
    if loc is not None:
        assert [e["loc"] for e in answer["errors"]] == [loc]


BODIES = {
    # schemathesis' find: a part with no headers at all
    "part_without_headers": f"--{B}\r\n".encode() + b"\xf2\xb9!" + f"--{B}--\r\n".encode(),
    "blank_line_without_headers": f"--{B}\r\n\r\n".encode() + png() + END,
    "no_content_disposition": f"--{B}\r\nContent-Type: image/png\r\n\r\n".encode() + png() + END,
    "no_boundary_in_body": b"just some bytes, no boundary",
    "other_boundary_in_body": PNG_HEAD.replace(B.encode(), b"Y") + png() + b"\r\n--Y--\r\n",
    "empty_body": b"",
    "truncated_in_the_file": PNG_HEAD + png()[:40],
    "truncated_in_the_headers": PNG_HEAD[:40],
    "no_closing_boundary": PNG_HEAD + png() + f"\r\n--{B}\r\n".encode(),
    "closing_boundary_missing_dashes": PNG_HEAD + png() + f"\r\n--{B}".encode(),
    "non_utf8_headers": (f'--{B}\r\nContent-Disposition: form-data; name="file"; '.encode()
                         + b'filename="\xff\xfe.png"\r\nContent-Type: image/png\r\n\r\n'
                         + png() + END),
    "huge_header_line": (f"--{B}\r\nX-Padding: ".encode() + b"a" * (256 * 1024)
                         + PNG_HEAD[len(f"--{B}\r\n"):] + png() + END),
    "huge_preamble": b"p" * (256 * 1024) + b"\r\n" + PNG_HEAD + png() + END,
    "huge_epilogue": PNG_HEAD + png() + END + b"e" * (256 * 1024),
    "too_many_parts": b"".join(
        f'--{B}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv\r\n'.encode()
        for i in range(9)) + PNG_HEAD + png() + END,
}


@pytest.mark.parametrize("shape", sorted(BODIES))
def test_malformed_body_is_a_400(post: Send, shape: str) -> None:
    _bad(post(BODIES[shape]))


def test_missing_file_field(post: Send) -> None:
    body = (f'--{B}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello'.encode()
            + END)
    _bad(post(body), ["body", "file"])


def test_file_sent_as_a_plain_field(post: Send) -> None:
    body = (f'--{B}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'.encode()
            + png() + END)
    _bad(post(body), ["body", "file"])


def test_two_file_parts(post: Send) -> None:
    body = PNG_HEAD + png() + f"\r\n--{B}\r\n".encode() + PNG_HEAD[len(f"--{B}\r\n"):] \
        + png() + END
    _bad(post(body), ["body", "file"])


def test_another_file_part_first(post: Send) -> None:
    other = PNG_HEAD.replace(b'name="file"', b'name="other"')
    _bad(post(other + png() + f"\r\n--{B}\r\n".encode()
              + PNG_HEAD[len(f"--{B}\r\n"):] + png() + END), ["body", "other"])


@pytest.mark.parametrize("content_type", [
    "multipart/form-data",
    "multipart/form-data; boundary=",
    f"multipart/form-data; boundary={'b' * 201}",
    "multipart/form-data; boundary=\"ends with space \"",
    "multipart/form-data; boundary=\"caf\u00e9\"",
])
def test_missing_or_bad_boundary(post: Send, content_type: str) -> None:
    body, _ = multipart("a.png", "image/png", png())
    _bad(post(body, content_type), ["header", "Content-Type"])


def test_body_shorter_than_its_content_length(post: Send) -> None:
    """The client went away mid-body: werkzeug's stream says so (400), never a 500."""
    body = PNG_HEAD + png() + END
    answer = post(body, environ_overrides={"CONTENT_LENGTH": str(len(body) + 1000)})
    assert answer["status"] == 400, answer


def test_not_multipart_is_415(post: Send) -> None:
    answer = post(png(), "image/png")
    assert (answer["status"], answer["code"]) == (415, "unsupported_media_type")


def test_well_formed_extras_are_accepted(target: tuple[FlaskClient, dict[str, str], str]) -> None:
    """Control: preamble, a plain field before and after the file, an epilogue, a quoted
    boundary of the longest size: all legal, so the checks above refuse only bad bodies."""
    client, headers, bucket = target
    boundary = "'()+_,-./:=? " * 5 + "abcde"
    assert len(boundary) == 70
    field = (f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
             f"hi").encode()
    head = (f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.png"\r\nContent-Type: image/png\r\n\r\n').encode()
    body = (b"preamble" + field + head + png() + field
            + f"\r\n--{boundary}--\r\nepilogue".encode())
    response = client.post(f"/api/v1/buckets/{bucket}/uploads", data=body, headers=headers,
                           content_type=f'multipart/form-data; boundary="{boundary}"')
    assert response.status_code == 202, response.get_json()


def test_a_boundary_longer_than_rfc_2046s_70_is_accepted(
        target: tuple[FlaskClient, dict[str, str], str]) -> None:
    """werkzeug's test client (time() + random() in the boundary) sometimes sends 71 or 72
    characters; refusing them made a random share of well-formed uploads fail."""
    client, headers, bucket = target
    boundary = "---------------WerkzeugFormPart_1764763000.12345670.0012345678901234567"
    assert len(boundary) > 70
    head = (f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.png"\r\nContent-Type: image/png\r\n\r\n').encode()
    body = head + png() + f"\r\n--{boundary}--\r\n".encode()
    response = client.post(f"/api/v1/buckets/{bucket}/uploads", data=body, headers=headers,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 202, response.get_json()
