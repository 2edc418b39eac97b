"""The one settings object every process reads, validated when it starts.

Names match API.md's Configuration section. In ``production`` a missing or weak secret
stops the process with a message naming it; ``development`` and ``test`` get safe local
defaults so a fresh checkout runs without a ``.env``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_BYTES = 32
_DEV_SECRET = "dev-only-insecure-secret-change-me-0123456789"  # noqa: S105 - dev/test only
_DEV_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"dev-only-siem-secret-0123456789!").decode()


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    PORTCULLIS_ENV: Environment = Environment.development
    DATABASE_URL: str = "postgresql+psycopg://portcullis@127.0.0.1:5432/portcullis"
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    CELERY_BROKER_URL: str = ""
    JWT_SECRET: SecretStr = SecretStr("")
    SESSION_SECRET: SecretStr = SecretStr("")
    # Rotation: while set, what the previous value signed or sealed stays valid (API.md).
    JWT_SECRET_PREVIOUS: SecretStr = SecretStr("")
    SESSION_SECRET_PREVIOUS: SecretStr = SecretStr("")
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"
    S3_ENDPOINT_URL: str = ""
    S3_REGION: str = "us-east-1"
    S3_ACCESS_KEY_ID: SecretStr = SecretStr("")
    S3_SECRET_ACCESS_KEY: SecretStr = SecretStr("")
    S3_BUCKET: str = "portcullis-files"
    S3_QUARANTINE_BUCKET: str = "portcullis-quarantine"
    CLAMD_URL: str = "tcp://127.0.0.1:3310"
    SMTP_URL: SecretStr = SecretStr("smtp://127.0.0.1:1025")
    MAIL_FROM: str = "Portcullis <no-reply@portcullis.localhost>"
    SIEM_WEBHOOK_URL: str = ""
    SIEM_WEBHOOK_SECRET: SecretStr = SecretStr("")
    SIEM_WEBHOOK_SECRET_PREVIOUS: SecretStr = SecretStr("")
    SFTPGO_URL: str = "http://127.0.0.1:8080"
    SFTPGO_ADMIN_USER: str = "admin"
    SFTPGO_ADMIN_PASSWORD: SecretStr = SecretStr("")
    SFTP_PUBLIC_HOST: str = "127.0.0.1"
    SFTP_PUBLIC_PORT: int = Field(default=2022, ge=1, le=65535)
    SFTP_INGEST_INTERVAL: int = Field(default=30, ge=1, le=3600)  # seconds between drop-box sweeps
    RESCAN_AFTER_DAYS: int = Field(default=7, ge=1, le=3650)  # days before a file is rescanned
    SENTRY_DSN: SecretStr = SecretStr("")
    TLS_CERT_PATH: str = ""
    TLS_KEY_PATH: str = ""
    TRUSTED_PROXIES: Annotated[
        list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode
    ] = Field(default_factory=list)
    UPLOAD_MAX_BYTES: int = Field(default=25 * 1024 * 1024, ge=1)
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=31)
    RATE_LIMIT_DEFAULT: str = "100/minute"
    # Billing (API.md's Billing section): prices in the currency's minor units.
    BILLING_CURRENCY: str = Field(default="BRL", pattern=r"^[A-Z]{3}$")
    PRICE_STORAGE_GIB_MONTH_CENTS: int = Field(default=25, ge=0)
    PRICE_EGRESS_GIB_CENTS: int = Field(default=10, ge=0)
    PRICE_SFTP_ACCOUNT_MONTH_CENTS: int = Field(default=500, ge=0)
    INVOICE_DUE_DAYS: int = Field(default=15, ge=0, le=365)

    # Operational knobs beyond API.md's list; each has a production-safe default.
    JOB_REQUEUE_AFTER_SECONDS: int = Field(default=60, ge=1)
    JOB_LEASE_SECONDS: int = Field(default=60, ge=3)
    JOB_MAX_ATTEMPTS: int = Field(default=5, ge=1)
    BROKER_VISIBILITY_TIMEOUT: int = Field(default=7200, ge=10)

    # Detection rules (API.md's SIEM section gives the defaults) and alert delivery.
    ALERT_FAILED_LOGINS_PER_ACCOUNT: int = Field(default=10, ge=1)
    ALERT_FAILED_LOGINS_PER_IP: int = Field(default=30, ge=1)
    ALERT_FAILED_LOGINS_WINDOW_SECONDS: int = Field(default=300, ge=1)
    ALERT_NEW_IP_DAYS: int = Field(default=30, ge=1)
    ALERT_MFA_FAILURES: int = Field(default=5, ge=1)
    ALERT_MFA_FAILURES_WINDOW_SECONDS: int = Field(default=600, ge=1)
    ALERT_MASS_DELETIONS: int = Field(default=50, ge=1)
    ALERT_MASS_DELETIONS_WINDOW_SECONDS: int = Field(default=600, ge=1)
    ALERT_RETRY_FOR_SECONDS: int = Field(default=86400, ge=1)
    ALERT_RETRY_BASE_SECONDS: float = Field(default=5.0, gt=0)

    # Second-factor lockout: wrong codes for one user across all their sessions (the
    # per-session rules alone let a password holder log in again for more guesses).
    MFA_LOCKOUT_FAILURES: int = Field(default=10, ge=1)
    MFA_LOCKOUT_WINDOW_SECONDS: int = Field(default=900, ge=1)
    MFA_LOCKOUT_SECONDS: int = Field(default=900, ge=1)
    # Token emails (verification, reset, invitation) per recipient address, in
    # flask-limiter's notation; beyond it the mail is not sent (the HTTP answer is unchanged).
    EMAIL_RECIPIENT_LIMIT: str = "5/hour"

    @field_validator("TRUSTED_PROXIES", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return [ipaddress.ip_network(p, strict=False) for p in parts]
        return value

    @field_validator("EMAIL_RECIPIENT_LIMIT")
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        from limits import parse

        parse(value)  # raises ValueError on a bad limit string
        return value

    @field_validator("CLAMD_URL")
    @classmethod
    def _clamd_scheme(cls, value: str) -> str:
        if not value.startswith(("tcp://", "unix://")):
            raise ValueError("CLAMD_URL must be tcp://host:port or unix:///path")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        if not self.CELERY_BROKER_URL:
            self.CELERY_BROKER_URL = self.REDIS_URL
        if self.PORTCULLIS_ENV is Environment.production:
            self._require_production_secrets()
        else:
            for name, default in (("JWT_SECRET", _DEV_SECRET), ("SESSION_SECRET", _DEV_SECRET)):
                if not getattr(self, name).get_secret_value():
                    setattr(self, name, SecretStr(default + name))
            if not self.SIEM_WEBHOOK_SECRET.get_secret_value():
                self.SIEM_WEBHOOK_SECRET = SecretStr(_DEV_WEBHOOK_SECRET)
            if not self.S3_ACCESS_KEY_ID.get_secret_value():
                self.S3_ACCESS_KEY_ID = SecretStr("testing")
            if not self.S3_SECRET_ACCESS_KEY.get_secret_value():
                self.S3_SECRET_ACCESS_KEY = SecretStr("testing")
        return self

    def _require_production_secrets(self) -> None:
        problems: list[str] = []
        for name in ("JWT_SECRET", "SESSION_SECRET"):
            value = getattr(self, name).get_secret_value()
            if not value:
                problems.append(f"{name} is missing")
            elif len(value.encode()) < MIN_SECRET_BYTES or value.startswith("dev-only"):
                problems.append(f"{name} is weak (at least {MIN_SECRET_BYTES} random bytes)")
        for name in ("JWT_SECRET_PREVIOUS", "SESSION_SECRET_PREVIOUS"):
            value = getattr(self, name).get_secret_value()
            if value and len(value.encode()) < MIN_SECRET_BYTES:
                problems.append(f"{name} is weak (at least {MIN_SECRET_BYTES} random bytes)")
        previous_webhook = self.SIEM_WEBHOOK_SECRET_PREVIOUS.get_secret_value()
        if previous_webhook and len(webhook_key(previous_webhook)) < 24:
            problems.append("SIEM_WEBHOOK_SECRET_PREVIOUS is weak (whsec_ + base64 of 24+ "
                            "random bytes)")
        webhook = self.SIEM_WEBHOOK_SECRET.get_secret_value()
        if not webhook:
            problems.append("SIEM_WEBHOOK_SECRET is missing")
        elif webhook == _DEV_WEBHOOK_SECRET or len(webhook_key(webhook)) < 24:
            problems.append("SIEM_WEBHOOK_SECRET is weak (whsec_ + base64 of 24+ random bytes)")
        if not self.S3_ENDPOINT_URL:
            pass  # AWS: credentials may come from the instance role.
        else:
            for name in ("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
                value = getattr(self, name).get_secret_value()
                if not value:
                    problems.append(f"{name} is missing")
                elif value in {"testing", "minioadmin"}:
                    problems.append(f"{name} is weak (a well-known default)")
        if self.PUBLIC_BASE_URL.startswith("http://"):
            problems.append("PUBLIC_BASE_URL must be https:// in production")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def is_production(self) -> bool:
        return self.PORTCULLIS_ENV is Environment.production

    @property
    def secure_cookies(self) -> bool:
        return self.PORTCULLIS_ENV is not Environment.development

    def secret_values(self) -> list[str]:
        """Every configured secret, so log and error scrubbers can mask them."""
        values = [
            self.JWT_SECRET, self.SESSION_SECRET, self.S3_SECRET_ACCESS_KEY,
            self.SIEM_WEBHOOK_SECRET, self.SFTPGO_ADMIN_PASSWORD, self.SENTRY_DSN,
            self.JWT_SECRET_PREVIOUS, self.SESSION_SECRET_PREVIOUS,
            self.SIEM_WEBHOOK_SECRET_PREVIOUS,
        ]
        return [v.get_secret_value() for v in values if len(v.get_secret_value()) >= 6]


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64)."""
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return b""


class ConfigurationError(SystemExit):
    """Raised at start when the environment is unusable; names the setting, never its value."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigurationError("invalid configuration: " + "; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process; tests clear the cache after changing the environment."""
    return load_settings()
