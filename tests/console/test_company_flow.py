"""Issue 16's main flow in the browser, as a new company's owner: sign up, verify the email
from the mail sink's link, sign in, enrol TOTP from the secret shown, create a bucket,
upload a PNG and an EICAR file (progress, then "clean" and "infected"), share the PNG with
a password and download it, invite a staff member who joins in a second browser, read the
audit trail filtered by action, export it, and sign out (the session is then dead)."""

from __future__ import annotations

import re
import uuid

import httpx
import pyotp
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.console.conftest import Console
from tests.support.factories import PASSWORD
from tests.support.mail import link_token, wait_for_mail
from tests.support.media import PNG_SIGNATURE, eicar_png, png

pytestmark = pytest.mark.usefixtures("stack")

SHARE_PASSWORD = "a long share secret 7"
NAV = ["Buckets", "Members", "Access keys", "SFTP", "Audit", "Billing", "Security"]
FILE_COLUMNS = ["Name", "Type", "Size", "SHA-256", "Created"]
# Each progress bar the page shows, with every aria-valuenow it had (installed by the test).
RECORD_PROGRESS = """() => {
  window.progressSeen = [];
  const seen = (el) => {
    let entry = window.progressSeen.find((e) => e.el === el);
    if (!entry) { entry = {el, name: el.getAttribute("aria-label"), values: []};
                  window.progressSeen.push(entry); }
    entry.values.push(Number(el.getAttribute("aria-valuenow")));
  };
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType === 1) n.querySelectorAll('[role="progressbar"], progress').forEach(seen);
      }
      const bar = r.target.matches && r.target.matches('progress, [role="progressbar"]');
      if (r.type === "attributes" && bar) seen(r.target);
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true,
                             attributeFilter: ["aria-valuenow"]});
}"""


def sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def enrol_totp(console: Console, page: Page, shoot: str | None = None) -> list[str]:
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    secret = page.get_by_label("Secret").input_value()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    if shoot:
        console.check(page, shoot)
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    if shoot:
        console.check(page, "recovery-codes")
    listed = codes.all_inner_texts()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/console/buckets$"))
    return listed


def sign_up_and_verify(console: Console, page: Page, email: str) -> None:
    page.goto("/console/signup")
    console.check(page, "signup")
    page.get_by_label("Company").fill("Acme Imaging")
    page.get_by_label("Name", exact=True).fill("Olivia Owner")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Check your email")).to_be_visible()
    token = link_token(wait_for_mail(console.stack, email, "Confirm your email"), "verify-email")
    page.goto(f"/verify-email?token={token}")
    expect(page.get_by_role("heading", name="Email verified")).to_be_visible()
    assert token not in page.url
    console.check(page, "verify-email")
    page.get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console/login$"))
    console.check(page, "login")


