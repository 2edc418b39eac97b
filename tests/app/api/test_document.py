"""The OpenAPI document is generated from the same models the views validate with."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from openapi_spec_validator import validate


def test_document_is_valid_openapi_31(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_api_route_is_documented(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    app = client.application
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/_test"):
            continue
        path = rule.rule.replace("<uuid:", "{").replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)


def test_jobs_route_documents_its_schema_and_errors(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/jobs/{job_id}"]["get"]
    assert operation["x-required-scope"] == "jobs:read"
    assert {"200", "401", "403", "404", "500"} <= set(operation["responses"])
    schema = document["components"]["schemas"]["JobOut"]
    assert {"id", "kind", "status", "progress", "result", "error"} <= set(schema["properties"])


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, entry) for path, ops in document["paths"].items()
            for method, entry in ops.items()]


def test_every_operation_documents_every_status_its_kind_can_answer(
        client: FlaskClient) -> None:
    """Issue #10: schemathesis saw 415s and gunicorn's 414s that no entry listed."""
    document = client.get("/api/v1/openapi.json").get_json()
    for path, method, entry in _operations(document):
        statuses = set(entry["responses"])
        where = (method, path)
        assert {"414", "429", "500"} <= statuses, where
        if "requestBody" in entry:
            assert {"400", "413", "415"} <= statuses, where
        if any(p["in"] == "query" for p in entry["parameters"]):
            assert "400" in statuses, where
        if any(p["in"] == "path" for p in entry["parameters"]):
            assert "404" in statuses, where
        if entry["security"]:
            assert {"401", "403"} <= statuses, where
        assert "content" not in entry["responses"]["414"]  # gunicorn's, not a problem
    readiness = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
    assert readiness == {"application/json": {"schema": {
        "$ref": "#/components/schemas/Readiness"}}}


def _link(document: dict[str, Any], path: str, method: str, target: str) -> dict[str, Any]:
    responses = document["paths"][path][method]["responses"]
    success = next(r for s, r in sorted(responses.items()) if s.startswith("2"))
    link: dict[str, Any] = success.get("links", {}).get(target)
    assert link is not None, (path, method, target, sorted(success.get("links", {})))
    return link


def test_links_lead_from_each_created_id_to_the_routes_taking_it(client: FlaskClient) -> None:
    """So a stateful test reaches uploads/{id}, jobs/{id}, files/{id} and links/{id}."""
    document = client.get("/api/v1/openapi.json").get_json()
    upload = "/api/v1/buckets/{bucket_id}/uploads"
    assert _link(document, upload, "post", "storage_get_upload_get")["parameters"] == {
        "upload_id": "$response.body#/id"}
    assert _link(document, upload, "post", "jobs_get_get")["parameters"] == {
        "job_id": "$response.body#/job_id"}
    assert _link(document, "/api/v1/uploads/{upload_id}", "get",
                 "storage_delete_file_delete")["parameters"] == {
        "file_id": "$response.body#/file_id"}
    assert _link(document, "/api/v1/files/{file_id}/links", "post",
                 "storage_revoke_link_delete")["parameters"] == {
        "link_id": "$response.body#/id"}
    download = next(link for link in document["paths"]["/api/v1/files/{file_id}/links"]
                    ["post"]["responses"]["201"]["links"].values()
                    if link["parameters"] == {"token": "$response.body#/token"})
    assert download["operationId"] == document["paths"]["/s/{token}"]["get"]["operationId"]
    assert _link(document, "/api/v1/buckets/{bucket_id}/files", "get",
                 "storage_create_link_post")["parameters"] == {
        "file_id": "$response.body#/items/0/id"}
    assert _link(document, "/api/v1/buckets", "post", "storage_upload_post")["parameters"] == {
        "bucket_id": "$response.body#/id"}
    assert _link(document, "/api/v1/audit-exports", "post", "jobs_get_get")["parameters"] == {
        "job_id": "$response.body#/job_id"}
    # Every link names a real operation and one of its path parameters.
    by_id = {entry["operationId"]: entry for _, _, entry in _operations(document)}
    for _, _, entry in _operations(document):
        for response in entry["responses"].values():
            for link in response.get("links", {}).values():
                target = by_id[link["operationId"]]
                names = {p["name"] for p in target["parameters"] if p["in"] == "path"}
                assert set(link["parameters"]) <= names, link


def _schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["$ref"]
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def test_token_and_password_schemas_say_what_validation_enforces(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/auth/verify-email", "/api/v1/invitations/accept",
                 "/api/v1/auth/password/reset"):
        token = _schema(document, path)["properties"]["token"]
        assert (token["minLength"], token["maxLength"]) == (43, 256), path
        assert token["pattern"] == "^[A-Za-z0-9_-]+$"
        # What the schema refuses, validation refuses.
        for bad in ("x" * 42, "x" * 42 + "!", "x" * 257):
            response = client.post(path, json={"token": bad, "name": "N",
                                               "password": "a sturdy passphrase 2026"}
                                   if "accept" in path else {"token": bad})
            assert response.status_code == 400, (path, bad)
            errors = response.get_json().get("errors", [])
            assert any(e["loc"] == ["body", "token"] for e in errors), (path, bad, errors)
    for path in ("/api/v1/invitations/accept", "/api/v1/auth/password/reset",
                 "/api/v1/auth/signup"):
        password = _schema(document, path)["properties"]["password"]
        assert (password["minLength"], password["maxLength"]) == (12, 128), path


def test_export_schema_states_its_limits(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    schema = _schema(document, "/api/v1/audit-exports")
    assert schema["properties"]["format"]["enum"] == ["jsonl", "csv"]
    assert schema["properties"]["since"]["format"] == "date-time"
    assert "366 days" in schema["description"]
    assert schema["additionalProperties"] is False


def test_query_parameters_document_their_types_not_json_null(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    params = {p["name"]: p["schema"]
              for p in document["paths"]["/api/v1/audit-events"]["get"]["parameters"]}
    assert params["actor_id"] == {"format": "uuid", "type": "string", "title": "Actor Id"}
    assert params["action"]["pattern"] == "^[a-z][a-z0-9_.]*$"
    assert params["severity"] == {"$ref": "#/components/schemas/Severity"}
    assert params["limit"]["maximum"] == 200
    for _, _, entry in _operations(document):
        for param in entry["parameters"]:
            assert "anyOf" not in param["schema"], param
