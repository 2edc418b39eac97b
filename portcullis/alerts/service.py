"""Alerts' public face: what other domains and the tasks call.

Detection rules are called where their events happen, with the session that records the
causing event, so the alert commits with it (``detection``); raising one writes the outbox
row, and delivery to SIEM_WEBHOOK_URL is at least once (``outbox``).
"""

from __future__ import annotations

from portcullis.alerts.detection import (
    count_in_window,
    deletion,
    identity_used,
    ip_is_new,
    link_password_failed,
    login_failed,
    mfa_failed,
    mfa_locked,
    session_ip_changed,
)
from portcullis.alerts.outbox import (
    DELIVER_TASK,
    AlertType,
    deliver,
    due_alerts,
    raise_alert,
    sweep,
)
from portcullis.audit.service import Severity

__all__ = [
    "DELIVER_TASK",
    "AlertType",
    "Severity",
    "count_in_window",
    "deletion",
    "deliver",
    "due_alerts",
    "identity_used",
    "ip_is_new",
    "link_password_failed",
    "login_failed",
    "mfa_failed",
    "mfa_locked",
    "raise_alert",
    "session_ip_changed",
    "sweep",
]
