"""Assemble OpenAPI 3.1 from the URL map and each view's ``@operation`` metadata."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel

from app.api.registry import OPERATOR, PUBLIC, SESSION_ONLY, Operation
from app.problems import STATUS_CODES
from portcullis.audit.actions import ACTIONS

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
_DESCRIPTIONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No content",
}


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in _CONVERTER.findall(rule):
        schema: dict[str, Any] = {"type": "string"}
        if converter == "uuid":
            schema["format"] = "uuid"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", rule), params


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_params(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema.get("properties", {}).items()]


def _security(op: Operation) -> list[dict[str, list[str]]]:
    if op.auth == PUBLIC:
        return []
    if op.auth == SESSION_ONLY:
        return [{"sessionCookie": []}]
    if op.auth == OPERATOR:
        return [{"operatorKey": []}]
    return [{"sessionCookie": []}, {"accessKey": [op.scope] if op.scope else []}]


def build_document(app: Flask, extra_components: dict[str, Any] | None = None) -> dict[str, Any]:
    components: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "code"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "code": {"type": "string"},
                "detail": {"type": "string"}, "request_id": {"type": "string"},
                "errors": {"type": "array", "items": {
                    "type": "object", "properties": {
                        "loc": {"type": "array", "items": {"type": "string"}},
                        "msg": {"type": "string"}}}},
            },
        },
        "AuditAction": {
            "type": "string", "enum": sorted(ACTIONS),
            "description": "Every action the audit log records (subject.verb).",
        },
        **(extra_components or {}),
    }
    paths: dict[str, Any] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        op: Operation | None = getattr(view, "__openapi__", None)
        if op is None:
            continue
        path, params = _path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry: dict[str, Any] = {
                "summary": op.summary, "tags": [op.tag],
                "operationId": f"{rule.endpoint}.{method.lower()}".replace(".", "_"),
                "parameters": params + (_query_params(op.query, components) if op.query else []),
                "security": _security(op),
                "responses": {},
            }
            if op.scope:
                entry["x-required-scope"] = op.scope
            if op.request is not None:
                entry["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": _schema_ref(op.request, components)}}}
            success: dict[str, Any] = {"description": _DESCRIPTIONS.get(op.status, "OK")}
            if op.response is not None:
                success["content"] = {
                    "application/json": {"schema": _schema_ref(op.response, components)}}
            entry["responses"][str(op.status)] = success
            statuses = set(op.errors) | {400, 429, 500}
            if op.auth != PUBLIC:
                statuses |= {401, 403}
            for status in sorted(statuses):
                entry["responses"][str(status)] = {
                    "description": STATUS_CODES.get(status, ("", "Error"))[1],
                    "content": {"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}}},
                }
            entry.update(op.extra)
            paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Portcullis API", "version": "1.0.0",
                 "description": "The Portcullis contract (API.md), generated from the code."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "portcullis_session",
                                  "description": "Unsafe methods also need X-CSRF-Token."},
                "accessKey": {"type": "http", "scheme": "bearer",
                              "description": "Access key pck_..."},
                "operatorKey": {"type": "http", "scheme": "bearer",
                                "description": "Operator key pco_..."},
            },
        },
    }
