"""Monthly runs (``portcullis.billing.issuing`` through ``service.run_period``): one invoice
per tenant that existed at any time in the period, however often, concurrently or
interrupted the run is repeated; numbers ``INV-YYYY-NNNNNN`` gapless within the year of
issue; each issue audited in the tenant's own chain and noticed to its billing email.

Issuing years 2002 and 2005-2010 are this module's, one per test that checks numbers; 2011
stays empty (runs refused).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config import get_settings
from devstack.stack import LocalStack
from portcullis.audit.service import verify_chains
from portcullis.billing import issuing
from portcullis.billing import service as billing
from portcullis.billing.models import Invoice
from portcullis.billing.rating import Period, prices_from
from portcullis.callers import Caller
from portcullis.db import system_session
from portcullis.errors import Conflict
from portcullis.tenants.models import TenantStatus
from tests.portcullis.billing.helpers import (
    GIB,
    assert_gapless,
    counter_of_year,
    email_jobs,
    events,
    invoice_of,
    invoices_of,
    run,
    use_storage,
    utc,
)
from tests.support.factories import (
    make_bucket,
    make_operator_key,
    make_profile,
    make_tenant,
    record_usage,
)
from tests.support.mail import wait_for_mail

pytestmark = pytest.mark.usefixtures("stack")

ROOT = Path(__file__).resolve().parents[3]


def period_invoices(period: Period) -> dict[uuid.UUID, tuple[Any, ...]]:
    """Every invoice of the period (anyone's), by id: what defines each."""
    with system_session() as db:
        return {i.id: (i.tenant_id, i.number, i.issued_at, i.due_at, i.total_cents, i.status,
                       i.usage, i.prices)
                for i in db.scalars(select(Invoice).where(Invoice.period == str(period)))}


def test_every_tenant_that_existed_in_the_period_gets_one_invoice() -> None:
    """Created before or during the month, up to its last minute, suspended or not: one
    invoice each; created at its end or after: none. Running again issues nothing."""
    period = Period.parse("2005-03")
    billed = {
        "before": make_tenant("Before Co", created_at=utc(2005, 1, 15)),
        "during": make_tenant("During Co", created_at=utc(2005, 3, 15, 12)),
        "last minute": make_tenant("Last Minute Co", created_at=utc(2005, 3, 31, 23, 59)),
        "suspended": make_tenant("Suspended Co", created_at=utc(2005, 2, 1),
                                 status=TenantStatus.suspended),
    }
    unbilled = {
        "at the end": make_tenant("At End Co", created_at=period.ends_at),
        "after": make_tenant("After Co", created_at=utc(2005, 4, 1, 10)),
    }
    use_storage(billed["during"], period, gib=4)
    reported: list[tuple[int, int]] = []

    result = billing.run_period(Caller.system(), period, lambda n, of: reported.append((n, of)),
                                now=utc(2005, 4, 2, 3))

    for name, tenant in billed.items():
        assert len(invoices_of(tenant, period)) == 1, name
    for name, tenant in unbilled.items():
        assert invoices_of(tenant) == [], name
    assert result.period == "2005-03" and result.issued == result.tenants >= len(billed)
    assert reported and reported[-1] == (result.tenants, result.tenants)
    assert issuing.is_billed(period)

    again = billing.run_period(Caller.system(), period, now=utc(2005, 4, 3))
    assert (again.tenants, again.issued) == (0, 0)
    for tenant in billed.values():
        assert len(invoices_of(tenant, period)) == 1
    assert_gapless(2005)


def test_an_invoice_is_numbered_dated_and_priced_at_issue() -> None:
    """Numbers take the year of issue (a December billed in January is numbered in the new
    year); due ``INVOICE_DUE_DAYS`` after issue; the prices in force stored; a zero total is
    issued already paid, anything else open."""
    period = Period.parse("2005-12")
    now = utc(2006, 1, 3, 4, 5, 6)
    charged = make_tenant("Charged Co", created_at=utc(2005, 11, 1))
    free = make_tenant("Free Co", created_at=utc(2005, 11, 1))
    use_storage(charged, period, gib=8)

    run(period, now)

    settings = get_settings()
    bill, nothing = invoice_of(charged, period), invoice_of(free, period)
    for issued in (bill, nothing):
        assert issued.number.startswith("INV-2006-") and len(issued.number) == 15
        assert issued.number[9:].isdigit()
        assert issued.issued_at == now
        assert issued.due_at == now + timedelta(days=settings.INVOICE_DUE_DAYS)
        assert issued.prices == prices_from(settings)
        assert issued.currency == settings.BILLING_CURRENCY
    assert (bill.status, bill.total_cents, bill.paid_cents, bill.paid_at) == ("open", 200, 0,
                                                                               None)
    assert [(line.item, line.amount_cents) for line in bill.lines] == [("storage", 200)]
    assert (nothing.status, nothing.total_cents, nothing.paid_at) == ("paid", 0, now)
    assert nothing.lines == []
    assert nothing.usage == {"days": 31, "storage_byte_days": 0, "egress_bytes": 0,
                             "sftp_account_days": 0}
    assert_gapless(2006)


def test_issue_is_audited_in_the_tenants_own_chain_as_its_actor() -> None:
    """An operator's run lands in each tenant's events as the operator (its key), beat's as
    the system; the chains still verify."""
    key = make_operator_key("billing run tests")
    by_operator = make_tenant("Operator Run Co", created_at=utc(2006, 12, 1))
    use_storage(by_operator, Period.parse("2007-01"), gib=2)

    run(Period.parse("2007-01"), utc(2007, 2, 1, 1), Caller.operator(key.id))
    by_system = make_tenant("System Run Co", created_at=utc(2007, 2, 10))
    run(Period.parse("2007-02"), utc(2007, 3, 1, 1), Caller.system())

    issued = invoice_of(by_operator, Period.parse("2007-01"))
    event = events(by_operator, "invoice.issued")[0]
    assert (event.actor_type, event.actor_id) == ("operator", str(key.id))
    assert (event.target_type, event.target_id) == ("invoice", str(issued.id))
    assert event.details == {"number": issued.number, "period": "2007-01",
                             "total_cents": 50, "status": "open"}
    # by_operator existed in 2007-02 too: that invoice is the system's.
    assert [(e.actor_type, e.actor_id, e.details["period"])
            for e in events(by_operator, "invoice.issued")] == [
        ("operator", str(key.id), "2007-01"), ("system", None, "2007-02")]
    [system_event] = events(by_system, "invoice.issued")
    assert (system_event.actor_type, system_event.actor_id) == ("system", None)
    assert system_event.details["status"] == "paid"
    for tenant in (by_operator, by_system):
        assert verify_chains(tenant).broken == []
    assert_gapless(2007)


def test_two_concurrent_runs_issue_one_invoice_per_tenant_without_gaps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both runs list the same pending tenants before either issues (a barrier holds each
    at its first batch); batches take turns on the year's counter and each skips what the
    other committed: one invoice per tenant, numbers 1..N."""
    period = Period.parse("2008-01")
    now = utc(2008, 2, 1, 2)
    tenants = [make_tenant(f"Concurrent {n} Co", created_at=utc(2007, 12, 1)) for n in range(12)]
    for n, tenant in enumerate(tenants):
        if n % 2:
            use_storage(tenant, period, gib=n)
    barrier = threading.Barrier(2, timeout=60)
    first = threading.local()
    real = issuing._issue_batch

    def held(*args: Any, **kwargs: Any) -> int:
        if not getattr(first, "done", False):
            first.done = True
            barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(issuing, "_issue_batch", held)
    results: list[issuing.RunResult] = []
    failures: list[BaseException] = []

    def one_run() -> None:
        try:
            results.append(issuing.run(Caller.system(), period, now, batch=3))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures, failures
    assert len(results) == 2
    assert results[0].tenants == results[1].tenants >= len(tenants)  # both saw them all
    assert results[0].issued + results[1].issued == len(period_invoices(period))
    for tenant in tenants:
        assert len(invoices_of(tenant, period)) == 1
    assert assert_gapless(2008) == len(period_invoices(period))


KILLED_RUN = textwrap.dedent("""
    import sys
    import portcullis.models  # noqa: F401 - every table
    from portcullis.billing import issuing
    from portcullis.billing.rating import Period
    from portcullis.callers import Caller
    from datetime import datetime, UTC

    real = issuing._issue_batch
    calls = 0

    def second_batch_hangs(*args, **kwargs):
        global calls
        calls += 1
        issued = real(*args, **kwargs)
        if calls == 2:  # flushed, not committed: the year's counter row is locked
            print("second batch flushed", flush=True)
            sys.stdin.read()
        return issued

    issuing._issue_batch = second_batch_hangs
    issuing.run(Caller.system(), Period.parse(sys.argv[1]),
                datetime.fromisoformat(sys.argv[2]),
                lambda done, total: print(f"committed {done}/{total}", flush=True), batch=3)
""")


def _lines(process: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The process's output lines as they come (``<eof>`` last), and the thread reading."""
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            out.put(line.strip())
        out.put("<eof>")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return out, reader


def _until(lines: queue.Queue[str], wanted: Callable[[str], bool],
           process: subprocess.Popen[str], errors: Path) -> None:
    while not wanted(line := lines.get(timeout=120)):
        assert line != "<eof>", (f"the run exited ({process.poll()}) early:\n"
                                 f"{errors.read_text()[-3000:]}")


def test_a_run_killed_midway_and_run_again_leaves_no_gap_and_changes_nothing_issued(
        tmp_path: Path) -> None:
    """SIGKILL while the second batch's invoices are flushed but not committed: the first
    batch stays as issued, the second leaves neither invoices nor used numbers behind, and
    the rerun bills everyone else once, numbers going on from the first batch's."""
    period = Period.parse("2009-01")
    now = utc(2009, 2, 1, 0, 30)
    tenants = [make_tenant(f"Killed Run {n} Co", created_at=utc(2008, 12, 1)) for n in range(8)]
    for n, tenant in enumerate(tenants):
        use_storage(tenant, period, gib=n + 1)
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    errors = tmp_path / "killed_run.err"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(script), str(period), now.isoformat()], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        lines, reader = _lines(process)
        _until(lines, lambda line: line.startswith("committed 3/"), process, errors)
        _until(lines, lambda line: line == "second batch flushed", process, errors)
        first_batch = period_invoices(period)
        assert len(first_batch) == 3  # the second batch is not visible: not committed
        assert counter_of_year(2009) == 3
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        reader.join(timeout=30)  # at EOF once the process is gone
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
    assert process.returncode == -signal.SIGKILL

    result = issuing.run(Caller.system(), period, now + timedelta(hours=1), batch=3)

    after = period_invoices(period)
    assert {k: after[k] for k in first_batch} == first_batch  # issued invoices unchanged
    assert result.issued == len(after) - 3
    for tenant in tenants:
        assert len(invoices_of(tenant, period)) == 1
    assert assert_gapless(2009) == len(after)


