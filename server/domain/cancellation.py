"""Whether anyone still waits for the current call's answer.

A transport sets the test for the calls it runs (gRPC: the RPC is no longer active because its
deadline passed or its client cancelled); the store asks it when a transaction begins and again
before it commits, so work that nobody waits for stops there instead of committing unseen.
Without a transport (the command line, the tests' own set-up) the caller always waits.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from .errors import CallerGone

_gone: contextvars.ContextVar[Callable[[], bool]] = contextvars.ContextVar(
    "notes_caller_gone", default=lambda: False
)


@contextlib.contextmanager
def watching(gone: Callable[[], bool]) -> Iterator[None]:
    """Calls inside the block stop at the store's next check once gone() is true."""
    token = _gone.set(gone)
    try:
        yield
    finally:
        _gone.reset(token)


def check() -> None:
    """CallerGone if the current call's caller no longer waits."""
    if _gone.get()():
        raise CallerGone("the caller stopped waiting (deadline passed or call cancelled)")
