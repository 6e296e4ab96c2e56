"""The OpenAPI 3.1 document of the four dialects, served at /openapi.json."""

from __future__ import annotations

from typing import Any

import msgspec

from ..domain.validation import (
    BODY_MAX,
)
from . import customer_notes, newstore, shelfcycle
from .dialect import SHARED_ERRORS, Dialect, Operation, Param
from .timefmt import WC_DATE

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
NOTE_ID = r"^note_[0-9A-HJKMNP-TV-Z]{26}$"
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    schema.update(extra)
    return schema


def string(**extra) -> dict[str, Any]:
    return {"type": "string", **extra}


def json_body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(schema_name)}}}


def responses(error: str, ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    out = dict(ok)
    for code in (*codes, *map(str, SHARED_ERRORS)):
        out[code] = {
            "description": SHARED_ERRORS.get(int(code), "Error"),
            "content": {"application/json": {"schema": ref(error)}},
        }
    out["429"]["headers"] = RETRY_AFTER
    return out


def ok(status: str, schema_name: str | None, description: str, **extra) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, **extra}
    if schema_name:
        response["content"] = {"application/json": {"schema": ref(schema_name)}}
    return {status: response}


def path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query(name: str, schema: dict[str, Any], **extra) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, **extra}


def header(name: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": string(minLength=1)}


ID = string(minLength=1, maxLength=128, pattern=r"^[A-Za-z0-9_.:-]+$")
CUSTOMER = [path_param("id", ID)]
ORDER = [path_param("order_uuid", ID)]
WC_ORDER = [path_param("order_id", {"type": "integer", "minimum": 0})]
WC_NOTE = [*WC_ORDER, path_param("note_id", {"type": "integer", "minimum": 0})]
NS_NOTE = [*ORDER, path_param("note_uuid", string(format="uuid"))]
CUSTOMER_SECURITY = [{"bearer": []}, {"basicSecret": []}]
WC_SECURITY = [
    {"basic": []},
    {"consumerKey": [], "consumerSecret": []},
    {"oauth1": []},
    {"bearer": []},
]

SCHEMAS: dict[str, Any] = {
    # WooCommerce
    "WooLink": {"type": "array", "items": obj({"href": string(format="uri")})},
    "WooNote": obj(
        {
            "id": {"type": "integer"},
            "author": string(),
            "date_created": string(pattern=WC_DATE),
            "date_created_gmt": string(pattern=WC_DATE),
            "note": string(),
            "customer_note": {"type": "boolean"},
            "_links": obj(
                {"self": ref("WooLink"), "collection": ref("WooLink"), "up": ref("WooLink")}
            ),
        },
        additionalProperties=False,
    ),
    "WooNoteList": {"type": "array", "items": ref("WooNote")},
    "WooNoteCreate": obj(
        {
            "note": string(minLength=1, maxLength=BODY_MAX),
            "customer_note": {"type": "boolean", "default": False},
            "added_by_user": {"type": "boolean", "default": False},
        },
        ["note"],
    ),
    "WooError": obj(
        {
            "code": string(),
            "message": string(),
            "data": obj({"status": {"type": "integer"}}, additionalProperties=True),
        },
        additionalProperties=False,
    ),
}

WC_LOCATION = {"Location": {"required": True, "schema": string(format="uri")}}

PATHS: dict[str, Any] = {
    "/wp-json/wc/v3/orders/{order_id}/notes": {
        "parameters": WC_ORDER,
        "get": {
            "tags": ["WooCommerce"],
            "operationId": "listOrderNotes",
            "security": WC_SECURITY,
            "parameters": [
                query("type", string(enum=["any", "customer", "internal"], default="any")),
                query("context", string(enum=["view", "edit"], default="view")),
            ],
            "responses": responses(
                "WooError",
                ok("200", "WooNoteList", "The order's notes, newest first"),
                "400",
                "401",
                "403",
                "404",
            ),
        },
        "post": {
            "tags": ["WooCommerce"],
            "operationId": "createOrderNote",
            "security": WC_SECURITY,
            "requestBody": json_body("WooNoteCreate"),
            "responses": responses(
                "WooError",
                ok("201", "WooNote", "The new note", headers=WC_LOCATION),
                "400",
                "401",
                "403",
                "404",
                "413",
            ),
        },
    },
    "/wp-json/wc/v3/orders/{order_id}/notes/{note_id}": {
        "parameters": WC_NOTE,
        "get": {
            "tags": ["WooCommerce"],
            "operationId": "getOrderNote",
            "security": WC_SECURITY,
            "responses": responses(
                "WooError", ok("200", "WooNote", "The note"), "401", "403", "404"
            ),
        },
        "delete": {
            "tags": ["WooCommerce"],
            "operationId": "deleteOrderNote",
            "security": WC_SECURITY,
            "parameters": [query("force", {"type": "boolean", "default": False})],
            "responses": responses(
                "WooError",
                ok("200", "WooNote", "The note as it was before deletion"),
                "400",
                "401",
                "403",
                "404",
                "501",
            ),
        },
    },
}


def derive(dialects: list[Dialect]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Paths, schemas and security schemes from the dialects' declarations."""
    types: list[Any] = []
    for d in dialects:
        types.append(d.error_model)
        for op in d.operations:
            types.extend(p.type for p in op.params)
            types.extend(r.body for r in op.replies if r.body is not None)
            types.extend(t for r in op.replies for t in r.headers.values())
            if op.body is not None:
                types.append(op.body)
    flat = [t for item in types for t in (item if isinstance(item, tuple) else (item,))]
    found, schemas = msgspec.json.schema_components(flat, ref_template=REF)
    schema_of = dict(zip(map(_key, flat), found, strict=True))
    for item in types:  # alternatives: one of these bodies
        if isinstance(item, tuple):
            schema_of[_key(item)] = {"oneOf": [schema_of[_key(t)] for t in item]}
    paths: dict[str, Any] = {}
    schemes: dict[str, Any] = {}
    for d in dialects:
        schemes.update(d.schemes)
        error = {"application/json": {"schema": schema_of[_key(d.error_model)]}}
        for op in d.operations:
            paths.setdefault(op.openapi_path, {})[op.method.lower()] = _operation(
                d, op, schema_of, error
            )
    return paths, schemas, schemes


REF = "#/components/schemas/{name}"


def _key(t: Any) -> str:
    return repr(t)


def _operation(d: Dialect, op: Operation, schema_of, error) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tags": [d.tag],
        "operationId": op.operation_id,
        "security": list(d.security),
    }
    if op.params:
        out["parameters"] = [_parameter(p, schema_of) for p in op.params]
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of[_key(op.body)]}},
        }
    responses: dict[str, Any] = {}
    for reply in op.replies:
        response: dict[str, Any] = {"description": reply.description}
        if reply.headers:
            response["headers"] = {
                name: {"required": True, "schema": schema_of[_key(t)]}
                for name, t in reply.headers.items()
            }
        if reply.body is not None:
            response["content"] = {"application/json": {"schema": schema_of[_key(reply.body)]}}
        responses[str(reply.status)] = response
    for status in (*op.errors, *SHARED_ERRORS):
        responses[str(status)] = {
            "description": SHARED_ERRORS.get(status, "Error"),
            "content": error,
        }
    responses["429"]["headers"] = RETRY_AFTER
    out["responses"] = responses
    return out


