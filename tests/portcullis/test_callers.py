"""What the audit trail records of each kind of caller: API.md's actor types and ids."""

from __future__ import annotations

import uuid

from portcullis.callers import Caller, Role


def test_each_caller_is_recorded_with_its_documented_actor_type_and_id() -> None:
    tenant, user, key, account = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    recorded = {
        "user": Caller.user(tenant, user, Role.staff),
        "access_key": Caller.access_key(tenant, key, user, Role.admin, frozenset()),
        "operator": Caller.operator(key),
        "operator cli": Caller.operator(None, label="cli"),
        "sftp": Caller.sftp(tenant, account),
        "system": Caller.system(tenant),
        "anonymous": Caller.anonymous(),
    }
    assert {name: (c.actor_type, c.actor_id) for name, c in recorded.items()} == {
        "user": ("user", str(user)),
        "access_key": ("access_key", str(key)),  # the key itself, never its creator
        "operator": ("operator", str(key)),
        "operator cli": ("operator", "cli"),
        "sftp": ("sftp_account", str(account)),  # "audited with actor type sftp_account"
        "system": ("system", None),
        "anonymous": ("anonymous", None),
    }
