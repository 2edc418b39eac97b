"""Secrets inside a job's result (a share-link URL, later an SFTP password) are sealed at
rest and revealed only when the API answers the job's reader."""

from __future__ import annotations

import base64
from typing import Any

from portcullis.secretbox import open_sealed, seal

_MARK = "$sealed"
_PURPOSE = b"job-result"


def sealed(value: str) -> dict[str, str]:
    return {_MARK: base64.b64encode(seal(value, _PURPOSE)).decode()}


def reveal(result: Any) -> Any:
    if isinstance(result, dict):
        if set(result) == {_MARK}:
            return open_sealed(base64.b64decode(result[_MARK]), _PURPOSE)
        return {k: reveal(v) for k, v in result.items()}
    if isinstance(result, list):
        return [reveal(v) for v in result]
    return result
