"""Every audit action the system records, with its default severity.

Listed in the OpenAPI document; the completeness test walks this list.
"""

from __future__ import annotations

from portcullis.audit.models import Severity

ACTIONS: dict[str, Severity] = {
    "auth.signup": Severity.notice,
    "auth.email_verified": Severity.info,
    "auth.login_succeeded": Severity.info,
    "auth.login_failed": Severity.warning,
    "auth.mfa_enrolled": Severity.notice,
    "auth.mfa_succeeded": Severity.info,
    "auth.mfa_failed": Severity.warning,
    "auth.mfa_locked": Severity.critical,
    "auth.recovery_code_used": Severity.warning,
    "auth.logout": Severity.info,
    "auth.password_reset_requested": Severity.info,
    "auth.password_reset": Severity.notice,
    "auth.session_revoked": Severity.notice,
    "auth.webauthn_registered": Severity.notice,
    "auth.webauthn_removed": Severity.notice,
    "auth.webauthn_succeeded": Severity.info,
    "auth.webauthn_failed": Severity.warning,
    "auth.webauthn_counter_regressed": Severity.critical,
    "member.invited": Severity.notice,
    "member.joined": Severity.notice,
    "member.role_changed": Severity.notice,
    "member.status_changed": Severity.warning,
    "member.removed": Severity.warning,
    "access_key.created": Severity.notice,
    "access_key.used_from_new_ip": Severity.warning,
    "access_key.revoked": Severity.notice,
    "operator_key.created": Severity.notice,
    "audit.exported": Severity.warning,
    "tenant.suspended": Severity.critical,
    "tenant.reactivated": Severity.notice,
    "bucket.created": Severity.notice,
    "bucket.deleted": Severity.warning,
    "bucket.permissions_changed": Severity.notice,
    "bucket.lifecycle_changed": Severity.notice,
    "upload.clean": Severity.info,
    "upload.rejected": Severity.warning,
    "upload.infected": Severity.critical,
    "file.deleted": Severity.notice,
    "file.quarantined": Severity.critical,
    "link.created": Severity.info,
    "link.revoked": Severity.info,
    "link.downloaded": Severity.info,
    "sftp_account.created": Severity.notice,
    "sftp_account.password_rotated": Severity.notice,
    "sftp_account.deleted": Severity.warning,
    "billing.profile_updated": Severity.notice,
    "invoice.issued": Severity.info,
    "invoice.payment_recorded": Severity.notice,
    "invoice.paid": Severity.info,
    "invoice.overdue": Severity.warning,
    "invoice.voided": Severity.warning,
    "alert.delivered": Severity.info,
    "alert.given_up": Severity.critical,
}


def severity_of(action: str) -> Severity:
    return ACTIONS[action]
