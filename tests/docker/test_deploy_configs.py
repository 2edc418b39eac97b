"""The deploy descriptions are valid and complete: ``docker/compose.yaml`` (``docker compose
config`` where Docker's compose plugin exists, else a schema of the Compose fields it uses
and the references between services) and ``render.yaml`` (Render's Blueprint: the
Procfile's processes from the image, every setting named, no secret written in it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from config.settings import Settings
from tests.docker.test_entrypoint import procfile_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
RENDER = ROOT / "render.yaml"

_STRINGS = {"type": "array", "items": {"type": "string"}}
_COMMAND = {"oneOf": [{"type": "string"}, _STRINGS]}
_DURATION = {"type": "string", "pattern": r"^\d+(ms|s|m|h)$"}
COMPOSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["services"],
    "additionalProperties": False,
    "patternProperties": {"^x-": {}},
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "services": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
            "properties": {
                "image": {"type": "string"},
                "build": {"type": "object", "required": ["context"],
                          "additionalProperties": False,
                          "properties": {"context": {"type": "string"},
                                         "dockerfile": {"type": "string"}}},
                "init": {"type": "boolean"},
                "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
                "command": _COMMAND,
                "entrypoint": _COMMAND,
                "environment": {"type": "object", "additionalProperties": {
                    "type": ["string", "number", "boolean", "null"]}},
                "ports": {"type": "array", "items": {
                    "type": "string", "pattern": r"^(127\.0\.0\.1:)?\d+:\d+(/tcp|/udp)?$"}},
                "volumes": {"type": "array", "items": {"type": "string"}},
                "depends_on": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["condition"],
                    "properties": {"condition": {"enum": [
                        "service_started", "service_healthy",
                        "service_completed_successfully"]}}}},
                "healthcheck": {"type": "object", "additionalProperties": False,
                                "properties": {
                                    "test": _COMMAND, "disable": {"type": "boolean"},
                                    "interval": _DURATION, "timeout": _DURATION,
                                    "start_period": _DURATION,
                                    "retries": {"type": "integer", "minimum": 1}}},
            },
        }},
        "volumes": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
    },
}


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _has_compose_plugin() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30,
                           check=False)
    return probe.returncode == 0


def test_compose_config_is_valid() -> None:
    if _has_compose_plugin():
        result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
    compose = _compose()
    jsonschema.validate(compose, COMPOSE_SCHEMA)
    services = compose["services"]
    volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for other, rule in (service.get("depends_on") or {}).items():
            assert other in services, f"{name} depends on an unknown service {other}"
            if rule["condition"] == "service_healthy":
                check = services[other].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {other} to be healthy, which has no healthcheck")
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} mounts an undeclared volume {source}"
        for port in service.get("ports") or []:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


@pytest.mark.parametrize("broken", [
    {"services": {"web": {"build": {"context": ".."}, "restart": "sometimes"}}},
    {"services": {"web": {"command": ["web"]}}},
    {"services": {"web": {"image": "x", "ports": ["0.0.0.0:80:80"]}}},
    {"services": {"web": {"image": "x", "healthcheck": {"interval": "often"}}}},
    {"services": {"web": {"image": "x", "depend_on": {}}}},
])
def test_the_compose_schema_refuses_what_compose_would(broken: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, COMPOSE_SCHEMA)


# --- render.yaml ---------------------------------------------------------------------------


def _render() -> dict[str, Any]:
    return dict(yaml.safe_load(RENDER.read_text()))


def _groups(blueprint: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {group["name"]: group["envVars"] for group in blueprint["envVarGroups"]}


def _env_of(blueprint: dict[str, Any], service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every variable a service gets, by name: its own and its groups'."""
    groups = _groups(blueprint)
    found: dict[str, dict[str, Any]] = {}
    for entry in service.get("envVars") or []:
        if "fromGroup" in entry:
            assert entry["fromGroup"] in groups, entry
            for var in groups[entry["fromGroup"]]:
                assert var["key"] not in found, f"{var['key']} set twice"
                found[var["key"]] = var
        else:
            assert entry["key"] not in found, f"{entry['key']} set twice"
            found[entry["key"]] = entry
    return found


def _process_services(blueprint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["dockerCommand"]: s for s in blueprint["services"] if s.get("runtime") == "docker"}


