"""Import every model so metadata (Alembic, tests) sees the whole schema."""

from portcullis.access_keys.models import AccessKey, OperatorKey
from portcullis.accounts.models import (
    EmailToken,
    Invitation,
    Membership,
    RecoveryCode,
    User,
    UserSession,
)
from portcullis.alerts.models import Alert, SeenIP
from portcullis.audit.models import AuditEvent
from portcullis.jobs.models import Job
from portcullis.links.models import ShareLink
from portcullis.tenants.models import Tenant

__all__ = [
    "AccessKey",
    "Alert",
    "AuditEvent",
    "EmailToken",
    "Invitation",
    "Job",
    "Membership",
    "OperatorKey",
    "RecoveryCode",
    "SeenIP",
    "ShareLink",
    "Tenant",
    "User",
    "UserSession",
]
