"""A passkey instead of TOTP, through Chromium's virtual authenticator (CDP
``WebAuthn.addVirtualAuthenticator``): an admin without a second factor signs in, enrols a
passkey with "Add passkey", signs out, then signs in with "Use passkey"; the Security page
lists it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, expect

from portcullis.accounts.models import Role
from tests.console.conftest import Console
from tests.support.factories import PASSWORD, make_member, make_tenant

pytestmark = pytest.mark.usefixtures("stack")


def test_enrol_a_passkey_then_sign_in_with_it(console: Console, new_context: object) -> None:
    member = make_member(make_tenant("Passkey Co"), Role.admin, mfa=False)
    context: BrowserContext = new_context()  # type: ignore[operator]
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})

    def sign_in() -> None:
        page.goto("/console/login")
        page.get_by_label("Email").fill(member.email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

    sign_in()
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    page.get_by_label("Passkey name").fill("Laptop")
    page.get_by_role("button", name="Add passkey").click()
    expect(page).to_have_url(re.compile(r"/console/buckets$"))

    page.get_by_role("navigation").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/login$"))
    sign_in()
    expect(page.get_by_label("Code", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Verify")).to_be_visible()
    console.check(page, "second-factor")
    page.get_by_role("button", name="Use passkey").click()
    expect(page).to_have_url(re.compile(r"/console/buckets$"))

    page.get_by_role("navigation").get_by_role("link", name="Security").click()
    passkeys = page.get_by_role("table", name="Passkeys")
    row = passkeys.get_by_role("row").filter(has_text="Laptop")
    expect(row).to_be_visible()
    expect(row).not_to_contain_text("never")  # used to sign in just now
    console.check(page, "security-passkeys")
    row.get_by_role("button", name="Remove").click()
    # Its only second factor, for a role that needs one: refused, and said next to it.
    expect(row).to_contain_text("This is your last second factor")