def test_render_runs_every_procfile_process_from_the_image() -> None:
    blueprint = _render()
    processes = _process_services(blueprint)
    assert set(processes) == {"web", "worker", "beat"}
    assert processes["web"]["type"] == "web"
    assert processes["worker"]["type"] == processes["beat"]["type"] == "worker"
    assert processes["web"]["preDeployCommand"] == "release"  # the Procfile's release
    assert set(processes) | {"release"} <= procfile_names()
    assert processes["web"]["healthCheckPath"] == "/readyz"
    for service in processes.values():
        assert service["dockerfilePath"] == "./docker/Dockerfile"
        assert (ROOT / service["dockerfilePath"]).exists()
        assert service["dockerContext"] == "."


def test_render_gives_every_process_every_setting_and_writes_no_secret() -> None:
    blueprint = _render()
    names = {s["name"]: s["type"] for s in blueprint["services"]}
    databases = {d["name"] for d in blueprint["databases"]}
    secrets = {name for name, field in Settings.model_fields.items()
               if field.annotation is SecretStr}
    assert {"JWT_SECRET", "SESSION_SECRET", "SIEM_WEBHOOK_SECRET"} <= secrets
    for service in _process_services(blueprint).values():
        env = _env_of(blueprint, service)
        assert set(Settings.model_fields) <= set(env), (
            service["name"], set(Settings.model_fields) - set(env))
        assert env["PORTCULLIS_ENV"]["value"] == "production"
        for name in secrets:
            var = env[name]
            assert "value" not in var, f"{name} is written in render.yaml"
            assert var.get("generateValue") is True or var.get("sync") is False, name
        for var in env.values():
            if "fromDatabase" in var:
                assert var["fromDatabase"]["name"] in databases, var
            if "fromService" in var:
                assert names.get(var["fromService"]["name"]) == var["fromService"]["type"], var
    # One generated value shared by every process, not one per service.
    shared = _groups(blueprint)["portcullis-secrets"]
    assert {v["key"] for v in shared if v.get("generateValue")} == {"JWT_SECRET",
                                                                   "SESSION_SECRET"}


def test_render_keeps_its_data_services_private_and_unevicted() -> None:
    blueprint = _render()
    redis = next(s for s in blueprint["services"] if s["type"] == "keyvalue")
    assert redis["maxmemoryPolicy"] == "noeviction"
    assert redis["ipAllowList"] == []
    assert all(db["ipAllowList"] == [] for db in blueprint["databases"])
    private = {s["name"] for s in blueprint["services"] if s["type"] == "pserv"}
    assert {"portcullis-clamav", "portcullis-sftpgo"} <= private
    env = _env_of(blueprint, _process_services(blueprint)["worker"])
    assert env["CLAMD_URL"]["value"] == "tcp://portcullis-clamav:3310"
    assert env["SFTPGO_URL"]["value"] == "http://portcullis-sftpgo:8080"


# --- the GitHub workflow ---------------------------------------------------------------------


def test_the_workflow_tests_every_push_audits_every_build_and_scans_weekly() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "push" in triggers and triggers["schedule"][0]["cron"].split()[-1] == "1"
    jobs = workflow["jobs"]
    runs = {name: " ".join(step.get("run", "") for step in job["steps"])
            for name, job in jobs.items()}
    assert "bash .ci/run" in runs["test"]
    assert "scripts/audit-deps" in runs["audit"] and "--if-reachable" not in runs["audit"]
    assert "schedule" not in jobs["audit"]["if"].replace("!= 'schedule'", "")
    zap = [step for step in jobs["zap-baseline"]["steps"]
           if step.get("uses", "").startswith("zaproxy/action-baseline@")]
    assert zap and zap[0]["with"]["target"].startswith("http://localhost:8000")
    assert "docker compose -f docker/compose.yaml up" in runs["zap-baseline"]
    assert (ROOT / "scripts" / "audit-deps").stat().st_mode & 0o111


@pytest.mark.parametrize(("line", "message"), [
    ("PYSEC-2020-1  2020-01-01  an old decision", "older than 180 days"),
    ("GHSA-xxxx-yyyy-zzzz  yesterday-ish", "needs a date (YYYY-MM-DD) and a reason"),
    ("GHSA-xxxx-yyyy-zzzz", "needs a date (YYYY-MM-DD) and a reason"),
])
def test_an_undated_or_stale_ignore_fails_the_audit(tmp_path: Path, line: str,
                                                    message: str) -> None:
    ignores = tmp_path / "ignore.txt"
    ignores.write_text(f"# a comment\n\n{line}\n")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "audit-deps")],
                            env={"PATH": "/usr/bin:/bin", "PIP_AUDIT_IGNORE_FILE": str(ignores)},
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr
