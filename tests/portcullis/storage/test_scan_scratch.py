"""The scan reads the quarantined object once, and bytes that are not yet clean never get a
name on the worker's disk: a worker killed mid-scan leaves nothing behind to be picked up.

Runs ``scan_upload`` in this process (the shared worker paused) with a spy on clamd that
lists the scratch folders at the moment the verdict comes back.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from portcullis.accounts.models import Role
from portcullis.clients.clamd import ClamdClient
from portcullis.storage import scan
from tests.support import media
from tests.support.factories import make_bucket, make_member, make_session, make_tenant

pytestmark = pytest.mark.usefixtures("shared_worker_paused")


@pytest.mark.parametrize(("data", "status"), [(media.eicar_png(), "infected"),
                                               (media.noisy_png(), "clean")],
                         ids=["infected", "clean"])
def test_nothing_is_named_on_disk_before_the_verdict(
        app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: bytes,
        status: str) -> None:
    tenant = make_tenant("Scratch Co")
    admin = make_session(make_member(tenant, Role.admin))
    client, headers = media.session_client(app, admin)
    bucket = str(make_bucket(admin))
    response = media.post_upload(client, headers, bucket, "x.png", "image/png", data)
    assert response.status_code == 202, response.get_json()

    named_during_scan: list[Path] = []
    streamed: list[int] = []
    original = ClamdClient.scan_stream

    def spy(self: ClamdClient, chunks: Any) -> Any:
        def counted() -> Any:
            for chunk in chunks:
                streamed.append(len(chunk))
                yield chunk

        verdict = original(self, counted())
        named_during_scan.extend(p for p in tmp_path.glob("portcullis-scan-*/*"))
        return verdict

    monkeypatch.setattr(ClamdClient, "scan_stream", spy)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = scan.scan_upload(tenant, uuid.UUID(response.get_json()["id"]), lambda _p: None)

    assert result["status"] == status
    assert sum(streamed) == len(data)  # clamd saw every byte
    assert named_during_scan == []
    assert list(tmp_path.glob("portcullis-scan-*")) == []  # and the scratch is gone after
