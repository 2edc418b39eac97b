"""Brazilian tax ids (``portcullis.billing.tax_ids``): CPF and CNPJ, numeric and the
alphanumeric CNPJ in use since July 2026, check digits verified by python-stdnum, kept
compact; a tax id never leaves in full, neither through an error nor the audit trail."""

from __future__ import annotations

import traceback

import pytest
from sqlalchemy import select

from portcullis.audit.models import AuditEvent
from portcullis.billing import service as billing
from portcullis.billing.models import BillingProfile
from portcullis.billing.tax_ids import TaxIdType, masked, normalise
from portcullis.callers import Caller, Role
from portcullis.db import system_session
from portcullis.errors import Invalid
from tests.support.factories import make_member, make_tenant
from tests.support.factories.billing import ADDRESS

CPF, CNPJ, NONE = TaxIdType.cpf, TaxIdType.cnpj, TaxIdType.none
ARABIC_INDIC = {ord(d): chr(0x660 + int(d)) for d in "0123456789"}


@pytest.mark.parametrize(("kind", "value", "compact"), [
    (CPF, "111.444.777-35", "11144477735"),
    (CPF, "11144477735", "11144477735"),
    (CPF, "529.982.247-25", "52998224725"),
    (CPF, " 390 533 447-05 ", "39053344705"),
    (CNPJ, "11.222.333/0001-81", "11222333000181"),
    (CNPJ, "11444777000161", "11444777000161"),
    (CNPJ, "12.ABC.345/01DE-35", "12ABC34501DE35"),
    (CNPJ, "12ABC34501DE35", "12ABC34501DE35"),
    (CNPJ, "12.abc.345/01de-35", "12ABC34501DE35"),
    (CNPJ, "12abc34501de35", "12ABC34501DE35"),
])
def test_a_valid_id_is_answered_compact_and_upper_case(kind: TaxIdType, value: str,
                                                       compact: str) -> None:
    """Punctuation and case are the submitter's; what is stored and answered is one form."""
    assert normalise(kind, value) == compact


@pytest.mark.parametrize(("kind", "value"), [
    (CPF, "111.444.777-36"),  # wrong check digit
    (CPF, "11144477753"),  # check digits swapped
    (CPF, "1114447773"),  # too short
    (CPF, "111444777350"),  # too long
    (CPF, "111.444.777-3A"),  # a CPF has digits only
    (CPF, "11.222.333/0001-81"),  # a valid CNPJ is no CPF
    (CNPJ, "11.222.333/0001-82"),
    (CNPJ, "12ABC34501DE36"),  # the alphanumeric example with a wrong check digit
    (CNPJ, "12.abc.345/01de-36"),
    (CNPJ, "12ABC34501DEAB"),  # check digits are digits
    (CNPJ, "12ABC34501DE3"),
    (CNPJ, "A2ABC34501DE35"),
    (CNPJ, "12ÁBC34501DE35"),  # A-Z only
    (CNPJ, "111.444.777-35"),  # a valid CPF is no CNPJ
    (CNPJ, "00000000000000"),
    # Arabic-Indic digits have the same check digits as ASCII ones (ord - 48 ≡ digit
    # mod 11) and match stdnum's ``\d``: not a tax id all the same.
    (CNPJ, "112223330001".translate(ARABIC_INDIC) + "81"),
])
def test_an_invalid_id_is_refused(kind: TaxIdType, value: str) -> None:
    with pytest.raises(Invalid) as caught:
        normalise(kind, value)
    assert caught.value.code == "invalid_tax_id"


@pytest.mark.parametrize(("kind", "value"), [
    (CPF, "111.444.777-36"), (CPF, "11144477736"), (CNPJ, "12.ABC.345/01DE-36"),
    (CNPJ, "12abc34501de36"), (CNPJ, "11.222.333/0001-82"),
    (CNPJ, "112223330001".translate(ARABIC_INDIC) + "81"), (NONE, "11144477735"),
])
def test_the_error_never_repeats_the_value(kind: TaxIdType, value: str) -> None:
    """A wrong tax id is still someone's tax id: not in the message, the detail, or
    anything the traceback (a log line) would print, in either form."""
    with pytest.raises(Invalid) as caught:
        normalise(kind, value)
    printed = "".join(traceback.format_exception(caught.value))
    digits = "".join(c for c in value if c.isalnum()).upper()
    for text in (str(caught.value), caught.value.detail, repr(caught.value.args), printed):
        assert value not in text and digits not in text and digits.lower() not in text


@pytest.mark.parametrize("kind", [CPF, CNPJ])
@pytest.mark.parametrize("value", [None, ""])
def test_cpf_and_cnpj_require_an_id(kind: TaxIdType, value: str | None) -> None:
    with pytest.raises(Invalid) as caught:
        normalise(kind, value)
    assert caught.value.code == "invalid_tax_id"


def test_none_takes_no_id() -> None:
    assert normalise(NONE, None) is None
    assert normalise(NONE, "") is None
    with pytest.raises(Invalid) as caught:
        normalise(NONE, "11144477735")
    assert caught.value.code == "invalid_tax_id"


@pytest.mark.parametrize(("value", "shown"), [
    ("12ABC34501DE35", "**********DE35"),
    ("11144477735", "*******7735"),
    (None, None),
    ("", None),
])
def test_masked_keeps_the_last_four_characters_only(value: str | None,
                                                    shown: str | None) -> None:
    assert masked(value) == shown


@pytest.mark.usefixtures("stack")
def test_a_profile_stores_the_id_compact_and_audits_it_masked() -> None:
    """The profile keeps the compact id; its audit event (which leaves the tenant's hands in
    exports and the SIEM) keeps the last 4 characters only."""
    tenant = make_tenant("Tax Id Co")
    admin = make_member(tenant, Role.admin)
    caller = Caller.user(tenant, admin.user_id, Role.admin)

    profile = billing.put_profile(caller, "Tax Id Ltda", "billing@taxid.example.com", CNPJ,
                                  "12.abc.345/01de-35", dict(ADDRESS))

    assert profile.tax_id == "12ABC34501DE35"
    with system_session() as db:
        assert db.get_one(BillingProfile, tenant).tax_id == "12ABC34501DE35"
        [event] = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.action == "billing.profile_updated"))
    assert event.details["tax_number_masked"] == "**********DE35"
    recorded = str(event.details)
    assert "12ABC34501DE35" not in recorded and "12abc34501de35" not in recorded
    assert "345/01" not in recorded and "34501" not in recorded


@pytest.mark.usefixtures("stack")
def test_a_refused_profile_changes_nothing_and_records_no_id() -> None:
    tenant = make_tenant("Bad Tax Id Co")
    admin = make_member(tenant, Role.admin)
    caller = Caller.user(tenant, admin.user_id, Role.admin)

    with pytest.raises(Invalid) as caught:
        billing.put_profile(caller, "Bad Ltda", "billing@bad.example.com", CPF,
                            "111.444.777-36", dict(ADDRESS))

    assert caught.value.code == "invalid_tax_id" and "7773" not in str(caught.value)
    with system_session() as db:
        assert db.get(BillingProfile, tenant) is None
        assert not db.scalars(select(AuditEvent.id).where(
            AuditEvent.tenant_id == tenant,
            AuditEvent.action == "billing.profile_updated")).all()

