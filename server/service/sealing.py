"""Secrets the service must keep to use later (webhook signing secrets, API key secrets for
OAuth 1.0a) are stored sealed: Fernet (AES-128-CBC + HMAC-SHA256) under the server keys,
never in plain text. The keys and their rotation are credentials.SecretBox's, configured by
NOTES_SECRET_KEYS (Settings.resolved_secret_keys): one rule for every sealed secret.
"""

from __future__ import annotations

import functools

from .credentials import SecretBox, default_box


class SealBroken(Exception):
    """A sealed value none of the configured keys opens."""


@functools.cache
def _box() -> SecretBox:
    return default_box()


def seal(secret: bytes) -> str:
    return _box().seal(secret.decode())


def unseal(sealed: str) -> bytes:
    opened = _box().open(sealed)
    if opened is None:
        raise SealBroken("no configured key (NOTES_SECRET_KEYS) opens this secret")
    return opened.encode()
