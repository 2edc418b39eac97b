"""Who is acting, as the domain services need it: tenant, user, role, actor, origin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from portcullis.accounts.models import Role
from portcullis.audit.service import Actor, Origin


@dataclass(frozen=True)
class Caller:
    tenant_id: uuid.UUID
    user_id: uuid.UUID  # for an access key: its creator, whose role it carries
    role: Role
    actor: Actor  # the user, or the access key itself
    origin: Origin
