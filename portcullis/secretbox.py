"""Encrypt small secrets at rest (TOTP seeds) with AES-256-GCM.

The key is derived from SESSION_SECRET with HKDF under a purpose label, so a database dump
alone does not reveal any seed.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config import get_settings

_NONCE = 12


def _key(purpose: bytes) -> bytes:
    secret = get_settings().SESSION_SECRET.get_secret_value().encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"portcullis-secretbox",
                info=purpose).derive(secret)


def seal(plaintext: str, purpose: bytes = b"totp") -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(_key(purpose)).encrypt(nonce, plaintext.encode(), purpose)


def open_sealed(sealed: bytes, purpose: bytes = b"totp") -> str:
    nonce, body = sealed[:_NONCE], sealed[_NONCE:]
    return AESGCM(_key(purpose)).decrypt(nonce, body, purpose).decode()
