"""Members: list, change role or status, remove; invitations: send and accept.

The last active admin can be neither removed, demoted nor suspended. Suspension and removal
revoke the member's sessions and access keys in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portcullis import secrets_gen
from portcullis.access_keys.service import revoke_keys_of
from portcullis.accounts import lookup, passwords, sessions
from portcullis.accounts.email_tokens import INVITATION_LIFETIME
from portcullis.accounts.login import as_user
from portcullis.accounts.models import Invitation, Membership, MemberStatus, User
from portcullis.audit.service import Target, record
from portcullis.callers import Caller, Role
from portcullis.db import tenant_session
from portcullis.email.service import queue
from portcullis.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from portcullis.pagination import Page, PageRequest, keyset
from portcullis.tenants.service import lock as lock_tenant


@dataclass(frozen=True)
class MemberView:
    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    name: str
    role: str
    status: str


def _tenant_of(caller: Caller) -> uuid.UUID:
    assert caller.tenant_id is not None, "a tenant's caller"
    return caller.tenant_id


def list_members(caller: Caller, page: PageRequest) -> Page[MemberView]:
    """The tenant's members (removed ones are gone), oldest first."""
    tenant_id = _tenant_of(caller)
    with tenant_session(tenant_id) as db:
        found = keyset(db, select(Membership).where(Membership.tenant_id == tenant_id,
                                                    Membership.status != MemberStatus.removed),
                       [Membership.created_at, Membership.id], [datetime, uuid.UUID], page,
                       descending=False)
        return Page(_views_of(db, found.items), found.next_cursor)


def _views_of(db: Session, memberships: list[Membership]) -> list[MemberView]:
    users = {u.id: u for u in db.scalars(select(User).where(
        User.id.in_([m.user_id for m in memberships])))}
    return [MemberView(m.id, m.user_id, users[m.user_id].email, users[m.user_id].name,
                       m.role, m.status) for m in memberships]


def _member(db: Session, tenant_id: uuid.UUID, member_id: uuid.UUID) -> Membership:
    # The tenant row is the lock for membership changes: taken first, always, so two
    # changes never hold member rows in opposite orders (deadlock) or race the admin count.
    lock_tenant(db, tenant_id)
    member = db.scalars(select(Membership).where(
        Membership.id == member_id, Membership.tenant_id == tenant_id,
        Membership.status != MemberStatus.removed).with_for_update()).first()
    if member is None:
        raise NotFound("member")
    return member


def _active_admins(db: Session, tenant_id: uuid.UUID) -> int:
    return int(db.scalar(select(func.count()).select_from(Membership).where(
        Membership.tenant_id == tenant_id, Membership.role == Role.admin.value,
        Membership.status == MemberStatus.active)) or 0)


def _guard_last_admin(db: Session, tenant_id: uuid.UUID, member: Membership) -> None:
    if member.role == Role.admin.value and member.status == MemberStatus.active \
            and _active_admins(db, tenant_id) <= 1:
        raise Conflict("last_admin", "A tenant keeps at least one active admin.")


def _cut_off(db: Session, user_id: uuid.UUID) -> None:
    """The member's sessions and access keys die at once, in the change's transaction."""
    sessions.revoke_all(db, user_id)
    revoke_keys_of(db, user_id)


def change_member(caller: Caller, member_id: uuid.UUID, role: Role | None,
                  status: MemberStatus | None) -> MemberView:
    """Change a member's role or status; suspending cuts them off at once. The last active
    admin can be neither demoted nor suspended."""
    if status is MemberStatus.removed:
        raise Invalid("validation_error", "Use DELETE to remove a member.")
    tenant_id = _tenant_of(caller)
    with tenant_session(tenant_id) as db:
        member = _member(db, tenant_id, member_id)
        demoting = role is not None and role is not Role.admin
        suspending = status is MemberStatus.suspended
        if demoting or suspending:
            _guard_last_admin(db, tenant_id, member)
        target = Target("member", str(member.id))
        if role is not None and role.value != member.role:
            record(db, caller, "member.role_changed", target,
                   {"from": member.role, "to": role.value})
            member.role = role.value  # read on every request: effective immediately
        if status is not None and status.value != member.status:
            record(db, caller, "member.status_changed", target,
                   {"from": member.status, "to": status.value})
            member.status = status.value
            if status is MemberStatus.suspended:
                _cut_off(db, member.user_id)
        db.flush()
        return _views_of(db, [member])[0]


def member_id_by_email(caller: Caller, email: str) -> uuid.UUID:
    """The (not removed) member of the caller's tenant with this address, else NotFound."""
    tenant_id = _tenant_of(caller)
    with tenant_session(tenant_id) as db:
        member_id = db.scalar(select(Membership.id).join(User, User.id == Membership.user_id)
                              .where(Membership.tenant_id == tenant_id,
                                     Membership.status != MemberStatus.removed,
                                     func.lower(User.email) == email.strip().lower()))
        if member_id is None:
            raise NotFound("member")
        return member_id


