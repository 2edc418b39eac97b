"""Login takes as long for an unknown email as for a known one with a wrong password, so
response time does not reveal which emails have accounts."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import update

from portcullis.accounts.models import Role, User
from portcullis.accounts.passwords import hash_password
from portcullis.db import tenant_session
from tests.support.factories import Member, make_member, make_tenant
from tests.support.web import make_client, settings_env

pytestmark = pytest.mark.usefixtures("stack")

LOGIN = "/api/v1/auth/login"
ROUNDS = "10"  # bcrypt at a real cost, so that it (not noise) dominates a login
TRIES = 20
ACCOUNTS = 4  # TRIES / ACCOUNTS + warm-up failures stay under 10 per account
WRONG = "a wrong password, long enough"


@pytest.fixture
def real_bcrypt_cost() -> Iterator[None]:
    with settings_env(BCRYPT_ROUNDS=ROUNDS):
        yield


def _accounts() -> list[Member]:
    """Members whose stored hash has the current cost, as after a real signup."""
    tenant = make_tenant("Timing Co")
    members = [make_member(tenant, Role.viewonly) for _ in range(ACCOUNTS)]
    password_hash = hash_password(members[0].password)
    with tenant_session(tenant) as db:
        db.execute(update(User).where(User.tenant_id == tenant).values(
            password_hash=password_hash))
    return members


def _timed_login(app: Flask, email: str) -> float:
    client = make_client(app)  # one address per try: no per-IP limit
    started = time.perf_counter()
    response = client.post(LOGIN, json={"email": email, "password": WRONG})
    elapsed = time.perf_counter() - started
    assert response.status_code == 401, response.get_json()
    return elapsed


def _unknown() -> str:
    return f"nobody-{uuid.uuid4().hex[:12]}@example.com"


@pytest.mark.usefixtures("real_bcrypt_cost")
def test_unknown_email_and_wrong_password_take_the_same_time(app: Flask) -> None:
    members = _accounts()
    for member in members:  # warm-up: caches, pools, the dummy hash at this cost
        _timed_login(app, member.email)
        _timed_login(app, _unknown())

    known: list[float] = []
    unknown: list[float] = []
    for attempt in range(TRIES):
        pair = [("known", members[attempt % ACCOUNTS].email), ("unknown", _unknown())]
        random.shuffle(pair)  # interleaved, in random order, so drift hits both alike
        for kind, email in pair:
            (known if kind == "known" else unknown).append(_timed_login(app, email))

    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    difference = abs(known_median - unknown_median) / min(known_median, unknown_median)
    assert difference < 0.20, (
        f"median login time: wrong password {known_median * 1000:.1f} ms, "
        f"unknown email {unknown_median * 1000:.1f} ms ({difference:.0%} apart)")
    # bcrypt at this cost really ran on both paths (a short cut would be far faster).
    assert min(known_median, unknown_median) > 0.02
