"""Every real service, private, on free ports in a temp folder, ready to use: the test
suite's ``stack`` fixture and the benchmarks (``bench/harness.py``) both start it here.

Nothing here relies on a service already running on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from config import get_settings
from devstack.stack import LocalStack


@contextlib.contextmanager
def running_stack(settings: dict[str, str], prefix: str = "portcullis-services-",
                  ) -> Iterator[LocalStack]:
    """``LocalStack`` started in a new temp folder, this process's environment pointed at
    it plus ``settings``, migrations applied and the storage buckets created; everything
    stopped, removed and restored afterwards."""
    # Not under a private (0700) temp tree: servers run as an unprivileged account and
    # must reach their folders.
    base = Path(tempfile.mkdtemp(prefix=prefix))
    saved = dict(os.environ)
    local: LocalStack | None = None
    try:
        local = LocalStack(base).start()
        os.environ.update(local.env())
        os.environ.update(settings)
        get_settings.cache_clear()
        from portcullis.clients.object_store import ObjectStore
        from portcullis.migrations import upgrade

        upgrade()
        ObjectStore.from_settings(get_settings()).ensure_buckets()
        yield local
    finally:
        from portcullis.db.engine import dispose_engines

        with contextlib.suppress(Exception):
            dispose_engines()
        if local is not None:
            local.stop()
        shutil.rmtree(base, ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
