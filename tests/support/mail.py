"""Read what the worker sent to the test mail sink."""

from __future__ import annotations

import re
from email.message import EmailMessage

from devstack.stack import LocalStack

_TOKEN = re.compile(r"/(verify-email|accept-invitation|reset-password)\?token=([A-Za-z0-9_-]+)")


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else str(message.get_payload())


def wait_for_mail(stack: LocalStack, to: str, subject_contains: str,
                  timeout: float = 30) -> EmailMessage:
    def matches(m: EmailMessage) -> bool:
        return to.lower() in str(m["To"]).lower() and subject_contains in str(m["Subject"])

    return stack["mail"].wait_for(matches, timeout=timeout)


def link_token(message: EmailMessage, path: str) -> str:
    for found_path, token in _TOKEN.findall(_text(message)):
        if found_path == path:
            return token
    raise AssertionError(f"no {path} link in: {_text(message)}")


def mail_count(stack: LocalStack, to: str) -> int:
    return sum(to.lower() in str(m["To"]).lower() for m in stack["mail"].messages)
