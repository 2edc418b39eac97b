"""The real app plus one trivial route, ``/_bench/bare``, the baseline for ``auth_me``.

Served by gunicorn exactly like ``app.wsgi:application`` (same config, same hooks: request
id, security headers, the default rate limit), so the only difference between the two
routes measured is what ``GET /api/v1/auth/me`` does itself.
"""

from flask import jsonify
from flask.typing import ResponseReturnValue

from app import create_app

application = create_app()


@application.get("/_bench/bare")
def bare() -> ResponseReturnValue:
    return jsonify({"ok": True})
