"""billing: the monthly run for 1,000 and for 10,000 tenants, and the daily usage collection
for 10,000 tenants, each tenant with 3 buckets and 31 days of usage.

Seeded by PostgreSQL itself (``generate_series`` as the superuser, foreign-key triggers off
for the load only): 1,000 tenants created in January 2030 and 9,000 more in February, each
with a billing profile, 3 buckets, one clean file per bucket, and for every day of January
and of March 2030 its recorded storage, its SFTP account count and some egress. Then, in
the same run:

- ``portcullis.billing.service.run_period`` for 2030-01 bills the 1,000 tenants that existed
  then; for 2030-03 it bills all 10,000 (what the CLI and the operator's job run);
- ``portcullis.billing.service.collect_usage`` records the 30,000 buckets and 10,000
  tenants for one day (what beat runs daily).

Each run issues every invoice for real: a number from the locked counter, the lines, the
audit event in the tenant's chain and the issue notice's email job (sent to the broker).
Goals: the 10k run under 60 s, 10k/1k time at most 11 (linear), the collection under 30 s.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from bench.audit_page import superuser
from bench.harness import CpuWatch, Services

NAME = "billing"
RUN_GOAL_SECONDS = 60.0
LINEAR_GOAL = 11.0
COLLECT_GOAL_SECONDS = 30.0
FIRST, MORE = 1_000, 9_000
BUCKETS = 3

SEED_TENANTS = """
INSERT INTO tenants (id, name, status, created_at)
SELECT gen_random_uuid(), 'Bench billing ' || n, 'active', %(created)s::timestamptz
FROM generate_series(1, %(count)s) AS n
"""
SEED_PER_TENANT = """
INSERT INTO billing_profiles (tenant_id, legal_name, email, tax_id_type, tax_id, address,
                              updated_at)
SELECT id, name || ' Ltda', 'billing-' || id || '@example.com', 'cnpj', '12ABC34501DE35',
       '{"line1": "Av. Paulista, 1000", "line2": "", "city": "Sao Paulo", "state": "SP",
         "postal_code": "01310-100", "country": "BR"}', now()
FROM tenants WHERE name LIKE 'Bench billing %%' AND created_at = %(created)s::timestamptz;
INSERT INTO buckets (id, tenant_id, name, created_at)
SELECT gen_random_uuid(), t.id, 'bucket-' || b, t.created_at
FROM tenants t CROSS JOIN generate_series(1, %(buckets)s) AS b
WHERE t.name LIKE 'Bench billing %%' AND t.created_at = %(created)s::timestamptz;
"""
SEED_FILES = """
INSERT INTO uploads (id, tenant_id, bucket_id, status, filename, declared_type, size,
                     quarantine_key, file_key, sniffed_type, sha256, file_id, created_at,
                     finished_at)
SELECT gen_random_uuid(), tenant_id, id, 'clean', 'report.pdf', 'application/pdf',
       5368709120, 'q/' || id, 'f/' || id, 'application/pdf', repeat('0', 64), NULL, now(),
       now()
FROM buckets WHERE name LIKE 'bucket-%%';
INSERT INTO files (id, tenant_id, bucket_id, upload_id, filename, content_type, size, sha256,
                   storage_key, created_at)
SELECT gen_random_uuid(), tenant_id, bucket_id, id, filename, declared_type, size, sha256,
       file_key, now()
FROM uploads WHERE quarantine_key LIKE 'q/%%';
"""
SEED_USAGE = """
INSERT INTO storage_usage_daily (id, tenant_id, bucket_id, day, bytes, objects)
SELECT gen_random_uuid(), b.tenant_id, b.id, d::date, 5368709120 + (random() * 1e9)::bigint,
       1000
