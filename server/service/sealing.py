"""Secrets the service must keep to use later (webhook signing secrets) are stored sealed:
Fernet (AES-128-CBC + HMAC-SHA256) under server keys, never in plain text.

NOTES_SECRET_KEYS holds comma-separated Fernet keys: the first seals, every one unseals, so a
key is rotated by putting a new one first and dropping the old one once nothing sealed under
it remains. Unset, a key generated once is kept in var/secret-keys (like var/jwt-secret): fine
for one host, but replicas must share NOTES_SECRET_KEYS.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..config import Settings

KEY_FILE = Path("var/secret-keys")

_lock = threading.Lock()
_keys: MultiFernet | None = None


class SealBroken(Exception):
    """A sealed value none of the configured keys opens."""


def _local_key() -> str:
    KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made earlier, or by a replica starting at the same moment
    else:
        with os.fdopen(fd, "w") as f:
            f.write(Fernet.generate_key().decode() + "\n")
    return KEY_FILE.read_text().strip()


def _multi() -> MultiFernet:
    global _keys
    with _lock:
        if _keys is None:
            configured = Settings().secret_keys or _local_key()
            keys = [k.strip() for k in configured.split(",") if k.strip()]
            try:
                _keys = MultiFernet([Fernet(k) for k in keys])
            except ValueError:
                raise ValueError(
                    "NOTES_SECRET_KEYS must be comma-separated Fernet keys "
                    "(32 url-safe base64-encoded bytes each)"
                ) from None
        return _keys


def seal(secret: bytes) -> str:
    return _multi().encrypt(secret).decode()


def unseal(sealed: str) -> bytes:
    try:
        return _multi().decrypt(sealed.encode())
    except InvalidToken:
        raise SealBroken("no configured key (NOTES_SECRET_KEYS) opens this secret") from None
