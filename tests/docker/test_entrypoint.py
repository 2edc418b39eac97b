"""docker/entrypoint.sh runs Procfile processes by name; compose.yaml covers every process.

No Docker engine needed: the entrypoint runs under the local ``sh`` against a temporary
Procfile (``PROCFILE``), and compose.yaml is checked as YAML.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
COMPOSE = ROOT / "docker" / "compose.yaml"
PROCFILE = ROOT / "Procfile"

SERVICES = {
    "postgres", "redis", "clamav", "minio", "createbuckets", "sftpgo", "mailpit",
    "release", "web", "worker", "beat", "flower",
}
APP_SERVICES = {"release", "web", "worker", "beat", "flower"}


def run(procfile: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROCFILE": str(procfile), "PORT": "8123"}
    return subprocess.run(["sh", str(ENTRYPOINT), *argv], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.fixture
def procfile(tmp_path: Path) -> Path:
    path = tmp_path / "Procfile"
    path.write_text("# processes\nhello: echo hi\n\nport: echo \"port=$PORT\"\n"
                    "args: printf '[%s]'\n")
    return path


def test_known_name_runs_its_command(procfile: Path) -> None:
    result = run(procfile, "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"


def test_simple_command_replaces_the_entrypoint_process(procfile: Path) -> None:
    """``exec`` all the way down: the process gets the container's signals directly."""
    procfile.write_text("pid: sh -c 'echo $$'\n")
    env = {**os.environ, "PROCFILE": str(procfile)}
    with subprocess.Popen(["sh", str(ENTRYPOINT), "pid"], env=env, stdout=subprocess.PIPE,
                          text=True) as process:
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.strip() == str(process.pid)


def test_compound_command_runs_as_written(procfile: Path) -> None:
    procfile.write_text("both: echo one; echo two\nenv: GREETING=hey sh -c 'echo $GREETING'\n")
    assert run(procfile, "both").stdout == "one\ntwo\n"
    assert run(procfile, "env").stdout == "hey\n"


def test_command_runs_through_sh_so_variables_expand(procfile: Path) -> None:
    assert run(procfile, "port").stdout == "port=8123\n"


def test_extra_arguments_are_appended_unchanged(procfile: Path) -> None:
    assert run(procfile, "args", "a b", "$HOME").stdout == "[a b][$HOME]"


def test_unknown_name_fails_listing_names(procfile: Path) -> None:
    result = run(procfile, "no-such-process")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "unknown process 'no-such-process'" in result.stderr
    assert "hello port args" in result.stderr


def test_no_argument_fails_listing_names(procfile: Path) -> None:
    result = run(procfile)
    assert result.returncode != 0
    assert "hello port args" in result.stderr


def test_raw_command_is_execd_as_is(procfile: Path) -> None:
    result = run(procfile, "echo", "raw", "$PORT")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "raw $PORT\n"


def test_single_word_command_on_path_is_execd(procfile: Path) -> None:
    assert run(procfile, "true").returncode == 0
    assert run(procfile, "false").returncode == 1


def test_entrypoint_is_valid_posix_sh() -> None:
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True, timeout=30)


def procfile_names() -> set[str]:
    names = set()
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names.add(line.split(":", 1)[0].strip())
    return names


def test_compose_defines_every_service() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) >= SERVICES
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert build == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert services[name]["environment"]["PORTCULLIS_ENV"] == "development"
    assert services["web"]["depends_on"]["release"]["condition"] == (
        "service_completed_successfully")
    assert services["release"]["command"] == ["release"]


def test_every_procfile_process_has_a_compose_service() -> None:
    services = set(yaml.safe_load(COMPOSE.read_text())["services"])
    names = procfile_names()
    assert {"web", "worker", "beat", "release"} <= names
    missing = {n for n in names if n not in services and n != "release"}
    assert not missing, f"Procfile processes without a compose service: {missing}"


def test_compose_settings_cover_every_configured_name() -> None:
    from config.settings import Settings

    env = yaml.safe_load(COMPOSE.read_text())["x-portcullis"]["environment"]
    assert set(Settings.model_fields) <= set(env)


def test_env_example_lists_every_setting_with_a_comment() -> None:
    from config.settings import Settings

    lines = (ROOT / ".env.example").read_text().splitlines()
    names = {}
    for index, line in enumerate(lines):
        if line and not line.startswith("#") and "=" in line:
            names[line.split("=", 1)[0]] = lines[index - 1]
    assert set(Settings.model_fields) <= set(names)
    for name, previous in names.items():
        assert previous.startswith("# ") and "Default" in previous, name
