"""Two tenants invite the same new address and both invitations are accepted at once: one
account is created (200), the other accept is 409 ``account_exists``, never a 500 from the
unique index on the address."""

from __future__ import annotations

import secrets
import threading

import pytest
from flask import Flask
from sqlalchemy import func, select

from portcullis.accounts import lookup
from portcullis.accounts.models import Role, User
from portcullis.db import system_session
from tests.support.factories import make_invitation, make_member, make_tenant
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("stack")

PASSWORD = "a sturdy passphrase 2026"


def _invitation(email: str) -> str:
    """A live invitation to ``email`` in a new tenant; its token."""
    return make_invitation(make_member(make_tenant("Race Co"), Role.admin), email, Role.staff)


def test_concurrent_accepts_for_one_address_are_200_and_409(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    email = f"race-{secrets.token_hex(5)}@example.com"
    tokens = [_invitation(email), _invitation(email)]

    # Both accepts look the address up before either creates the account: the race.
    both_looked = threading.Barrier(2, timeout=30)
    real_lookup = lookup.user_by_email

    def looked_up_together(address: str) -> User | None:
        found = real_lookup(address)
        both_looked.wait()
        return found

    monkeypatch.setattr(lookup, "user_by_email", looked_up_together)
    answers: list[tuple[int, dict]] = []

    def accept(token: str, ip: str) -> None:
        response = make_client(app, ip=ip).post(
            "/api/v1/invitations/accept",
            json={"token": token, "name": "Racer", "password": PASSWORD})
        answers.append((response.status_code, response.get_json(force=True, silent=True)))

    threads = [threading.Thread(target=accept, args=(token, f"198.18.7.{i + 10}"))
               for i, token in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(status for status, _ in answers) == [200, 409], answers
    [(_, conflict)] = [a for a in answers if a[0] == 409]
    assert conflict["code"] == "account_exists"
    with system_session() as db:
        count = db.scalar(select(func.count()).select_from(User).where(
            func.lower(User.email) == email))
    assert count == 1
