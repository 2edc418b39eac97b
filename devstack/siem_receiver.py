"""A SIEM webhook endpoint that checks Standard Webhooks signatures on its own.

Verification here deliberately shares no code with ``portcullis.clients.siem``: a bug in signing
must show up as ``verified=False`` rather than agree with itself. ``set_failing`` and
``stop``/``start`` (same port) let tests drive the retry and outage paths.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.process import free_port

TOLERANCE_SECONDS = 5 * 60
MAX_BODY = 1024 * 1024


def verify_signature(secret: str, msg_id: str, timestamp: str | int, body: bytes,
                     header: str) -> bool:
    """True when one ``v1,<sig>`` in the space-separated ``header`` signs this message."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    if not key:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    found = False
    for part in header.split():
        version, _, signature = part.partition(",")
        if version == "v1":
            found |= hmac.compare_digest(signature.encode(), expected)
    return found


def timestamp_fresh(timestamp: str, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Replay protection: the sender's clock must be within ``tolerance`` of ours."""
    try:
        return abs(now - int(timestamp)) <= tolerance
    except ValueError:
        return False


@dataclass(frozen=True)
class Delivery:
    id: str
    timestamp: str
    body: Any  # the parsed JSON, or None when the body is not JSON
    verified: bool
    status: int  # what the receiver answered
    raw: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    received_at: float = 0.0


class SiemReceiver:
    path = "/webhook"

    def __init__(self, base_dir: Path, secret: str, port: int | None = None) -> None:
        self.base_dir = base_dir
        self.secret = secret
        self.port = port or free_port()
        self._lock = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._attempts: list[Delivery] = []
        self._failing: int | None = None
        self._failures_left: int | None = None
        self._delay = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def env(self) -> dict[str, str]:
        return {"SIEM_WEBHOOK_URL": self.url, "SIEM_WEBHOOK_SECRET": self.secret}

    def start(self) -> SiemReceiver:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="siem-receiver",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def set_failing(self, status: int | None, count: int | None = None) -> None:
        """Answer ``status`` (e.g. 500, 429, 400) to the next ``count`` POSTs, or until reset."""
        with self._lock:
            self._failing = status
            self._failures_left = count

    def set_delay(self, seconds: float) -> None:
        """Sleep before answering, to exercise the sender's read timeout."""
        self._delay = seconds

    @property
    def deliveries(self) -> list[Delivery]:
        """POSTs answered normally (2xx if verified, 401 if not), oldest first."""
        with self._lock:
            return list(self._deliveries)

    @property
    def attempts(self) -> list[Delivery]:
        """Every POST received, including those answered with a failure status."""
        with self._lock:
            return list(self._attempts)

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()
            self._attempts.clear()

    def wait_for(self, predicate: Callable[[Delivery], bool], timeout: float = 10.0,
                 *, attempts: bool = False) -> Delivery:
        """The first delivery (or attempt) matching ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for item in self._attempts if attempts else self._deliveries:
                    if predicate(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching SIEM delivery within {timeout:.0f}s "
                                       f"({len(self._attempts)} attempts)")
                self._lock.wait(left)

    def _receive(self, headers: dict[str, str], raw: bytes) -> int:
        if self._delay:
            time.sleep(self._delay)
        msg_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        now = time.time()
        verified = timestamp_fresh(timestamp, now) and verify_signature(
            self.secret, msg_id, timestamp, raw, headers.get("webhook-signature", ""))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            failing = self._failing
            if failing is not None and self._failures_left is not None:
                self._failures_left -= 1
                if self._failures_left <= 0:
                    self._failing = self._failures_left = None
            status = failing if failing is not None else (204 if verified else 401)
            delivery = Delivery(msg_id, timestamp, body, verified, status, raw, headers, now)
            self._attempts.append(delivery)
            if failing is None:
                self._deliveries.append(delivery)
            self._lock.notify_all()
        line = {"id": msg_id, "timestamp": timestamp, "verified": verified, "status": status,
                "body": body}
        with (self.base_dir / "siem-deliveries.jsonl").open("a") as out:
            out.write(json.dumps(line) + "\n")
        return status


def _handler_for(receiver: SiemReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != receiver.path or length > MAX_BODY:
                self.close_connection = True  # the unread body would poison keep-alive
                self._answer(404 if self.path != receiver.path else 413)
                return
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._answer(receiver._receive(headers, raw))

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            with (receiver.base_dir / "siem.log").open("a") as out:
                out.write(f"{self.address_string()} {format % args}\n")

    return Handler
