"""The keyboard alone: a view-only member (no second factor needed) signs in with Tab and
Enter, in the order the form reads, and reaches the buckets; an admin suspends and removes
a member from the members table."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from portcullis.accounts.models import Role
from tests.support.factories import PASSWORD, make_member, make_session, make_tenant

pytestmark = pytest.mark.usefixtures("stack")

FOCUSED_NAME = """() => {
  const el = document.activeElement;
  if (!el) return null;
  const label = el.labels && el.labels[0];
  return (label ? label.textContent : el.getAttribute("aria-label") || el.textContent).trim();
}"""


def test_sign_in_with_the_keyboard_alone(new_context: object) -> None:
    member = make_member(make_tenant("Keys Co"), Role.viewonly)
    page: Page = new_context().new_page()  # type: ignore[operator]
    page.goto("/console/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate(FOCUSED_NAME))
        if order[-1] == "Email":
            page.keyboard.type(member.email)
        elif order[-1] == "Password":
            page.keyboard.type(PASSWORD)
    assert order == ["Email", "Password", "Sign in"]
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/buckets$"))
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link")).to_have_count(3)  # Buckets, Members, Security
    expect(page.get_by_role("button", name="New bucket")).to_have_count(0)


def test_an_admin_suspends_then_removes_a_member(new_context: object) -> None:
    tenant = make_tenant("Team Co")
    admin = make_session(make_member(tenant, Role.admin))
    staff = make_member(tenant, Role.staff)
    context: BrowserContext = new_context(admin)  # type: ignore[operator]
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/console/members")
    row = page.get_by_role("table", name="Members").get_by_role("row").filter(
        has_text=staff.email)
    row.get_by_role("button", name="Suspend").click()
    expect(row).to_contain_text("suspended")
    expect(row.get_by_role("button", name="Reactivate")).to_be_visible()
    row.get_by_role("combobox", name=f"Role for {staff.email}").select_option("viewonly")
    expect(row.get_by_role("combobox", name=f"Role for {staff.email}")).to_have_value("viewonly")
    row.get_by_role("button", name="Remove").click()
    expect(row).to_have_count(0)
    own = page.get_by_role("table", name="Members").get_by_role("row").filter(
        has_text=admin.member.email)
    own.get_by_role("button", name="Remove").click()  # the last admin stays, and says why
    expect(own).to_contain_text("A tenant keeps at least one active admin.")
