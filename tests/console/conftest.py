"""The console in a real browser: the Procfile's web process (gunicorn) on localhost, the
suite's shared worker behind it, and Debian's Chromium driven by Playwright.

The web process's PUBLIC_BASE_URL is its own ``http://localhost:PORT``: that origin is a
secure context for the browser (passkeys need one) and the WebAuthn relying party. Emails
are written by the shared worker, whose PUBLIC_BASE_URL is the suite's; ``Console.link``
takes the path and token of such a link and opens it on the console's origin.

Every selector is an accessible name from API.md's Console section (``get_by_role``,
``get_by_label``). ``Console.check`` screenshots a page at 1280 and 360 px wide under the
test's tmp_path and runs axe-core (bundled by axe-playwright-python, injected into the page
by the test only) on it: no serious or critical violation.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from devstack.process import ServiceProcess, free_port, port_open
from devstack.stack import LocalStack
from tests.support.factories import LoggedIn
from tests.support.web import ROOT, procfile
from tests.support.worker import CeleryProcess

CHROMIUM = os.environ.get("PORTCULLIS_CHROMIUM", "/usr/bin/chromium")
WIDE, NARROW = (1280, 800), (360, 740)
SERIOUS = ("serious", "critical")

@dataclass
class Console:
    origin: str
    shots: Path
    stack: LocalStack
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.origin + path

    def link(self, emailed: str) -> str:
        """An emailed link's path and query on the console's origin."""
        parts = urlsplit(emailed)
        return self.url(parts.path + (f"?{parts.query}" if parts.query else ""))

    def check(self, page: Page, name: str) -> None:
        """Screenshots at both widths, then axe-core: no serious or critical violation."""
        from axe_playwright_python.sync_playwright import Axe

        safe = re.sub(r"[^a-z0-9-]+", "-", name.lower())
        for width, height in (WIDE, NARROW):
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=self.shots / f"{safe}-{width}.png", full_page=True)
        page.set_viewport_size({"width": WIDE[0], "height": WIDE[1]})
        results = Axe().run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v["impact"] in SERIOUS]
        assert not bad, f"{name}: {bad}"


def _web(log: Path) -> tuple[ServiceProcess, int]:
    """The Procfile's web command, as tests/support/web.py ``start_web`` runs it, on a port
    chosen first so that PUBLIC_BASE_URL can name it."""
    port = free_port()
    env = dict(os.environ)
    env.update({"PORT": str(port), "WEB_CONCURRENCY": "1", "PYTHONPATH": str(ROOT),
                "PUBLIC_BASE_URL": f"http://localhost:{port}"})
    argv = shlex.split(procfile()["web"])
    argv[0] = str(Path(sys.executable).parent / argv[0])
    web = ServiceProcess("console-web", argv, log, env=env, cwd=ROOT).start()
    web.wait_ready(lambda: port_open(port), timeout=30)
    return web, port


@pytest.fixture(scope="session")
def console_web(stack: LocalStack, worker: CeleryProcess,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    web, port = _web(tmp_path_factory.mktemp("console") / "web.log")
    try:
        yield f"http://localhost:{port}"
    finally:
        web.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: scripts/install installs chromium"
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-dev-shm-usage"])
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def console(console_web: str, stack: LocalStack, tmp_path: Path) -> Console:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    return Console(console_web, shots, stack)


@pytest.fixture
def new_context(browser: Browser, console: Console) -> Iterator[object]:
    """``new_context(who=None)``: a fresh browser profile on the console's origin (with
    ``who``'s session cookies), every request it makes recorded in ``console.requests``."""
    opened: list[BrowserContext] = []

    def make(who: LoggedIn | None = None) -> BrowserContext:
        context = browser.new_context(base_url=console.origin, viewport={
            "width": WIDE[0], "height": WIDE[1]})
        context.set_default_timeout(15_000)
        context.on("request", lambda request: console.requests.append(request.url))
        if who is not None:
            context.add_cookies([{"name": name, "value": value, "url": console.origin}
                                 for name, value in who.cookies.items()])
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def page(new_context: object) -> Page:
    return new_context().new_page()  # type: ignore[operator]
