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


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query value is a string or absent, never JSON null: ``X | None`` documents as X."""
    branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) != 1 or len(prop["anyOf"]) != 2:
        return prop
    rest = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**branches[0], **rest}


def _query_params(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required,
             "schema": _not_null(prop)}
            for name, prop in schema.get("properties", {}).items()]


def _security(op: Operation) -> list[dict[str, list[str]]]:
    if op.auth == PUBLIC:
        return []
    if op.auth == SESSION_ONLY:
        return [{"sessionCookie": []}]
    if op.auth == OPERATOR:
        return [{"operatorKey": []}]
    return [{"sessionCookie": []}, {"accessKey": [op.scope] if op.scope else []}]


def _error_statuses(op: Operation, entry: dict[str, Any], has_path_params: bool) -> set[int]:
    """Every problem status the route can answer, from what the registry says it is."""
    statuses = set(op.errors) | {429, 500, 503}  # rate limits, the generic 500, a dependency
    if op.auth != PUBLIC:
        statuses |= {401, 403}  # no or a refused credential; role, scope, CSRF, MFA
    if has_path_params:
        statuses.add(404)  # missing, another tenant's, or not a UUID
    if op.query is not None:
        statuses.add(400)
    if "requestBody" in entry:
        statuses |= {400, 413, 415}  # invalid, too large, not the documented media type
    return statuses - {op.status, *op.response_also}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return components.get(ref.rsplit("/", 1)[-1], {}) if ref else schema


def _id_fields(schema: dict[str, Any], components: dict[str, Any],
               pointer: str = "") -> list[tuple[str, str]]:
    """(field name, JSON pointer) of every id in a response, and in a list's first item."""
    found = []
    for name, prop in _resolve(schema, components).get("properties", {}).items():
        if name == "id" or name.endswith("_id") or (name == "token" and not pointer):
            found.append((name, f"{pointer}/{name}"))
        elif name == "items" and not pointer and prop.get("type") == "array":
            found += _id_fields(prop.get("items", {}), components, "/items/0")
    return found


def _add_links(paths: dict[str, Any], components: dict[str, Any]) -> None:
    """OpenAPI links from each response that names an id to the routes taking that id, so
    stateful tests (and readers) can follow a created bucket, upload, job, file or link.

    ``id`` from ``…/uploads`` leads to ``/api/v1/uploads/{…}`` (and ``…/uploads/{…}``);
    ``job_id`` leads to ``/api/v1/jobs/{…}``."""
    operations = [(path, method, entry) for path, ops in paths.items()
                  for method, entry in ops.items()]
    for path, _method, entry in operations:
        status = min(entry["responses"], key=lambda s: (not s.startswith("2"), s))
        schema = (entry["responses"][status].get("content", {})
                  .get("application/json", {}).get("schema"))
        if not schema:
            continue
        last = path.rstrip("/").rsplit("/", 1)[-1]
        links: dict[str, Any] = {}
        for name, pointer in _id_fields(schema, components):
            if name == "token":
                prefixes = {"/s/{"}  # a share link's token leads to its download
            elif name == "id":
                if last.startswith("{"):
                    continue  # the object this route already names
                prefixes = {f"{path}/{{", f"/api/v1/{last}/{{"}
            else:
                prefixes = {f"/api/v1/{name.removesuffix('_id')}s/{{"}
            for target, _target_method, target_entry in operations:
                prefix = next((p for p in prefixes if target.startswith(p)), None)
                if prefix is None:
                    continue
                param = target[len(prefix):].split("}", 1)[0]
                links[target_entry["operationId"]] = {
                    "operationId": target_entry["operationId"],
                    "parameters": {param: f"$response.body#{pointer}"},
                }
        if links:
            entry["responses"][status]["links"] = links


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
            entry.update({k: v for k, v in op.extra.items() if k != "responses"})
            content = ({"application/json": {"schema": _schema_ref(op.response, components)}}
                       if op.response is not None else None)
            for status in (op.status, *op.response_also):
                success: dict[str, Any] = {"description": _DESCRIPTIONS.get(
                    status, STATUS_CODES.get(status, ("", "OK"))[1])}
                if content:
                    success["content"] = content
                entry["responses"][str(status)] = success
            for status in sorted(_error_statuses(op, entry, bool(params))):
                entry["responses"][str(status)] = {
                    "description": STATUS_CODES.get(status, ("", "Error"))[1],
                    "content": {"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}}},
                }
            entry["responses"]["414"] = {"description": (
                "Request line too long: answered by the HTTP server before the app, so not a "
                "problem document.")}
            entry["responses"].update(op.extra.get("responses", {}))
            paths.setdefault(path, {})[method.lower()] = entry
    _add_links(paths, components)
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
