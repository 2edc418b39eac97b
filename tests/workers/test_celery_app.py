"""The Celery app configures nothing on import, and the web process never imports it.

Before, ``workers.celery_app`` set Sentry up as "worker" on import, and the web process
imported it to send its first task, so a web error was reported as the worker's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from devstack.stack import LocalStack
from tests.support.sentry import FAKE_DSN

pytestmark = pytest.mark.usefixtures("stack")


def _run(code: str, **env: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter with the stack's settings; it prints one JSON."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          env={**os.environ, "SENTRY_DSN": FAKE_DSN, **env},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sending_a_task_from_the_web_process_leaves_the_worker_app_unimported(
        stack: LocalStack) -> None:
    seen = _run("""
        import json, sys, uuid
        import sentry_sdk
        from app import create_app
        from portcullis.jobs.dispatch import send_now

        create_app()
        sent = send_now("tasks.maintenance.not_a_task", str(uuid.uuid4()))
        print(json.dumps({
            "sent": sent,
            "imported": sorted(m for m in sys.modules if m.split(".")[0] in ("workers", "tasks")),
            "sentry_as": sentry_sdk.get_client().options.get("server_name"),
        }))
    """, CELERY_BROKER_URL="redis://127.0.0.1:9/0")  # nothing listens: the send fails fast
    assert seen["sent"] is False
    assert seen["imported"] == []
    assert seen["sentry_as"] == "web"


def test_importing_the_celery_app_configures_nothing_until_a_worker_starts() -> None:
    seen = _run("""
        import json
        import sentry_sdk
        import workers.celery_app as celery_app

        before = sentry_sdk.get_client().is_active()
        celery_app._configure_worker()
        print(json.dumps({"active_on_import": before,
                          "sentry_as": sentry_sdk.get_client().options.get("server_name")}))
    """)
    assert seen["active_on_import"] is False
    assert seen["sentry_as"] == "worker"
