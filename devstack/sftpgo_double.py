"""An in-memory SFTPGo (REST API v2) that checks every exchange against SFTPGo's own spec.

The double exists so the client is tested against the published contract rather than
against itself: each request is validated with openapi-core against the vendored
``sftpgo-openapi.yaml`` (a violation answers 400 in SFTPGo's error shape and is recorded
in ``validation_errors``), and each response the double is about to send is validated
too (a violation is a bug here: it is recorded and answered 500).

Beyond the spec it mimics the SFTPGo behaviour the client depends on: ``PUT`` replaces
the whole user (the password when omitted, and a secret sent back ``Redacted`` or in its
stored non-plain form, are kept; an omitted or empty secret is cleared), an omitted
``status`` means a disabled user (``can_log_in`` refuses it), ``?disconnect=1`` is counted
(``disconnects``), ``home_dir`` and permissions for ``/`` are mandatory, S3
``key_prefix`` is normalised, a duplicate username answers 409 (``duplicate_status``;
older releases and the memory provider answer 500) and a missing user 404.

Passwords and secret payloads never reach the request log, the log file or
``validation_errors``; ``check_password`` and ``s3_access_secret`` let tests verify them.
Like SFTPGo, a password that already is a bcrypt hash (``$2a$``, ``$2b$``, ``$2y$``) is
stored as is, any other is hashed; ``received_plaintext`` tells which one a user got.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import posixpath
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI, V30RequestValidator, V30ResponseValidator
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from devstack.shared import shared_dir

SPEC_NAME = "sftpgo-openapi.yaml"
API_PREFIX = "/api/v2"
TOKEN_TTL_SECONDS = 20 * 60  # SFTPGo's admin tokens live 20 minutes
REDACTED = "<redacted>"
_SECRET_KEYS = frozenset({"password", "payload"})
_USERNAME = re.compile(r"^[a-zA-Z0-9\-_.~]+$")  # SFTPGo's default naming rule
_PROTOCOLS = ("SSH", "FTP", "DAV", "HTTP")


def spec_path() -> Path:
    """The vendored spec: ``$PORTCULLIS_SHARED_DIR/vendor`` or ``<repo>/../shared/vendor``."""
    return shared_dir() / "vendor" / SPEC_NAME


@lru_cache(maxsize=4)
def _load_openapi(path: str) -> OpenAPI:
    """Parse once per process: the 250 kB YAML is the slow part of starting a double."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader
    # The vendored file is a verbatim upstream copy that passes openapi-spec-validator;
    # re-checking it on every run would cost ~2 s, so spec validation is skipped here.
    config = Config(spec_validator_cls=None, request_validator_cls=V30RequestValidator,
                     response_validator_cls=V30ResponseValidator)
    return OpenAPI(SchemaPath.from_dict(document), config=config)


@dataclass(frozen=True)
class ValidationIssue:
    """One spec violation: ``kind`` is ``request`` (the client's fault) or ``response``."""

    kind: str
    method: str
    path: str
    detail: str


@dataclass(frozen=True)
class LoggedRequest:
    """One request as received, with passwords and secret payloads replaced."""

    method: str
    path: str
    query: str
    status: int
    auth: str | None  # "basic", "bearer" or None; never the credential itself
    body: Any = field(default=None)


class _FullContentTypeResponse(WerkzeugOpenAPIResponse):
    """openapi-core's adapter drops ``; charset=utf-8``, which the spec's healthz names."""

    @property
    def content_type(self) -> str:
        return str(self.response.content_type)


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's per-request stderr lines would drown test output; we keep our own log."""

    def log(self, type: str, message: str, *args: Any) -> None:
        return


