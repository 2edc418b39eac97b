"""Outgoing email through ``SMTP_URL``, for the worker only (never from a request).

A server we cannot reach, a timeout, a temporary (4xx) refusal or bad credentials raise
:class:`DependencyUnavailable` so the task retries; a permanent refusal of this message
or recipient raises :class:`MailRejected`. Neither message nor log contains the password.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from portcullis.errors import DependencyUnavailable

log = logging.getLogger(__name__)

_RESERVED = {"from", "to", "subject", "date", "message-id", "cc", "bcc", "sender"}
_TRUE = {"1", "true", "yes", "on"}
# Refusals that say "fix the configuration", not "this message is bad": keep retrying.
_CONFIG_CODES = {530, 534, 535, 538}


class MailRejected(Exception):
    """The server permanently refused this message or recipient; retrying will not help."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        super().__init__(f"mail rejected ({code}): {reason}")


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://[user:pass@]host[:port][?starttls=1]`` or ``smtps://...`` (implicit TLS)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("SMTP_URL is not a valid URL") from None
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError("SMTP_URL must be smtp://host:port or smtps://host:port")
    implicit = parts.scheme == "smtps"
    starttls = parse_qs(parts.query).get("starttls", ["0"])[-1].lower() in _TRUE
    if implicit and starttls:
        raise ValueError("SMTP_URL: smtps:// already uses TLS; drop ?starttls=1")
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit else 587 if starttls else 25),
        implicit_tls=implicit,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class Mailer:
    def __init__(self, target: SmtpTarget, mail_from: str, *, timeout: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.target = target
        self.mail_from = mail_from
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.envelope_from = parseaddr(mail_from)[1]
        if "@" not in self.envelope_from:
            raise ValueError("MAIL_FROM must contain an email address")
        self.domain = self.envelope_from.rsplit("@", 1)[1]

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> Mailer:
        return cls(parse_smtp_url(settings.SMTP_URL.get_secret_value()), settings.MAIL_FROM,
                   **kwargs)

    def __repr__(self) -> str:
        return f"Mailer({self.target.host}:{self.target.port})"

    def build(self, to: str, subject: str, text: str, html: str | None = None,
              headers: Mapping[str, str] | None = None) -> EmailMessage:
        """The message as it will be sent; raises ValueError on header injection."""
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(UTC))
        # An explicit domain: make_msgid() would otherwise ask DNS for our FQDN.
        message["Message-ID"] = make_msgid(domain=self.domain)
        for name, value in (headers or {}).items():
            if name.lower() in _RESERVED:
                raise ValueError(f"header {name} is set by the mailer")
            message[name] = value
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    def send(self, to: str, subject: str, text: str, html: str | None = None,
             headers: Mapping[str, str] | None = None) -> str:
        """Send one message to one recipient and return its Message-ID."""
        recipient = parseaddr(to)[1]
        if "@" not in recipient or any(c in to for c in "\r\n,;"):
            raise ValueError("send() takes exactly one recipient address")
        message = self.build(to, subject, text, html, headers)
        try:
            with self._connect() as smtp:
                if self.target.starttls:
                    smtp.starttls(context=self.ssl_context)
                    smtp.ehlo()
                if self.target.username is not None:
                    smtp.login(self.target.username, self.target.password or "")
                smtp.send_message(message, from_addr=self.envelope_from, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            code, _ = next(iter(exc.recipients.values()), (550, b""))
            raise self._refusal(int(code), "recipient refused") from None
        except smtplib.SMTPAuthenticationError:
            raise DependencyUnavailable("smtp", "authentication failed") from None
        except smtplib.SMTPResponseException as exc:
            raise self._refusal(int(exc.smtp_code), type(exc).__name__) from None
        except (smtplib.SMTPException, OSError) as exc:  # SSLError and timeouts are OSErrors
            raise DependencyUnavailable("smtp", type(exc).__name__) from None
        log.info("email sent", extra={"message_id": message["Message-ID"]})
        return str(message["Message-ID"])

    def _connect(self) -> smtplib.SMTP:
        host, port = self.target.host, self.target.port
        if self.target.implicit_tls:
            return smtplib.SMTP_SSL(host, port, local_hostname=self.domain,
                                    timeout=self.timeout, context=self.ssl_context)
        return smtplib.SMTP(host, port, local_hostname=self.domain, timeout=self.timeout)

    @staticmethod
    def _refusal(code: int, reason: str) -> Exception:
        if code >= 500 and code not in _CONFIG_CODES:
            return MailRejected(code, reason)
        return DependencyUnavailable("smtp", f"{reason} ({code})")
