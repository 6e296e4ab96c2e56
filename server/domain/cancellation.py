"""Whether anyone still waits for the current call's answer.

A transport sets the test for the calls it runs (gRPC: the RPC is no longer active because its
deadline passed or its client cancelled); the store asks it when a transaction begins and again
before it commits, so work that nobody waits for stops there instead of committing unseen.
Without a transport (the command line, the tests' own set-up) the caller always waits.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from .errors import CallerGone

_gone: contextvars.ContextVar[Callable[[], bool]] = contextvars.ContextVar(
    "notes_caller_gone", default=lambda: False
)


class watching:  # noqa: N801 - used as a function: with watching(gone): ...
    """Calls inside the block stop at the store's next check once gone() is true. A class, not
    a generator: every gRPC call enters one."""

    __slots__ = ("_gone", "_token")

    def __init__(self, gone: Callable[[], bool]) -> None:
        self._gone = gone

    def __enter__(self) -> None:
        self._token = _gone.set(self._gone)

    def __exit__(self, *exc) -> None:
        _gone.reset(self._token)


def check() -> None:
    """CallerGone if the current call's caller no longer waits."""
    if _gone.get()():
        raise CallerGone("the caller stopped waiting (deadline passed or call cancelled)")
