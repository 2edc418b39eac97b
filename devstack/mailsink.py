"""An SMTP server that keeps every message, for tests (in memory) and developers (.eml files).

It runs in this process on a thread (aiosmtpd's Controller), so tests can wait on messages
without polling a folder. Optionally it requires AUTH (over plain SMTP, which aiosmtpd
refuses by default) so the credentials in ``SMTP_URL`` are exercised too.
"""

from __future__ import annotations

import email
import email.policy
import hmac
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from devstack.process import free_port

MAIL_FROM = "Portcullis <no-reply@portcullis.localhost>"


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self.sink.user is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        self.sink._store(data)
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, base_dir: Path, port: int | None = None, *,
                 user: str | None = None, password: str | None = None,
                 mail_from: str = MAIL_FROM) -> None:
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.base_dir = base_dir
        self.mail_dir = base_dir / "mail"
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.mail_from = mail_from
        self._messages: list[EmailMessage] = []
        self._changed = threading.Condition()
        self._controller: Controller | None = None
        self._count = 0

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.user is None:
            return AuthResult(success=False, handled=False)
        ok = (hmac.compare_digest(auth_data.login, self.user.encode())
              & hmac.compare_digest(auth_data.password, (self.password or "").encode()))
        # handled=False: let aiosmtpd answer 535 (True would leave the client hanging).
        return AuthResult(success=bool(ok), handled=False)

    def start(self) -> MailSink:
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {}
        if self.user is not None:
            # AUTH over plain SMTP; MAIL FROM is refused until authenticated (see
            # _Handler), which avoids aiosmtpd's auth_required warning about no TLS.
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        # A new Controller each time: stop() then start() keeps the port (outage tests).
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _store(self, data: bytes) -> None:
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._changed:
            self._count += 1
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self._count:05d}.eml"
            (self.mail_dir / name).write_bytes(data)
            self._messages.append(message)
            self._changed.notify_all()

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of every message received, oldest first."""
        with self._changed:
            return list(self._messages)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def wait_for(self, predicate: Callable[[EmailMessage], bool],
                 timeout: float = 10.0) -> EmailMessage:
        """The first message matching ``predicate``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for message in self._messages:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching email within {timeout:.0f}s "
                                       f"({len(self._messages)} received)")
                self._changed.wait(left)

    @property
    def url(self) -> str:
        auth = ""
        if self.user is not None:
            auth = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@"
        return f"smtp://{auth}127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"SMTP_URL": self.url, "MAIL_FROM": self.mail_from}
