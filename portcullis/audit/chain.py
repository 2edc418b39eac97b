"""The per-tenant hash chain: each event's hash covers its fields and the previous hash.

Editing a row breaks its own hash; deleting one breaks the next row's link and the
sequence. The canonical form is JSON with sorted keys, so it survives a database round trip.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = bytes(32)


def canonical_ip(ip: object) -> str | None:
    return None if ip is None else str(ipaddress.ip_address(str(ip)))


def event_digest(prev_hash: bytes, fields: dict[str, Any]) -> bytes:
    body = {
        **fields,
        "id": str(fields["id"]),
        "tenant_id": str(fields["tenant_id"]) if fields["tenant_id"] else None,
        "occurred_at": fields["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "ip": canonical_ip(fields["ip"]),
        "prev_hash": prev_hash.hex(),
    }
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).digest()


CHAINED_FIELDS = (
    "id", "tenant_id", "seq", "occurred_at", "action", "severity", "actor_type", "actor_id",
    "target_type", "target_id", "ip", "user_agent", "details",
)


@dataclass(frozen=True)
class ChainBreak:
    tenant_id: uuid.UUID | None
    event_id: uuid.UUID | None
    seq: int
    reason: str

    def describe(self) -> str:
        tenant = self.tenant_id or "system"
        return f"tenant {tenant}: event {self.event_id} (seq {self.seq}): {self.reason}"


def first_break(tenant_id: uuid.UUID | None, rows: Any) -> ChainBreak | None:
    """Walk one tenant's events in ``seq`` order; the first one that does not fit, or None."""
    prev = GENESIS
    expected_seq = 1
    for row in rows:
        fields = {name: getattr(row, name) for name in CHAINED_FIELDS}
        if row.seq != expected_seq:
            reason = f"sequence jumps from {expected_seq - 1} to {row.seq} (a row was deleted)"
            return ChainBreak(tenant_id, row.id, row.seq, reason)
        if bytes(row.prev_hash) != prev:
            return ChainBreak(tenant_id, row.id, row.seq, "previous-hash link does not match")
        digest = event_digest(prev, fields)
        if bytes(row.hash) != digest:
            return ChainBreak(tenant_id, row.id, row.seq, "content does not match its hash")
        prev = digest
        expected_seq += 1
    return None


def now() -> datetime:
    return datetime.now(UTC)
