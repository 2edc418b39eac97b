"""Send a task only after the transaction that created its row (job, alert) has committed.

If the broker is down at that moment the row simply stays pending; a beat sweeper sends it
again later. A rolled-back transaction sends nothing.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import event
from sqlalchemy.orm import Session

from portcullis.jobs.queue import producer

log = logging.getLogger(__name__)
_PENDING = "pending_task_sends"


def send_after_commit(session: Session, task_name: str, object_id: uuid.UUID) -> None:
    """Queue ``task_name(object_id)`` (a job or outbox row id) to be sent after commit."""
    session.info.setdefault(_PENDING, []).append((task_name, str(object_id)))


def send_now(task_name: str, job_id: str) -> bool:
    """Publish one message; False (logged, not raised) when the broker is unreachable.

    ``ignore_result``: the job row is the result, so nothing waits on Celery's. Without it
    the producer subscribes to each task's result in Redis, and dropping the returned
    ``AsyncResult`` (whenever the collector gets to it) unsubscribes: with Redis down, that
    is the result backend's reconnect loop, 20 s inside whatever request was running."""
    try:
        producer().send_task(task_name, args=[job_id], retry=True, ignore_result=True,
                             retry_policy={"max_retries": 1, "interval_start": 0.2})
    except Exception as exc:  # noqa: BLE001 - any broker failure leaves the job for the sweeper
        log.warning("job %s not sent (%s); the sweeper will resend it", job_id,
                    type(exc).__name__)
        return False
    return True


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for task_name, job_id in session.info.pop(_PENDING, []):
        send_now(task_name, job_id)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, _previous: object) -> None:
    session.info.pop(_PENDING, None)
