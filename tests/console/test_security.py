"""The console's security rules as the browser sees them: API.md's console CSP on every
page, enforced (an injected inline script does not run), no inline script, style or
handler in any page, the email link's token gone from the address before anything else
loads (and never sent on in a URL or a Referer), no request to another origin, a 401 back
to sign-in and a 429 that says when to retry."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import BrowserContext, Page, Request, expect

from app.console.headers import CONSOLE_CSP
from portcullis.accounts.models import Role
from tests.console.conftest import Console
from tests.support.factories import LoggedIn, make_bucket, make_member, make_session, make_tenant

pytestmark = pytest.mark.usefixtures("stack")

SIGNED_IN = ["/console/buckets", "/console/buckets/{bucket}", "/console/members",
             "/console/access-keys", "/console/sftp", "/console/audit", "/console/billing",
             "/console/security"]
PUBLIC = ["/console/signup", "/console/login", "/console/forgot-password"]
LINK_PAGES = ["/verify-email", "/accept-invitation", "/reset-password"]
WATCH_CSP = """
  window.cspViolations = [];
  document.addEventListener("securitypolicyviolation",
    (e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""
INLINE = """() => {
  const scripts = [...document.scripts];
  return {
    inlineScripts: scripts.filter((s) => !s.src || s.textContent.trim()).length,
    styled: document.querySelectorAll("[style]").length,
    styleTags: document.querySelectorAll("style").length,
    handlers: [...document.querySelectorAll("*")].flatMap((el) =>
      [...el.attributes].filter((a) => a.name.startsWith("on")).map((a) => a.name)),
  };
}"""


@pytest.fixture
def admin() -> LoggedIn:
    return make_session(make_member(make_tenant("Secure Co"), Role.admin))


def _open(page: Page, path: str) -> None:
    response = page.goto(path)
    assert response is not None and response.status == 200, path
    assert response.headers["content-security-policy"] == CONSOLE_CSP, path
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert page.evaluate(INLINE) == {"inlineScripts": 0, "styled": 0, "styleTags": 0,
                                     "handlers": []}, path
    assert page.evaluate("window.cspViolations") == [], path


def test_every_page_has_the_csp_and_nothing_inline(console: Console, new_context: object,
                                                   admin: LoggedIn) -> None:
    bucket = make_bucket(admin, "vault")
    signed_in: BrowserContext = new_context(admin)  # type: ignore[operator]
    signed_in.add_init_script(WATCH_CSP)
    page = signed_in.new_page()
    for path in SIGNED_IN:
        _open(page, path.format(bucket=bucket))
        expect(page.get_by_role("navigation")).to_be_visible()
        if path == "/console/buckets/{bucket}":
            console.check(page, "bucket-empty")
    anonymous: BrowserContext = new_context()  # type: ignore[operator]
    anonymous.add_init_script(WATCH_CSP)
    other = anonymous.new_page()
    for path in PUBLIC + [f"{p}?token=x" for p in LINK_PAGES]:
        _open(other, path)
        if path.endswith("forgot-password") or "reset-password" in path:
            console.check(other, path.split("?")[0].rsplit("/", 1)[-1])
    strangers = [url for url in console.requests if not url.startswith((console.origin, "data:"))]
    assert strangers == []


def test_the_browser_enforces_the_csp(new_context: object) -> None:
    context: BrowserContext = new_context()  # type: ignore[operator]
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.goto("/console/login")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.evaluate("""() => {
      const s = document.createElement("script");
      s.textContent = "window.injected = true;";
      document.body.append(s);
      const far = document.createElement("script");
      far.src = "https://elsewhere.example/x.js";
      document.body.append(far);
    }""")
    page.wait_for_function("window.cspViolations.length >= 2")
    assert page.evaluate("window.injected === undefined")
    assert any(v.startswith("script-src") for v in page.evaluate("window.cspViolations"))


@pytest.mark.parametrize("path", LINK_PAGES)
def test_the_token_leaves_the_address_before_anything_loads(console: Console,
                                                            new_context: object,
                                                            path: str) -> None:
    token = "T0kenT0kenT0kenT0kenT0kenT0kenT0ken-_x"
    seen: list[Request] = []
    context: BrowserContext = new_context()  # type: ignore[operator]
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.on("request", lambda request: seen.append(request))
    page.goto(f"{path}?token={token}")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert token not in page.url
    assert page.evaluate("window.location.search") == ""
    assert page.evaluate("document.referrer") == ""
    after = seen[1:]  # everything but the page itself
    assert after, "the page loaded nothing"
    for request in after:
        assert token not in request.url, request.url
        assert token not in (request.headers.get("referer") or ""), request.url
    if path == "/verify-email":  # posted at once: the API's answer is shown
        posted = [r for r in after if r.method == "POST"]
        assert [r.url for r in posted] == [console.url("/api/v1/auth/verify-email")]
        assert json.loads(posted[0].post_data or "{}") == {"token": token}
        expect(page.get_by_role("alert")).to_contain_text("not valid")
    else:
        page.get_by_label(re.compile("^(New password|Password)$")).fill(
            "a fresh long password 9")
        if path == "/accept-invitation":
            page.get_by_label("Name").fill("Newcomer")
        page.get_by_role("button", name=re.compile("^(Join|Set password)$")).click()
        posted = [r for r in seen if r.method == "POST"]
        expect(page.get_by_text(re.compile("not valid|invalid", re.I))).to_be_visible()
        assert json.loads(posted[-1].post_data or "{}")["token"] == token


def test_a_401_returns_to_sign_in(new_context: object) -> None:
    page = new_context().new_page()  # type: ignore[operator]
    page.goto("/console/audit")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_a_429_says_when_to_retry(new_context: object) -> None:
    page = new_context().new_page()  # type: ignore[operator]
    page.route("**/api/v1/auth/password/forgot", lambda route: route.fulfill(
        status=429, headers={"Retry-After": "17"}, content_type="application/problem+json",
        body=json.dumps({"type": "urn:portcullis:problem:rate_limited", "status": 429,
                         "title": "Too many requests", "code": "rate_limited"})))
    page.goto("/console/forgot-password")
    page.get_by_label("Email").fill("someone@example.com")
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_text("Too many requests. Try again in 17 seconds.")).to_be_visible()
