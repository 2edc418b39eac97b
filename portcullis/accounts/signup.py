"""Signup creates a tenant and its unverified admin; verification confirms the address.

A known email gets the same 202 and no account (nothing to enumerate).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portcullis.accounts import email_tokens, lookup, passwords
from portcullis.accounts.login import as_user
from portcullis.accounts.models import Membership, TokenPurpose, User
from portcullis.audit.service import Target, record
from portcullis.callers import Caller, Role
from portcullis.db import tenant_session
from portcullis.email.service import queue
from portcullis.tenants import service as tenants


def signup(caller: Caller, company_name: str, name: str, email: str, password: str) -> None:
    """A new tenant and its admin, who must verify the address (the email is sent)."""
    passwords.check_policy(password)
    if lookup.user_by_email(email) is not None:
        passwords.hash_password(password)  # same work as a real signup
        return
    tenant_id, user_id = uuid.uuid4(), uuid.uuid4()
    password_hash = passwords.hash_password(password)
    try:
        _create(as_user(caller, tenant_id, user_id, Role.admin), company_name, name, email,
                password_hash)
    except IntegrityError:
        return  # a concurrent signup took the address: same answer as a known email


def _create(admin: Caller, company_name: str, name: str, email: str,
            password_hash: str) -> None:
    tenant_id, user_id = admin.tenant_id, admin.user_id
    assert tenant_id is not None and user_id is not None
    with tenant_session(tenant_id) as db:
        tenants.create(db, tenant_id, company_name)
        db.add(User(id=user_id, tenant_id=tenant_id, email=email.strip().lower(), name=name,
                    password_hash=password_hash))
        db.flush()
        db.add(Membership(tenant_id=tenant_id, user_id=user_id, role=Role.admin.value))
        record(db, admin, "auth.signup", Target("tenant", str(tenant_id)),
               {"company_name": company_name})
        queue(db, tenant_id, "verify_email", user_id=user_id)


def resend_verification(email: str) -> None:
    """Send the verification email again, if the address has an unverified user."""
    found = lookup.user_by_email(email)
    if found is None:
        return
    with tenant_session(found.tenant_id) as db:
        user = db.get(User, found.id)
        if user is not None and user.email_verified_at is None:
            queue(db, found.tenant_id, "verify_email", user_id=user.id)


def verify_email(caller: Caller, token: str) -> None:
    """Confirm the address a verification token was sent to."""
    owner = email_tokens.owner_of(token)
    with tenant_session(owner.tenant_id) as db:
        row = email_tokens.consume(db, token, TokenPurpose.verify_email)
        user = db.scalars(select(User).where(User.id == row.user_id)).one()
        if user.email_verified_at is None:
            user.email_verified_at = datetime.now(UTC)
            record(db, as_user(caller, owner.tenant_id, user.id), "auth.email_verified",
                   Target("user", str(user.id)))
