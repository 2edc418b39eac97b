"""Every audit action the system declares is exercised by a test, and API.md's list is covered.

The per-area tests (accounts, audit, storage...) emit each action through its real cause
and check the recorded event; this walks the declared list so a new action cannot land
without one.
"""

from __future__ import annotations

from pathlib import Path

from portcullis.audit.actions import ACTIONS

TESTS = Path(__file__).resolve().parents[2]

# API.md, "Audited at least:", as the action names this implementation gives them.
CONTRACT = {
    "signup": "auth.signup", "email verification": "auth.email_verified",
    "login success": "auth.login_succeeded", "login failure": "auth.login_failed",
    "MFA enrolment": "auth.mfa_enrolled", "MFA success": "auth.mfa_succeeded",
    "MFA failure": "auth.mfa_failed", "recovery-code use": "auth.recovery_code_used",
    "logout": "auth.logout", "password reset": "auth.password_reset",
    "session revocation": "auth.session_revoked", "invitations": "member.invited",
    "role changes": "member.role_changed", "status changes": "member.status_changed",
    "member removal": "member.removed", "access-key creation": "access_key.created",
    "access-key use from a new IP": "access_key.used_from_new_ip",
    "access-key revocation": "access_key.revoked", "bucket creation": "bucket.created",
    "bucket deletion": "bucket.deleted",
    "bucket permission changes": "bucket.permissions_changed",
    "bucket lifecycle changes": "bucket.lifecycle_changed",
    "upload verdicts (clean)": "upload.clean", "upload verdicts (rejected)": "upload.rejected",
    "upload verdicts (infected)": "upload.infected", "file deletion": "file.deleted",
    "link creation": "link.created", "link revocation": "link.revoked",
    "share-link downloads": "link.downloaded",
    "tenant suspension": "tenant.suspended", "audit exports": "audit.exported",
    "billing profile changes": "billing.profile_updated", "invoice issue": "invoice.issued",
    "invoice payment": "invoice.payment_recorded", "invoice void": "invoice.voided",
    "invoice overdue": "invoice.overdue", "tenant reactivation": "tenant.reactivated",
    "SFTP account changes": "sftp_account.created",
    "passkey changes (registration)": "auth.webauthn_registered",
    "passkey changes (removal)": "auth.webauthn_removed",
    "passkey use": "auth.webauthn_succeeded", "passkey failure": "auth.webauthn_failed",
}


def _test_sources() -> str:
    here = Path(__file__).resolve()
    return "\n".join(p.read_text() for p in TESTS.rglob("test_*.py") if p != here)


def test_every_contracted_action_is_declared() -> None:
    missing = {what: action for what, action in CONTRACT.items() if action not in ACTIONS}
    assert not missing


def test_every_declared_action_is_exercised_by_a_test() -> None:
    sources = _test_sources()
    untested = sorted(a for a in ACTIONS if f'"{a}"' not in sources and f"'{a}'" not in sources)
    assert not untested, f"audit actions no test checks: {untested}"