@pytest.mark.parametrize(("period", "now"), [
    ("2011-03", utc(2011, 3, 1)),
    ("2011-03", utc(2011, 3, 31, 23, 59, 59)),
    ("2011-04", utc(2011, 3, 15)),
    ("2011-09", utc(2011, 3, 15)),
])
def test_a_period_not_over_yet_is_refused(period: str, now: Any) -> None:
    """Only a past month can be billed: the current one or a future one is a 409, and
    nothing is issued or numbered."""
    make_tenant("Too Early Co", created_at=utc(2010, 1, 1))
    with pytest.raises(Conflict) as caught:
        billing.run_period(Caller.system(), Period.parse(period), now=now)
    assert caught.value.code == "period_not_closed"
    assert period_invoices(Period.parse(period)) == {}
    assert not issuing.is_billed(Period.parse(period))
    assert counter_of_year(now.year) is None


def test_months_and_years_are_utc_whatever_the_offset_of_now() -> None:
    """01:00 on New Year's Day in UTC+3 is still 31 December in UTC: December is not over
    (a 409), November is billed, numbered in the UTC year of issue (2002, not 2003)."""
    now = datetime(2003, 1, 1, 1, tzinfo=timezone(timedelta(hours=3)))
    tenant = make_tenant("Offset Co", created_at=utc(2002, 10, 1))
    use_storage(tenant, Period.parse("2002-11"), gib=4)

    with pytest.raises(Conflict) as caught:
        run(Period.parse("2002-12"), now)
    assert caught.value.code == "period_not_closed"
    assert period_invoices(Period.parse("2002-12")) == {}

    run(Period.parse("2002-11"), now)
    issued = invoice_of(tenant, Period.parse("2002-11"))
    assert issued.number.startswith("INV-2002-") and issued.issued_at == now
    assert counter_of_year(2003) is None
    assert_gapless(2002)


