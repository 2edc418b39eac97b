"""``portcullis-dev``: the whole system on this machine, under one supervisor.

Private PostgreSQL, Redis, clamd, S3 (moto), mail sink, SIEM receiver and SFTPGo double live
under ``.local/``; then migrations; then web, worker, beat and Flower. Ctrl-C stops all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from portcullis.devstack.process import free_port, port_open, wait_until
from portcullis.devstack.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".local"


def _preferred_port(preferred: int) -> int:
    return preferred if not port_open(preferred) else free_port()


def _pump(name: str, stream: object) -> None:
    for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
        sys.stdout.write(f"{name:>7} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def _spawn(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=_pump, args=(name, proc.stdout), daemon=True).start()
    return proc


def main() -> int:
    STATE.mkdir(exist_ok=True)
    print(f"starting private services under {STATE} ...", flush=True)
    stack = LocalStack(STATE / "services").start()
    web_port = _preferred_port(8000)
    flower_port = _preferred_port(5555)
    env = dict(os.environ)
    env.update(stack.env())
    env.update({"PORTCULLIS_ENV": "development", "PORT": str(web_port),
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}", "PYTHONUNBUFFERED": "1"})
    os.environ.update(env)
    bin_dir = Path(sys.executable).parent
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        subprocess.run([str(bin_dir / "portcullis"), "db", "upgrade"], env=env,
                       cwd=ROOT, check=True)
        from config import get_settings
        from workers.storage import ObjectStore

        get_settings.cache_clear()
        ObjectStore.from_settings(get_settings()).ensure_buckets()
        celery = [str(bin_dir / "celery"), "--app", "workers.celery_app"]
        children = {
            "web": _spawn("web", [str(bin_dir / "gunicorn"), "--config",
                                  "python:app.gunicorn_config", "app.wsgi:application"], env),
            "worker": _spawn("worker", [*celery, "worker", "--loglevel", "INFO", "--queues",
                                        "default,scan,sftp,billing,alerts,email,exports",
                                        "--concurrency", "2"], env),
            "beat": _spawn("beat", [*celery, "beat", "--loglevel", "INFO", "--scheduler",
                                    "redbeat.RedBeatScheduler"], env),
            "flower": _spawn("flower", [*celery, "flower", f"--port={flower_port}",
                                        "--address=127.0.0.1"], env),
        }
        wait_until(lambda: port_open(web_port), 60, "web")
        mail_dir = stack["mail"].base_dir / "mail"
        print(f"""
  Portcullis is up.
    API          http://127.0.0.1:{web_port}/api/v1/openapi.json
    readiness    http://127.0.0.1:{web_port}/readyz
    Flower       http://127.0.0.1:{flower_port}/
    mail lands   {mail_dir} (one .eml file per message)
    SIEM alerts  {stack["siem"].env()["SIEM_WEBHOOK_URL"]}
    database     {stack["postgres"].url()}
  Ctrl-C stops everything.
""", flush=True)
        stopping = threading.Event()

        def _stop(_sig: int, _frame: FrameType | None) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stopping.is_set():
            dead = [name for name, proc in children.items() if proc.poll() is not None]
            if dead:
                print(f"{', '.join(dead)} exited; stopping everything", flush=True)
                return 1
            stopping.wait(1)
        return 0
    finally:
        print("stopping ...", flush=True)
        for proc in children.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in children.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
