"""The gateway's shared names, re-exported from the modules that own them: calls (the
service), errors (Failure), bodies (request limits and JSON), timefmt (date formats),
dialect (a dialect's endpoint and error rendering)."""

from .bodies import BODY_LIMIT, HEADERS_LIMIT, parse_json, read_body, read_object
from .calls import Call
from .dialect import Dialect, HeadersLimit, route_errors
from .errors import RETRY_AFTER_DEFAULT, Code, Failure, from_rpc_error

__all__ = [
    "BODY_LIMIT",
    "HEADERS_LIMIT",
    "RETRY_AFTER_DEFAULT",
    "Call",
    "Code",
    "Dialect",
    "Failure",
    "HeadersLimit",
    "from_rpc_error",
    "parse_json",
    "read_body",
    "read_object",
    "route_errors",
]
