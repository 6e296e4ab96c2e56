"""A bounded memo for values that are a pure function of their key.

Notes are immutable at a given version (every change bumps it), so what is derived from a note's
row can be kept under (organization, number, version): a later version is another key, and the
database stays the only source of what the current version is. Several threads share a memo;
a race costs a recomputation, never a wrong value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

DEFAULT_SIZE = 10_000


class Memo(Generic[V]):
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._values: dict[Hashable, V] = {}

    def get(self, key: Hashable) -> V | None:
        return self._values.get(key)

    def put(self, key: Hashable, value: V) -> V:
        values = self._values
        while len(values) >= self.size > 0:  # the oldest entry goes first
            # another thread may get there first
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del values[next(iter(values))]
        if self.size > 0:
            values[key] = value
        return value

    def resize(self, size: int) -> None:
        self.size = size
        if size <= 0:
            self._values.clear()

    def discard(self, key: Hashable) -> None:
        self._values.pop(key, None)
