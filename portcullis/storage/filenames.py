"""Display names only: a client's filename never becomes a path or a storage key."""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 255


def sanitise(raw: str | None) -> str:
    """Drop path parts, control and format characters (NUL, CR/LF, bidi overrides)."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in {"Cc", "Cf", "Zl", "Zp"})
    name = unicodedata.normalize("NFC", name)
    while (trimmed := name.strip().lstrip(".")) != name:  # no leading dots, however spaced
        name = trimmed
    if len(name) > MAX_LENGTH:
        dot = name.rfind(".")
        ext = name[dot:] if dot > 0 and len(name) - dot <= 10 else ""
        name = name[: MAX_LENGTH - len(ext)] + ext
    return name or "upload"
