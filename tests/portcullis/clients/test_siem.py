"""SiemClient against a receiver that verifies Standard Webhooks signatures independently."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from devstack.siem_receiver import SiemReceiver, verify_signature
from portcullis.clients.siem import SiemClient, SiemRejected, encode, sign
from portcullis.errors import DependencyUnavailable

SECRET = "whsec_" + base64.b64encode(b"test-siem-secret-0123456789abcdef").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-0123456789abcdefgh").decode()
EVENT = {"id": "evt_1", "type": "alert.new_ip", "occurred_at": "2025-01-01T00:00:00Z",
         "tenant_id": "t1", "severity": "warning", "summary": "new IP", "actor": "u1",
         "ip": "203.0.113.7", "details": {"b": 2, "a": 1}}


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiemReceiver]:
    server = SiemReceiver(tmp_path_factory.mktemp("siem"), SECRET).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(receiver: SiemReceiver) -> Iterator[SiemClient]:
    settings = Settings(PORTCULLIS_ENV="test", **receiver.env())  # type: ignore[arg-type]
    with SiemClient.from_settings(settings, timeout=1.0, connect_timeout=0.5) as siem:
        yield siem


@pytest.fixture(autouse=True)
def _reset(receiver: SiemReceiver) -> None:
    receiver.set_failing(None)
    receiver.set_delay(0)
    receiver.clear()


def test_sign_known_answer() -> None:
    key = b"known-answer-key-0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"a":1}'
    digest = hmac.new(key, b'msg_123.1700000000.{"a":1}', hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert sign(secret, "msg_123", 1700000000, body) == expected
    # The Standard Webhooks reference vector.
    assert sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330, b'{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_delivery_is_signed_and_verified(client: SiemClient, receiver: SiemReceiver) -> None:
    client.send("msg_a", EVENT)
    got = receiver.wait_for(lambda d: d.id == "msg_a", timeout=5)
    assert got.verified and got.status == 204
    assert got.body == EVENT
    assert got.raw == encode(EVENT)
    assert got.raw.startswith(b'{"actor":"u1","details":{"a":1,')  # compact, sorted
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.timestamp) - time.time()) < 5
    assert verify_signature(SECRET, got.id, got.timestamp, got.raw,
                            got.headers["webhook-signature"])


def test_tampering_fails_verification() -> None:
    body = encode(EVENT)
    header = sign(SECRET, "msg_t", 1700000000, body)
    assert verify_signature(SECRET, "msg_t", 1700000000, body, header)
    assert verify_signature(SECRET, "msg_t", 1700000000, body, f"v1,bogus {header}")
    assert not verify_signature(SECRET, "msg_t", 1700000000, body.replace(b"t1", b"t2"),
                                header)
    assert not verify_signature(OTHER_SECRET, "msg_t", 1700000000, body, header)
    assert not verify_signature(SECRET, "msg_u", 1700000000, body, header)
    assert not verify_signature(SECRET, "msg_t", 1700000001, body, header)
    assert not verify_signature(SECRET, "msg_t", 1700000000, body, header.replace("v1", "v2"))
    assert not verify_signature(SECRET, "msg_t", 1700000000, body, "")


def test_wrong_secret_is_unverified_and_rejected(receiver: SiemReceiver) -> None:
    with SiemClient(receiver.url, OTHER_SECRET) as wrong, pytest.raises(SiemRejected) as caught:
        wrong.send("msg_w", EVENT)
    assert caught.value.status == 401
    assert receiver.wait_for(lambda d: d.id == "msg_w", timeout=5).verified is False


def test_stale_timestamp_is_unverified(receiver: SiemReceiver) -> None:
    stale = SiemClient(receiver.url, SECRET, clock=lambda: time.time() - 600)
    with stale, pytest.raises(SiemRejected):
        stale.send("msg_old", EVENT)
    assert receiver.wait_for(lambda d: d.id == "msg_old", timeout=5).verified is False


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_retryable_status_is_dependency_unavailable(
        client: SiemClient, receiver: SiemReceiver, status: int) -> None:
    receiver.set_failing(status)
    with pytest.raises(DependencyUnavailable) as caught:
        client.send("msg_r", EVENT)
    assert caught.value.dependency == "siem"
    assert receiver.url not in str(caught.value)
    assert receiver.deliveries == [] and len(receiver.attempts) == 1
    receiver.set_failing(None)
    client.send("msg_r", EVENT)  # the retry, same id
    assert [d.id for d in receiver.deliveries] == ["msg_r"]
    assert receiver.deliveries[0].verified


@pytest.mark.parametrize("status", [400, 404, 410])
def test_client_error_is_rejected(client: SiemClient, receiver: SiemReceiver,
                                  status: int) -> None:
    receiver.set_failing(status, count=1)
    with pytest.raises(SiemRejected) as caught:
        client.send("msg_x", EVENT)
    assert caught.value.status == status
    client.send("msg_y", EVENT)  # count=1: the receiver recovers by itself
    assert receiver.wait_for(lambda d: d.id == "msg_y", timeout=5).verified


def test_redirect_is_not_followed(receiver: SiemReceiver) -> None:
    with SiemClient(receiver.url, SECRET) as siem:
        receiver.set_failing(307)
        with pytest.raises(SiemRejected):
            siem.send("msg_redirect", EVENT)
    assert len(receiver.attempts) == 1


def test_slow_receiver_times_out(client: SiemClient, receiver: SiemReceiver) -> None:
    receiver.set_delay(2.0)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        client.send("msg_slow", EVENT)
    assert time.monotonic() - started < 1.9
    receiver.wait_for(lambda d: d.id == "msg_slow", timeout=5, attempts=True)  # drain it


def test_receiver_down_then_back(tmp_path: Path) -> None:
    down = SiemReceiver(tmp_path, SECRET).start()
    siem = SiemClient(down.url, SECRET, timeout=1.0, connect_timeout=0.5)
    down.stop()
    with pytest.raises(DependencyUnavailable) as caught:
        siem.send("msg_down", EVENT)
    assert "siem" in str(caught.value)
    down.start()  # same port
    try:
        siem.send("msg_down", EVENT)
        assert down.wait_for(lambda d: d.id == "msg_down", timeout=5).verified
        assert json.loads((tmp_path / "siem-deliveries.jsonl").read_text())["id"] == "msg_down"
    finally:
        siem.close()
        down.stop()


def test_disabled_when_url_empty() -> None:
    settings = Settings(PORTCULLIS_ENV="test", SIEM_WEBHOOK_URL="")  # type: ignore[arg-type]
    siem = SiemClient.from_settings(settings)
    assert siem.enabled is False
    siem.send("msg_none", EVENT)  # no receiver, no error
    siem.close()


def test_bad_secret_refused_at_construction() -> None:
    with pytest.raises(ValueError) as caught:
        SiemClient("http://127.0.0.1:9/webhook", "not-a-whsec-secret!")
    assert "not-a-whsec" not in str(caught.value)
