"""Request ids (AIP-155): a mutating call that carries one runs at most once.

A completed request with the same id replays its first response and changes nothing; another
payload under the same id is refused (REQUEST_ID_REUSED); one still under way is ABORTED
(REQUEST_IN_FLIGHT, request_ids.writing_request). The response is recorded in the same transaction
as the change, and the primary key of request_ids decides races between replicas.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from ..domain.errors import RequestIdReused
from ..domain.model import Principal
from ..store import request_ids, uow
from .clock import now_us

T = TypeVar("T")


def fingerprint(method: str, payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method}\x00{text}".encode()).hexdigest()


def once(
    p: Principal,
    method: str,
    request_id: str,
    payload: Callable[[], object],
    work: Callable[[], T],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
) -> tuple[T, bool]:
    """(work's result, False) from one transaction, recorded under request_id if one is
    given; (the first result, True) for a completed repeat. payload() is what must match
    between repeats; it is only asked for under a request id."""
    if not request_id:
        with uow.writing():
            return work(), False
    expected = fingerprint(method, payload())
    try:
        with request_ids.writing_request(p.org, method, request_id):
            earlier = request_ids.find_request(p.org, method, request_id)
            if earlier is None:
                result = work()
                response = json.dumps(encode(result), ensure_ascii=False)
                request_ids.save_request(p.org, method, request_id, expected, response, now_us())
                return result, False
    except uow.IntegrityError:
        # Another replica committed the same request id between our look-up and our insert.
        with uow.reading():
            earlier = request_ids.find_request(p.org, method, request_id)
        if earlier is None:
            raise
    stored, response = earlier
    if stored != expected:
        raise RequestIdReused(
            "this request_id was used with a different request",
            metadata={"requestId": request_id},
        )
    return decode(json.loads(response)), True