class SFTPGoDouble:
    """SFTPGo's admin REST API for one admin, served on 127.0.0.1 in a daemon thread."""

    def __init__(self, base_dir: Path, admin_user: str = "admin",
                 admin_password: str | None = None, *,
                 token_ttl: float = TOKEN_TTL_SECONDS, duplicate_status: int = 409) -> None:
        self.base_dir = base_dir
        self.admin_user = admin_user
        self.admin_password = admin_password or secrets.token_urlsafe(24)
        self.token_ttl = token_ttl
        self.duplicate_status = duplicate_status
        self.port = 0
        self._openapi = _load_openapi(str(spec_path()))
        self._lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._password_hashes: dict[str, tuple[bytes, bytes]] = {}  # (salt, digest)
        self._bcrypt_hashes: dict[str, bytes] = {}  # given already hashed, kept as is
        self._s3_secrets: dict[str, str] = {}
        self._tokens: dict[str, datetime] = {}
        self._requests: list[LoggedRequest] = []
        self._validation_errors: list[ValidationIssue] = []
        self._next_id = 1
        self._down = False
        self._delay = 0.0
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = Map([
            Rule("/healthz", endpoint="healthz", methods=["GET"]),
            Rule(f"{API_PREFIX}/token", endpoint="token", methods=["GET"]),
            Rule(f"{API_PREFIX}/users", endpoint="add_user", methods=["POST"]),
            Rule(f"{API_PREFIX}/users/<username>", endpoint="get_user", methods=["GET"]),
            Rule(f"{API_PREFIX}/users/<username>", endpoint="update_user", methods=["PUT"]),
            Rule(f"{API_PREFIX}/users/<username>", endpoint="delete_user", methods=["DELETE"]),
        ], strict_slashes=False, merge_slashes=False)
        self._handlers: dict[str, Callable[[Request, dict[str, str]], Response]] = {
            "healthz": self._healthz, "token": self._token, "add_user": self._add_user,
            "get_user": self._get_user, "update_user": self._update_user,
            "delete_user": self._delete_user,
        }

    # -- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without ``/api/v2``, as ``SFTPGO_URL`` expects."""
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"SFTPGO_URL": self.url, "SFTPGO_ADMIN_USER": self.admin_user,
                "SFTPGO_ADMIN_PASSWORD": self.admin_password}

    def start(self) -> SFTPGoDouble:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._serve()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)

    def _serve(self) -> None:
        # The same port on restart, so clients built from env() keep working.
        server = make_server("127.0.0.1", self.port, self._wsgi, threaded=True,
                             request_handler=_QuietHandler)
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="sftpgo-double",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # -- test controls and inspection ------------------------------------------------

    def set_down(self, down: bool, *, refuse: bool = False) -> None:
        """Simulate an outage: answer every request 503, or with ``refuse`` close the port."""
        self._down = down and not refuse
        if down and refuse:
            self.stop()
        elif self._server is None:
            self._serve()

    def set_delay(self, seconds: float) -> None:
        """Sleep before answering, to exercise the client's read timeout."""
        self._delay = seconds

    def expire_tokens(self) -> None:
        """Forget every issued token, as a restart of SFTPGo would."""
        with self._lock:
            self._tokens.clear()

    def clear(self) -> None:
        """Forget the request log and validation errors (users stay)."""
        with self._lock:
            self._requests.clear()
            self._validation_errors.clear()

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        """Every user as ``GET /users/{username}`` renders it (no password)."""
        with self._lock:
            return {name: self._render(user) for name, user in self._users.items()}

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def validation_errors(self) -> list[ValidationIssue]:
        with self._lock:
            return list(self._validation_errors)

    def check_password(self, username: str, password: str) -> bool:
        with self._lock:
            stored = self._password_hashes.get(username)
            given_hash = self._bcrypt_hashes.get(username)
        if given_hash is not None:
            return bcrypt.checkpw(password.encode(), given_hash)
        if stored is None:
            return False
        salt, digest = stored
        return hmac.compare_digest(digest, _hash_password(salt, password))

    def can_log_in(self, username: str, password: str) -> bool:
        """What SFTPGo's SFTP server would decide: the password matches and the user is
        enabled (``status`` 1; a disabled user is refused whatever the password)."""
        with self._lock:
            user = self._users.get(username)
            enabled = user is not None and user.get("status") == 1
        return enabled and self.check_password(username, password)

    def disconnects(self, username: str) -> int:
        """How many updates of the user asked SFTPGo to cut its open sessions."""
        path = f"{API_PREFIX}/users/{username}"
        with self._lock:
            return sum(1 for r in self._requests if r.method == "PUT" and r.path == path
                       and "disconnect=1" in r.query.split("&") and 200 <= r.status < 300)

    def received_plaintext(self, username: str) -> bool | None:
        """Whether the user's password last arrived in clear (None: the user has none)."""
        with self._lock:
            if username in self._bcrypt_hashes:
                return False
            return True if username in self._password_hashes else None

    def s3_access_secret(self, username: str) -> str | None:
        """The S3 secret key SFTPGo would use for this user, in clear, for assertions."""
        with self._lock:
            return self._s3_secrets.get(username)

    # -- request pipeline ------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if self._delay:
            time.sleep(self._delay)
        raw = request.get_data(cache=True)
        secret_values = _secret_values(raw)
        if self._down:
            response = _api_response(503, "", "Service Unavailable")
        else:
            response = self._process(request, secret_values)
        self._log(request, raw, response.status_code)
        return response

    def _process(self, request: Request, secret_values: set[str]) -> Response:
        adapter = self._routes.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except MethodNotAllowed:
            self._record("request", request, "method not allowed by SFTPGo's API")
            return _api_response(405, "", "Method Not Allowed")
        except NotFound:
            # Either not in the spec at all (a client bug) or a part the double lacks.
            self._record("request", request, "no such operation in this double or the spec")
            return _api_response(404, "", "Not Found")
        denied = self._authenticate(request, str(endpoint))
        if denied is not None:
            return self._checked(request, denied)
        openapi_request = WerkzeugOpenAPIRequest(request)
        try:
            self._openapi.validate_request(openapi_request)
        except Exception as exc:  # noqa: BLE001 - any openapi-core error is a 400 here
            detail = _scrub(_describe(exc), secret_values)
            self._record("request", request, detail)
            return _api_response(400, detail, "")
        try:
            response = self._handlers[str(endpoint)](request, args)
        except Exception as exc:  # noqa: BLE001 - a crash is the double's bug: record it
            self._record("response", request, f"handler raised {type(exc).__name__}")
            return _api_response(500, "internal error in the double", "")
        return self._checked(request, response)

    def _checked(self, request: Request, response: Response) -> Response:
        """Validate what we are about to send; a violation is a bug in the double."""
        try:
            self._openapi.validate_response(WerkzeugOpenAPIRequest(request),
                                            _FullContentTypeResponse(response))
        except Exception as exc:  # noqa: BLE001 - any openapi-core error means a bad double
            self._record("response", request, _describe(exc))
            return _api_response(500, "the double produced an invalid response", "")
        return response

    def _authenticate(self, request: Request, endpoint: str) -> Response | None:
        if endpoint == "healthz":
            return None
        if endpoint == "token":
            auth = request.authorization
            ok = (auth is not None and auth.type == "basic"
                  and hmac.compare_digest((auth.username or "").encode(),
                                          self.admin_user.encode())
                  and hmac.compare_digest((auth.password or "").encode(),
                                          self.admin_password.encode()))
            if ok:
                return None
            response = _api_response(401, "", "Unauthorized")
            response.headers["WWW-Authenticate"] = 'Basic realm="SFTPGo"'
            return response
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        with self._lock:
            expires = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None or expires <= datetime.now(UTC):
            return _api_response(401, "token is unauthorized", "Unauthorized")
        return None

    def _record(self, kind: str, request: Request, detail: str) -> None:
        with self._lock:
            self._validation_errors.append(
                ValidationIssue(kind, request.method, request.path, detail))

    def _log(self, request: Request, raw: bytes, status: int) -> None:
        body: Any = None
        if raw:
            try:
                body = _redact(json.loads(raw))
            except ValueError:
                body = f"<{len(raw)} bytes, not JSON>"
        header = request.headers.get("Authorization", "")
        auth = header.partition(" ")[0].lower() or None
        entry = LoggedRequest(request.method, request.path,
                              request.query_string.decode("latin-1"), status, auth, body)
        with self._lock:
            self._requests.append(entry)
        line = {"method": entry.method, "path": entry.path, "status": status, "body": body}
        with (self.base_dir / "sftpgo-double.log").open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    # -- handlers --------------------------------------------------------------------

    def _healthz(self, request: Request, args: dict[str, str]) -> Response:
        return Response("ok", status=200, content_type="text/plain; charset=utf-8")

    def _token(self, request: Request, args: dict[str, str]) -> Response:
        token = secrets.token_urlsafe(32)
        expires = (datetime.now(UTC) + timedelta(seconds=self.token_ttl)).replace(microsecond=0)
        with self._lock:
            self._tokens[token] = expires
        return _json(200, {"access_token": token,
                           "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")})

    def _add_user(self, request: Request, args: dict[str, str]) -> Response:
        body = request.get_json()
        with self._lock:
            try:  # SFTPGo validates first, then looks for a duplicate
                user, s3_secret = self._normalise(body, None)
            except _Invalid as exc:
                return _api_response(400, str(exc), "")
            username = user["username"]
            if username in self._users:
                return _api_response(self.duplicate_status,
                                     f"duplicated key not allowed: username {username!r} "
                                     "already exists", "")
            now = _now_ms()
            user.update(id=self._next_id, created_at=now, updated_at=now, last_login=0,
                        used_quota_size=0, used_quota_files=0, last_quota_update=0)
            self._next_id += 1
            self._store(user, body.get("password"), s3_secret)
            rendered = self._render(self._users[username])
        response = _json(201, rendered)
        response.headers["Location"] = f"{API_PREFIX}/users/{username}"
        return response

    def _get_user(self, request: Request, args: dict[str, str]) -> Response:
        with self._lock:
            user = self._users.get(args["username"])
            if user is None:
                return _api_response(404, "Not Found", "")
            return _json(200, self._render(user))

    def _update_user(self, request: Request, args: dict[str, str]) -> Response:
        body = request.get_json()
        with self._lock:
            current = self._users.get(args["username"])
            if current is None:
                return _api_response(404, "Not Found", "")
            # SFTPGo decodes the body into a fresh user: omitted fields are reset, only
            # id, username, password (when omitted) and non-plain secrets carry over.
            replacement = {**body, "username": current["username"]}
            try:
                user, s3_secret = self._normalise(replacement, current)
            except _Invalid as exc:
                return _api_response(400, str(exc), "")
            for kept in ("id", "created_at", "last_login", "used_quota_size",
                         "used_quota_files", "last_quota_update", "last_password_change"):
                if kept in current:
                    user[kept] = current[kept]
            user["updated_at"] = _now_ms()
            self._store(user, body.get("password"), s3_secret)
        return _json(200, {"message": "User updated", "error": ""})

    def _delete_user(self, request: Request, args: dict[str, str]) -> Response:
        username = args["username"]
        with self._lock:
            if self._users.pop(username, None) is None:
                return _api_response(404, "Not Found", "")
            self._password_hashes.pop(username, None)
            self._bcrypt_hashes.pop(username, None)
            self._s3_secrets.pop(username, None)
        return _json(200, {"message": "User deleted", "error": ""})

    # -- SFTPGo's own validation and storage ------------------------------------------

    def _normalise(self, body: dict[str, Any],
                   current: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
        """Apply SFTPGo's checks beyond the spec; returns the user and its S3 secret."""
        user = copy.deepcopy({k: v for k, v in body.items()
                              if k not in {"password", "has_password", "id"}})
        username = user.get("username", "")
        if not username:
            raise _Invalid("username is mandatory")
        if not _USERNAME.match(username):
            raise _Invalid(f"username {username!r} is not valid, the following characters "
                           "are allowed: a-zA-Z0-9-_.~")
        home = user.get("home_dir", "")
        if not home:
            raise _Invalid("home_dir is mandatory")
        if not posixpath.isabs(home):
            raise _Invalid(f"home_dir must be an absolute path, actual value: {home}")
        user["home_dir"] = posixpath.normpath(home)
        permissions = user.get("permissions") or {}
        if "/" not in permissions:
            raise _Invalid('permissions for the root dir "/" must be set')
        denied = (user.get("filters") or {}).get("denied_protocols") or []
        if set(_PROTOCOLS) <= set(denied):
            raise _Invalid("invalid denied_protocols")
        user.setdefault("status", 0)  # Go's zero value: an omitted status disables the user
        filesystem = user.get("filesystem") or {"provider": 0}
        provider = filesystem.get("provider", 0)
        s3_secret: str | None = None
        if provider == 1:
            s3 = dict(filesystem.get("s3config") or {})
            if not s3.get("bucket"):
                raise _Invalid("bucket cannot be empty")
            if not s3.get("region"):
                raise _Invalid("region cannot be empty")
            s3["key_prefix"] = _normalise_prefix(s3.get("key_prefix", ""))
            s3_secret = self._resolve_secret(s3, current)
            if bool(s3.get("access_key")) != (s3_secret is not None):
                raise _Invalid("access_key and access_secret must be set together")
            if s3_secret is None:
                s3.pop("access_secret", None)
            else:
                s3["access_secret"] = _sealed(s3_secret)
            s3.pop("sse_customer_key", None)  # SSE-C is not modelled by the double
            filesystem = {"provider": 1, "s3config": s3}
        else:
            # SFTPGo keeps only the selected provider's configuration.
            filesystem = {k: v for k, v in filesystem.items() if k in {"provider", "osconfig"}}
            filesystem.setdefault("provider", provider)
        user["filesystem"] = filesystem
        return user, s3_secret

    def _resolve_secret(self, s3: dict[str, Any], current: dict[str, Any] | None) -> str | None:
        """A Plain secret replaces; any other non-empty one keeps the stored value."""
        secret = s3.get("access_secret") or {}
        status = secret.get("status", "")
        if status == "Plain":
            if not secret.get("payload"):
                raise _Invalid("invalid access_secret: a Plain secret needs a payload")
            return str(secret["payload"])
        if not status and not secret.get("payload"):
            return None
        if current is None:
            raise _Invalid("invalid access_secret: only Plain secrets can be added")
        return self._s3_secrets.get(current["username"])

    def _store(self, user: dict[str, Any], password: str | None, s3_secret: str | None) -> None:
        username = user["username"]
        if password:
            if _BCRYPT.match(password):
                self._bcrypt_hashes[username] = password.encode()
                self._password_hashes.pop(username, None)
            else:
                salt = secrets.token_bytes(16)
                self._password_hashes[username] = (salt, _hash_password(salt, password))
                self._bcrypt_hashes.pop(username, None)
            user["last_password_change"] = _now_ms()
        if s3_secret is None:
            self._s3_secrets.pop(username, None)
        else:
            self._s3_secrets[username] = s3_secret
        self._users[username] = user

    def _render(self, user: dict[str, Any]) -> dict[str, Any]:
        rendered = copy.deepcopy(user)
        rendered["has_password"] = (user["username"] in self._password_hashes
                                    or user["username"] in self._bcrypt_hashes)
        return rendered


class _Invalid(Exception):
    """SFTPGo's ``ValidationError``: answered 400, not a spec violation."""


def _api_response(status: int, error: str, message: str) -> Response:
    return _json(status, {"error": error, "message": message})


def _json(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _now_ms() -> int:
    return int(time.time() * 1000)


_BCRYPT = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")


def _hash_password(salt: bytes, password: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)


def _sealed(secret: str) -> dict[str, Any]:
    """How SFTPGo renders a stored secret: encrypted payload, key material hidden."""
    sealed = hashlib.sha256(b"sftpgo-double" + secret.encode()).digest()
    return {"status": "Secretbox", "payload": base64.b64encode(sealed).decode()}


def _normalise_prefix(prefix: str) -> str:
    """SFTPGo's rule: drop a leading "/", add a trailing one, refuse the bucket root."""
    if not prefix:
        return ""
    cleaned = posixpath.normpath("/" + prefix).lstrip("/")
    if not cleaned or cleaned == ".":
        raise _Invalid("key_prefix cannot resolve to the storage root")
    return cleaned + "/"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k in _SECRET_KEYS and v else _redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _secret_values(raw: bytes) -> set[str]:
    """Every password or secret payload in a JSON body, to scrub error messages with."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in _SECRET_KEYS and item not in (None, ""):
                    found.add(str(item))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    if raw:
        with contextlib.suppress(ValueError):
            walk(json.loads(raw))
    return found


def _scrub(text: str, values: Iterable[str]) -> str:
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def _describe(exc: Exception) -> str:
    """Name each schema error by its location; never echo whole (secret-bearing) bodies."""
    cause = exc.__cause__
    errors = getattr(cause, "schema_errors", None)
    if errors:
        parts = []
        for error in errors:
            location = list(error.absolute_path)
            where = "/".join(str(p) for p in location) or "<root>"
            if _SECRET_KEYS & {str(p) for p in location}:
                parts.append(f"{where}: invalid value")
            else:
                parts.append(f"{where}: {error.message}")
        return f"{type(exc).__name__}: " + "; ".join(parts)
    detail = str(exc)
    if cause is not None and str(cause) and str(cause) not in detail:
        detail += f" ({type(cause).__name__}: {cause})"
    return detail
