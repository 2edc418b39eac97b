"""SFTPGoClient against a double that validates every exchange with SFTPGo's own OpenAPI spec."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from werkzeug.wrappers import Response

from config.settings import Settings
from devstack.sftpgo_double import SPEC_NAME, SFTPGoDouble, spec_path
from portcullis.clients.sftpgo import DENIED_PROTOCOLS, S3Target, SFTPGoClient, SFTPGoError
from portcullis.errors import DependencyUnavailable

S3 = S3Target(bucket="portcullis-quarantine", region="us-east-1", access_key_id="AKIATEST",
              secret_access_key="s3-secret-" + secrets.token_hex(8),
              endpoint="http://127.0.0.1:9000", force_path_style=True)


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SFTPGoDouble]:
    server = SFTPGoDouble(tmp_path_factory.mktemp("sftpgo")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(double: SFTPGoDouble) -> Iterator[SFTPGoClient]:
    settings = Settings(PORTCULLIS_ENV="test", **double.env())  # type: ignore[arg-type]
    with SFTPGoClient.from_settings(settings, timeout=2.0) as sftpgo:
        yield sftpgo


@pytest.fixture(autouse=True)
def _spec_clean(double: SFTPGoDouble) -> Iterator[None]:
    """Every exchange of every test must have matched SFTPGo's published spec."""
    double.set_down(False)
    double.set_delay(0)
    double.duplicate_status = 409
    double.clear()
    yield
    assert double.validation_errors == []


def _name() -> str:
    return "pc-" + secrets.token_hex(6)


def _password() -> str:
    return secrets.token_urlsafe(24)


def _admin_token(double: SFTPGoDouble) -> str:
    response = httpx.get(f"{double.url}/api/v2/token",
                         auth=(double.admin_user, double.admin_password))
    assert response.status_code == 200
    return str(response.json()["access_token"])


def _methods(double: SFTPGoDouble) -> list[str]:
    return [f"{r.method} {r.path}" for r in double.requests]


def test_healthy(client: SFTPGoClient) -> None:
    assert client.healthy() is True


def test_create_s3_user_jailed_to_prefix(double: SFTPGoDouble, client: SFTPGoClient) -> None:
    name, password = _name(), _password()
    created = client.create_user(name, password, "/tenants/t1/sftp/a1", S3)
    assert created["username"] == name
    assert "password" not in created
    user = double.users[name]
    assert user["status"] == 1  # an omitted status would leave the account disabled
    assert user["permissions"] == {"/": ["list", "download", "upload", "overwrite", "delete",
                                         "rename", "create_dirs"]}
    assert user["filters"]["denied_protocols"] == list(DENIED_PROTOCOLS)
    assert user["home_dir"].startswith("/")
    s3 = user["filesystem"]["s3config"]
    assert user["filesystem"]["provider"] == 1
    assert s3["bucket"] == S3.bucket
    assert s3["region"] == S3.region
    assert s3["endpoint"] == S3.endpoint
    assert s3["force_path_style"] is True
    assert s3["key_prefix"] == "tenants/t1/sftp/a1/"
    assert s3["access_key"] == S3.access_key_id
    assert double.s3_access_secret(name) == S3.secret_access_key
    assert double.check_password(name, password)
    assert client.get_user(name) == user


def test_create_local_user(double: SFTPGoDouble, client: SFTPGoClient) -> None:
    name, password = _name(), _password()
    client.create_user(name, password, "/srv/sftp/local-home")
    user = double.users[name]
    assert user["filesystem"] == {"provider": 0}
    assert user["home_dir"] == "/srv/sftp/local-home"
    assert user["status"] == 1
    assert double.check_password(name, password)


def test_create_is_idempotent_and_converges(double: SFTPGoDouble,
                                            client: SFTPGoClient) -> None:
    name, first, second = _name(), _password(), _password()
    client.create_user(name, first, "tenants/t1/a", S3)
    double.clear()
    again = client.create_user(name, second, "tenants/t1/b", S3)
    assert [m for m in _methods(double) if m.startswith(("POST", "PUT"))] == [
        f"PUT /api/v2/users/{name}"]
    assert again["filesystem"]["s3config"]["key_prefix"] == "tenants/t1/b/"
    assert double.check_password(name, second)
    assert not double.check_password(name, first)
    assert list(double.users).count(name) == 1


@pytest.mark.parametrize("duplicate_status", [409, 500])
def test_create_converges_when_a_concurrent_attempt_won(
        double: SFTPGoDouble, client: SFTPGoClient, monkeypatch: pytest.MonkeyPatch,
        duplicate_status: int) -> None:
    """SFTPGo answers a duplicate with 409 (older releases: 500); both mean "update it"."""
    name, password = _name(), _password()
    client.create_user(name, _password(), "tenants/t1/race", S3)
    double.duplicate_status = duplicate_status
    real_get = client.get_user
    calls: list[str] = []

    def stale_first_read(username: str) -> dict[str, object] | None:
        calls.append(username)
        return None if len(calls) == 1 else real_get(username)

    monkeypatch.setattr(client, "get_user", stale_first_read)
    user = client.create_user(name, password, "tenants/t1/race", S3)
    assert user["username"] == name
    assert double.check_password(name, password)
    assert any(r.method == "POST" and r.status == duplicate_status for r in double.requests)


