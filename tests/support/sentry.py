"""A real sentry_sdk client, set up by our own ``configure_sentry``, whose transport records
what it would send instead of sending it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

FAKE_DSN = "http://publickey@127.0.0.1:9/1"  # never dialled: the transport below is used


class RecordingTransport(Transport):
    """Keeps every envelope the client hands over, serialized exactly as it would be sent."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        found = []
        for envelope in self.envelopes:
            for item in envelope.items:
                event = item.get_event() or item.get_transaction_event()
                if event is not None:
                    found.append(event)
        return found

    def wire(self) -> str:
        """Everything that would have gone over the wire, as text to search."""
        return "\n".join(e.serialize().decode("utf-8", "replace") for e in self.envelopes)

    def exception_types(self) -> set[str]:
        return {value.get("type", "") for event in self.events()
                for value in (event.get("exception") or {}).get("values", [])}


@contextmanager
def recording_sentry(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingTransport]:
    """Sentry on (our init code, a fake DSN) for the block; off again afterwards."""
    import sentry_sdk

    from config import get_settings
    from portcullis.observability import configure_sentry

    transport = RecordingTransport()
    monkeypatch.setenv("SENTRY_DSN", FAKE_DSN)
    get_settings.cache_clear()
    try:
        configure_sentry("web", transport=transport)
        assert sentry_sdk.get_client().is_active(), "configure_sentry did not start a client"
        yield transport
    finally:
        sentry_sdk.flush()
        monkeypatch.delenv("SENTRY_DSN")
        sentry_sdk.init(dsn="")  # an inactive client (None would read SENTRY_DSN again)
        get_settings.cache_clear()


def assert_absent(wire: str, secrets: dict[str, str]) -> None:
    """No secret, nor its JSON-escaped form, anywhere in the serialized events."""
    for name, secret in secrets.items():
        assert secret not in wire, f"{name} leaked into a Sentry event"
        assert json.dumps(secret)[1:-1] not in wire, f"{name} leaked (escaped)"
