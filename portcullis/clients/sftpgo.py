"""A small client for SFTPGo's admin REST API v2: one SFTPGo user per SFTP account.

Every call is safe to repeat, because provisioning tasks retry: ``create_user`` converges
an existing user to the desired state instead of failing, ``delete_user`` accepts a user
that is already gone. Errors follow the workers' convention: anything worth retrying
(connection refused, timeouts, 408, 429, 5xx) raises :class:`DependencyUnavailable`;
SFTPGo refusing a request for good raises :class:`SFTPGoError`. No password, secret key
or token ever appears in an exception message or a log line.
"""

from __future__ import annotations

import logging
import posixpath
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from portcullis.errors import DependencyUnavailable

if TYPE_CHECKING:
    from config.settings import Settings

DEPENDENCY = "sftpgo"
API = "/api/v2"
# What an SFTP account may do inside its jail; no symlinks, chmod/chown or chtimes.
DEFAULT_PERMISSIONS: tuple[str, ...] = (
    "list", "download", "upload", "overwrite", "delete", "rename", "create_dirs",
)
# SFTP only: WebDAV/FTP/the WebClient would be extra, unreviewed ways in.
DENIED_PROTOCOLS: tuple[str, ...] = ("FTP", "DAV", "HTTP")
DEFAULT_HOME_BASE = "/srv/sftpgo/users"
TOKEN_REFRESH_MARGIN = 60.0  # seconds before expires_at when a cached token is renewed
_USERNAME = re.compile(r"^[a-zA-Z0-9\-_.~]+$")  # SFTPGo's default naming rule
_RETRYABLE_STATUS = frozenset({408, 429})
_SECRET_FIELDS = frozenset({"status", "payload", "key", "additional_data", "mode"})
# Server-maintained fields of a rendered user; they are not sent back on update.
_READ_ONLY = frozenset({
    "id", "has_password", "created_at", "updated_at", "last_login", "first_download",
    "first_upload", "last_password_change", "used_quota_size", "used_quota_files",
    "last_quota_update", "used_upload_data_transfer", "used_download_data_transfer",
})

log = logging.getLogger(__name__)


class SFTPGoError(Exception):
    """SFTPGo answered a non-retryable error (4xx other than 408/429, or a bad body)."""

    def __init__(self, operation: str, status: int, message: str = "") -> None:
        self.operation = operation
        self.status = status
        self.message = message
        detail = f": {message}" if message else ""
        super().__init__(f"SFTPGo refused {operation} with HTTP {status}{detail}")


@dataclass(frozen=True)
class S3Target:
    """Where an S3-backed SFTPGo user stores files; the secret never shows in repr."""

    bucket: str
    region: str
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    endpoint: str = ""  # empty for AWS
    force_path_style: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, bucket: str | None = None) -> S3Target:
        """Our own storage. The quarantine bucket by default: SFTP uploads must be scanned
        before they become files, exactly like API uploads."""
        return cls(
            bucket=bucket or settings.S3_QUARANTINE_BUCKET,
            region=settings.S3_REGION,
            access_key_id=settings.S3_ACCESS_KEY_ID.get_secret_value(),
            secret_access_key=settings.S3_SECRET_ACCESS_KEY.get_secret_value(),
            endpoint=settings.S3_ENDPOINT_URL,
            force_path_style=bool(settings.S3_ENDPOINT_URL),  # MinIO and moto need it
        )


