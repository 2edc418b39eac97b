"""Who the operator CLI acts as: an operator, audited with actor id ``cli``."""

from __future__ import annotations

from portcullis.callers import Caller, Origin

CLI = Caller.operator(None, Origin(None, "portcullis-cli"), label="cli")
