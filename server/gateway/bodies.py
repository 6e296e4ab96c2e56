"""Request limits and bodies: how much a request may carry, and reading its JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

from .errors import BODY_TOO_LARGE, HEADERS_TOO_LARGE, Code, Failure, malformed

BODY_LIMIT = 1024 * 1024
# Request headers, names and values together. Below the 64 KiB h11 refuses (runtime.py) so
# that a large head gets the dialect's 431, not the server's bare 400.
HEADERS_LIMIT = 32 * 1024
# gRPC refuses metadata past 8 KiB (some of it at random between 8 and 16 KiB) with
# RESOURCE_EXHAUSTED, which would read as a 429; no real credential comes near this.
AUTHORIZATION_LIMIT = 4 * 1024
# Above the service's metadata depth (32), so that its rule answers (422 on metadata); as a
# Struct each level is two messages, and 40 levels stay inside protobuf's nesting limit (100).
JSON_MAX_DEPTH = 40


def body_too_large() -> Failure:
    return Failure(
        Code.INVALID_ARGUMENT,
        BODY_TOO_LARGE,
        f"the request body must be at most {BODY_LIMIT} bytes",
        local=True,
    )


def headers_too_large() -> Failure:
    return Failure(
        Code.INVALID_ARGUMENT,
        HEADERS_TOO_LARGE,
        f"the request headers must be at most {HEADERS_LIMIT} bytes",
        local=True,
    )


async def read_body(request: Request) -> bytes:
    """The raw body, refused past BODY_LIMIT without reading the rest.

    Content-Type is not checked: a body is read as JSON whatever it says (missing, text/plain,
    or the form type `curl -d` sends), as the real systems' JSON parsers mostly do, so that
    mislabelled requests from legacy clients keep working. A body that is not JSON is the
    dialect's 400 for malformed JSON, never a 415. WooCommerce alone also reads form bodies,
    as WordPress does."""
    cached = getattr(request.state, "raw_body", None)
    if cached is not None:  # read already, to check a signature over it
        return cached
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > BODY_LIMIT:
        raise body_too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > BODY_LIMIT:
            raise body_too_large()
        chunks.append(chunk)
    request.state.raw_body = b"".join(chunks)
    return request.state.raw_body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def parse_json(raw: bytes) -> Any:
    """A JSON document the service can hold: UTF-8, finite numbers, bounded nesting."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise malformed(f"the request body is not valid JSON: {str(e)[:200]}") from None
    check_json(value)
    return value


def check_json(value: Any, depth: int = 1) -> None:
    """What json.loads lets through and the service cannot hold: deep nesting, numbers past
    1e300, unpaired surrogates. depth: the value's own, within the whole body."""
    stack = [(value, depth)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > JSON_MAX_DEPTH:
                raise malformed(f"the request body is nested deeper than {JSON_MAX_DEPTH} levels")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 1e300:
            raise malformed("the request body holds a number out of range")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise malformed("the request body holds an unpaired surrogate") from None


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The body as JSON; None when it is empty and not required."""
    raw = await read_body(request)
    if not raw.strip():
        if required:
            raise malformed("the request body is empty")
        return None
    return parse_json(raw)


async def read_object(request: Request) -> dict[str, Any]:
    value = await read_json(request)
    if not isinstance(value, dict):
        raise malformed("the request body must be a JSON object")
    return value
