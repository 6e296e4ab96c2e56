"""Opaque, signed page tokens: a keyset position bound to the filter that produced it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from .errors import ValidationFailed


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"notes.v1 page token\x00" + secret).digest()

    def issue(self, filter_fingerprint: str, last_number: int) -> str:
        payload = json.dumps([filter_fingerprint[:16], last_number], separators=(",", ":")).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + payload).rstrip(b"=").decode()

    def read(self, token: str, filter_fingerprint: str) -> int:
        """The position after which the next page starts; INVALID_ARGUMENT for any bad token."""
        bad = ValidationFailed([("page_token", "is not a token this list issued")])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise bad from None
        mac, payload = raw[:16], raw[16:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        if len(mac) != 16 or not hmac.compare_digest(mac, expected):
            raise bad
        fingerprint, last_number = json.loads(payload)
        if fingerprint != filter_fingerprint[:16]:
            raise ValidationFailed([("page_token", "was issued for other filter arguments")])
        return int(last_number)
