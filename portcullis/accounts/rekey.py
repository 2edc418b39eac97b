"""Second factors sealed again under the current key (``portcullis secrets reencrypt``),
so ``SESSION_SECRET_PREVIOUS`` can be removed without destroying any TOTP enrolment."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import or_, select, update

from portcullis.accounts.models import User
from portcullis.db import system_session
from portcullis.secretbox import Unsealable, is_current, reseal

log = logging.getLogger(__name__)


def reseal_second_factors(progress: Callable[[int, int], None] | None = None,
                          batch: int = 500) -> tuple[int, int]:
    """Every TOTP seed (enrolled or pending) not under the current key, sealed again: how
    many users changed, and how many seeds no configured key opens (left as they are, for
    the operator to see; one of them never stops the rest). Compare-and-set: an enrolment
    changed meanwhile is left alone."""
    with system_session() as db:
        ids = list(db.scalars(select(User.id).where(or_(User.totp_secret.is_not(None),
                                                        User.totp_pending_secret.is_not(None)))
                              .order_by(User.id)))
    changed = unreadable = 0
    for start in range(0, len(ids), batch):
        with system_session() as db:
            rows = db.execute(select(User.id, User.totp_secret, User.totp_pending_secret)
                              .where(User.id.in_(ids[start:start + batch]))).all()
            for user_id, secret, pending in rows:
                values = {}
                try:
                    if secret is not None and not is_current(secret):
                        values["totp_secret"] = reseal(secret)
                    if pending is not None and not is_current(pending):
                        values["totp_pending_secret"] = reseal(pending)
                except Unsealable:
                    log.warning("user %s: a TOTP seed no configured key opens", user_id)
                    unreadable += 1
                    continue
                if values:
                    done = db.execute(update(User).where(
                        User.id == user_id, User.totp_secret.is_not_distinct_from(secret),
                        User.totp_pending_secret.is_not_distinct_from(pending))
                        .values(**values))
                    changed += int(done.rowcount or 0)  # type: ignore[attr-defined]
        if progress is not None:
            progress(min(start + batch, len(ids)), len(ids))
    return changed, unreadable
