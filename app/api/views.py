"""Serve the generated OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from app.api.document import build_document
from app.api.registry import PUBLIC, operation

bp = Blueprint("api", __name__)
_cache: dict[int, dict[str, Any]] = {}


@bp.get("/api/v1/openapi.json")
@operation(summary="This OpenAPI document", tag="meta", auth=PUBLIC)
def openapi_document() -> ResponseReturnValue:
    key = id(current_app._get_current_object())  # type: ignore[attr-defined]
    if key not in _cache:
        _cache[key] = build_document(current_app)
    return jsonify(_cache[key])
