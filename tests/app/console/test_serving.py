"""The console's pages and assets as the web process serves them (API.md, Console): the
console's own CSP on every page and the API's other headers, the API's 404 problem for
anything else, public cacheable assets that never count against the limits, and shipped
files with no inline script or style and no HTML written from data."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser

import pytest
from flask.testing import FlaskClient

from app.console.headers import CONSOLE_CSP
from app.extensions import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from portcullis.accounts.models import Role, SessionState
from tests.support.factories import make_member, make_session, make_tenant
from tests.support.web import ROOT, ClientFor, app_with, csrf_headers, make_client, problem_code

STATIC = ROOT / "app" / "console" / "static"
PAGES = ["/console/", "/console/signup", "/console/login", "/console/forgot-password",
         "/console/buckets", "/console/buckets/6f1c1b0e-8f8a-4a57-9d53-3c7c1f6f5d10",
         "/console/members", "/console/access-keys", "/console/sftp", "/console/audit",
         "/console/billing", "/console/security", "/verify-email?token=abc",
         "/accept-invitation?token=abc", "/reset-password?token=abc"]
API_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_console_csp_and_the_api_headers(client: FlaskClient,
                                                             path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers.getlist("Content-Security-Policy") == [CONSOLE_CSP]
    for name, value in SECURITY_HEADERS:
        if name != "Content-Security-Policy":
            assert response.headers.getlist(name) == [value], name
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Request-ID"]
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Server" not in response.headers or "/" not in response.headers["Server"]


def test_the_console_csp_is_api_md_s_exactly() -> None:
    assert CONSOLE_CSP == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    assert API_CSP == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/auth/me", "/console/static/main.js",
                                  "/console/nope", "/s/abc"])
def test_everything_else_keeps_the_api_csp(client: FlaskClient, path: str) -> None:
    assert client.get(path).headers.getlist("Content-Security-Policy") == [API_CSP]


@pytest.mark.parametrize("path", ["/console/nope", "/console/buckets/not-a-uuid",
                                  "/console/static/nope.js", "/console/static/../views.py",
                                  "/console/static/%2e%2e/views.py", "/console/static/page.html",
                                  "/console/static/views"])
def test_a_missing_page_is_the_api_s_404_problem(client: FlaskClient, path: str) -> None:
    response = client.get(path, follow_redirects=True)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert problem_code(response) == "not_found"
    assert b"Traceback" not in response.data


def test_assets_are_public_cacheable_and_typed(client: FlaskClient) -> None:
    script = client.get("/console/static/main.js")
    assert script.status_code == 200
    assert script.mimetype == "text/javascript"
    assert script.headers["Cache-Control"] == "public, max-age=3600"
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    again = client.get("/console/static/main.js", headers={"If-None-Match": script.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/console/static/console.css").mimetype == "text/css"
    assert client.get("/console/static/views/login.js").status_code == 200


def test_pages_and_assets_never_count_against_the_limits(stack: object) -> None:
    with app_with(RATE_LIMIT_DEFAULT="2/minute") as limited:
        browser = make_client(limited)
        for _ in range(5):
            for path in ("/console/login", "/console/static/main.js", "/verify-email"):
                response = browser.get(path)
                assert response.status_code == 200, path
                assert "RateLimit-Limit" not in response.headers
        answers = [browser.post("/api/v1/auth/password/forgot",
                                json={"email": "x@example.com"}).status_code for _ in range(3)]
        assert answers[-1] == 429  # the API itself is still limited from this address


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.problems += [f"{tag}: inline handler {n}" for n in names if n.startswith("on")]
        if "style" in names or tag == "style":
            self.problems.append(f"{tag}: inline style")
        if tag == "script":
            self.in_script = True
            if not (names.get("src") or "").startswith("/console/static/"):
                self.problems.append("script without a same-origin src")
        for attr in ("src", "href"):
            value = names.get(attr)
            if value is not None and not ((value.startswith("/") and not value.startswith("//"))
                                          or value.startswith(("#", "data:"))):
                self.problems.append(f"{tag}: {attr}={value} is not same-origin")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script and data.strip():
            self.problems.append("inline script")


def test_no_shipped_html_has_inline_script_or_style() -> None:
    pages = list(STATIC.rglob("*.html"))
    assert pages
    for page in pages:
        parser = _Markup()
        parser.feed(page.read_text())
        assert not parser.problems, (page.name, parser.problems)


def test_the_page_served_is_the_shipped_one(client: FlaskClient) -> None:
    parser = _Markup()
    parser.feed(client.get("/console/login").get_data(as_text=True))
    assert not parser.problems


HTML_SINKS = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|"
                        r"new Function|setAttribute\(\s*[\"']style|https?://")


def test_scripts_never_write_html_from_data_nor_reach_another_origin() -> None:
    scripts = list(STATIC.rglob("*.js"))
    assert len(scripts) > 10
    for script in scripts:
        text = script.read_text()
        text = text.replace('"http://www.w3.org/2000/svg"', "")  # a namespace, not a request
        found = HTML_SINKS.findall(text)
        assert not found, (script.name, found)


def test_the_built_package_ships_every_console_file() -> None:
    """pyproject's package-data for ``app`` matches every file under app/console/static (so
    a wheel, not only the editable install and the image's copy, has the console)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app"]
    for path in STATIC.rglob("*"):
        if path.is_file():
            relative = path.relative_to(ROOT / "app").as_posix()
            assert any(fnmatch.fnmatch(relative, p) and relative.count("/") == p.count("/")
                       for p in patterns), relative
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert not any(fnmatch.fnmatch("app/console/static/main.js", p) for p in dockerignore)


def test_enrolment_answers_the_qr_code_as_an_svg_data_uri(client_for: ClientFor) -> None:
    member = make_member(make_tenant(), Role.admin, mfa=False)
    enrolling = client_for(make_session(member, SessionState.mfa_enrollment))
    answer = enrolling.post("/api/v1/auth/mfa/enroll", headers=csrf_headers(enrolling))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["qr_svg"].startswith("data:image/svg+xml")
