"""The table itself keeps action, severity, actor and target type to identifiers: exports
write them into JSON and CSV unescaped, so a quote or a formula there must never land."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from portcullis.audit.models import Severity
from portcullis.audit.service import Actor, AuditRecord, Target, audit_log
from portcullis.db import tenant_session
from tests.support.factories import make_tenant

pytestmark = pytest.mark.usefixtures("stack")

GOOD = {"action": "member.invited", "severity": "notice", "actor_type": "user",
        "target_type": "member"}
BAD_VALUES = ['x"y', "=cmd", "@x", "Upper", "with space", "back\\slash", ""]


def _record(action: str, severity: str, actor_type: str, target_type: str | None) -> None:
    tenant = make_tenant("Vocabulary Co")
    with tenant_session(tenant) as db:
        audit_log.record(db, AuditRecord(
            action=action, actor=Actor(actor_type, "a"), tenant_id=tenant,
            severity=Severity.notice if severity == "notice" else severity,  # type: ignore[arg-type]
            target=Target(target_type, "t") if target_type is not None else None))


def test_identifiers_are_accepted() -> None:
    _record(**GOOD)
    _record(**{**GOOD, "target_type": None})


@pytest.mark.parametrize("column", sorted(GOOD))
@pytest.mark.parametrize("value", BAD_VALUES)
def test_anything_else_is_refused(column: str, value: str) -> None:
    with pytest.raises(IntegrityError, match=f"ck_audit_events_{column}"):
        _record(**{**GOOD, column: value})