def test_set_password_keeps_the_rest_of_the_user(double: SFTPGoDouble,
                                                 client: SFTPGoClient) -> None:
    name, old, new = _name(), _password(), _password()
    client.create_user(name, old, "tenants/t2/acc", S3)
    before = double.users[name]
    client.set_password(name, new)
    after = double.users[name]
    assert double.check_password(name, new)
    assert not double.check_password(name, old)
    # SFTPGo's PUT replaces the whole user: a partial body would disable it or drop S3.
    for key in ("status", "permissions", "filters", "home_dir", "filesystem"):
        assert after[key] == before[key], key
    assert double.s3_access_secret(name) == S3.secret_access_key


def test_a_bcrypt_hash_is_kept_as_is(double: SFTPGoDouble, client: SFTPGoClient) -> None:
    """SFTPGo stores a password given as a bcrypt hash as is: the product can provision an
    account without the plaintext ever leaving it."""
    name, password, new = _name(), _password(), _password()
    client.create_user(name, bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode(),
                       "tenants/t4/acc", S3)
    assert double.received_plaintext(name) is False
    assert double.check_password(name, password)
    assert client.get_user(name)["has_password"] is True
    client.set_password(name, bcrypt.hashpw(new.encode(), bcrypt.gensalt(4)).decode())
    assert double.received_plaintext(name) is False
    assert double.check_password(name, new) and not double.check_password(name, password)
    assert double.s3_access_secret(name) == S3.secret_access_key
    client.set_password(name, password)  # in clear: hashed by SFTPGo itself
    assert double.received_plaintext(name) is True and double.check_password(name, password)


def test_set_password_of_missing_user(client: SFTPGoClient) -> None:
    with pytest.raises(SFTPGoError) as caught:
        client.set_password(_name(), _password())
    assert caught.value.status == 404


def test_delete_is_idempotent(double: SFTPGoDouble, client: SFTPGoClient) -> None:
    name = _name()
    client.create_user(name, _password(), "tenants/t3/acc", S3)
    assert client.delete_user(name) is True
    assert name not in double.users
    assert client.get_user(name) is None
    assert client.delete_user(name) is False


def test_double_rejects_a_spec_violating_request(double: SFTPGoDouble) -> None:
    token = _admin_token(double)
    response = httpx.post(f"{double.url}/api/v2/users",
                          headers={"Authorization": f"Bearer {token}"},
                          json={"username": 42, "status": 7, "permissions": {"/": ["*"]}})
    assert response.status_code == 400
    body = response.json()
    assert set(body) <= {"error", "message"} and "username" in body["error"]
    issues = double.validation_errors
    assert [(i.kind, i.method, i.path) for i in issues] == [("request", "POST", "/api/v2/users")]
    assert "status" in issues[0].detail
    assert double.users.get("42") is None
    double.clear()  # the violation was the point of this test


