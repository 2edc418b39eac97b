"""The OpenAPI document is generated from the same models the views validate with."""

from __future__ import annotations

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
