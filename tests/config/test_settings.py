"""Settings are validated at start; production refuses missing or weak secrets by name."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys

import pytest

from config.settings import ConfigurationError, Settings, load_settings

STRONG = {
    "PORTCULLIS_ENV": "production",
    "JWT_SECRET": secrets.token_urlsafe(48),
    "SESSION_SECRET": secrets.token_urlsafe(48),
    "SIEM_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    "S3_ENDPOINT_URL": "https://s3.example.test",
    "S3_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8),
    "S3_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
    "PUBLIC_BASE_URL": "https://portal.example.test",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env file
    return monkeypatch


def test_development_has_safe_local_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.JWT_SECRET.get_secret_value()
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    assert settings.UPLOAD_MAX_BYTES == 25 * 1024 * 1024
    assert settings.BCRYPT_ROUNDS == 12
    assert settings.RATE_LIMIT_DEFAULT == "100/minute"


def test_production_with_strong_secrets_starts(env: pytest.MonkeyPatch) -> None:
    for name, value in STRONG.items():
        env.setenv(name, value)
    assert load_settings().is_production


@pytest.mark.parametrize("name", ["JWT_SECRET", "SESSION_SECRET", "SIEM_WEBHOOK_SECRET",
                                  "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"])
def test_production_missing_secret_is_named(env: pytest.MonkeyPatch, name: str) -> None:
    for key, value in STRONG.items():
        env.setenv(key, value)
    env.delenv(name)
    with pytest.raises(ConfigurationError, match=f"{name} is missing"):
        load_settings()


@pytest.mark.parametrize(("name", "weak"), [("JWT_SECRET", "short"),
                                            ("SESSION_SECRET", "x" * 10),
                                            ("SIEM_WEBHOOK_SECRET", "whsec_c2hvcnQ="),
                                            ("S3_SECRET_ACCESS_KEY", "minioadmin")])
def test_production_weak_secret_is_named_not_printed(env: pytest.MonkeyPatch, name: str,
                                                     weak: str) -> None:
    for key, value in STRONG.items():
        env.setenv(key, value)
    env.setenv(name, weak)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"{name} is weak" in message
    for value in STRONG.values():
        assert value not in message or value.startswith("https://")


def test_trusted_proxies_parse_comma_separated_cidrs(env: pytest.MonkeyPatch) -> None:
    env.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7")
    networks = [str(n) for n in load_settings().TRUSTED_PROXIES]
    assert networks == ["10.0.0.0/8", "192.0.2.7/32"]


def test_bad_clamd_url_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("CLAMD_URL", "http://clamd")
    with pytest.raises(ConfigurationError, match="CLAMD_URL"):
        load_settings()


def test_process_stops_at_start_naming_the_secret() -> None:
    """The real entry point exits non-zero with the name, not a traceback with values."""
    env = {"PATH": "/usr/bin:/bin", "PORTCULLIS_ENV": "production",
           "JWT_SECRET": "tiny-secret-value"}
    result = subprocess.run([sys.executable, "-c", "import app.wsgi"], env=env, cwd="/",
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "JWT_SECRET is weak" in result.stderr
    assert "tiny-secret-value" not in result.stderr
    assert "Traceback" not in result.stderr
