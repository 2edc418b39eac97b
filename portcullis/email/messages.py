"""One message kind per template: what every email says, who fills it in, and whether it is
capped per recipient.

Adding an email is adding one ``kind(...)`` here and queueing it by name where it happens
(``portcullis.email.service.queue``). The kind's ``source`` names the domain that knows, at
send time, the recipient and the template's fields (a ``Source`` registered with
``portcullis.email.service.register_source``): ``user`` and ``invitation`` are accounts'.
A kind's name is stable: it is stored in the job (``email.<name>``) and names its budget.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str


@dataclass(frozen=True)
class Kind:
    name: str
    subject: str  # str.format templates, filled from the source's fields (and ``link``)
    body: str
    source: str
    # The console page a single-use token opens (``{PUBLIC_BASE_URL}/<link>?token=...``), as
    # ``{link}``; the source mints the token at send time.
    link: str | None = None
    # Sent because someone named an address (signup, resend, forgot, invitations): capped
    # per recipient and kind (``EMAIL_RECIPIENT_LIMIT``).
    capped: bool = False

    @property
    def job_kind(self) -> str:
        return f"email.{self.name}"


KINDS: dict[str, Kind] = {}


def kind(name: str, subject: str, body: str, *, source: str, link: str | None = None,
         capped: bool = False) -> Kind:
    if name in KINDS:
        raise ValueError(f"email kind {name} defined twice")
    KINDS[name] = Kind(name, subject, body, source, link, capped)
    return KINDS[name]


def _notice(name: str, subject: str, text: str) -> Kind:
    """A security notice to a user: no link, never capped (the user's own action)."""
    return kind(name, subject, f"Hello {{name}},\n\n{text}\n", source="user")


# --------------------------------------------------------------------------- accounts

VERIFY_EMAIL = kind(
    "verify_email", "Confirm your email address for Portcullis",
    "Hello {name},\n\nConfirm your address within 24 hours:\n{link}\n",
    source="user", link="verify-email", capped=True)

RESET_PASSWORD = kind(
    "reset_password", "Reset your Portcullis password",
    "Hello {name},\n\nReset your password within 1 hour:\n{link}\n\nIf you did not ask for "
    "this, ignore this email.\n",
    source="user", link="reset-password", capped=True)

# ``note`` is what an invitee who already has an account (in any tenant) must know: the
# inviter was told nothing, so the email is where they learn that accepting needs them to
# leave first; empty otherwise.
INVITATION = kind(
    "invitation", "You are invited to {tenant}",
    "You were invited to join {team} on Portcullis as {role}.\n\n{note}"
    "Accept within 7 days:\n{link}\n",
    source="invitation", link="accept-invitation", capped=True)

PASSWORD_CHANGED = _notice(
    "password_changed", "Your Portcullis password was changed",
    "The password of your Portcullis account was just changed, and every session was signed "
    "out. If this was not you, reset your password now and tell your admin.")

MFA_ENABLED = _notice(
    "mfa_enabled", "Two-factor authentication was set up on your account",
    "An authenticator app was just enrolled for your Portcullis account, with new recovery "
    "codes. If this was not you, reset your password now and tell your admin.")

# A passkey is a second factor: a user learns of each one added or removed, since a stolen
# session could otherwise change them unseen.
PASSKEY_ADDED = _notice(
    "passkey_added", "A passkey was added to your Portcullis account",
    "A passkey was just registered as a second factor of your Portcullis account. If this "
    "was not you, reset your password now and tell your admin.")

PASSKEY_REMOVED = _notice(
    "passkey_removed", "A passkey was removed from your Portcullis account",
    "A passkey was just removed from your Portcullis account. If this was not you, reset "
    "your password now and tell your admin.")

RECOVERY_CODES_CHANGED = _notice(
    "recovery_codes_changed", "A Portcullis recovery code was used",
    "One of your recovery codes was just used to sign in and can no longer be used. If this "
    "was not you, reset your password now and tell your admin.")

MFA_LOCKED = _notice(
    "mfa_locked", "Someone may know your Portcullis password",
    "Someone signed in with your password and then entered too many wrong two-factor codes, "
    "so the two-factor step of your account is locked for a while. Your password is "
    "probably known to someone else: reset it now and tell your admin.")

# --------------------------------------------------------------------------- billing
# To the billing profile's email (API.md's Emails section); ``billing`` fills them at send
# time from the invoice and the profile as they stand then.

INVOICE_ISSUED = kind(
    "invoice_issued", "Portcullis invoice {number} for {period}",
    "Hello {legal_name},\n\nInvoice {number} for {period} was issued: {total}, due on {due}."
    "\nYour admins can download it from the console.\n",
    source="billing")

INVOICE_OVERDUE = kind(
    "invoice_overdue", "Portcullis invoice {number} is overdue",
    "Hello {legal_name},\n\nInvoice {number} for {period} ({total}) was due on {due} and is "
    "not paid yet. A tenant with an invoice unpaid 30 days after its due date is suspended "
    "(read-only).\n",
    source="billing")

TENANT_SUSPENDED = kind(
    "tenant_suspended", "Portcullis: {tenant} is suspended",
    "Hello {legal_name},\n\n{tenant} is suspended (read-only) because an invoice is unpaid "
    "30 days after its due date. Paying it reactivates the account.\n",
    source="billing")

TENANT_REACTIVATED = kind(
    "tenant_reactivated", "Portcullis: {tenant} is active again",
    "Hello {legal_name},\n\nEvery overdue invoice of {tenant} is settled: the account is "
    "active again.\n",
    source="billing")