def upload_and_share(console: Console, context: BrowserContext, page: Page) -> None:
    page.get_by_role("button", name="New bucket").click()
    page.get_by_label("Bucket name").fill("photos")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="photos").click()
    expect(page.get_by_role("heading", name="photos")).to_be_visible()
    expect(page.get_by_role("tab", name="Settings")).to_be_visible()

    image = png((24, 24))
    page.evaluate(RECORD_PROGRESS)
    page.get_by_label("Upload files").set_input_files([
        {"name": "photo.png", "mimeType": "image/png", "buffer": image},
        {"name": "eicar.png", "mimeType": "image/png", "buffer": eicar_png()},
    ])
    uploads = page.get_by_role("list", name="Uploads").get_by_role("listitem")
    expect(uploads.filter(has_text="photo.png")).to_contain_text("clean", timeout=60_000)
    expect(uploads.filter(has_text="eicar.png")).to_contain_text("infected", timeout=60_000)
    bars = page.evaluate("window.progressSeen.map((e) => [e.name, e.values])")
    assert {name for name, _ in bars} == {"Sending photo.png", "Sending eicar.png"}, bars
    assert all(values and values[-1] == 100 for _, values in bars), bars

    files = page.get_by_role("table", name="Files")
    for column in FILE_COLUMNS:
        expect(files.get_by_role("columnheader", name=column, exact=True)).to_be_visible()
    expect(files.get_by_role("row").filter(has_text="eicar.png")).to_have_count(0)
    row = files.get_by_role("row").filter(has_text="photo.png")
    expect(row).to_contain_text("image/png")
    console.check(page, "bucket")

    row.get_by_role("button", name="Share link").click()
    dialog = page.get_by_role("dialog", name="Share link")
    dialog.get_by_label("Expires in").select_option("3600")
    dialog.get_by_label("Max downloads").fill("5")
    dialog.get_by_label("Password").fill(SHARE_PASSWORD)
    dialog.get_by_label("Allowed IPs").fill("127.0.0.1, ::1")
    console.check(page, "share-link")
    dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Link")
    expect(link).to_have_attribute("readonly", "")
    url = link.input_value()
    assert url.startswith(f"{console.origin}/s/"), url
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.origin)
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_text("Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == url
    console.check(page, "share-link-created")
    dialog.get_by_role("button", name="Close").click()

    assert httpx.get(url).status_code == 401  # the password is asked for
    shared = httpx.get(url, auth=("anyone", SHARE_PASSWORD))
    assert shared.status_code == 200
    assert shared.content == image and shared.content.startswith(PNG_SIGNATURE)


def invite_staff(console: Console, page: Page, new_context: object) -> None:
    staff = f"staff-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_role("navigation").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    page.get_by_label("Email").fill(staff)
    page.get_by_label("Role", exact=True).select_option("staff")
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_text(f"Invitation sent to {staff}.")).to_be_visible()

    token = link_token(wait_for_mail(console.stack, staff, "You are invited"),
                       "accept-invitation")
    other = new_context().new_page()  # type: ignore[operator]
    other.goto(f"/accept-invitation?token={token}")
    assert token not in other.url
    console.check(other, "accept-invitation")
    other.get_by_label("Name").fill("Sam Staff")
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Join").click()
    expect(other).to_have_url(re.compile(r"/console/login$"))
    sign_in(other, staff, PASSWORD)
    enrol_totp(console, other)
    nav = other.get_by_role("navigation")
    for name in ("Buckets", "Members", "Security"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    for name in ("Access keys", "SFTP", "Audit", "Billing"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_have_count(0)
    expect(other.get_by_role("button", name="New bucket")).to_have_count(0)
    other.context.close()

    page.reload()
    members = page.get_by_role("table", name="Members")
    expect(members.get_by_role("row").filter(has_text=staff)).to_contain_text("Sam Staff")
    expect(members.get_by_role("combobox", name=f"Role for {staff}")).to_have_value("staff")
    console.check(page, "members")


def read_audit(console: Console, page: Page) -> None:
    page.get_by_role("navigation").get_by_role("link", name="Audit").click()
    events = page.get_by_role("table", name="Audit events")
    expect(events.get_by_role("row").filter(has_text="auth.login_succeeded").first).to_be_visible()
    for column in ("Time", "Action", "Severity", "Actor", "Target", "IP"):
        expect(events.get_by_role("columnheader", name=column, exact=True)).to_be_visible()
    page.get_by_label("Action").select_option("member.invited")
    page.get_by_role("button", name="Apply").click()
    rows = events.get_by_role("row").filter(has_text="member.invited")
    expect(rows).to_have_count(1)
    expect(events.get_by_role("row").filter(has_text="auth.login_succeeded")).to_have_count(0)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    console.check(page, "audit")
    page.get_by_label("Format").select_option("csv")
    page.get_by_role("button", name="Export").click()
    download = page.get_by_role("link", name="Download export")
    expect(download).to_be_visible(timeout=60_000)
    assert "/s/" in (download.get_attribute("href") or "")


def test_a_new_company_from_signup_to_sign_out(console: Console, new_context: object) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    context: BrowserContext = new_context()  # type: ignore[operator]
    page = context.new_page()
    sign_up_and_verify(console, page, owner)

    sign_in(page, owner, PASSWORD)
    enrol_totp(console, page, shoot="enrol-totp")
    nav = page.get_by_role("navigation")
    for name in NAV:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    console.check(page, "buckets")

    upload_and_share(console, context, page)
    invite_staff(console, page, new_context)
    read_audit(console, page)

    page.get_by_role("navigation").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/login$"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.goto("/console/buckets")  # the session is gone: back to sign-in
    expect(page).to_have_url(re.compile(r"/console/login$"))
    assert all(url.startswith((console.origin, "data:")) for url in console.requests), {
        url for url in console.requests if not url.startswith(console.origin)}