@pytest.mark.usefixtures("worker")
def test_the_issue_notice_goes_to_the_billing_email(stack: LocalStack) -> None:
    """Issue mails the billing profile's address (a tenant with no profile gets no notice);
    the invoice keeps the profile as it stood, whatever changes later."""
    period = Period.parse("2010-01")
    tenant = make_tenant("Noticed Co", created_at=utc(2009, 12, 1))
    address = make_profile(tenant, legal_name="Noticed Ltda",
                           email=f"invoices-{uuid.uuid4().hex[:8]}@noticed.example.com")
    silent = make_tenant("Silent Co", created_at=utc(2009, 12, 1))
    bucket = make_bucket(tenant)
    record_usage(tenant, bucket, date(2010, 1, 1), 31, bytes_per_day=4 * GIB)
    record_usage(silent, make_bucket(silent), date(2010, 1, 1), 31, bytes_per_day=4 * GIB)

    run(period, utc(2010, 2, 1, 5))

    issued = invoice_of(tenant, period)
    message = wait_for_mail(stack, address, f"Portcullis invoice {issued.number} for 2010-01")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Noticed Ltda" in text and "BRL 1.00" in text and "2010-02-16" in text
    assert len(email_jobs(tenant, "invoice_issued", invoice_id=issued.id)) == 1
    assert email_jobs(silent, "invoice_issued") == []
    assert issued.billed_to == {
        "tenant_name": "Noticed Co", "legal_name": "Noticed Ltda", "email": address,
        "tax_id_type": "cnpj", "tax_id": "12ABC34501DE35",
        "address": issued.billed_to["address"]}
    assert issued.billed_to["address"]["city"] == "São Paulo"
    assert invoice_of(silent, period).billed_to == {"tenant_name": "Silent Co"}
    assert_gapless(2010)