def remove_member(caller: Caller, member_id: uuid.UUID) -> None:
    """Remove a member: their account is deleted, their sessions and keys die at once."""
    tenant_id = _tenant_of(caller)
    with tenant_session(tenant_id) as db:
        member = _member(db, tenant_id, member_id)
        _guard_last_admin(db, tenant_id, member)
        member.status = MemberStatus.removed.value
        user = db.get(User, member.user_id)
        assert user is not None
        user.deleted_at = datetime.now(UTC)
        _cut_off(db, member.user_id)
        record(db, caller, "member.removed", Target("member", str(member.id)),
               {"role": member.role})


ACCOUNT_EXISTS = ("This address already belongs to a Portcullis account, and an address "
                  "belongs to one organisation only. Leave that organisation first (its "
                  "admin can remove you), then accept, or ask for an invitation to another "
                  "address.")


def _is_member(db: Session, tenant_id: uuid.UUID, email: str) -> bool:
    """A live user of this tenant (active or suspended; removed users are deleted)."""
    return db.scalar(select(func.count()).select_from(User).where(
        User.tenant_id == tenant_id, func.lower(User.email) == email,
        User.deleted_at.is_(None))) != 0


def invite(caller: Caller, email: str, role: Role) -> Invitation:
    """Invite ``email`` as ``role`` (managers: staff and view-only only); the email is sent
    after commit."""
    if caller.role is not Role.admin and role.rank >= Role.manager.rank:
        raise Forbidden("forbidden", "Managers may invite staff and view-only members only.")
    tenant_id = _tenant_of(caller)
    email = email.strip().lower()
    with tenant_session(tenant_id) as db:
        # Only this tenant's own members conflict: whether the address has an account in
        # another tenant is never told to the inviter; the email tells the recipient.
        if _is_member(db, tenant_id, email):
            raise Conflict("already_member", "This address is already a member.")
        invitation = Invitation(tenant_id=tenant_id, email=email, role=role.value,
                                invited_by_user_id=caller.user_id,
                                expires_at=datetime.now(UTC) + INVITATION_LIFETIME)
        db.add(invitation)
        db.flush()
        record(db, caller, "member.invited", Target("invitation", str(invitation.id)),
               {"role": role.value})
        queue(db, tenant_id, "invitation", invitation_id=invitation.id)
        return invitation


def _constraint(exc: IntegrityError) -> str | None:
    return getattr(getattr(exc.orig, "diag", None), "constraint_name", None)


def accept_invitation(caller: Caller, token: str, name: str, password: str) -> None:
    """Create the invitee's account and membership (``caller``: anonymous, their address)."""
    passwords.check_policy(password)
    owner = lookup.invitation(secrets_gen.digest(token)) if token else None
    if owner is None:
        raise Invalid("token_invalid", "This invitation is not valid.")
    password_hash = passwords.hash_password(password)
    with tenant_session(owner.tenant_id) as db:
        invitation = db.scalars(select(Invitation).where(Invitation.id == owner.id)
                                .with_for_update()).one()
        if invitation.accepted_at or invitation.revoked_at:
            raise Invalid("token_invalid", "This invitation is not valid.")
        if datetime.now(UTC) >= invitation.expires_at:
            raise Gone("token_expired", "This invitation has expired; ask for a new one.")
        if _is_member(db, owner.tenant_id, invitation.email):
            raise Conflict("already_member", "This address is already a member.")
        if lookup.user_by_email(invitation.email) is not None:  # the mailbox's owner asks
            raise Conflict("account_exists", ACCOUNT_EXISTS)
        now = datetime.now(UTC)
        invitation.accepted_at = now
        invitation.token_hash = None
        user = User(id=uuid.uuid4(), tenant_id=owner.tenant_id, email=invitation.email,
                    name=name, password_hash=password_hash, email_verified_at=now)
        db.add(user)
        try:
            db.flush()
        except IntegrityError as exc:  # another tenant's invitation was accepted meanwhile
            if _constraint(exc) != "uq_users_email_lower":
                raise
            raise Conflict("account_exists", ACCOUNT_EXISTS) from None
        member = Membership(tenant_id=owner.tenant_id, user_id=user.id, role=invitation.role)
        db.add(member)
        db.flush()
        joined = as_user(caller, owner.tenant_id, user.id, Role(invitation.role))
        record(db, joined, "member.joined", Target("member", str(member.id)),
               {"invitation_id": str(invitation.id), "role": invitation.role})
