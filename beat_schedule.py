"""What celery beat sends, and how often. Every entry names a task that takes no objects."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from config import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    sweep_every = max(5, min(30, settings.JOB_REQUEUE_AFTER_SECONDS // 2))
    return {
        "requeue-stuck-jobs": {
            "task": "tasks.maintenance.requeue_stuck_jobs",
            "schedule": float(sweep_every),
            "options": {"expires": float(sweep_every)},
        },
        "expire-files": {
            "task": "tasks.files.expire_files",
            "schedule": crontab(minute=7),
            "options": {"expires": 3000.0},
        },
        # Stored files scanned again: hourly, a job when some file's signature version is
        # older than clamd's or its last scan older than RESCAN_AFTER_DAYS.
        "rescan-files": {
            "task": "tasks.scan.schedule_rescan",
            "schedule": 3600.0,
            "options": {"expires": 3000.0},
        },
        "settle-failed-scans": {
            "task": "tasks.scan.settle_failed_scans",
            "schedule": float(sweep_every),
            "options": {"expires": float(sweep_every)},
        },
        # Billing, in UTC (the worker's timezone): usage for the day that just ended, then
        # the overdue check, then the previous month's run (a no-op once it is done).
        "collect-usage": {
            "task": "tasks.billing.collect_usage",
            "schedule": crontab(hour=0, minute=5),
            "options": {"expires": 3000.0},
        },
        "check-overdue": {
            "task": "tasks.billing.check_overdue",
            "schedule": crontab(hour=0, minute=20),
            "options": {"expires": 3000.0},
        },
        "bill-previous-month": {
            "task": "tasks.billing.bill_previous_month",
            "schedule": crontab(hour=0, minute=35),
            "options": {"expires": 3000.0},
        },
        # SFTP: drop boxes taken in every SFTP_INGEST_INTERVAL seconds; a suspension or
        # reactivation reaches SFTPGo within a minute; SFTPGo's own state every ten minutes.
        "ingest-drop-boxes": {
            "task": "tasks.sftp.ingest_drop_boxes",
            "schedule": float(settings.SFTP_INGEST_INTERVAL),
            "options": {"expires": float(settings.SFTP_INGEST_INTERVAL)},
        },
        "sync-sftp-status": {
            "task": "tasks.sftp.sync_status",
            "schedule": float(min(20, sweep_every)),
            "options": {"expires": float(min(20, sweep_every))},
        },
        "repair-sftp-drift": {
            "task": "tasks.sftp.repair_drift",
            "schedule": 600.0,
            "options": {"expires": 600.0},
        },
        "sweep-alerts": {
            "task": "tasks.alerts.sweep_alerts",
            "schedule": float(sweep_every),
            "options": {"expires": float(sweep_every)},
        },
    }
