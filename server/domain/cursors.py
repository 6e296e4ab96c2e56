"""Change-feed cursors: an opaque position in the outbox (server/store/outbox.py).

A cursor is base64url(version, txid, seq, time): the position (txid, seq) the next read starts
strictly after, and the time (microseconds) the position was reached, which says whether the
events after it may already have been purged. Cursors are not signed: a position grants nothing
(every read is filtered by the caller's organization), and an unsigned cursor survives a
rotation of the server secret, which a consumer storing its cursor for weeks would not forgive.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from .errors import ValidationFailed

_VERSION = 1
_LAYOUT = struct.Struct(">Bqqq")  # version, txid, seq, time


@dataclass(frozen=True, order=True)
class Cursor:
    txid: int
    seq: int
    time: int  # microseconds since the epoch

    @property
    def position(self) -> tuple[int, int]:
        return self.txid, self.seq

    def encode(self) -> str:
        raw = _LAYOUT.pack(_VERSION, self.txid, self.seq, self.time)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BEGINNING = Cursor(0, 0, 0)


def decode(text: str, field: str = "after") -> Cursor | None:
    """The cursor text names; None for the empty cursor (from the oldest event retained);
    INVALID_ARGUMENT for anything this server did not issue."""
    if not text:
        return None
    bad = ValidationFailed([(field, "is not a cursor this feed issued")])
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raise bad from None
    if len(raw) != _LAYOUT.size or raw[0] != _VERSION:
        raise bad
    _, txid, seq, time = _LAYOUT.unpack(raw)
    if txid < 0 or seq < 0 or time < 0:
        raise bad
    return Cursor(txid, seq, time)
