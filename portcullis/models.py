"""Import every model so metadata (Alembic, tests) sees the whole schema, and the listener
that every process writing them needs (the identity cache's epochs, bumped after commit)."""

from portcullis.access_keys.models import AccessKey, OperatorKey
from portcullis.accounts import identity_cache  # noqa: F401 - registers its Session events
from portcullis.accounts.models import (
    EmailToken,
    Invitation,
    Membership,
    PasskeyChallenge,
    PasskeyCredential,
    RecoveryCode,
    User,
    UserSession,
)
from portcullis.alerts.models import Alert, SeenIP
from portcullis.audit.models import AuditEvent
from portcullis.billing.models import (
    BillingProfile,
    BillingRun,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    Payment,
    StorageUsage,
    TenantUsage,
)
from portcullis.jobs.models import Job
from portcullis.links.models import ShareLink
from portcullis.sftp.models import SftpAccount
from portcullis.storage.models import (
    Bucket,
    BucketPermission,
    EgressDaily,
    File,
    QuarantinedFile,
    Upload,
)
from portcullis.tenants.models import Tenant

__all__ = [
    "AccessKey",
    "Alert",
    "AuditEvent",
    "BillingProfile",
    "BillingRun",
    "Bucket",
    "BucketPermission",
    "EgressDaily",
    "EmailToken",
    "File",
    "Invitation",
    "Invoice",
    "InvoiceCounter",
    "InvoiceLine",
    "Job",
    "Membership",
    "OperatorKey",
    "PasskeyChallenge",
    "PasskeyCredential",
    "Payment",
    "QuarantinedFile",
    "RecoveryCode",
    "SeenIP",
    "SftpAccount",
    "ShareLink",
    "StorageUsage",
    "Tenant",
    "TenantUsage",
    "Upload",
    "User",
    "UserSession",
]
