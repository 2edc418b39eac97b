"""A software WebAuthn authenticator (and the browser around it) for tests: an ES256 key
pair, ``none`` attestation, and assertions signed as a real authenticator signs them.

It answers the options the API gives (``{"publicKey": ...}``'s inner object) with the
``PublicKeyCredential`` JSON a browser's ``toJSON()`` sends. What a test may bend: the
origin the "browser" reports, the rp id whose hash the authenticator puts in its data, the
counter (or none: an authenticator that does not count), the backup flags, and the
signature (``tamper``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

RP_ID = "portcullis.test"  # the host of the suite's PUBLIC_BASE_URL (tests/conftest.py)
ORIGIN = "http://portcullis.test"

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40  # authenticatorData flags


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Authenticator:
    origin: str = ORIGIN
    rp_id: str = RP_ID
    counter: int = 0  # the last value used; each assertion of a counting one adds 1
    counts: bool = True
    backup_eligible: bool = False
    backed_up: bool = False
    user_verified: bool = True
    transports: tuple[str, ...] = ("usb",)
    key: ec.EllipticCurvePrivateKey = field(default_factory=_new_key)
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    user_handle: bytes | None = None  # learnt from the registration options

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_public_key(self) -> bytes:
        """The credential's public key as COSE_Key (EC2, P-256, ES256)."""
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def _flags(self, attested: bool) -> int:
        flags = UP | (UV if self.user_verified else 0)
        flags |= (BE if self.backup_eligible else 0) | (BS if self.backed_up else 0)
        return flags | (AT if attested else 0)

    def authenticator_data(self, counter: int, *, attested: bool = False) -> bytes:
        data = (hashlib.sha256(self.rp_id.encode()).digest() + bytes([self._flags(attested)])
                + counter.to_bytes(4, "big"))
        if attested:
            data += (bytes(16) + len(self.credential_id).to_bytes(2, "big")
                     + self.credential_id + self.cose_public_key())
        return data

    def client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin,
                           "crossOrigin": False}).encode()

    def register(self, options: dict[str, Any]) -> dict[str, Any]:
        """The answer to creation options: a new credential with ``none`` attestation."""
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self.client_data("webauthn.create", options["challenge"])
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {},
                                   "authData": self.authenticator_data(
                                       self.counter if self.counts else 0, attested=True)})
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "authenticatorAttachment": "cross-platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data),
                             "attestationObject": b64url(attestation),
                             "transports": list(self.transports)}}

    def assertion(self, options: dict[str, Any], *, counter: int | None = None,
                  tamper: bool = False) -> dict[str, Any]:
        """The answer to request options: authenticatorData and clientDataJSON signed
        (DER ECDSA over authenticatorData || SHA-256(clientDataJSON)). ``counter`` forces the
        value sent (and remembered); ``tamper`` flips a bit of the signature."""
        if counter is not None:
            self.counter = counter
        elif self.counts:
            self.counter += 1
        data = self.authenticator_data(self.counter if self.counts or counter else 0)
        client_data = self.client_data("webauthn.get", options["challenge"])
        signature = bytearray(self.key.sign(data + hashlib.sha256(client_data).digest(),
                                            ec.ECDSA(hashes.SHA256())))
        if tamper:
            signature[-1] ^= 0x01
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "authenticatorAttachment": "cross-platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data),
                             "authenticatorData": b64url(data),
                             "signature": b64url(bytes(signature)),
                             "userHandle": b64url(self.user_handle) if self.user_handle
                             else None}}
