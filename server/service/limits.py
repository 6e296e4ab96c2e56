"""Per-key rate limits: a token bucket per (credential, route), refilled continuously.

Buckets live in each process: with N replicas a key may get up to N times the limit. That is
the usual trade for not writing to the database on every read; set the limits per replica.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..domain.errors import RateLimited
from ..domain.model import Principal

MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, reads_per_minute: int, writes_per_minute: int) -> None:
        self._limits = {False: reads_per_minute, True: writes_per_minute}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, p: Principal, route: str, *, write: bool) -> None:
        limit = self._limits[write]
        if limit <= 0:
            return
        rate = limit / 60.0
        key = (p.api_key_id or f"{p.org}/{p.author.id}", route)
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._buckets.clear()
                bucket = self._buckets[key] = _Bucket(float(limit), now)
            bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            retry_after = (1.0 - bucket.tokens) / rate
        raise RateLimited(
            f"rate limit of {limit} {'writes' if write else 'reads'} per minute exceeded",
            retry_after,
        )