class SFTPGoClient:
    """Admin client; thread-safe, with one cached admin token renewed before it expires."""

    def __init__(self, base_url: str, admin_user: str, admin_password: str,
                 timeout: float = 10.0, *, connect_timeout: float | None = None,
                 home_base: str = DEFAULT_HOME_BASE,
                 transport: httpx.BaseTransport | None = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.admin_user = admin_user
        self._admin_password = admin_password
        self.home_base = home_base.rstrip("/")
        connect = min(timeout, 5.0) if connect_timeout is None else connect_timeout
        self._http = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=connect),
            follow_redirects=False,  # a redirect would carry credentials elsewhere
            transport=transport,
        )
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_renew_at = 0.0  # time.monotonic() deadline

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SFTPGoClient:
        return cls(settings.SFTPGO_URL, settings.SFTPGO_ADMIN_USER,
                   settings.SFTPGO_ADMIN_PASSWORD.get_secret_value(), **kwargs)

    def __repr__(self) -> str:
        return f"SFTPGoClient(base_url={self.base_url!r}, admin_user={self.admin_user!r})"

    # -- public API ------------------------------------------------------------------

    def healthy(self) -> bool:
        """True when SFTPGo answers its (unauthenticated) ``GET /healthz`` with 200."""
        try:
            response = self._http.get("/healthz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def get_user(self, username: str) -> dict[str, Any] | None:
        """The user as SFTPGo renders it (no password), or None when it does not exist."""
        response = self._call("GET", _user_path(username), "get_user")
        if response.status_code == 404:
            return None
        self._raise_for_status(response, "get_user")
        return _json_object(response, "get_user")

    def create_user(self, username: str, password: str, home_prefix: str,
                    s3: S3Target | None = None, *,
                    permissions: Sequence[str] = DEFAULT_PERMISSIONS,
                    enabled: bool = True) -> dict[str, Any]:
        """Create, or bring to this exact state, a user jailed to ``home_prefix``.

        ``password`` may be a bcrypt hash (``$2a$``/``$2b$``/``$2y$``), which SFTPGo stores
        as is, so the plaintext never leaves the product; anything else SFTPGo hashes.

        With ``s3`` the jail is the key prefix ``home_prefix`` of that bucket; without it,
        ``home_prefix`` is an absolute local directory. A retry after a partial success
        (or a concurrent attempt) converges instead of failing on the duplicate.
        """
        desired = self._user_body(username, password, home_prefix, s3, permissions, enabled)
        secrets = (password, s3.secret_access_key if s3 else "")
        if self.get_user(username) is None:
            response = self._call("POST", f"{API}/users", "create_user", desired)
            if response.status_code == 201:
                log.info("SFTPGo user %s created", username)
                return _json_object(response, "create_user")
            # 409 is SFTPGo's duplicate; older releases answer 500. Either way another
            # attempt may have created it, so converge below if the user now exists.
            if response.status_code != 409 and response.status_code < 500:
                self._raise_for_status(response, "create_user", secrets)
            if self.get_user(username) is None:
                self._raise_for_status(response, "create_user", secrets)
                raise SFTPGoError("create_user", response.status_code, "user vanished")
        self._update(username, desired, "create_user", secrets)
        log.info("SFTPGo user %s updated to the desired state", username)
        user = self.get_user(username)
        if user is None:  # deleted between our update and this read
            raise SFTPGoError("create_user", 404, "Not Found")
        return user

    def set_password(self, username: str, password: str) -> None:
        """Replace the password and nothing else; a session open with the old one is
        disconnected."""
        _check_password(password)
        body = self._replacement(username, "set_password")
        body["password"] = password
        self._update(username, body, "set_password", (password,), disconnect=True)
        log.info("SFTPGo user %s password replaced", username)

    def set_enabled(self, username: str, enabled: bool) -> bool:
        """Set ``status`` (1 enabled, 0 disabled) and nothing else; a disabled user's open
        sessions are cut. Returns whether anything changed."""
        wanted = 1 if enabled else 0
        body = self._replacement(username, "set_enabled")
        if body.get("status") == wanted:
            return False
        body["status"] = wanted
        self._update(username, body, "set_enabled", (), disconnect=not enabled)
        log.info("SFTPGo user %s %s", username, "enabled" if enabled else "disabled")
        return True

    def _replacement(self, username: str, operation: str) -> dict[str, Any]:
        """The user as it stands, ready to send back whole: SFTPGo's PUT replaces the user,
        so every field we do not mean to change is sent as read. The password is omitted
        (SFTPGo keeps it) and every secret goes back as ``Redacted`` (SFTPGo keeps it; an
        omitted or empty secret would clear it)."""
        user = self.get_user(username)
        if user is None:
            raise SFTPGoError(operation, 404, "Not Found")
        body = {k: v for k, v in user.items() if k not in _READ_ONLY and k != "password"}
        redacted: dict[str, Any] = _redact_secrets(body)
        return redacted

    def delete_user(self, username: str) -> bool:
        """Delete the user; True if it existed, False if it was already gone."""
        response = self._call("DELETE", _user_path(username), "delete_user")
        if response.status_code == 404:
            return False
        self._raise_for_status(response, "delete_user")
        log.info("SFTPGo user %s deleted", username)
        return True

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SFTPGoClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- request body ----------------------------------------------------------------

    def _user_body(self, username: str, password: str, home_prefix: str,
                   s3: S3Target | None, permissions: Sequence[str],
                   enabled: bool) -> dict[str, Any]:
        _check_username(username)
        _check_password(password)
        if not permissions:
            raise ValueError("at least one permission is needed")
        body: dict[str, Any] = {
            "username": username,
            "password": password,
            "status": 1 if enabled else 0,  # SFTPGo treats an omitted status as 0
            "permissions": {"/": list(permissions)},
            "filters": {"denied_protocols": list(DENIED_PROTOCOLS)},
        }
        if s3 is None:
            body["home_dir"] = _local_home(home_prefix)
            body["filesystem"] = {"provider": 0}
            return body
        s3config: dict[str, Any] = {
            "bucket": s3.bucket,
            "region": s3.region,
            "key_prefix": _key_prefix(home_prefix),
            "force_path_style": s3.force_path_style,
        }
        if s3.endpoint:
            s3config["endpoint"] = s3.endpoint
        if s3.access_key_id:  # empty: SFTPGo uses its own role (e.g. an instance profile)
            s3config["access_key"] = s3.access_key_id
            s3config["access_secret"] = {"status": "Plain", "payload": s3.secret_access_key}
        # SFTPGo insists on an absolute home_dir even for S3 users; it holds no files.
        body["home_dir"] = f"{self.home_base}/{username}"
        body["filesystem"] = {"provider": 1, "s3config": s3config}
        return body

    # -- transport -------------------------------------------------------------------

    def _update(self, username: str, body: dict[str, Any], operation: str,
                secrets: Iterable[str], *, disconnect: bool = False) -> None:
        path = _user_path(username) + ("?disconnect=1" if disconnect else "")
        response = self._call("PUT", path, operation, body)
        self._raise_for_status(response, operation, secrets)

    def _call(self, method: str, path: str, operation: str,
              body: dict[str, Any] | None = None) -> httpx.Response:
        """One authenticated request; a 401 renews the token once (SFTPGo may have restarted)."""
        token = self._get_token()
        response = self._send(method, path, operation, json=body,
                              headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            self._forget_token(token)
            response = self._send(method, path, operation, json=body,
                                  headers={"Authorization": f"Bearer {self._get_token()}"})
        return response

    def _send(self, method: str, path: str, operation: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:  # refused, reset, DNS, connect/read timeouts
            raise DependencyUnavailable(DEPENDENCY, f"{operation}: {type(exc).__name__}") from None

    def _get_token(self) -> str:
        with self._token_lock:
            if self._token is not None and time.monotonic() < self._token_renew_at:
                return self._token
            response = self._send("GET", f"{API}/token", "get_token",
                                  auth=(self.admin_user, self._admin_password))
            self._raise_for_status(response, "get_token", (self._admin_password,))
            payload = _json_object(response, "get_token")
            token = payload.get("access_token")
            if not isinstance(token, str) or not token:
                raise SFTPGoError("get_token", response.status_code, "no access_token")
            self._token = token
            self._token_renew_at = time.monotonic() + _renew_after(payload.get("expires_at"))
            return token

    def _forget_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _raise_for_status(self, response: httpx.Response, operation: str,
                          secrets: Iterable[str] = ()) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in _RETRYABLE_STATUS:
            raise DependencyUnavailable(DEPENDENCY, f"{operation}: HTTP {status}")
        message = _error_message(response)
        for secret in (*secrets, self._admin_password, self._token or ""):
            if secret:
                message = message.replace(secret, "<redacted>")
        raise SFTPGoError(operation, status, message)


def _redact_secrets(value: Any) -> Any:
    """Every SFTPGo secret object (``{status, payload, ...}``) in a rendered user becomes
    ``{"status": "Redacted"}``: kept as stored, never echoed."""
    if isinstance(value, dict):
        if _is_secret(value):
            return {"status": "Redacted"}
        return {k: _redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_secrets(v) for v in value]
    return value


def _is_secret(value: dict[str, Any]) -> bool:
    return (isinstance(value.get("status"), str) and bool(value["status"])
            and set(value) <= _SECRET_FIELDS)


def _user_path(username: str) -> str:
    _check_username(username)
    return f"{API}/users/{quote(username, safe='')}"


def _check_username(username: str) -> None:
    if not _USERNAME.match(username):
        raise ValueError("SFTPGo usernames may only use a-z, A-Z, 0-9 and - _ . ~")


def _check_password(password: str) -> None:
    if not password:
        raise ValueError("the SFTP password must not be empty")


def _key_prefix(home_prefix: str) -> str:
    """``a/b/`` form (SFTPGo's normalisation); never the bucket root or a ``..`` escape."""
    parts = [p for p in home_prefix.split("/") if p]
    if not parts or any(p in {".", ".."} for p in parts):
        raise ValueError("home_prefix must name a key prefix below the bucket root")
    return "/".join(parts) + "/"


def _local_home(home_prefix: str) -> str:
    if not home_prefix.startswith("/") or ".." in home_prefix.split("/"):
        raise ValueError("a local home_prefix must be an absolute path without '..'")
    home = posixpath.normpath(home_prefix)
    if home == "/":
        raise ValueError("a local home_prefix must not be the filesystem root")
    return home


def _renew_after(expires_at: object) -> float:
    """Seconds the token may be used: up to ``TOKEN_REFRESH_MARGIN`` before it expires."""
    try:
        expires = datetime.fromisoformat(str(expires_at))
    except ValueError:
        return 0.0  # unknown lifetime: use it for this call only
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    remaining = (expires - datetime.now(UTC)).total_seconds()
    return max(0.0, remaining - min(TOKEN_REFRESH_MARGIN, remaining / 2))


def _json_object(response: httpx.Response, operation: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise SFTPGoError(operation, response.status_code, "response is not a JSON object")
    return payload


def _error_message(response: httpx.Response) -> str:
    """SFTPGo's ``{error, message}`` body, shortened; empty when it sent something else."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    parts = [str(payload[k]) for k in ("error", "message") if payload.get(k)]
    return "; ".join(parts)[:500]
