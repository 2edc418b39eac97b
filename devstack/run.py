"""``portcullis-dev``: the whole system on this machine, under one supervisor.

Private PostgreSQL, Redis, clamd, S3 (moto), mail sink, SIEM receiver and SFTPGo double live
under ``.local/``; then migrations; then web, worker, beat and Flower under
``devstack.supervisor``: one that exits, or a worker or beat whose liveness file
goes stale, is started again. Ctrl-C stops all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from devstack.process import free_port, port_open, wait_until
from devstack.stack import LocalStack
from devstack.supervisor import Child, Supervisor
from workers.liveness import ENV as LIVENESS_ENV

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".local"


def _preferred_port(preferred: int) -> int:
    return preferred if not port_open(preferred) else free_port()


def main() -> int:
    STATE.mkdir(exist_ok=True)
    print(f"starting private services under {STATE} ...", flush=True)
    stack = LocalStack(STATE / "services").start()
    web_port = _preferred_port(8000)
    flower_port = _preferred_port(5555)
    env = dict(os.environ)
    env.update(stack.env())
    env.update({"PORTCULLIS_ENV": "development", "PORT": str(web_port),
                "PUBLIC_BASE_URL": f"http://localhost:{web_port}", "PYTHONUNBUFFERED": "1"})
    os.environ.update(env)
    bin_dir = Path(sys.executable).parent
    supervisor: Supervisor | None = None
    try:
        subprocess.run([str(bin_dir / "portcullis"), "db", "upgrade"], env=env,
                       cwd=ROOT, check=True)
        from config import get_settings
        from portcullis.clients.object_store import ObjectStore

        get_settings.cache_clear()
        ObjectStore.from_settings(get_settings()).ensure_buckets()
        celery = [str(bin_dir / "celery"), "--app", "workers.celery_app"]

        def child(name: str, argv: list[str], live: bool = False) -> Child:
            liveness = STATE / f"{name}.alive" if live else None
            child_env = {**env, LIVENESS_ENV: str(liveness)} if liveness else env
            return Child(name, argv, child_env, ROOT, liveness=liveness)

        supervisor = Supervisor([
            child("web", [str(bin_dir / "gunicorn"), "--config", "python:app.gunicorn_config",
                          "app.wsgi:application"]),
            child("worker", [*celery, "worker", "--loglevel", "INFO", "--queues",
                             "default,scan,sftp,billing,alerts,email,exports",
                             "--concurrency", "2"], live=True),
            child("beat", [*celery, "beat", "--loglevel", "INFO", "--scheduler",
                           "workers.beat:BeatScheduler"], live=True),
            child("flower", [*celery, "flower", f"--port={flower_port}",
                             "--address=127.0.0.1"]),
        ]).start()
        wait_until(lambda: port_open(web_port), 60, "web")
        mail_dir = stack["mail"].base_dir / "mail"
        print(f"""
  Portcullis is up.
    console      http://localhost:{web_port}/console/
    API          http://localhost:{web_port}/api/v1/openapi.json
    readiness    http://localhost:{web_port}/readyz
    Flower       http://127.0.0.1:{flower_port}/
    mail lands   {mail_dir} (one .eml file per message)
    SIEM alerts  {stack["siem"].env()["SIEM_WEBHOOK_URL"]}
    database     {stack["postgres"].url()}
  Ctrl-C stops everything.
""", flush=True)

        def _stop(_sig: int, _frame: FrameType | None) -> None:
            assert supervisor is not None
            supervisor.stopping.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        supervisor.run()
        return 0
    finally:
        print("stopping ...", flush=True)
        if supervisor is not None:
            supervisor.stop()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
