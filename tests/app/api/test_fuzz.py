"""schemathesis against the live app and its own document, as four callers: an admin, a
staff member and a view-only member (each with a fresh cookie session and its CSRF token per
case) and an access key with every scope. Whatever it sends, the answer is never a 5xx and
its status, media type and body are the documented ones (a role's 403, a key's
``session_required`` included). At least 1,000 requests in all, counted.

Schema-driven fuzzing (valid and schema-violating data) catches response-model drift and
5xx in code paths nobody thought of; the hand-made hostile inputs (nesting, NUL, wrong media
types, oversized bodies) are in tests/app/test_hostile_input.py. Derandomised, so a run is
repeatable; each case gets a fresh session, so a generated logout or session revocation
cannot starve the cases after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from portcullis.access_keys.service import SCOPES
from portcullis.accounts.models import Role
from tests.support.factories import (
    Member,
    make_access_key,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import app_with, csrf_headers

EXAMPLES = 3  # per operation, mode and caller: about 1,100 requests in all
MIN_REQUESTS = 1000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def fuzz_app(stack: object) -> Iterator[Flask]:
    """The app with a default rate limit no fuzzing run reaches (429s would prove nothing)."""
    with app_with(RATE_LIMIT_DEFAULT="100000/minute") as app:
        yield app


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)


@dataclass(frozen=True)
class Caller:
    name: str
    member: Member | None = None  # a session of this member per case
    key: str | None = None  # or this access key

    def credentials(self, case: Any) -> dict[str, str]:
        """Sets the case's cookies; returns its extra headers."""
        if self.member is not None:
            session = make_session(self.member)
            case.cookies = {**(case.cookies or {}), **session.cookies}
            return csrf_headers(session)
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def callers(stack: object) -> list[Caller]:
    tenant = make_tenant("Fuzz Co")
    admin = make_member(tenant, Role.admin)
    return [Caller("admin", admin), Caller("staff", make_member(tenant, Role.staff)),
            Caller("viewonly", make_member(tenant, Role.viewonly)),
            Caller("access key", key=make_access_key(admin, list(SCOPES)).secret)]


def _run(operation: Any, mode: GenerationMode, caller: Caller, sent: list[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case: Any) -> None:
        headers = caller.credentials(case)
        sent.append(1)
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_every_operation_conforms_to_its_document(api_schema: Any,
                                                  callers: list[Caller]) -> None:
    failures = []
    sent: list[int] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        for caller in callers:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _run(operation, mode, caller, sent)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to negate (no input)
                except Exception as exc:  # noqa: BLE001 - collected, reported together below
                    failures.append(f"{operation.label} as {caller.name} ({mode.value}): "
                                    f"{exc}"[:1500])
    assert not failures, "\n\n".join(failures)
    assert len(sent) >= MIN_REQUESTS, len(sent)
