"""The runtime package and the Docker image carry the product, not its private test services.

``devstack/`` (local PostgreSQL, Redis, clamd, S3, mail sink, SIEM receiver and the SFTPGo
double, importing dev-only packages) is used by tests, benchmarks and ``scripts/up`` only.
"""

from __future__ import annotations

import tomllib
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("devstack", "tests", "bench")


def test_the_runtime_package_leaves_out_the_dev_stack_and_tests() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    # What setuptools' package discovery takes: importable folders matching ``include``.
    shipped = [".".join(init.parent.relative_to(ROOT).parts) for init in ROOT.rglob("__init__.py")
               if ".venv" not in init.parts and ".local" not in init.parts]
    shipped = [p for p in shipped if any(fnmatchcase(p, pattern) for pattern in include)]
    assert "portcullis" in shipped and "app" in shipped and "workers" in shipped
    assert not [p for p in shipped if p.split(".")[0] in DEV_ONLY]


def test_the_image_build_context_leaves_out_the_dev_stack_and_tests() -> None:
    ignored = {line.strip().rstrip("/") for line in
               (ROOT / ".dockerignore").read_text().splitlines()}
    assert set(DEV_ONLY) <= ignored


def test_runtime_code_never_imports_the_dev_stack() -> None:
    offenders = [str(path.relative_to(ROOT))
                 for package in ("portcullis", "app", "workers", "tasks", "config")
                 for path in (ROOT / package).rglob("*.py")
                 if any(line.lstrip().startswith(("import devstack", "from devstack"))
                        for line in path.read_text().splitlines())]
    assert offenders == []
