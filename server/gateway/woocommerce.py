"""WooCommerce REST API v3 order notes (seed 002):
GET|POST /wp-json/wc/v3/orders/{order_id}/notes, GET|DELETE .../notes/{note_id}.

Note ids are the service's note numbers. Parameters are checked before credentials, as
WordPress validates a route's arguments before its permission callback.

Credentials: Basic, consumer_key/consumer_secret in the query string, or one-legged OAuth 1.0a
(what the official clients send over http). The gateway never sees a secret for OAuth: it
forwards what WooCommerce signs (method, URL, query and form parameters) as a `WC-OAuth1`
authorization value, and the service checks the signature, timestamp and nonce
(server/service/credentials.py).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from notes.v1 import notes_pb2 as pb
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from ..domain import errors as domain
from ..domain.validation import BODY_MAX
from ..service.credentials import OAUTH_PARAMS
from . import bodies, calls, errors, timefmt
from .calls import Call
from .dialect import Dialect, ModelResponse, Operation, Param, Rendered, Reply, routes
from .errors import Code, Failure

PREFIX = "/wp-json/wc/v3"
INT64_MAX = 2**63 - 1
OUT_OF_RANGE = INT64_MAX + 1  # stands for any id that is no int64: no order or note has it


class _Int64(Convertor):
    """Digits as an int; past int64 (and so past Python's int-from-string limit of 4,300
    digits, which raised in routing: a 500) OUT_OF_RANGE, an id nothing has: a 404."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        return int(value) if len(value) <= 19 and int(value) <= INT64_MAX else OUT_OF_RANGE

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("int64", _Int64())
TYPES = {
    "any": pb.VISIBILITY_UNSPECIFIED,
    "customer": pb.VISIBILITY_CUSTOMER,
    "internal": pb.VISIBILITY_INTERNAL,
}
CONTEXTS = ("view", "edit")
AUTH_PARAMS = ("consumer_key", "consumer_secret")

# Local reasons of this dialect.
MISSING_PARAM = "MISSING_PARAM"
TRASH_NOT_SUPPORTED = "TRASH_NOT_SUPPORTED"
ORDER_NOT_FOUND = "ORDER_NOT_FOUND"


FORM = "application/x-www-form-urlencoded"

# --- models ------------------------------------------------------------------------------------

Uri = Annotated[str, Meta(extra_json_schema={"format": "uri"})]
WcDate = Annotated[str, Meta(pattern=timefmt.WC_DATE)]
_WP_BOOLEAN = 'WordPress booleans: also "true"/"false", "1"/"0" and 1/0.'


class WooLink(Struct, forbid_unknown_fields=True):
    href: Uri


class WooLinks(Struct, forbid_unknown_fields=True):
    self: list[WooLink]
    collection: list[WooLink]
    up: list[WooLink]


class WooNote(Struct, forbid_unknown_fields=True):
    id: int
    author: str
    date_created: WcDate
    date_created_gmt: WcDate
    note: str
    customer_note: bool
    links: WooLinks = msgspec.field(name="_links")


class WooNoteCreate(Struct):
    """Read by _create_params (WordPress merges the query string, a form or JSON); declared
    here for the document."""

    note: Annotated[str, Meta(min_length=1, max_length=BODY_MAX)]
    customer_note: Annotated[bool, Meta(description=_WP_BOOLEAN)] = False
    added_by_user: Annotated[bool, Meta(description=_WP_BOOLEAN)] = False


class WooErrorData(Struct, omit_defaults=True):
    status: int
    params: list[str] | dict[str, str] | UnsetType = UNSET


class WooError(Struct, forbid_unknown_fields=True):
    code: str
    message: str
    data: WooErrorData