def _parameter(p: Param, schema_of) -> dict[str, Any]:
    schema = schema_of[_key(p.type)]
    out: dict[str, Any] = {"name": p.name, "in": p.where, "required": p.required}
    if p.array:
        out.update(schema={"type": "array", "items": schema}, style="form", explode=True)
    else:
        out["schema"] = schema
    if p.description:
        out["description"] = p.description
    if p.subject:
        out["x-subject-type"] = p.subject  # the record it names, for tests that make one
    if p.parent:
        out["x-subject-parent"] = p.parent
    return out


_paths, _schemas, _schemes = derive([customer_notes.DIALECT, shelfcycle.DIALECT, newstore.DIALECT])
PATHS = {**_paths, **PATHS}
SCHEMAS = {**SCHEMAS, **_schemas}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "notes HTTP gateway",
        "version": "1.0.0",
        "description": "Four legacy note APIs served over the notes.v1 service: customer notes "
        "(Medusa-style), ShelfCycle, WooCommerce v3 order notes and NewStore order notes.",
    },
    "tags": [
        {"name": "Customer notes"},
        {"name": "ShelfCycle"},
        {"name": "WooCommerce"},
        {"name": "NewStore"},
    ],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            **_schemes,
            "bearer": {"type": "http", "scheme": "bearer"},
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
        },
    },
}
