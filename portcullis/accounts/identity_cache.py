"""Principals remembered per process, trusted only while Redis says nothing changed.

A request's identity check is a database round trip (the session or key row, the member,
the tenant). Here the answer is kept in the process that read it, stamped with the
**epochs** of its tenant (and one for everything) as Redis held them *before* the row was
read; it is served again only while Redis still holds those epochs. Every committed write
that can change a principal (revocation, logout, role, suspension, MFA, a key's revocation
or expiry, the tenant's status) gives its tenant a new epoch right after the commit
(``_bump_after_commit`` below, for every SQLAlchemy session of every process: web, workers,
CLI). The default rate limit's own Redis call reads the epochs (``EPOCH_LUA``), so a cached
identity costs no round trip of its own, and a change is seen by the very next request in
every web process.

What bounds an answer that a lost bump (Redis unreachable by the writer) left behind: it is
never older than ``MAX_AGE``; its own clocks still run (absolute and idle expiry, a key's
expiry, the idle clock's refresh every minute goes to the database); an epoch Redis lost
(restart, flush) comes back as a fresh random value, which matches no stamp; without an
answer from Redis nothing is served from here.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Insert, Update, event
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, object_session
from sqlalchemy.sql import visitors
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause

from portcullis.redis_client import get_redis

log = logging.getLogger(__name__)

MAX_AGE = 5.0  # seconds an answer may be served from memory, whatever Redis says
EPOCH_TTL = 7 * 24 * 3600  # an idle tenant's epoch goes; its next read makes a fresh one
KEY_PREFIX = "portcullis:identity-epoch"
GLOBAL = "*"  # the epoch of every tenant at once (writes whose tenant is not known)

# The tables a principal is read from: a write to any of them may change one.
IDENTITY_TABLES = frozenset({"user_sessions", "memberships", "users", "tenants",
                             "access_keys"})
# Raw SQL is taken for a write to them whenever it names one of them beside any DML keyword.
_RAW_DML = re.compile(r"\b(?:UPDATE|DELETE|MERGE|TRUNCATE|INSERT)\b", re.IGNORECASE)
_RAW_TABLE = re.compile(r"\b(?:" + "|".join(sorted(IDENTITY_TABLES)) + r")\b", re.IGNORECASE)
_BOOKKEEPING = {"access_keys": frozenset({"last_used_at", "last_used_ip"})}

Stamp = tuple[int, ...]
# The current stamp of a tenant, read before the rows it will vouch for; None: unknown (the
# caller has no answer from Redis for that tenant: nothing is served from memory).
EpochSource = Callable[[uuid.UUID], Stamp | None]

# Lua, for the script that reads epochs (the default rate limit's, app/rate_limits.py):
# KEYS[first_epoch_key ...] are epoch keys, ARGV[first_epoch_arg ...] a fresh random value
# for each, set when the key is missing; appends each epoch to ``out``.
EPOCH_LUA = """
for j = first_epoch_key, #KEYS do
  local epoch = redis.call('GET', KEYS[j])
  if not epoch then
    epoch = ARGV[first_epoch_arg + j - first_epoch_key]
    redis.call('SET', KEYS[j], epoch, 'EX', {ttl})
  end
  out[#out + 1] = tonumber(epoch)
end
""".replace("{ttl}", str(EPOCH_TTL))


def epoch_keys(tenant_id: uuid.UUID) -> tuple[str, str]:
    """Redis keys of the epochs a principal of ``tenant_id`` is stamped with."""
    return (f"{KEY_PREFIX}:{GLOBAL}", f"{KEY_PREFIX}:{tenant_id}")


def fresh_epoch() -> int:
    """A new epoch: random, so that one Redis lost and made again matches no old stamp
    (52 bits: Lua numbers are doubles). Not a secret (only Redis holds it, and nothing
    but its change matters), so the process's own generator, reseeded at fork, not a
    system call."""
    return random.getrandbits(52)


def bump(tenant_ids: set[uuid.UUID | str]) -> None:
    """Give each tenant (or ``GLOBAL``) a new epoch: every principal cached for it, in any
    process, is read from the database again. Best effort: a bump Redis does not take is
    logged; such an answer lives at most ``MAX_AGE``."""
    if not tenant_ids:
        return
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            for tenant in tenant_ids:
                pipe.set(f"{KEY_PREFIX}:{tenant}", fresh_epoch(), ex=EPOCH_TTL)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("identity cache: epoch bump lost (%s); cached principals of %d "
                    "tenant(s) may live %.0fs more", type(exc).__name__, len(tenant_ids),
                    MAX_AGE)


@dataclass(frozen=True)
class Entry:
    """What was read for one credential, the stamp it was read under, and until when it
    may be served: ``valid_until`` (wall clock: the credential's own clocks) and
    ``fresh_until`` (monotonic: ``MAX_AGE``). ``value`` is the caller's."""

    tenant_id: uuid.UUID
    stamp: Stamp | None
    valid_until: float
    fresh_until: float
    value: Any


class PrincipalCache:
    """A bounded LRU of entries, keyed by credential (a session's id, a key's digest)."""

    SIZE = 8192

    def __init__(self) -> None:
        self._entries: OrderedDict[Any, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        return entry

    def valid(self, key: Any, stamp: Stamp | None) -> Entry | None:
        """The entry, if it was read under ``stamp`` and neither of its clocks ran out."""
        entry = self.get(key)
        if (entry is None or stamp is None or entry.stamp != stamp
                or time.monotonic() >= entry.fresh_until or time.time() >= entry.valid_until):
            return None
        return entry

    def put(self, key: Any, tenant_id: uuid.UUID, stamp: Stamp | None, valid_until: float,
            value: Any) -> None:
        """Remember ``value``; with ``stamp`` None only the tenant is remembered (so the
        next request can read the stamp first), never served."""
        entry = Entry(tenant_id, stamp, valid_until, time.monotonic() + MAX_AGE, value)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.SIZE:
                self._entries.popitem(last=False)

    def forget(self, key: Any) -> None:
        with self._lock:
            self._entries.pop(key, None)


principals = PrincipalCache()


# --- every write that may change a principal bumps its tenant's epoch after commit --------

_CHANGED = "identity_epochs_changed"


def _changed(session: Session) -> set[uuid.UUID | str]:
    changed: set[uuid.UUID | str] = session.info.setdefault(_CHANGED, set())
    return changed


def _session_tenant(session: Session) -> uuid.UUID | str:
    tenant = session.info.get("tenant_id")
    return tenant if isinstance(tenant, uuid.UUID) else GLOBAL


@event.listens_for(Mapper, "after_update")
@event.listens_for(Mapper, "after_delete")
def _note_persisted(_mapper: Mapper[Any], _connection: Any, obj: Any) -> None:
    """A row the unit of work changed or deleted (cascades included); new rows can be in no
    cache."""
    table = getattr(obj, "__tablename__", None)
    session = object_session(obj)
    if table in IDENTITY_TABLES and session is not None:
        tenant = obj.id if table == "tenants" else getattr(obj, "tenant_id", None)
        _changed(session).add(tenant if isinstance(tenant, uuid.UUID) else GLOBAL)


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    """Statements run through the session: ``update()``, ``delete()``, upserts, writes
    inside CTEs, raw SQL (read as a write whenever it could be one)."""
    if _writes_identity(state.statement):
        _changed(state.session).add(_session_tenant(state.session))


def _writes_identity(statement: Any) -> bool:
    if isinstance(statement, TextClause):
        text = statement.text
        return bool(_RAW_DML.search(text) and _RAW_TABLE.search(text))
    for element in visitors.iterate(statement):
        if not isinstance(element, UpdateBase):
            continue
        table = getattr(getattr(element, "table", None), "name", None)
        if table not in IDENTITY_TABLES:
            continue
        if isinstance(element, Insert) and getattr(element, "_post_values_clause", None) is None:
            continue  # a plain INSERT: a new row is in no cache
        if isinstance(element, Update) and _bookkeeping_only(element, table):
            continue
        return True
    return False


def _bookkeeping_only(statement: Update, table: str) -> bool:
    """An UPDATE that sets only columns no principal depends on (a key's last use: its
    cached entry runs out on that clock by itself)."""
    columns = _BOOKKEEPING.get(table)
    values = getattr(statement, "_values", None)
    if not columns or not values:
        return False  # values given at execution, or anything else: a write
    return {getattr(k, "key", k) for k in values} <= columns


@event.listens_for(Session, "after_commit")
def _bump_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # RELEASE SAVEPOINT: the real COMMIT is still to come
    bump(session.info.pop(_CHANGED, set()))


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    if session.in_nested_transaction():
        return  # ROLLBACK TO SAVEPOINT: what was noted before it still commits (a spare
        # bump for the rest is harmless)
    session.info.pop(_CHANGED, None)