def test_double_answers_500_for_its_own_invalid_response(
        double: SFTPGoDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = Response(json.dumps({"username": 7}), content_type="application/json")
    monkeypatch.setitem(double._handlers, "get_user", lambda request, args: bad)
    response = httpx.get(f"{double.url}/api/v2/users/someone",
                         headers={"Authorization": f"Bearer {_admin_token(double)}"})
    assert response.status_code == 500
    assert [i.kind for i in double.validation_errors] == ["response"]
    double.clear()


def test_token_auth_is_required(double: SFTPGoDouble) -> None:
    url = f"{double.url}/api/v2/users/anyone"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert httpx.get(url, auth=(double.admin_user, double.admin_password)).status_code == 401
    wrong = httpx.get(f"{double.url}/api/v2/token", auth=(double.admin_user, "wrong"))
    assert wrong.status_code == 401
    assert "access_token" not in wrong.json()
    token = _admin_token(double)
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_token_is_cached_and_renewed_after_a_401(double: SFTPGoDouble,
                                                 client: SFTPGoClient) -> None:
    client.get_user(_name())
    client.get_user(_name())
    assert [r.path for r in double.requests].count("/api/v2/token") <= 1  # cached
    double.clear()
    double.expire_tokens()  # as if SFTPGo restarted
    assert client.get_user(_name()) is None
    assert [r.status for r in double.requests] == [401, 200, 404]
    assert double.requests[1].path == "/api/v2/token"


def test_token_is_renewed_before_it_expires(tmp_path: Path) -> None:
    short = SFTPGoDouble(tmp_path, token_ttl=2).start()
    try:
        with SFTPGoClient(short.url, short.admin_user, short.admin_password) as sftpgo:
            sftpgo.get_user("nobody")
            sftpgo.get_user("nobody")
            time.sleep(1.1)  # past the renewal point, before the token's expiry
            sftpgo.get_user("nobody")
        statuses = [(r.path, r.status) for r in short.requests]
        assert statuses.count(("/api/v2/token", 200)) == 2
        assert all(status != 401 for _, status in statuses)
        assert short.validation_errors == []
    finally:
        short.stop()


def test_wrong_admin_password(double: SFTPGoDouble) -> None:
    wrong = "wrong-" + _password()
    with (SFTPGoClient(double.url, double.admin_user, wrong, timeout=2.0) as sftpgo,
          pytest.raises(SFTPGoError) as caught):
        sftpgo.get_user(_name())
    assert caught.value.status == 401
    assert caught.value.operation == "get_token"
    assert wrong not in str(caught.value)


@pytest.mark.parametrize("refuse", [False, True], ids=["503", "refused"])
def test_down_dependency_raises_dependency_unavailable(
        double: SFTPGoDouble, client: SFTPGoClient, refuse: bool) -> None:
    name, password = _name(), _password()
    client.create_user(name, password, "tenants/t4/acc", S3)
    double.set_down(True, refuse=refuse)
    try:
        assert client.healthy() is False
        with pytest.raises(DependencyUnavailable) as caught:
            client.create_user(name, password, "tenants/t4/acc", S3)
        assert caught.value.dependency == "sftpgo"
        assert password not in str(caught.value)
        with pytest.raises(DependencyUnavailable):
            client.set_password(name, _password())
        with pytest.raises(DependencyUnavailable):
            client.delete_user(name)
        with pytest.raises(DependencyUnavailable):
            client.get_user(name)
    finally:
        double.set_down(False)
    assert client.healthy() is True
    assert client.delete_user(name) is True


def test_timeout_raises_dependency_unavailable(double: SFTPGoDouble) -> None:
    double.set_delay(0.5)
    with SFTPGoClient(double.url, double.admin_user, double.admin_password,
                      timeout=0.2) as sftpgo, pytest.raises(DependencyUnavailable) as caught:
        sftpgo.get_user(_name())
    assert "Timeout" in caught.value.detail


def test_no_password_in_request_log(double: SFTPGoDouble, client: SFTPGoClient) -> None:
    name, first, second = _name(), _password(), _password()
    client.create_user(name, first, "tenants/t5/acc", S3)
    client.create_user(name, second, "tenants/t5/acc", S3)
    client.set_password(name, _password())
    logged = repr(double.requests) + (double.base_dir / "sftpgo-double.log").read_text()
    for secret in (first, second, S3.secret_access_key, double.admin_password):
        assert secret not in logged
    bodies = [r.body for r in double.requests if r.method in {"POST", "PUT"}]
    assert bodies and all(b["password"] == "<redacted>" for b in bodies)


def test_refusals_are_sftpgo_errors_without_secrets() -> None:
    password = _password()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/token":
            return httpx.Response(200, json={"access_token": "tok",
                                             "expires_at": "2999-01-01T00:00:00Z"})
        if request.method == "GET":
            return httpx.Response(404, json={"error": "Not Found", "message": ""})
        return httpx.Response(400, json={"error": f"weak password {password}", "message": ""})

    with (SFTPGoClient("http://sftpgo.test", "admin", "admin-pw",
                       transport=httpx.MockTransport(handler)) as sftpgo,
          pytest.raises(SFTPGoError) as caught):
        sftpgo.create_user("pc-user", password, "tenants/t6/acc", S3)
    assert caught.value.status == 400
    assert "weak password" in str(caught.value)
    assert password not in str(caught.value)


@pytest.mark.parametrize(("username", "home_prefix", "s3"), [
    ("bad/name", "tenants/t/acc", S3),
    ("pc-ok", "", S3),
    ("pc-ok", "/", S3),
    ("pc-ok", "tenants/../../other", S3),
    ("pc-ok", "relative/home", None),
    ("pc-ok", "/", None),
])
def test_invalid_arguments_never_reach_sftpgo(double: SFTPGoDouble, client: SFTPGoClient,
                                              username: str, home_prefix: str,
                                              s3: S3Target | None) -> None:
    with pytest.raises(ValueError):
        client.create_user(username, _password(), home_prefix, s3)
    assert not [r for r in double.requests if r.method in {"POST", "PUT"}]


def test_s3_target_from_settings() -> None:
    settings = Settings(PORTCULLIS_ENV="test", S3_ENDPOINT_URL="http://127.0.0.1:9000",
                        S3_QUARANTINE_BUCKET="q-bucket",
                        S3_SECRET_ACCESS_KEY="a-secret-key-value")  # type: ignore[arg-type]
    target = S3Target.from_settings(settings)
    assert target.bucket == "q-bucket"
    assert target.force_path_style is True
    assert target.secret_access_key == "a-secret-key-value"
    assert "a-secret-key-value" not in repr(target)


def test_spec_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PORTCULLIS_SHARED_DIR", raising=False)
    assert spec_path().is_file()
    monkeypatch.setenv("PORTCULLIS_SHARED_DIR", str(tmp_path))
    assert spec_path() == tmp_path / "vendor" / SPEC_NAME
