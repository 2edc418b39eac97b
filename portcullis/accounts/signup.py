"""Signup creates a tenant and its unverified admin; verification confirms the address.

A known email gets the same 202 and no account (nothing to enumerate).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portcullis.accounts import email_tokens, lookup, passwords
from portcullis.accounts.audit import record, user_actor
from portcullis.accounts.models import Membership, Role, TokenPurpose, User
from portcullis.accounts.notifications import AccountEmail, queue
from portcullis.audit.service import Origin, Target
from portcullis.db import tenant_session
from portcullis.tenants.models import Tenant


def signup(company_name: str, name: str, email: str, password: str, origin: Origin) -> None:
    passwords.check_policy(password)
    if lookup.user_by_email(email) is not None:
        passwords.hash_password(password)  # same work as a real signup
        return
    tenant_id, user_id = uuid.uuid4(), uuid.uuid4()
    password_hash = passwords.hash_password(password)
    try:
        _create(tenant_id, user_id, company_name, name, email, password_hash, origin)
    except IntegrityError:
        return  # a concurrent signup took the address: same answer as a known email


def _create(tenant_id: uuid.UUID, user_id: uuid.UUID, company_name: str, name: str,
            email: str, password_hash: str, origin: Origin) -> None:
    with tenant_session(tenant_id) as db:
        db.add(Tenant(id=tenant_id, name=company_name))
        db.flush()
        db.add(User(id=user_id, tenant_id=tenant_id, email=email.strip().lower(), name=name,
                    password_hash=password_hash))
        db.flush()
        db.add(Membership(tenant_id=tenant_id, user_id=user_id, role=Role.admin.value))
        record(db, tenant_id, "auth.signup", user_actor(user_id), origin,
               Target("tenant", str(tenant_id)), {"company_name": company_name})
        queue(db, tenant_id, AccountEmail.verify_email, user_id=user_id)


def resend_verification(email: str) -> None:
    found = lookup.user_by_email(email)
    if found is None:
        return
    with tenant_session(found.tenant_id) as db:
        user = db.get(User, found.id)
        if user is not None and user.email_verified_at is None:
            queue(db, found.tenant_id, AccountEmail.verify_email, user_id=user.id)


def verify_email(token: str, origin: Origin) -> None:
    owner = email_tokens.owner_of(token)
    with tenant_session(owner.tenant_id) as db:
        row = email_tokens.consume(db, token, TokenPurpose.verify_email)
        user = db.scalars(select(User).where(User.id == row.user_id)).one()
        if user.email_verified_at is None:
            user.email_verified_at = datetime.now(UTC)
            record(db, owner.tenant_id, "auth.email_verified", user_actor(user.id), origin,
                   Target("user", str(user.id)))
