"""Forged page cursors: well-encoded (base64 of JSON) around values of the wrong shape."""

from __future__ import annotations

import base64
import json

_ID = "00000000-0000-0000-0000-000000000000"
_AT = "2024-01-01T00:00:00+00:00"


def encode(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# Numbers, nulls, booleans, lists and objects where strings belong; a naive time; not a
# list at all; the wrong length. Each was a 500 once (uuid.UUID(1) is an AttributeError).
WRONG_TYPES = [encode(v) for v in (
    [1, 2], [None, None], [True, False], [[_AT], {"id": 1}], [_AT, 5], [5, _ID],
    [_AT, None], ["2024-01-01T00:00:00", _ID], {"at": _AT, "id": _ID}, "x", 7, [], [_AT])]