FROM buckets b CROSS JOIN generate_series(%(first)s::date, %(last)s::date, '1 day') AS d
WHERE b.name LIKE 'bucket-%%';
INSERT INTO egress_daily (id, tenant_id, bucket_id, day, bytes)
SELECT gen_random_uuid(), b.tenant_id, b.id, d::date, (random() * 1e9)::bigint
FROM buckets b CROSS JOIN generate_series(%(first)s::date, %(last)s::date, '3 days') AS d
WHERE b.name LIKE 'bucket-%%';
INSERT INTO tenant_usage_daily (id, tenant_id, day, sftp_accounts)
SELECT gen_random_uuid(), t.id, d::date, 2
FROM tenants t CROSS JOIN generate_series(%(first)s::date, %(last)s::date, '1 day') AS d
WHERE t.name LIKE 'Bench billing %%';
"""


def _seed(svc: Services, count: int, created: datetime) -> None:
    with superuser(svc) as conn:
        conn.execute("SET session_replication_role = replica")  # FK triggers: seeding only
        conn.execute(SEED_TENANTS, {"count": count, "created": created})
        for statement in SEED_PER_TENANT.split(";"):
            if statement.strip():
                conn.execute(statement, {"created": created, "buckets": BUCKETS})


def _seed_usage(svc: Services) -> None:
    with superuser(svc) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in SEED_FILES.split(";"):
            if statement.strip():
                conn.execute(statement)
        for first, last in (("2030-01-01", "2030-01-31"), ("2030-03-01", "2030-03-31")):
            for statement in SEED_USAGE.split(";"):
                if statement.strip():
                    conn.execute(statement, {"first": first, "last": last})
        conn.execute("ANALYZE")


def _run(period: str) -> tuple[int, float]:
    from portcullis.billing import service as billing
    from portcullis.callers import Caller

    now = datetime(2030, int(period[-2:]) + 1, 2, 3, tzinfo=UTC)
    started = time.perf_counter()
    result = billing.run_period(Caller.system(), billing.Period.parse(period), now=now)
    return result.issued, time.perf_counter() - started


def run(svc: Services) -> bool:
    print(f"[{NAME}] monthly run for {FIRST:,} and {FIRST + MORE:,} tenants ({BUCKETS} buckets "
          f"and 31 days of usage each), daily collection for {FIRST + MORE:,}", flush=True)
    started = time.monotonic()
    _seed(svc, FIRST, datetime(2030, 1, 10, tzinfo=UTC))
    _seed(svc, MORE, datetime(2030, 2, 10, tzinfo=UTC))
    _seed_usage(svc)
    print(f"[{NAME}] seeded in {time.monotonic() - started:.1f}s", flush=True)

    with CpuWatch() as watch:
        small, small_s = _run("2030-01")
        print(f"[{NAME}] run 2030-01: {small:,} invoices in {small_s:.2f}s = "
              f"{small / small_s:,.0f} invoices/s", flush=True)
        large, large_s = _run("2030-03")
        print(f"[{NAME}] run 2030-03: {large:,} invoices in {large_s:.2f}s = "
              f"{large / large_s:,.0f} invoices/s", flush=True)
        from portcullis.billing import service as billing

        collect_started = time.perf_counter()
        buckets = billing.collect_usage(datetime(2030, 4, 1, tzinfo=UTC).date())
        collect_s = time.perf_counter() - collect_started
        print(f"[{NAME}] collect-usage: {buckets:,} buckets in {collect_s:.2f}s = "
              f"{buckets / collect_s:,.0f} rows/s", flush=True)
    print(f"[{NAME}] {watch.describe()}", flush=True)

    counted = small == FIRST and large == FIRST + MORE and buckets >= (FIRST + MORE) * BUCKETS
    if not counted:
        print(f"[{NAME}] WARNING: expected {FIRST:,} and {FIRST + MORE:,} invoices and "
              f"{(FIRST + MORE) * BUCKETS:,} buckets", flush=True)
    ratio = large_s / small_s
    met_run = large_s < RUN_GOAL_SECONDS
    met_linear = ratio <= LINEAR_GOAL
    met_collect = collect_s < COLLECT_GOAL_SECONDS
    print(f"[{NAME}] 10k run {large_s:.1f}s   goal < {RUN_GOAL_SECONDS:.0f}s   "
          f"{'MET' if met_run else 'NOT MET'}", flush=True)
    print(f"[{NAME}] ratio 10k/1k time = {ratio:.2f}   goal <= {LINEAR_GOAL}   "
          f"{'MET' if met_linear else 'NOT MET'}", flush=True)
    print(f"[{NAME}] collect-usage 10k tenants {collect_s:.1f}s   goal < "
          f"{COLLECT_GOAL_SECONDS:.0f}s   {'MET' if met_collect else 'NOT MET'}", flush=True)
    met = met_run and met_linear and met_collect and counted
    print(f"[{NAME}] all: {'MET' if met else 'NOT MET'}", flush=True)
    return met
