"""Who acts: the one value every service function takes, and what the audit trail records.

A caller is resolved from a verified credential (a session cookie, an access key, an operator
key, an SFTP login) or is the system itself (a worker, beat, the CLI); never from input. The
front door builds one per request (``app.auth.guards.current_caller``), a task builds
``Caller.system(...)``. Services read the tenant, the role and the origin from it and hand it
to the audit log as the actor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    staff = "staff"
    viewonly = "viewonly"

    @property
    def rank(self) -> int:
        return {"admin": 4, "manager": 3, "staff": 2, "viewonly": 1}[self.value]


class Kind(StrEnum):
    """Also the audit trail's ``actor_type``."""

    user = "user"  # a browser or API session of a member
    access_key = "access_key"  # acts as itself, with its creator's role and its own scopes
    operator = "operator"  # a platform operator key or the operator CLI
    sftp = "sftp_account"  # an SFTP account's login (its files, not a member; API.md)
    system = "system"  # a worker, beat or the CLI acting for the product
    anonymous = "anonymous"  # before authentication (failed logins, signup, resets)


@dataclass(frozen=True)
class Origin:
    """Where a request came from; empty for work a worker or beat started itself."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Caller:
    kind: Kind
    tenant_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None  # the member; for an access key its creator
    role: Role | None = None
    credential_id: uuid.UUID | None = None  # the access key, operator key or SFTP account
    scopes: frozenset[str] | None = None  # an access key's scopes; None: every scope of the role
    origin: Origin = field(default_factory=Origin)
    label: str | None = None  # an actor id that is not a UUID (the operator CLI: "cli")

    # Who they are ----------------------------------------------------------------------
    @classmethod
    def user(cls, tenant_id: uuid.UUID, user_id: uuid.UUID, role: Role,
             origin: Origin | None = None) -> Caller:
        return cls(Kind.user, tenant_id, user_id, role, origin=origin or Origin())

    @classmethod
    def access_key(cls, tenant_id: uuid.UUID, key_id: uuid.UUID, creator_id: uuid.UUID,
                   role: Role, scopes: frozenset[str] | None,
                   origin: Origin | None = None) -> Caller:
        return cls(Kind.access_key, tenant_id, creator_id, role, key_id, scopes,
                   origin or Origin())

    @classmethod
    def operator(cls, key_id: uuid.UUID | None, origin: Origin | None = None,
                 tenant_id: uuid.UUID | None = None, label: str | None = None) -> Caller:
        return cls(Kind.operator, tenant_id, credential_id=key_id, origin=origin or Origin(),
                   label=label)

    @classmethod
    def sftp(cls, tenant_id: uuid.UUID, account_id: uuid.UUID,
             origin: Origin | None = None) -> Caller:
        return cls(Kind.sftp, tenant_id, credential_id=account_id, origin=origin or Origin())

    @classmethod
    def system(cls, tenant_id: uuid.UUID | None = None) -> Caller:
        return cls(Kind.system, tenant_id)

    @classmethod
    def anonymous(cls, origin: Origin | None = None,
                  tenant_id: uuid.UUID | None = None) -> Caller:
        return cls(Kind.anonymous, tenant_id, origin=origin or Origin())

    def for_tenant(self, tenant_id: uuid.UUID) -> Caller:
        """The same caller acting in ``tenant_id`` (an operator or the system)."""
        return Caller(self.kind, tenant_id, self.user_id, self.role, self.credential_id,
                      self.scopes, self.origin, self.label)

    # What the audit trail records ------------------------------------------------------
    @property
    def actor_type(self) -> str:
        return self.kind.value

    @property
    def actor_id(self) -> str | None:
        if self.kind in (Kind.user,):
            return str(self.user_id) if self.user_id else None
        if self.credential_id is not None:
            return str(self.credential_id)
        return self.label

    # What they may do ------------------------------------------------------------------
    @property
    def is_member(self) -> bool:
        """A tenant's person, directly or through one of their access keys."""
        return self.kind in (Kind.user, Kind.access_key)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    def has_scope(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes
