"""SFTPGo's ``PUT /api/v2/users/{username}`` replaces the whole user: the client's password
rotation and status change read the user, change only what they mean to, send every secret
back ``Redacted`` (never in clear, never omitted: SFTPGo would clear it) and no
server-maintained field, and cut open sessions on rotation and on disabling.

Every PUT body is captured as sent, before the double's log redacts it."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack.sftpgo_double import SFTPGoDouble
from portcullis.clients import sftpgo as sftpgo_module
from portcullis.clients.sftpgo import S3Target, SFTPGoClient, SFTPGoError

# What SFTPGo maintains itself; written here, not taken from the client, so a field the
# client stopped dropping makes a test fail.
SERVER_MAINTAINED = frozenset({
    "id", "has_password", "created_at", "updated_at", "last_login", "first_download",
    "first_upload", "last_password_change", "used_quota_size", "used_quota_files",
    "last_quota_update", "used_upload_data_transfer", "used_download_data_transfer",
})
# Fields a PUT is expected to change on SFTPGo's side whatever the body says.
TOUCHED_BY_SFTPGO = frozenset({"updated_at", "last_password_change"})


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    query: str
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


class Recording(httpx.BaseTransport):
    """The real transport, keeping a copy of every request exactly as it went out."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.sent: list[Sent] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw = request.read()
        self.sent.append(Sent(request.method, request.url.path,
                              request.url.query.decode("latin-1"), raw))
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    def puts(self, username: str) -> list[Sent]:
        return [s for s in self.sent
                if s.method == "PUT" and s.path == f"/api/v2/users/{username}"]


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SFTPGoDouble]:
    server = SFTPGoDouble(tmp_path_factory.mktemp("sftpgo-replace")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recording() -> Recording:
    return Recording()


@pytest.fixture(scope="module")
def client(double: SFTPGoDouble, recording: Recording) -> Iterator[SFTPGoClient]:
    with SFTPGoClient(double.url, double.admin_user, double.admin_password, timeout=2.0,
                      transport=recording) as sftpgo:
        yield sftpgo


@pytest.fixture(autouse=True)
def _spec_clean(double: SFTPGoDouble, recording: Recording) -> Iterator[None]:
    """Every exchange of every test must have matched SFTPGo's published spec."""
    double.clear()
    recording.sent.clear()
    yield
    assert double.validation_errors == []


@dataclass(frozen=True)
class Made:
    name: str
    password: str
    s3: S3Target


def _s3() -> S3Target:
    return S3Target(bucket="portcullis-quarantine", region="us-east-1",
                    access_key_id="AKIA" + secrets.token_hex(6).upper(),
                    secret_access_key="s3-secret-" + secrets.token_hex(12),
                    endpoint="http://127.0.0.1:9000", force_path_style=True)


def _admin(double: SFTPGoDouble) -> httpx.Client:
    """SFTPGo's admin API used directly, as an operator's script or the web UI would."""
    token = httpx.get(f"{double.url}/api/v2/token",
                      auth=(double.admin_user, double.admin_password)).json()["access_token"]
    return httpx.Client(base_url=f"{double.url}/api/v2",
                        headers={"Authorization": f"Bearer {token}"})


def _made(double: SFTPGoDouble, client: SFTPGoClient, *, enabled: bool = True) -> Made:
    """An S3 user, then given by hand a few fields the product never sets: the client must
    carry them through its read-modify-write as well as its own."""
    made = Made("pc-" + secrets.token_hex(6), secrets.token_urlsafe(24), _s3())
    client.create_user(made.name, made.password, f"sftp/{made.name}", made.s3,
                       enabled=enabled)
    with _admin(double) as admin:
        user = admin.get(f"/users/{made.name}").json()
        body = {k: v for k, v in user.items() if k not in SERVER_MAINTAINED}
        body["filesystem"]["s3config"]["access_secret"] = {"status": "Redacted"}
        body.update(description="set by hand in SFTPGo", email="ops@example.com",
                    max_sessions=3, quota_files=1000, additional_info="ticket 42")
        body["filters"]["max_upload_file_size"] = 1 << 20
        assert admin.put(f"/users/{made.name}", json=body).status_code == 200
    assert double.s3_access_secret(made.name) == made.s3.secret_access_key
    double.clear()
    return made


def _unchanged(before: dict[str, Any], after: dict[str, Any], *changed: str) -> None:
    skip = TOUCHED_BY_SFTPGO | set(changed)
    assert {k: v for k, v in after.items() if k not in skip} == {
        k: v for k, v in before.items() if k not in skip}


def _secrets_in(value: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every SFTPGo secret object (``{"status": <str>, ...}``) anywhere in a body."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(value, dict):
        if isinstance(value.get("status"), str) and set(value) <= {
                "status", "payload", "key", "additional_data", "mode"}:
            return [(path, value)]
        for key, item in value.items():
            found += _secrets_in(item, f"{path}/{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += _secrets_in(item, f"{path}/{n}")
    return found


# --- the S3 secret survives ------------------------------------------------------------------


def test_set_password_keeps_the_s3_secret(double: SFTPGoDouble, client: SFTPGoClient) -> None:
    made = _made(double, client)
    access_key = double.users[made.name]["filesystem"]["s3config"]["access_key"]
    client.set_password(made.name, secrets.token_urlsafe(24))
    assert double.s3_access_secret(made.name) == made.s3.secret_access_key
    assert double.users[made.name]["filesystem"]["s3config"]["access_key"] == access_key


@pytest.mark.parametrize("operation", ["set_password", "disable", "enable"])
def test_the_put_body_sends_secrets_redacted_and_no_server_fields(
        double: SFTPGoDouble, client: SFTPGoClient, recording: Recording,
        operation: str) -> None:
    made = _made(double, client, enabled=operation != "enable")
    stored = double.users[made.name]["filesystem"]["s3config"]["access_secret"]
    assert stored["status"] == "Secretbox" and stored["payload"]  # what the GET returns
    new_password = secrets.token_urlsafe(24)
    recording.sent.clear()
    if operation == "set_password":
        client.set_password(made.name, new_password)
    else:
        assert client.set_enabled(made.name, operation == "enable") is True

    [put] = recording.puts(made.name)
    body = put.body
    assert body["filesystem"]["s3config"]["access_secret"] == {"status": "Redacted"}
    assert [(path, s["status"]) for path, s in _secrets_in(body)] == [
        ("/filesystem/s3config/access_secret", "Redacted")]
    text = put.raw.decode()
    for secret in (made.s3.secret_access_key, stored["payload"], made.password,
                   double.admin_password):
        assert secret not in text
    assert not SERVER_MAINTAINED & set(body), SERVER_MAINTAINED & set(body)
    if operation == "set_password":
        assert body["password"] == new_password
    else:
        assert "password" not in body  # omitted: SFTPGo keeps the current one
    # What SFTPGo itself received, as the double logged it.
    [logged] = [r for r in double.requests if r.method == "PUT"]
    assert logged.body["filesystem"]["s3config"]["access_secret"] == {"status": "Redacted"}
    assert double.s3_access_secret(made.name) == made.s3.secret_access_key


# --- rotation ----------------------------------------------------------------------------------


def test_rotation_changes_only_the_password_and_cuts_sessions(
        double: SFTPGoDouble, client: SFTPGoClient, recording: Recording) -> None:
    made = _made(double, client)
    new = secrets.token_urlsafe(24)
    before = double.users[made.name]
    assert double.can_log_in(made.name, made.password)
    client.set_password(made.name, new)
    after = double.users[made.name]

    _unchanged(before, after)
    assert after["description"] == "set by hand in SFTPGo"
    assert after["filters"]["max_upload_file_size"] == 1 << 20
    assert after["status"] == 1
    assert after["last_password_change"] >= before["last_password_change"]
    assert double.can_log_in(made.name, new)
    assert not double.can_log_in(made.name, made.password)
    assert double.s3_access_secret(made.name) == made.s3.secret_access_key
    assert double.disconnects(made.name) == 1
    [put] = recording.puts(made.name)
    assert "disconnect=1" in put.query.split("&")


def test_rotation_of_a_disabled_user_keeps_it_disabled(
        double: SFTPGoDouble, client: SFTPGoClient) -> None:
    made = _made(double, client, enabled=False)
    new = secrets.token_urlsafe(24)
    client.set_password(made.name, new)
    assert double.users[made.name]["status"] == 0
    assert double.check_password(made.name, new)
    assert not double.can_log_in(made.name, new)


# --- status ------------------------------------------------------------------------------------


def test_disable_then_enable_changes_only_the_status(
        double: SFTPGoDouble, client: SFTPGoClient, recording: Recording) -> None:
    made = _made(double, client)
    before = double.users[made.name]

    assert client.set_enabled(made.name, False) is True
    disabled = double.users[made.name]
    assert disabled["status"] == 0
    _unchanged(before, disabled, "status")
    assert disabled["last_password_change"] == before["last_password_change"]
    assert double.check_password(made.name, made.password)  # the password is kept
    assert not double.can_log_in(made.name, made.password)  # yet refused while disabled
    assert double.s3_access_secret(made.name) == made.s3.secret_access_key
    assert double.disconnects(made.name) == 1
    [disable] = recording.puts(made.name)
    assert "disconnect=1" in disable.query.split("&")

    recording.sent.clear()
    assert client.set_enabled(made.name, True) is True
    enabled = double.users[made.name]
    assert enabled["status"] == 1
    _unchanged(before, enabled)
    assert double.can_log_in(made.name, made.password)
    assert double.s3_access_secret(made.name) == made.s3.secret_access_key
    [enable] = recording.puts(made.name)
    assert "disconnect=1" not in enable.query.split("&")  # nobody to cut
    assert double.disconnects(made.name) == 1


@pytest.mark.parametrize("enabled", [True, False])
def test_set_enabled_to_the_current_status_sends_nothing(
        double: SFTPGoDouble, client: SFTPGoClient, recording: Recording,
        enabled: bool) -> None:
    made = _made(double, client, enabled=enabled)
    before = double.users[made.name]
    assert client.set_enabled(made.name, enabled) is False
    assert recording.puts(made.name) == []
    assert double.users[made.name] == before
    assert double.disconnects(made.name) == 0


def test_set_enabled_on_a_missing_user_raises_404_and_sends_no_put(
        client: SFTPGoClient, recording: Recording) -> None:
    """Not ``False``: a missing user is an error (the status sweep counts it "missing")."""
    name = "pc-" + secrets.token_hex(6)
    for enabled in (True, False):
        with pytest.raises(SFTPGoError) as caught:
            client.set_enabled(name, enabled)
        assert caught.value.status == 404
        assert caught.value.operation == "set_enabled"
    assert [s.method for s in recording.sent if s.path.startswith("/api/v2/users")] == [
        "GET", "GET"]


# --- the secret-redaction rule ----------------------------------------------------------------


def test_redact_secrets_replaces_every_secret_object_and_only_those() -> None:
    sealed = {"status": "Secretbox", "payload": "c2VhbGVk", "key": "k",
              "additional_data": "ad", "mode": 0}
    user = {"status": 1, "username": "pc-x", "filters": {"status": "not a secret", "n": 1},
            "filesystem": {"provider": 1, "s3config": {
                "access_key": "AKIA", "access_secret": dict(sealed),
                "sse_customer_key": {"status": "AES-256-GCM", "payload": "p"}}},
            "virtual_folders": [{"name": "v", "filesystem": {"gcsconfig": {
                "credentials": {"status": "Plain", "payload": "clear"}}}}],
            "empty": {"status": "", "payload": ""}}
    original = copy.deepcopy(user)
    out = sftpgo_module._redact_secrets(user)
    assert user == original  # the input is not modified
    assert out["filesystem"]["s3config"] == {
        "access_key": "AKIA", "access_secret": {"status": "Redacted"},
        "sse_customer_key": {"status": "Redacted"}}
    assert out["virtual_folders"][0]["filesystem"]["gcsconfig"]["credentials"] == {
        "status": "Redacted"}
    assert out["status"] == 1 and out["username"] == "pc-x"
    assert out["filters"] == {"status": "not a secret", "n": 1}  # has a non-secret key
    assert out["empty"] == {"status": "", "payload": ""}  # no secret to keep


def test_the_double_clears_an_omitted_secret_and_keeps_a_redacted_one(
        double: SFTPGoDouble, client: SFTPGoClient) -> None:
    """The double is strict enough for the tests above to fail: a PUT that leaves the
    secret out loses it (or is refused, with the access key still there)."""
    made = _made(double, client)
    with _admin(double) as admin:
        user = admin.get(f"/users/{made.name}").json()
        body = {k: v for k, v in user.items() if k not in SERVER_MAINTAINED}

        kept = copy.deepcopy(body)
        kept["filesystem"]["s3config"]["access_secret"] = {"status": "Redacted"}
        assert admin.put(f"/users/{made.name}", json=kept).status_code == 200
        assert double.s3_access_secret(made.name) == made.s3.secret_access_key

        half = copy.deepcopy(body)
        del half["filesystem"]["s3config"]["access_secret"]
        refused = admin.put(f"/users/{made.name}", json=half)
        assert refused.status_code == 400
        assert "access_secret" in refused.json()["error"]
        assert double.s3_access_secret(made.name) == made.s3.secret_access_key

        gone = copy.deepcopy(body)
        del gone["filesystem"]["s3config"]["access_secret"]
        del gone["filesystem"]["s3config"]["access_key"]
        assert admin.put(f"/users/{made.name}", json=gone).status_code == 200
    assert double.s3_access_secret(made.name) is None
    assert "access_secret" not in double.users[made.name]["filesystem"]["s3config"]


def test_a_client_that_dropped_secrets_would_be_caught(
        double: SFTPGoDouble, client: SFTPGoClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation check: without the Redacted rule, the rotation fails against the double."""

    def drop_secrets(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: drop_secrets(v) for k, v in value.items()
                    if not (isinstance(v, dict) and _secrets_in(v) == [("", v)])}
        if isinstance(value, list):
            return [drop_secrets(v) for v in value]
        return value

    made = _made(double, client)
    monkeypatch.setattr(sftpgo_module, "_redact_secrets", drop_secrets)
    with pytest.raises(SFTPGoError) as caught:
        client.set_password(made.name, secrets.token_urlsafe(24))
    assert caught.value.status == 400
    assert double.check_password(made.name, made.password)  # nothing was applied
    assert double.s3_access_secret(made.name) == made.s3.secret_access_key
