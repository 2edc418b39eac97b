"""Audit's public face: recording, reading, exporting and verifying audit events.

Audit is the bottom domain every other records into: it imports none of them. ``record`` is
the one way to write an event. Writers of one tenant are serialised by a transaction-scoped
advisory lock, so concurrent requests extend the chain one after another instead of forking
it; ``(tenant_id, seq)`` is unique as a last guard.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import cast, func, select, text, true
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Session

from portcullis.audit import chain
from portcullis.audit.actions import ACTIONS, severity_of
from portcullis.audit.export import FORMATS, event_json, query, spool_file, write_export
from portcullis.audit.models import IDENTIFIER, AuditEvent, Severity
from portcullis.callers import Caller, Origin
from portcullis.db import system_session, tenant_session
from portcullis.pagination import Page, PageRequest, keyset
from portcullis.redaction import scrub

__all__ = [
    "ACTIONS", "FORMATS", "IDENTIFIER", "AuditRecord", "EventFilter",
    "Severity", "Target", "Verification", "audit_log", "count_events", "event_json", "iter_chain",
    "list_events", "record", "record_all", "severity_of", "spool_file", "tenants_with_events",
    "verify_chain", "verify_chains", "write_export",
]


@dataclass(frozen=True)
class Target:
    type: str
    id: str | None = None


@dataclass(frozen=True)
class AuditRecord:
    action: str
    actor: Caller
    tenant_id: uuid.UUID | None
    severity: Severity = Severity.info
    target: Target | None = None
    origin: Origin = field(default_factory=Origin)
    details: dict[str, Any] = field(default_factory=dict)


class AuditLog(Protocol):
    def record(self, session: Session, record: AuditRecord) -> AuditEvent: ...

    def record_many(self, session: Session, records: list[AuditRecord]
                    ) -> list[AuditEvent]: ...


def _lock_key(tenant_id: uuid.UUID | None) -> str:
    return f"audit-chain:{tenant_id or 'system'}"


class DatabaseAuditLog:
    """The audit log kept in PostgreSQL, in the caller's transaction."""

    def record(self, session: Session, record: AuditRecord) -> AuditEvent:
        return self.record_many(session, [record])[0]

    def record_many(self, session: Session, records: list[AuditRecord]) -> list[AuditEvent]:
        """Append ``records`` in order, each to its tenant's chain, in three round trips
        whatever their number (a billing run's batch): every chain's lock, taken in one
        order so two writers never deadlock; every chain's last link; the inserts."""
        keys = sorted({_lock_key(r.tenant_id) for r in records})
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                 "FROM (SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS locks"),
            {"keys": keys},
        )
        heads = self._heads(session, {r.tenant_id for r in records})
        events = []
        for record in records:
            seq, prev = heads.get(record.tenant_id, (0, chain.GENESIS))
            fields = _fields(record, seq + 1)
            event = AuditEvent(**fields, prev_hash=prev, hash=chain.event_digest(prev, fields))
            heads[record.tenant_id] = (seq + 1, event.hash)
            events.append(event)
        session.add_all(events)
        session.flush()
        return events

    @staticmethod
    def _heads(session: Session, tenants: set[uuid.UUID | None]
               ) -> dict[uuid.UUID | None, tuple[int, bytes]]:
        """Each chain's last ``(seq, hash)``; a chain with no event yet is absent."""
        heads: dict[uuid.UUID | None, tuple[int, bytes]] = {}
        ids = [t for t in tenants if t is not None]
        if ids:
            tenant = func.unnest(cast(ids, ARRAY(UUID(as_uuid=True)))).table_valued(
                "id").render_derived()
            last = (select(AuditEvent.seq, AuditEvent.hash)
                    .where(AuditEvent.tenant_id == tenant.c.id)
                    .order_by(AuditEvent.seq.desc()).limit(1).lateral())
            for row in session.execute(select(tenant.c.id, last.c.seq, last.c.hash)
                                       .join(last, true())):
                heads[row.id] = (row.seq, bytes(row.hash))
        if None in tenants:
            system = session.execute(select(AuditEvent.seq, AuditEvent.hash)
                                     .where(_tenant_clause(None))
                                     .order_by(AuditEvent.seq.desc()).limit(1)).first()
            if system is not None:
                heads[None] = (system.seq, bytes(system.hash))
        return heads


