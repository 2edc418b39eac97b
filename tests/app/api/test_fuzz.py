"""schemathesis against the live app and its own document, as an admin: whatever it sends,
the answer is never a 5xx and its status, media type and body are the documented ones.

Schema-driven fuzzing (valid and schema-violating data) catches response-model drift and
5xx in code paths nobody thought of; the hand-made hostile inputs (nesting, NUL, wrong media
types, oversized bodies) are in tests/app/test_hostile_input.py. Derandomised, so a run is
repeatable; each case gets a fresh session, so a generated logout or session revocation
cannot starve the cases after it.
"""

from __future__ import annotations

from collections.abc import Iterator
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

from portcullis.accounts.models import Role
from tests.support.factories import Member, make_member, make_session, make_tenant
from tests.support.web import app_with, csrf_headers

EXAMPLES = 4  # per operation and mode: about 300 requests in all
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


@pytest.fixture(scope="module")
def admin(stack: object) -> Member:
    return make_member(make_tenant("Fuzz Co"), Role.admin)


def _run(operation: Any, mode: GenerationMode, admin: Member) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case: Any) -> None:
        session = make_session(admin)
        case.cookies = {**(case.cookies or {}), **session.cookies}
        case.call_and_validate(headers=csrf_headers(session), checks=CHECKS)

    run()


def test_every_operation_conforms_to_its_document(api_schema: Any, admin: Member) -> None:
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, mode, admin)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to negate (no input at all)
            except Exception as exc:  # noqa: BLE001 - collected, reported together below
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:1500])
    assert not failures, "\n\n".join(failures)
