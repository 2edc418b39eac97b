"""A plain Flask app, the baseline for ``auth_me``: no extensions, no hooks.

Served by gunicorn with the Procfile's web command and the same config as the real app
(``--config python:app.gunicorn_config``: workers, threads, keep-alive, access log), so the
difference between it and the app's own trivial route is what the app adds to every request.
It answers the same path as ``bench.wsgi_bare`` so wrk sends identical requests to both.
"""

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

application = Flask(__name__)


@application.get("/_bench/bare")
def bare() -> ResponseReturnValue:
    return jsonify({"ok": True})


@application.get("/healthz")  # what the harness polls before it starts loading
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})
