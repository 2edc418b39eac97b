"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.api.registry import PUBLIC, operation
from app.health.checks import run_checks
from app.validation import ResponseModel

bp = Blueprint("health", __name__)

Check = Literal["ok", "down"]


class Liveness(ResponseModel):
    status: Literal["ok"]


class Readiness(ResponseModel):
    status: Check
    checks: dict[str, Check]


@bp.get("/healthz")
@operation(summary="The process is alive", tag="health", auth=PUBLIC, response=Liveness)
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@operation(summary="Database, Redis, clamd and storage are reachable", tag="health",
           auth=PUBLIC, response=Readiness, response_also=(503,))
def readyz() -> ResponseReturnValue:
    checks = run_checks()
    ok = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ok" if ok else "down", "checks": checks}), 200 if ok else 503
