"""Secrets inside a job's result (a share-link URL, an SFTP password) are sealed at rest and
revealed only when the API answers the job's reader. A secret sealed ``once`` (a password)
is revealed to the job's creator on their first read only; that read replaces it with
null in the stored result, and nobody else ever sees it."""

from __future__ import annotations

import base64
from typing import Any

from portcullis.secretbox import is_current, open_sealed, reseal, seal

_MARK = "$sealed"
_ONCE = "$once"
_PURPOSE = b"job-result"


def sealed(value: str, *, once: bool = False) -> dict[str, Any]:
    box: dict[str, Any] = {_MARK: base64.b64encode(seal(value, _PURPOSE)).decode()}
    if once:
        box[_ONCE] = True
    return box


def _is_box(value: Any) -> bool:
    return isinstance(value, dict) and _MARK in value and set(value) <= {_MARK, _ONCE}


def reveal(result: Any, *, once: bool = False) -> Any:
    """``result`` with its sealed secrets opened; those sealed ``once`` only when ``once``
    (the creator's first read), else null."""
    if _is_box(result):
        if result.get(_ONCE) and not once:
            return None
        return open_sealed(base64.b64decode(result[_MARK]), _PURPOSE)
    if isinstance(result, dict):
        return {k: reveal(v, once=once) for k, v in result.items()}
    if isinstance(result, list):
        return [reveal(v, once=once) for v in result]
    return result


def has_once(result: Any) -> bool:
    if _is_box(result):
        return bool(result.get(_ONCE))
    if isinstance(result, dict):
        return any(has_once(v) for v in result.values())
    if isinstance(result, list):
        return any(has_once(v) for v in result)
    return False


def spent(result: Any) -> Any:
    """``result`` with every secret sealed ``once`` replaced by null (after its read)."""
    if _is_box(result):
        return None if result.get(_ONCE) else result
    if isinstance(result, dict):
        return {k: spent(v) for k, v in result.items()}
    if isinstance(result, list):
        return [spent(v) for v in result]
    return result


def resealed(result: Any) -> Any:
    """``result`` with every sealed secret not under the current key sealed again under it
    (the same object when nothing needed it)."""
    if _is_box(result):
        raw = base64.b64decode(result[_MARK])
        if is_current(raw, _PURPOSE):
            return result
        return {**result, _MARK: base64.b64encode(reseal(raw, _PURPOSE)).decode()}
    if isinstance(result, dict):
        changed = {k: resealed(v) for k, v in result.items()}
        return result if all(changed[k] is result[k] for k in result) else changed
    if isinstance(result, list):
        items = [resealed(v) for v in result]
        return result if all(a is b for a, b in zip(items, result, strict=True)) else items
    return result
