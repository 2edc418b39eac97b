"""The admin's other pages in the browser, signed in by a session made directly (the sign-in
itself is test_company_flow.py's): access keys, SFTP accounts, billing (profile, invoices
with their PDF, the storage chart), audit paging, bucket settings and own sessions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from portcullis.accounts.models import Role
from tests.console.conftest import Console
from tests.support.factories import (
    LoggedIn,
    make_bucket,
    make_invoice,
    make_member,
    make_session,
    make_tenant,
    record_event,
    record_usage,
)

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture
def admin() -> LoggedIn:
    return make_session(make_member(make_tenant("Console Co"), Role.admin))


@pytest.fixture
def admin_page(new_context: object, admin: LoggedIn) -> Page:
    context: BrowserContext = new_context(admin)  # type: ignore[operator]
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before a removal
    return page


def test_access_keys_show_the_new_key_once_and_revoke(console: Console,
                                                      admin_page: Page) -> None:
    page = admin_page
    page.goto("/console/access-keys")
    page.get_by_label("Name", exact=True).fill("backup script")
    page.get_by_label("files:read").check()
    page.get_by_label("buckets:read").check()
    page.get_by_label("Expires in days").fill("30")
    console.check(page, "access-keys")
    page.get_by_role("button", name="Create key").click()
    new_key = page.get_by_label("New key")
    expect(new_key).to_have_attribute("readonly", "")
    key = new_key.input_value()
    assert key.startswith("pck_")
    row = page.get_by_role("table", name="Access keys").get_by_role("row").filter(
        has_text="backup script")
    expect(row).to_contain_text("buckets:read, files:read")
    assert key not in (page.get_by_role("table", name="Access keys").inner_text())
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("revoked")
    page.reload()
    expect(page.get_by_label("New key")).to_have_count(0)  # never shown again


def test_sftp_account_credentials_once_rotate_and_delete(console: Console, admin: LoggedIn,
                                                         admin_page: Page) -> None:
    make_bucket(admin, "dropbox")
    page = admin_page
    page.goto("/console/sftp")
    page.get_by_label("Bucket").select_option(label="dropbox")
    page.get_by_label("Label").fill("scanner")
    page.get_by_role("button", name="Create account").click()
    password = page.get_by_label("Password", exact=True)
    expect(password).not_to_have_value("", timeout=60_000)
    first = password.input_value()
    expect(page.get_by_label("Username")).not_to_have_value("")
    expect(page.get_by_label("Host")).to_have_value("sftp.portcullis.test")
    expect(page.get_by_label("Port")).not_to_have_value("")
    row = page.get_by_role("table", name="SFTP accounts").get_by_role("row").filter(
        has_text="scanner")
    expect(row).to_contain_text("active")
    console.check(page, "sftp")
    row.get_by_role("button", name="Rotate password").click()
    expect(password).not_to_have_value(first, timeout=60_000)
    expect(password).not_to_have_value("")
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("table", name="SFTP accounts").get_by_role("row").filter(
        has_text="scanner")).to_have_count(0, timeout=60_000)


def test_billing_profile_invoices_and_storage_chart(console: Console, admin: LoggedIn,
                                                    admin_page: Page) -> None:
    tenant = admin.member.tenant_id
    bucket = make_bucket(admin, "archive")
    record_usage(tenant, bucket, (datetime.now(UTC) - timedelta(days=10)).date(), 10,
                 bytes_per_day=5 * 2**30, objects=3)
    make_invoice(tenant)
    page = admin_page
    page.goto("/console/billing")
    page.get_by_label("Legal name").fill("Console Co Ltda")
    page.get_by_label("Billing email").fill("billing@example.com")
    page.get_by_label("Tax ID type").select_option("cpf")
    page.get_by_label("Tax ID", exact=True).fill("529.982.247-25")
    page.get_by_label("Address line 1").fill("Rua A, 1")
    page.get_by_label("City").fill("São Paulo")
    page.get_by_label("Country").fill("BR")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Tax ID", exact=True)).to_have_value("52998224725")

    invoices = page.get_by_role("table", name="Invoices")
    for column in ("Number", "Period", "Status", "Total", "Due"):
        expect(invoices.get_by_role("columnheader", name=column, exact=True)).to_be_visible()
    pdf = invoices.get_by_role("link", name="PDF").first
    answer = page.request.get(pdf.get_attribute("href") or "")
    assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
    chart = page.get_by_role("img", name="Storage over time")
    expect(chart).to_be_visible()
    assert chart.evaluate("(el) => el.tagName.toLowerCase()") == "svg"
    assert chart.locator("rect").count() == 30
    console.check(page, "billing")


def test_audit_pages_with_load_more(console: Console, admin: LoggedIn,
                                    admin_page: Page) -> None:
    for n in range(60):
        record_event(admin.member.tenant_id, "bucket.created", target=("bucket", f"b{n}"))
    page = admin_page
    page.goto("/console/audit")
    rows = page.get_by_role("table", name="Audit events").get_by_role("row")
    expect(rows).to_have_count(51)  # a header and the first 50
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(61)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    page.get_by_label("Severity").select_option("critical")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)


def test_bucket_settings_and_own_sessions(console: Console, admin: LoggedIn,
                                          admin_page: Page) -> None:
    staff = make_member(admin.member.tenant_id, Role.staff)
    other = make_session(admin.member)  # another browser of the same person
    bucket = make_bucket(admin, "shared")
    page = admin_page
    page.goto(f"/console/buckets/{bucket}")
    page.get_by_role("tab", name="Settings").click()
    page.get_by_label(f"read for {staff.email}").check()
    page.get_by_label(f"write for {staff.email}").check()
    page.get_by_role("button", name=f"Save permissions for {staff.email}").click()
    expect(page.get_by_role("row").filter(has_text=staff.email)).to_contain_text("Saved.")
    page.get_by_label("Expire after days").fill("30")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_text("Saved.").last).to_be_visible()
    console.check(page, "bucket-settings")

    page.get_by_role("navigation").get_by_role("link", name="Security").click()
    sessions = page.get_by_role("table", name="Sessions")
    expect(sessions.get_by_role("row")).to_have_count(3)
    expect(sessions.get_by_text("This session")).to_have_count(1)
    console.check(page, "security")
    sessions.get_by_role("button", name="Revoke").click()
    expect(sessions.get_by_role("row")).to_have_count(2)
    assert re.search(r"/console/security$", page.url)
    gone = httpx.get(console.url("/api/v1/auth/me"), cookies=other.cookies)
    assert gone.status_code == 401  # the other browser's session, revoked


def test_a_problem_is_shown_next_to_its_cause(console: Console, admin_page: Page) -> None:
    page = admin_page
    page.goto("/console/buckets")
    page.get_by_role("button", name="New bucket").click()
    page.get_by_label("Bucket name").fill("Not Valid!")
    page.get_by_role("button", name="Create").click()
    form = page.get_by_role("form", name="New bucket")
    expect(form.get_by_text("The request is not valid.")).to_be_visible()
    page.get_by_label("Bucket name").fill("dupe-name")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("link", name="dupe-name")).to_be_visible()
    page.get_by_role("button", name="New bucket").click()
    page.get_by_label("Bucket name").fill("dupe-name")
    page.get_by_role("button", name="Create").click()
    expect(form.get_by_text("A bucket with this name exists.")).to_be_visible()