def _fields(record: AuditRecord, seq: int) -> dict[str, Any]:
    user_agent = (record.origin.user_agent or None) and record.origin.user_agent[:512]
    return {
        "id": uuid.uuid4(),
        "tenant_id": record.tenant_id,
        "seq": seq,
        "occurred_at": chain.now(),
        "action": record.action,
        "severity": str(record.severity),
        "actor_type": record.actor.actor_type,
        "actor_id": record.actor.actor_id,
        "target_type": record.target.type if record.target else None,
        "target_id": record.target.id if record.target else None,
        "ip": chain.canonical_ip(record.origin.ip) if record.origin.ip else None,
        "user_agent": user_agent,
        "details": scrub(record.details),
    }


def _tenant_clause(tenant_id: uuid.UUID | None) -> Any:
    if tenant_id is None:
        return AuditEvent.tenant_id.is_(None)
    return AuditEvent.tenant_id == tenant_id


def tenants_with_events(session: Session) -> list[uuid.UUID | None]:
    return list(session.scalars(select(AuditEvent.tenant_id).distinct()))


def iter_chain(session: Session, tenant_id: uuid.UUID | None) -> Iterator[AuditEvent]:
    stmt = (select(AuditEvent).where(_tenant_clause(tenant_id)).order_by(AuditEvent.seq)
            .execution_options(yield_per=1000))
    yield from session.scalars(stmt)


def verify_chain(session: Session, tenant_id: uuid.UUID | None) -> chain.ChainBreak | None:
    return chain.first_break(tenant_id, iter_chain(session, tenant_id))


def count_events(session: Session, tenant_id: uuid.UUID | None) -> int:
    return int(session.scalar(
        select(func.count()).select_from(AuditEvent).where(_tenant_clause(tenant_id))) or 0)


@dataclass(frozen=True)
class Verification:
    chains: int
    events: int
    broken: list[chain.ChainBreak]


def verify_chains(tenant_id: uuid.UUID | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Verification:
    """Walk one tenant's chain, or every chain (``tenant_id`` None), under the system role;
    the first bad row of each broken one. Calls ``progress(events so far, total)`` per
    chain."""
    with system_session() as db:
        tenants = [tenant_id] if tenant_id else tenants_with_events(db)
        counts = {t: count_events(db, t) for t in tenants}
        total = sum(counts.values())
        done = 0
        broken: list[chain.ChainBreak] = []
        for tenant in tenants:
            found = verify_chain(db, tenant)
            if found is not None:
                broken.append(found)
            done += counts[tenant]
            if progress:
                progress(done, total)
    return Verification(len(tenants), total, broken)


audit_log: AuditLog = DatabaseAuditLog()


def record(db: Session, caller: Caller, action: str, target: Target | None = None,
           details: dict[str, Any] | None = None, *,
           tenant_id: uuid.UUID | None = None) -> AuditEvent:
    """Record ``action`` by ``caller`` in the chain of its tenant (or ``tenant_id``), in the
    caller's transaction; severity from the action list, origin from the caller. The one way
    a domain writes an audit event (``record_all`` writes several at once)."""
    return audit_log.record(db, _record(caller, action, target, details, tenant_id))


def record_all(db: Session, events: list[tuple[Caller, str, Target | None, dict[str, Any]]]
               ) -> list[AuditEvent]:
    """``record`` for many ``(caller, action, target, details)`` at once (each in its
    caller's tenant), in a constant number of round trips: for batch work."""
    if not events:
        return []
    return audit_log.record_many(db, [_record(c, a, t, d, None) for c, a, t, d in events])


def _record(caller: Caller, action: str, target: Target | None,
            details: dict[str, Any] | None, tenant_id: uuid.UUID | None) -> AuditRecord:
    return AuditRecord(action=action, actor=caller, tenant_id=tenant_id or caller.tenant_id,
                       severity=severity_of(action), target=target, origin=caller.origin,
                       details=details or {})


@dataclass(frozen=True)
class EventFilter:
    """``GET /audit-events``' filters: ``since`` inclusive, ``until`` exclusive."""

    action: str | None = None
    actor_id: str | None = None
    severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_events(caller: Caller, filters: EventFilter,
                page: PageRequest) -> Page[dict[str, Any]]:
    """The caller's tenant's events, newest first, each as the API and exports render it."""
    if caller.tenant_id is None:
        return Page([], None)
    stmt = query(caller.tenant_id, action=filters.action, actor_id=filters.actor_id,
                 severity=filters.severity, since=filters.since, until=filters.until)
    with tenant_session(caller.tenant_id) as db:
        found = keyset(db, stmt, [AuditEvent.occurred_at, AuditEvent.id],
                       [datetime, uuid.UUID], page)
        return found.map(event_json)

