"""Password policy and hashing (bcrypt, per-user salt, cost from BCRYPT_ROUNDS).

Unknown emails are checked against a dummy hash of the same cost, so "no such user" and
"wrong password" take the same time.
"""

from __future__ import annotations

from functools import lru_cache

import bcrypt
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from config import get_settings
from portcullis.errors import Invalid

MIN_LENGTH = 12
MAX_LENGTH = 128


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    """zxcvbn's list of the 30,000 most common passwords."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise Invalid("weak_password",
                      f"Passwords are {MIN_LENGTH} to {MAX_LENGTH} characters long.")
    if password.lower() in _common() or len(set(password)) < 4:
        raise Invalid("weak_password", "This password is too common; choose another.")


def _prepare(password: str) -> bytes:
    # bcrypt reads at most 72 bytes; hashing first keeps long passphrases meaningful.
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(password.encode()).digest())


def hash_password(password: str) -> str:
    rounds = get_settings().BCRYPT_ROUNDS
    return bcrypt.hashpw(_prepare(password), bcrypt.gensalt(rounds)).decode()


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(_prepare("not-a-real-password"), bcrypt.gensalt(rounds))


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant-cost check; ``hashed`` None (unknown user) burns the same time, then fails."""
    if not hashed:
        bcrypt.checkpw(_prepare(password), _dummy_hash(get_settings().BCRYPT_ROUNDS))
        return False
    try:
        return bcrypt.checkpw(_prepare(password), hashed.encode())
    except ValueError:
        return False
