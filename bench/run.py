"""Run the benchmarks: ``uv run python -m bench.run [names...]`` (default: all).

The services start once (private, in a temp folder) and are shared by the benchmarks run;
each benchmark starts its own gunicorn. Every benchmark prints its numbers, its ratio, its
goal and MET / NOT MET; the exit status is 0 either way (1 only if a benchmark could not
run at all, 2 for an unknown name).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable

from bench import (
    audit_export,
    audit_page,
    auth_me,
    billing,
    broker,
    links,
    logins,
    sftp_ingest,
    uploads,
)
from bench.harness import Services, services

BENCHMARKS: dict[str, Callable[[Services], bool]] = {
    auth_me.NAME: auth_me.run,
    logins.NAME: logins.run,
    audit_page.NAME: audit_page.run,
    audit_export.NAME: audit_export.run,
    uploads.NAME: uploads.run,
    billing.NAME: billing.run,
    sftp_ingest.NAME: sftp_ingest.run,
    broker.NAME: broker.run,
    links.NAME: links.run,
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; "
              f"choose from: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    outcome: dict[str, str] = {}
    with services() as svc:
        for name in names:
            print(f"=== {name} ===", flush=True)
            try:
                outcome[name] = "MET" if BENCHMARKS[name](svc) else "NOT MET"
            except Exception:  # noqa: BLE001 - report it and go on with the others
                traceback.print_exc()
                outcome[name] = "ERROR (did not run)"
    print("=== summary ===")
    for name, result in outcome.items():
        print(f"{name}: {result}")
    print(f"total {time.monotonic() - started:.0f}s", flush=True)
    return 1 if any(r.startswith("ERROR") for r in outcome.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
