"""The console pages' own Content-Security-Policy (API.md, Console), in place of the API's.

``FrontDoorHeaders`` (app/request_context.py) gives every response the API's headers,
whose CSP (``default-src 'none'``) would stop a page from loading its own script and
style. A console page view marks its request; this middleware, around the front door,
swaps that one header's value for the console's and leaves every other header as it is."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; form-action 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
PAGE = "portcullis.console_page"  # WSGI environ: set by a console page's view
PREFIXES = ("/console/", "/verify-email", "/accept-invitation", "/reset-password")

StartResponse = Callable[..., Any]


class ConsoleCsp:
    def __init__(self, wsgi_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
                 ) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith(PREFIXES):
            return self.wsgi_app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if environ.get(PAGE):
                headers[:] = [(k, CONSOLE_CSP if k.lower() == "content-security-policy" else v)
                              for k, v in headers]
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)
