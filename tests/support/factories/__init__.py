"""Factories, one module per domain; everything is importable from here too.

- ``tenants``: tenants
- ``accounts``: users and memberships (``Member``), sessions (``LoggedIn``), MFA, passkeys
- ``access_keys``: access and operator keys
- ``storage``: buckets, permissions, uploads and clean files (the object in storage too)
- ``links``: share links to a file or to an export's object
- ``jobs``: job rows (no task sent)
- ``audit``: audit events through the chain writer
- ``billing``: billing profiles, recorded daily usage, SFTP accounts, bare invoices

They build rows directly in the database, so a refactored service does not change what a
test starts from; a test of how something is created goes through the API.
"""

from tests.support.factories.access_keys import Key, make_access_key, make_operator_key
from tests.support.factories.accounts import (
    PASSWORD,
    LoggedIn,
    Member,
    Passkey,
    login,
    make_invitation,
    make_member,
    make_passkey,
    make_recovery_code,
    make_session,
    timedelta_ago,
)
from tests.support.factories.audit import record_event
from tests.support.factories.billing import (
    make_invoice,
    make_profile,
    make_sftp_account,
    record_usage,
)
from tests.support.factories.jobs import UNREGISTERED_TASK, make_job
from tests.support.factories.links import Link, make_export_link, make_file_link
from tests.support.factories.storage import (
    StoredFile,
    grant,
    make_bucket,
    make_file,
    make_upload,
)
from tests.support.factories.tenants import make_tenant

__all__ = [
    "PASSWORD",
    "UNREGISTERED_TASK",
    "Key",
    "Link",
    "LoggedIn",
    "Member",
    "Passkey",
    "StoredFile",
    "grant",
    "login",
    "make_access_key",
    "make_bucket",
    "make_export_link",
    "make_file",
    "make_file_link",
    "make_invitation",
    "make_invoice",
    "make_job",
    "make_member",
    "make_operator_key",
    "make_passkey",
    "make_profile",
    "make_recovery_code",
    "make_session",
    "make_sftp_account",
    "make_tenant",
    "make_upload",
    "record_event",
    "record_usage",
    "timedelta_ago",
]
