"""Signed SIEM webhook delivery (Standard Webhooks), one attempt per call.

Retrying belongs to the alert outbox: :class:`DependencyUnavailable` means "try again later
with the same id" (network trouble, timeouts, 408, 429, 5xx); :class:`SiemRejected` means the
receiver refused the request (other 3xx/4xx). The outbox retries both until its window
(ALERT_RETRY_FOR_SECONDS) ends, since a refusal is usually a receiver misconfiguration that
someone fixes; then it gives up and audits that.
Errors name the status or exception class only, never the URL (it may hold a token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from types import TracebackType
from typing import Any

import httpx

from config.settings import webhook_key
from portcullis.errors import DependencyUnavailable

_RETRYABLE_STATUS = {408, 429}


class SiemRejected(Exception):
    """The receiver answered a non-retryable status (e.g. 400, 401, 404, a redirect)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"SIEM receiver rejected the event with HTTP {status}")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``, keyed by the whsec_ secret."""
    key = webhook_key(secret)
    if not key:
        raise ValueError("SIEM_WEBHOOK_SECRET must be whsec_ followed by base64")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(payload: dict[str, Any]) -> bytes:
    """Compact, key-sorted JSON, so a retry sends (and signs) the same bytes."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                      default=_json_default).encode()


class SiemClient:
    def __init__(self, url: str, secret: str, *, timeout: float = 10.0,
                 connect_timeout: float = 3.0,
                 clock: Callable[[], float] = time.time, previous_secret: str = "") -> None:
        self.url = url
        # During a rotation every event carries a signature made with each secret, so a
        # receiver verifying with either accepts it (Standard Webhooks' space-separated list).
        self._secrets = [secret, *([previous_secret] if previous_secret else [])]
        self._clock = clock
        if self.enabled and not all(webhook_key(s) for s in self._secrets):
            raise ValueError("SIEM_WEBHOOK_SECRET must be whsec_ followed by base64")
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,  # a redirect could carry the event somewhere else
        )

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> SiemClient:
        return cls(settings.SIEM_WEBHOOK_URL.strip(),
                   settings.SIEM_WEBHOOK_SECRET.get_secret_value(),
                   previous_secret=settings.SIEM_WEBHOOK_SECRET_PREVIOUS.get_secret_value(),
                   **kwargs)

    @property
    def enabled(self) -> bool:
        """False when SIEM_WEBHOOK_URL is empty: send() then does nothing."""
        return bool(self.url)

    def __repr__(self) -> str:
        return f"SiemClient(enabled={self.enabled})"

    def send(self, msg_id: str, payload: dict[str, Any]) -> None:
        """POST one signed event; returns only when the receiver answered 2xx.

        A no-op when disabled, so callers that audit "delivered" check ``enabled`` first.
        The timestamp is the attempt's, as Standard Webhooks expects; ``msg_id`` must stay
        the same on every retry so the receiver can deduplicate.
        """
        if not self.enabled:
            return
        body = encode(payload)
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(secret, msg_id, timestamp, body)
                                          for secret in self._secrets),
        }
        try:
            response = self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # connect/read timeouts, refused, reset, bad URL
            raise DependencyUnavailable("siem", type(exc).__name__) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in _RETRYABLE_STATUS:
            raise DependencyUnavailable("siem", f"HTTP {status}")
        raise SiemRejected(status)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SiemClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
