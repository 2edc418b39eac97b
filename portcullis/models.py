"""Import every model so metadata (Alembic, tests) sees the whole schema, and the listener
that every process writing them needs (the identity cache's epochs, bumped after commit)."""

from portcullis.access_keys.models import AccessKey, OperatorKey
from portcullis.accounts import identity_cache  # noqa: F401 - registers its Session events
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
from portcullis.storage.models import Bucket, BucketPermission, EgressDaily, File, Upload
from portcullis.tenants.models import Tenant

__all__ = [
    "AccessKey",
    "Alert",
    "AuditEvent",
    "Bucket",
    "BucketPermission",
    "EgressDaily",
    "EmailToken",
    "File",
    "Invitation",
    "Job",
    "Membership",
    "OperatorKey",
    "RecoveryCode",
    "SeenIP",
    "ShareLink",
    "Tenant",
    "Upload",
    "User",
    "UserSession",
]
