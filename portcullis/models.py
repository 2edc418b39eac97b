"""Import every model so metadata (Alembic, tests) sees the whole schema."""

from portcullis.accounts.models import Membership, User
from portcullis.audit.models import AuditEvent
from portcullis.jobs.models import Job
from portcullis.tenants.models import Tenant

__all__ = ["AuditEvent", "Job", "Membership", "Tenant", "User"]
