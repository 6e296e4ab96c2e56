"""The OpenAPI 3.1 document of the four dialects, served at /openapi.json: derived from each
dialect's declarations (operations, parameters, models, error statuses, security), with the
bodies' schemas from msgspec.json.schema_components, so that nothing is documented that is not
served as documented."""

from __future__ import annotations

from typing import Any

import msgspec

from . import customer_notes, newstore, shelfcycle, woocommerce
from .dialect import SHARED_ERRORS, Dialect, Operation, Param

DIALECTS = [customer_notes.DIALECT, shelfcycle.DIALECT, woocommerce.DIALECT, newstore.DIALECT]
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
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


PATHS, SCHEMAS, SECURITY_SCHEMES = derive(DIALECTS)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "notes HTTP gateway",
        "version": "1.0.0",
        "description": "Four legacy note APIs served over the notes.v1 service: customer notes "
        "(Medusa-style), ShelfCycle, WooCommerce v3 order notes and NewStore order notes.",
    },
    "tags": [{"name": d.tag} for d in DIALECTS],
    "paths": PATHS,
    "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
}
