"""Where the contract lives: the ``shared`` folder beside the checkout (API.md, the vendored
SFTPGo spec), or ``$PORTCULLIS_SHARED_DIR``."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    configured = os.environ.get("PORTCULLIS_SHARED_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared"