async def credentials(request: Request) -> str | None:
    """The Authorization header, consumer_key/consumer_secret query parameters as Basic, or
    OAuth 1.0a query parameters as a WC-OAuth1 credential."""
    header = request.headers.get("authorization")
    if header:
        return header
    key, secret = (request.query_params.get(name) for name in AUTH_PARAMS)
    if key and secret:
        return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
    params = request.query_params.multi_items()
    if any(name in OAUTH_PARAMS for name, _ in params):
        if request.headers.get("content-type", "").startswith(FORM):
            params += _form(await bodies.read_body(request))  # $_POST joins $_GET, as WP does
        return oauth_credential(request, params)
    return None


def _form(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise errors.malformed("the form body is not UTF-8") from None


def oauth_credential(request: Request, params: list[tuple[str, str]]) -> str:
    """Everything the service needs to check an OAuth 1.0a signature as WooCommerce does: the
    method, the URLs the client may have signed (the one it called, and the public base URL's),
    the parameters, and a reference of this HTTP request, so that its several calls to the
    service count as one use of the nonce."""
    path = request.url.path
    urls = [f"{request.url.scheme}://{request.url.netloc}{path}"]
    public = request.app.state.settings.public_base_url
    if public:
        urls.append(public.rstrip("/") + path)
    data = {
        "method": request.method,
        "urls": urls,
        "params": params,
        "ref": secrets.token_urlsafe(16),
    }
    packed = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
    return "WC-OAuth1 " + packed.decode().rstrip("=")


def shop_zone(request: Request) -> ZoneInfo:
    return request.app.state.shop_zone


def _order(order_id: int) -> pb.SubjectRef:
    # An id past int64 is sent as "", which the service refuses: the order is not found.
    return pb.SubjectRef(
        type=pb.SUBJECT_TYPE_ORDER, id=str(order_id) if order_id <= INT64_MAX else ""
    )


def _author(note: pb.Note) -> str:
    """ "system" unless a user added it (source_type records added_by_user); a note that names
    its author in source (as NewStore's do) shows that name."""
    if note.source_type == "system":
        return "system"
    if note.source:
        return note.source
    if note.source_type == "user" or note.author.type == pb.AUTHOR_TYPE_USER:
        return note.author.display_name or note.author.id
    return "system"


def render_note(note: pb.Note, request: Request) -> WooNote:
    return _render(note, calls.base_url(request), shop_zone(request))


def _render(note: pb.Note, base_url: str, zone: ZoneInfo) -> WooNote:
    order_url = f"{base_url}{PREFIX}/orders/{note.subject.id}"
    return WooNote(
        id=note.number,
        author=_author(note),
        date_created=timefmt.wc_date(note.create_time, zone),
        date_created_gmt=timefmt.wc_date(note.create_time),
        note=note.body,
        customer_note=note.visibility == pb.VISIBILITY_CUSTOMER,
        links=WooLinks(
            self=[WooLink(f"{order_url}/notes/{note.number}")],
            collection=[WooLink(f"{order_url}/notes")],
            up=[WooLink(order_url)],
        ),
    )


_rendered = Rendered(_render)


# --- parameters ------------------------------------------------------------------------------


def _boolean(params: dict[str, Any], name: str) -> bool:
    """WordPress booleans: true/false, "true"/"false", "1"/"0", 1/0."""
    value = params.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", ""):
        return value.lower() in ("true", "1")
    raise errors.invalid((name, f"{name} is not of type boolean."))


def _choice(request: Request, name: str, options: tuple[str, ...]) -> str:
    value = request.query_params.get(name, options[0])
    if value not in options:
        listed = ", ".join(options[:-1]) + f", and {options[-1]}"
        raise errors.invalid((name, f"{name} is not one of {listed}."))
    return value


async def _create_params(request: Request) -> dict[str, Any]:
    """The body's parameters (JSON or a form) over the query string's, as WordPress merges."""
    skip = AUTH_PARAMS + OAUTH_PARAMS
    params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k not in skip}
    raw = await bodies.read_body(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(FORM):
        params.update((k, v) for k, v in _form(raw) if k not in OAUTH_PARAMS)
    elif raw.strip():
        body = bodies.parse_json(raw)
        if not isinstance(body, dict):
            raise errors.malformed("the JSON body must be an object")
        params.update(body)
    return params


# --- routes ------------------------------------------------------------------------------------


async def list_notes(request: Request, call: Call) -> Response:
    order_id = request.path_params["order_id"]
    visibility = TYPES[_choice(request, "type", tuple(TYPES))]
    _choice(request, "context", CONTEXTS)
    try:
        notes = await call.list_all(
            pb.ListNotesRequest(subject=_order(order_id), visibility=visibility)
        )
    except Failure as f:
        raise _order_failure(f) from None
    base, zone = calls.base_url(request), shop_zone(request)
    return ModelResponse([_rendered(n, base, zone) for n in notes])


async def create_note(request: Request, call: Call) -> Response:
    order_id = request.path_params["order_id"]
    params = await _create_params(request)
    if "note" not in params:
        raise Failure(Code.INVALID_ARGUMENT, MISSING_PARAM, violations=[("note", "")], local=True)
    text = params["note"]
    if not isinstance(text, str):
        raise errors.invalid(("note", "note is not of type string."))
    customer_note = _boolean(params, "customer_note")
    added_by_user = _boolean(params, "added_by_user")
    note = pb.Note(
        subject=_order(order_id),
        body=text,
        visibility=pb.VISIBILITY_CUSTOMER if customer_note else pb.VISIBILITY_INTERNAL,
        source_type="user" if added_by_user else "system",
    )
    try:
        out = await call.invoke(call.notes.CreateNote, pb.CreateNoteRequest(note=note))
    except Failure as f:
        raise _order_failure(errors.subject_ids_as_not_found(f, note.subject)) from None
    body = render_note(out.note, request)
    return ModelResponse(body, 201, headers={"Location": body.links.self[0].href})


async def get_note(request: Request, call: Call) -> Response:
    note = await _order_note(call, request.path_params["order_id"], request.path_params["note_id"])
    return ModelResponse(_rendered(note, calls.base_url(request), shop_zone(request)))


async def delete_note(request: Request, call: Call) -> Response:
    force = _boolean(dict(request.query_params), "force")
    if not force:
        await call.check_credentials(write=True)
        raise Failure(Code.UNIMPLEMENTED, TRASH_NOT_SUPPORTED, local=True)
    order_id, number = request.path_params["order_id"], request.path_params["note_id"]
    note = await _order_note(call, order_id, number)
    try:
        out = await call.invoke(call.notes.DeleteNote, pb.DeleteNoteRequest(id=note.id))
    except Failure as f:
        if f.code == Code.NOT_FOUND:  # deleted by someone else in the meantime
            raise errors.note_not_found(str(number)) from None
        raise
    return ModelResponse(render_note(out.note, request))


async def _require_order(call: Call, order_id: int) -> None:
    try:
        await call.require_subject(pb.SUBJECT_TYPE_ORDER, _order(order_id).id)
    except Failure as f:
        raise _order_failure(f) from None


def _order_failure(f: Failure) -> Failure:
    if f.reason == domain.SubjectNotFound.reason:
        return Failure(Code.NOT_FOUND, ORDER_NOT_FOUND, metadata=f.metadata, local=True)
    return f


async def _order_note(call: Call, order_id: int, number: int) -> pb.Note:
    """The live note with this number on this order: the order is looked up first."""
    note = None
    if 0 < number <= INT64_MAX:
        try:
            note = await call.get_note(number=number)
        except Failure as f:
            if f.reason != domain.NoteNotFound.reason:
                raise
    if note is not None and not note.HasField("delete_time") and note.subject == _order(order_id):
        return note
    await _require_order(call, order_id)
    raise errors.note_not_found(str(number))


# --- errors ------------------------------------------------------------------------------------

_CANNOT = {
    "list": ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
    "view": ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."),
    "create": ("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."),
    "delete": (
        "woocommerce_rest_cannot_delete",
        "Sorry, you are not allowed to delete this resource.",
    ),
}
NO_ROUTE = ("rest_no_route", "No route was found matching the URL and request method.", 404)

# reason -> (code, message, HTTP status)
ERRORS: dict[str, tuple[str, str, int]] = {
    domain.API_KEY_INVALID: (
        "woocommerce_rest_authentication_error",
        "Consumer secret is invalid.",
        401,
    ),
    domain.OAUTH_CONSUMER_KEY_INVALID: (
        "woocommerce_rest_authentication_error",
        "Consumer key is invalid.",
        401,
    ),
    domain.OAUTH_SIGNATURE_INVALID: (
        "woocommerce_rest_authentication_error",
        "Invalid signature - provided signature does not match.",
        401,
    ),
    domain.OAUTH_SIGNATURE_METHOD_INVALID: (
        "woocommerce_rest_authentication_error",
        "Invalid signature - signature method is invalid.",
        401,
    ),
    domain.OAUTH_TIMESTAMP_INVALID: (
        "woocommerce_rest_authentication_error",
        "Invalid timestamp.",
        401,
    ),
    domain.OAUTH_NONCE_USED: (
        "woocommerce_rest_authentication_error",
        "Invalid nonce - nonce has already been used.",
        401,
    ),
    domain.NoteNotFound.reason: ("woocommerce_rest_invalid_id", "Invalid resource ID.", 404),
    ORDER_NOT_FOUND: ("woocommerce_rest_order_invalid_id", "Invalid order ID.", 404),
    TRASH_NOT_SUPPORTED: (
        "woocommerce_rest_trash_not_supported",
        "Order notes do not support trashing.",
        501,
    ),
    errors.MALFORMED_JSON: ("rest_invalid_json", "Invalid JSON body passed.", 400),
    errors.BODY_TOO_LARGE: ("rest_request_too_large", "The request body is too large.", 413),
    errors.HEADERS_TOO_LARGE: (
        "rest_request_headers_too_large",
        "The request headers are too large.",
        431,
    ),
    errors.ROUTE_NOT_FOUND: NO_ROUTE,
    errors.METHOD_NOT_ALLOWED: NO_ROUTE,
    domain.SubjectArchived.reason: (
        "woocommerce_rest_order_archived",
        "The order is archived.",
        400,
    ),
    domain.RateLimited.reason: ("woocommerce_rest_too_many_requests", "Too many requests.", 429),
}
BY_CODE: dict[Code, tuple[str, str]] = {
    Code.UNAUTHENTICATED: ("woocommerce_rest_authentication_error", "Consumer key is invalid."),
    Code.NOT_FOUND: ("woocommerce_rest_invalid_id", "Invalid resource ID."),
    Code.FAILED_PRECONDITION: ("woocommerce_rest_cannot_create", "The note cannot be changed."),
    Code.UNAVAILABLE: ("rest_service_unavailable", "The service is unavailable."),
    Code.DEADLINE_EXCEEDED: ("rest_service_timeout", "The service did not answer in time."),
    Code.RESOURCE_EXHAUSTED: ("woocommerce_rest_too_many_requests", "Too many requests."),
}


def _action(request: Request) -> str:
    if request.method == "POST":
        return "create"
    if request.method == "DELETE":
        return "delete"
    return "view" if "note_id" in request.path_params else "list"


def render_error(f: Failure, request: Request) -> Response:
    data: dict[str, Any] = {}
    if f.reason == domain.CREDENTIALS_MISSING or f.code == Code.PERMISSION_DENIED:
        code, message = _CANNOT[_action(request)]
        status = 401 if f.code == Code.UNAUTHENTICATED else 403
    elif f.reason == domain.OAUTH_PARAMETER_MISSING:
        names = f.metadata.get("params", "")
        plural = "s" if "," in names else ""
        code, status = "woocommerce_rest_authentication_missing_parameter", 401
        message = f"Missing OAuth parameter{plural} {names}"
    elif f.reason == ORDER_NOT_FOUND and _action(request) == "list":
        code, message, status = "woocommerce_rest_shop_order_invalid_id", "Invalid order ID.", 404
    elif f.reason == MISSING_PARAM:
        names = [name for name, _ in f.violations]
        code, message, status = "rest_missing_callback_param", "", 400
        message = f"Missing parameter(s): {', '.join(names)}"
        data["params"] = names
    elif f.reason in ERRORS:
        code, message, status = ERRORS[f.reason]
    elif f.code == Code.INVALID_ARGUMENT:
        params = {_param(name): description for name, description in f.violations}
        code, message, status = "rest_invalid_param", "", 400
        message = f"Invalid parameter(s): {', '.join(params)}"
        data["params"] = params
    else:
        code, message = BY_CODE.get(
            f.code, ("internal_server_error", "There has been a critical error on this website.")
        )
        status = f.status
    return ModelResponse(WooError(code, message, WooErrorData(status, **data)), status)


def _param(name: str) -> str:
    return {"body": "note", "visibility": "customer_note"}.get(name, name)


_ORDER = Param("order_id", "path", Annotated[int, Meta(ge=0)], required=True, subject="order")
_NOTE = Param("note_id", "path", Annotated[int, Meta(ge=0)], required=True)
_NOTES = PREFIX + "/orders/{order_id:int64}/notes"
_NOTE_PATH = _NOTES + "/{note_id:int64}"

DIALECT = Dialect(
    "woocommerce",
    "/wp-json/",
    render_error,
    credentials=credentials,
    auth_first=False,
    tag="WooCommerce",
    error_model=WooError,
    security=(
        {"basic": []},
        {"consumerKey": [], "consumerSecret": []},
        {"oauth1": []},
        {"bearer": []},
    ),
    schemes={
        "basic": {"type": "http", "scheme": "basic"},
        "consumerKey": {"type": "apiKey", "in": "query", "name": "consumer_key"},
        "consumerSecret": {"type": "apiKey", "in": "query", "name": "consumer_secret"},
        "oauth1": {
            "type": "apiKey",
            "in": "query",
            "name": "oauth_signature",
            "description": "WooCommerce's one-legged OAuth 1.0a, as its clients sign over "
            "http: oauth_consumer_key (the key id), oauth_timestamp (within 15 minutes), "
            "oauth_nonce (once per key), oauth_signature_method (HMAC-SHA1 or HMAC-SHA256) "
            "and oauth_signature over the method, the URL and the sorted query and form "
            "parameters, keyed with the consumer secret and '&'.",
        },
        "bearer": {"type": "http", "scheme": "bearer"},
    },
    operations=(
        Operation(
            "GET",
            _NOTES,
            "listOrderNotes",
            list_notes,
            replies=(Reply(200, list[WooNote], "The order's notes, newest first"),),
            errors=(400, 401, 403, 404),
            params=(
                _ORDER,
                Param(
                    "type",
                    "query",
                    Annotated[Literal[tuple(TYPES)], Meta(extra_json_schema={"default": "any"})],
                ),
                Param(
                    "context",
                    "query",
                    Annotated[Literal[CONTEXTS], Meta(extra_json_schema={"default": "view"})],
                ),
            ),
        ),
        Operation(
            "POST",
            _NOTES,
            "createOrderNote",
            create_note,
            replies=(Reply(201, WooNote, "The new note", headers={"Location": Uri}),),
            errors=(400, 401, 403, 404, 413),
            params=(_ORDER,),
            body=WooNoteCreate,
        ),
        Operation(
            "GET",
            _NOTE_PATH,
            "getOrderNote",
            get_note,
            replies=(Reply(200, WooNote, "The note"),),
            errors=(401, 403, 404),
            params=(_ORDER, _NOTE),
        ),
        Operation(
            "DELETE",
            _NOTE_PATH,
            "deleteOrderNote",
            delete_note,
            replies=(Reply(200, WooNote, "The note as it was before deletion"),),
            errors=(400, 401, 403, 404, 501),
            params=(
                _ORDER,
                _NOTE,
                Param(
                    "force", "query", Annotated[bool, Meta(extra_json_schema={"default": False})]
                ),
            ),
        ),
    ),
)
routes = routes(DIALECT)
