"""The table itself keeps action, severity, actor and target type to identifiers: exports
write them into JSON and CSV unescaped, so a quote or a formula there must never land."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from portcullis.audit.models import Severity
from tests.support.factories import make_tenant
from tests.support.factories.audit import record_event

pytestmark = pytest.mark.usefixtures("stack")

GOOD = {"action": "member.invited", "severity": "notice", "actor_type": "user",
        "target_type": "member"}
BAD_VALUES = ['x"y', "=cmd", "@x", "Upper", "with space", "back\\slash", ""]


def _record(action: str, severity: str, actor_type: str, target_type: str | None) -> None:
    tenant = make_tenant("Vocabulary Co")
    record_event(tenant, action,
                 Severity.notice if severity == "notice" else severity,  # type: ignore[arg-type]
                 actor=(actor_type, "a"),
                 target=(target_type, "t") if target_type is not None else None)


def test_identifiers_are_accepted() -> None:
    _record(**GOOD)
    _record(**{**GOOD, "target_type": None})


@pytest.mark.parametrize("column", sorted(GOOD))
@pytest.mark.parametrize("value", BAD_VALUES)
def test_anything_else_is_refused(column: str, value: str) -> None:
    with pytest.raises(IntegrityError, match=f"ck_audit_events_{column}"):
        _record(**{**GOOD, column: value})
