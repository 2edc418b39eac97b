"""Encrypt small secrets at rest (TOTP seeds, sealed job results) with AES-256-GCM, under a
key ring, so ``SESSION_SECRET`` can be rotated without destroying anything sealed.

Each key is derived from a secret with HKDF under a purpose label, so a database dump alone
reveals nothing. The ring is ``SESSION_SECRET`` (the current key: it seals) and, during a
rotation, ``SESSION_SECRET_PREVIOUS`` (it still opens). Each ciphertext names its key: a
4-byte mark, an 8-byte key id (a digest of the derived key, never the key), the nonce, the
sealed bytes. Ciphertexts from before the ring (nonce first) are opened by trying each key.
``portcullis secrets reencrypt`` re-seals what ``is_current`` says is not under the current
key, after which the previous secret can go.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config import get_settings

_NONCE = 12
_MARK = b"PCK1"
_ID = 8


class Unsealable(ValueError):
    """No key of the ring opens it (tampered, or sealed under a secret no longer set)."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"portcullis-secretbox",
                info=purpose).derive(secret.encode())


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"portcullis-key-id" + key).digest()[:_ID]


def _ring(purpose: bytes) -> list[bytes]:
    """The current key first, then the previous one (if a rotation is under way)."""
    settings = get_settings()
    secrets = [settings.SESSION_SECRET.get_secret_value(),
               settings.SESSION_SECRET_PREVIOUS.get_secret_value()]
    return [_derive(secret, purpose) for secret in secrets if secret]


def seal(plaintext: str, purpose: bytes = b"totp") -> bytes:
    key = _ring(purpose)[0]
    nonce = os.urandom(_NONCE)
    return _MARK + _key_id(key) + nonce + AESGCM(key).encrypt(nonce, plaintext.encode(),
                                                               purpose)


def _open(key: bytes, nonce: bytes, body: bytes, purpose: bytes) -> str:
    return AESGCM(key).decrypt(nonce, body, purpose).decode()


def open_sealed(sealed: bytes, purpose: bytes = b"totp") -> str:
    ring = _ring(purpose)
    if sealed.startswith(_MARK):
        key_id = sealed[len(_MARK):len(_MARK) + _ID]
        rest = sealed[len(_MARK) + _ID:]
        for key in ring:
            if _key_id(key) == key_id:
                try:
                    return _open(key, rest[:_NONCE], rest[_NONCE:], purpose)
                except InvalidTag:
                    raise Unsealable("the sealed value was tampered with") from None
    for key in ring:  # sealed before the ring named its keys
        try:
            return _open(key, sealed[:_NONCE], sealed[_NONCE:], purpose)
        except InvalidTag:
            continue
    raise Unsealable("no key of the ring opens this value")


def is_current(sealed: bytes, purpose: bytes = b"totp") -> bool:
    """Whether ``sealed`` is under the current key (nothing for ``reencrypt`` to do)."""
    return sealed.startswith(_MARK + _key_id(_ring(purpose)[0]))


def reseal(sealed: bytes, purpose: bytes = b"totp") -> bytes:
    """The same plaintext sealed under the current key."""
    return seal(open_sealed(sealed, purpose), purpose)
