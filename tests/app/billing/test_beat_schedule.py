"""Beat's billing entries: daily, shortly after midnight UTC, in the order the work needs (the
day that just ended is recorded before the overdue check and before the month it closes is
billed), each naming a task the worker registers with time limits and late acks."""

from __future__ import annotations

from typing import Any

import pytest
from celery.schedules import crontab

from beat_schedule import beat_schedule
from config import get_settings
from devstack.stack import LocalStack


@pytest.fixture
def celery_app(stack: LocalStack) -> Any:
    """The worker's Celery app, imported only once the stack's settings are in place: it
    reads them on first import (at collection it would take the defaults for good)."""
    from workers.celery_app import celery_app

    return celery_app


BILLING = {
    "tasks.billing.collect_usage": (0, 5),
    "tasks.billing.check_overdue": (0, 20),
    "tasks.billing.bill_previous_month": (0, 35),
}


def _entries() -> dict[str, dict[str, Any]]:
    """The schedule's billing entries, by task name."""
    found = {entry["task"]: entry for entry in beat_schedule(get_settings()).values()
             if entry["task"].startswith("tasks.billing.")}
    assert set(found) == set(BILLING), sorted(found)
    return found


def _daily_at(schedule: crontab) -> tuple[int, int]:
    """(hour, minute) of a crontab that fires once on every day, else an assertion error."""
    assert isinstance(schedule, crontab), schedule
    assert schedule.day_of_week == set(range(7))
    assert schedule.day_of_month == set(range(1, 32))
    assert schedule.month_of_year == set(range(1, 13))
    assert len(schedule.hour) == 1 and len(schedule.minute) == 1, schedule
    return next(iter(schedule.hour)), next(iter(schedule.minute))


def test_billing_entries_run_daily_after_midnight_utc(celery_app: Any) -> None:
    entries = _entries()
    assert {task: _daily_at(entry["schedule"]) for task, entry in entries.items()} == BILLING
    # The schedule's times are UTC: the worker's clock is UTC, whatever the host's zone.
    assert celery_app.conf.enable_utc is True
    assert celery_app.conf.timezone in (None, "UTC")
    for entry in entries.values():
        # A send beat missed by a long outage expires rather than piling up; the next
        # day's send catches up (each task fills in what was missed).
        assert 0 < entry.get("options", {}).get("expires", 0) < 24 * 3600


def test_usage_is_recorded_before_it_is_checked_or_billed() -> None:
    at = {task: _daily_at(entry["schedule"]) for task, entry in _entries().items()}
    assert at["tasks.billing.collect_usage"] < at["tasks.billing.check_overdue"]
    assert at["tasks.billing.collect_usage"] < at["tasks.billing.bill_previous_month"]


@pytest.mark.parametrize("name", sorted(BILLING))
def test_each_entry_names_a_reliable_registered_task(celery_app: Any, name: str) -> None:
    from workers.celery_app import LONGEST_TASK_SECONDS

    celery_app.loader.import_default_modules()
    assert name in celery_app.tasks, f"{name} is not registered in the worker's app"
    task = celery_app.tasks[name]
    assert task.acks_late is True and task.reject_on_worker_lost is True
    assert task.soft_time_limit and task.time_limit
    assert 0 < task.soft_time_limit < task.time_limit <= LONGEST_TASK_SECONDS
    assert celery_app.amqp.router.route({}, name)["queue"].name == "billing"
