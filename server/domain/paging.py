"""Opaque, signed page tokens: a keyset position bound to the filter that produced it.

A token is base64url(mac || sealed): mac is an HMAC of the position (the filter's fingerprint
and the last note number of the page), and sealed is that position XORed with a keystream
drawn from another key and the mac (a synthetic IV, as in SIV). Nothing in a token is
readable without the secret, and changing any bit of it fails the mac.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from .errors import ValidationFailed

_MAC_BYTES = 16
_POSITION = struct.Struct(">8sq")  # the fingerprint's first 8 bytes, the last note number


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._mac_key = hashlib.sha256(b"notes.v1 page token\x00" + secret).digest()
        self._seal_key = hashlib.sha256(b"notes.v1 page token seal\x00" + secret).digest()

    def _keystream(self, mac: bytes) -> bytes:
        return hmac.new(self._seal_key, mac, hashlib.sha256).digest()[: _POSITION.size]

    def issue(self, filter_fingerprint: str, last_number: int) -> str:
        position = _POSITION.pack(bytes.fromhex(filter_fingerprint[:16]), last_number)
        mac = hmac.new(self._mac_key, position, hashlib.sha256).digest()[:_MAC_BYTES]
        sealed = bytes(a ^ b for a, b in zip(position, self._keystream(mac), strict=True))
        return base64.urlsafe_b64encode(mac + sealed).rstrip(b"=").decode()

    def read(self, token: str, filter_fingerprint: str) -> int:
        """The position after which the next page starts; INVALID_ARGUMENT for any bad token."""
        bad = ValidationFailed([("page_token", "is not a token this list issued")])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise bad from None
        if len(raw) != _MAC_BYTES + _POSITION.size:
            raise bad
        mac, sealed = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        position = bytes(a ^ b for a, b in zip(sealed, self._keystream(mac), strict=True))
        expected = hmac.new(self._mac_key, position, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            raise bad
        fingerprint, last_number = _POSITION.unpack(position)
        if fingerprint != bytes.fromhex(filter_fingerprint[:16]):
            raise ValidationFailed([("page_token", "was issued for other filter arguments")])
        return last_number
