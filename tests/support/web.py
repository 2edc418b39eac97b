"""Run the Procfile's ``web`` command for real (gunicorn), on a free port."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from devstack.process import ServiceProcess, free_port, port_open

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def start_web(log: Path, extra_env: dict[str, str] | None = None) -> tuple[ServiceProcess, int]:
    port = free_port()
    env = dict(os.environ)
    env.update({"PORT": str(port), "WEB_CONCURRENCY": "1", "PYTHONPATH": str(ROOT)})
    env.update(extra_env or {})
    argv = shlex.split(procfile()["web"])
    argv[0] = str(Path(sys.executable).parent / argv[0])  # the venv's gunicorn
    web = ServiceProcess("web", argv, log, env=env, cwd=ROOT).start()
    web.wait_ready(lambda: port_open(port), timeout=30)
    return web, port
