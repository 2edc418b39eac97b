"""The real app plus one trivial route, ``/_bench/bare``, for ``auth_me``.

Served by gunicorn exactly like ``app.wsgi:application`` (same config, same hooks: request
id, client address, security headers, the default rate limit per client address in Redis),
so against ``bench.plain_flask`` (the same route in a bare Flask app, same gunicorn config)
it shows what the front door adds to every request, and against ``GET /api/v1/auth/me``
what checking a session adds on top.
"""

from flask import jsonify
from flask.typing import ResponseReturnValue

from app import create_app

application = create_app()


@application.get("/_bench/bare")
def bare() -> ResponseReturnValue:
    return jsonify({"ok": True})
