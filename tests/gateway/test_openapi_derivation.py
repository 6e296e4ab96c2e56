"""The document and the gateway agree, both ways: every route served is documented and every
documented operation is served; every limit the document states (maxLength, maxItems,
maximum) is enforced exactly at its boundary. The cases are generated from /openapi.json."""

from __future__ import annotations

import base64
import contextlib
import uuid
from typing import Any

import httpx
import jsonschema_rs
import pytest

from server.config import Settings
from server.domain.errors import ValidationFailed
from server.domain.model import SubjectType
from server.gateway import app as gateway_app
from tests.conftest import new_tenant, register

# Served for operators, not part of any legacy dialect.
OPERATOR_ROUTES = {("/healthz", "GET"), ("/openapi.json", "GET")}
METHODS = ("get", "put", "post", "delete", "patch")
LIMITS = ("maxLength", "maxItems", "maximum")
SUBJECT_TYPES = {t.value for t in SubjectType}


@pytest.fixture(scope="module")
def document(service) -> dict[str, Any]:
    return httpx.get(f"{service.http_base}/openapi.json", timeout=10).json()


def _operations(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def test_every_served_route_is_documented_and_every_documented_one_is_served(document):
    app = gateway_app.create_app("127.0.0.1:1", Settings())
    served = {
        (route.path_format, method) for route in app.routes for method in route.methods - {"HEAD"}
    }
    documented = {(path, method.upper()) for path, method, _ in _operations(document)}
    assert served - OPERATOR_ROUTES == documented


# --- limits ------------------------------------------------------------------------------------


def _resolve(document, schema: dict) -> dict:
    """The schema behind a $ref, and the non-null branch of a nullable one."""
    while True:
        if "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            return schema


def _limits(document, schema: dict, at: tuple = ()):
    """(path in the value, keyword, limit) of every limit in a schema, nested ones too."""
    schema = _resolve(document, schema)
    for keyword in LIMITS:
        if keyword in schema:
            yield at, keyword, schema[keyword]
    for name, sub in schema.get("properties", {}).items():
        yield from _limits(document, sub, (*at, name))
    if "items" in schema:
        yield from _limits(document, schema["items"], (*at, 0))


def _value(document, schema: dict, salt: str) -> Any:
    """A small valid value of a schema: required properties only, the first enum member."""
    schema = _resolve(document, schema)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {n: _value(document, props[n], f"{salt}{n}") for n in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(schema.get("minimum", 0), 1)
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return "2026-01-02T03:04:05Z"
    return f"v{salt}"[: schema.get("maxLength", 64)]


def _sized(document, schema: dict, keyword: str, n: int, salt: str) -> Any:
    """A value of exactly n (characters, items or magnitude)."""
    schema = _resolve(document, schema)
    if keyword == "maxLength":
        return (salt + "x" * n)[:n]
    if keyword == "maxItems":
        items = schema["items"]
        return [_value(document, items, f"{salt}{i}") for i in range(n)]
    return n  # maximum


def _set(document, schema: dict, value: Any, at: tuple, new: Any) -> Any:
    """value with new at path at, making the containers on the way."""
    if not at:
        return new
    schema = _resolve(document, schema)
    step, rest = at[0], at[1:]
    if isinstance(step, int):
        items = schema["items"]
        value = list(value or [_value(document, items, "i")])
        value[0] = _set(document, items, value[0], rest, new)
    else:
        sub = schema["properties"][step]
        value = dict(value or {})
        value[step] = _set(document, sub, value.get(step, _value(document, sub, step)), rest, new)
    return value


def _schema_at(document, schema: dict, at: tuple) -> dict:
    for step in at:
        schema = _resolve(document, schema)
        schema = schema["items"] if isinstance(step, int) else schema["properties"][step]
    return schema


def _subjects_in(value: Any):
    """Records a body names ({type, id} of a subject type): they must exist."""
    if isinstance(value, dict):
        if value.get("type") in SUBJECT_TYPES and isinstance(value.get("id"), str):
            yield value["type"], value["id"]
        for v in value.values():
            yield from _subjects_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _subjects_in(v)


def _register(org: str, kind: str, record_id: str, parent: str = "") -> None:
    with contextlib.suppress(ValidationFailed):  # an id past the service's limit: none exists
        register(org, SubjectType(kind), record_id, parent)


class Caller:
    """Requests built from one documented operation, for one tenant."""

    def __init__(self, document, base: str, tenant, path: str, method: str, op: dict) -> None:
        self.document, self.base, self.tenant = document, base, tenant
        self.path, self.method, self.op = path, method, op
        self.params = {(p["in"], p["name"]): p for p in op.get("parameters", [])}
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        self.body_schema = body.get("schema")

    def credentials(self) -> dict[str, str]:
        schemes = {name for alternative in self.op["security"] for name in alternative}
        if "basicSecret" in schemes:
            user = f"{self.tenant.secret}:"
        elif "basic" in schemes:
            user = f"{self.tenant.key_id}:{self.tenant.secret}"
        else:
            return {"Authorization": f"Bearer {self.tenant.secret}"}
        return {"Authorization": "Basic " + base64.b64encode(user.encode()).decode()}

    def baseline(self, salt: str) -> dict[str, Any]:
        values = {}
        for (where, name), p in self.params.items():
            if p["required"] or where == "path":
                values[(where, name)] = _value(self.document, p["schema"], f"{salt}{name}")
        body = _value(self.document, self.body_schema, salt) if self.body_schema else None
        return {"params": values, "body": body}

    def send(self, request: dict[str, Any], note: dict[str, Any] | None) -> httpx.Response:
        params, body = request["params"], request["body"]
        path, query, headers = self.path, [], self.credentials()
        for (where, name), value in params.items():
            p = self.params[(where, name)]
            if where == "path":
                if "x-subject-type" in p:
                    parent = p.get("x-subject-parent")
                    parent_id = str(params[("path", parent)]) if parent else ""
                    _register(self.tenant.org, p["x-subject-type"], str(value), parent_id)
                elif note is not None:  # the note an operation on one acts on
                    value = note["id"]
                path = path.replace("{" + name + "}", str(value))
            elif where == "query":
                values = value if isinstance(value, list) else [value]
                query += [(name, str(v)) for v in values]
            elif name == "If-Match" and note is not None:
                headers[name] = note["updatedAt"]
            elif name == "Idempotency-Key" and len(value) < 64:
                headers[name] = str(uuid.uuid4())  # a fresh key, unless its length is tested
            else:
                headers[name] = value
        for kind, record_id in _subjects_in(body):
            _register(self.tenant.org, kind, record_id)
        return httpx.request(
            self.method.upper(),
            self.base + path,
            params=query,
            headers=headers,
            json=body,
            timeout=10,
        )


def _note_for(document, base, tenant, path: str, params: dict) -> dict[str, Any] | None:
    """The note an operation on one acts on: made by the same dialect's create operation on
    the same records (None when that cannot succeed: the operation's input is refused)."""
    if not path.endswith("}") or "/notes/" not in path:
        return None
    collection = path.rsplit("/", 1)[0]
    caller = Caller(
        document, base, tenant, collection, "post", document["paths"][collection]["post"]
    )
    request = caller.baseline("n")
    for key in request["params"]:
        if key in params:
            request["params"][key] = params[key]
    response = caller.send(request, None)
    if not response.is_success:
        return None
    data = response.json()
    data = data.get("data", data.get("note", data))
    return {"id": data["id"], "updatedAt": data.get("updatedAt", "")}


def _limit_cases(document):
    for path, method, op in _operations(document):
        caller_schema = op.get("requestBody", {}).get("content", {}).get("application/json")
        if caller_schema:
            for at, keyword, n in _limits(document, caller_schema["schema"]):
                yield path, method, ("body", at), keyword, n
        for p in op.get("parameters", []):
            schema = p["schema"]
            for at, keyword, n in _limits(document, schema):
                if p["in"] == "query" and schema.get("type") == "array":
                    at = at[1:]  # one repetition of the parameter
                yield path, method, (p["in"], p["name"], at), keyword, n


def _case_id(case) -> str:
    path, method, where, keyword, n = case
    at = where[1] if where[0] == "body" else (where[1], *where[2])
    return f"{method.upper()} {path} {where[0]}:{'.'.join(map(str, at))} {keyword}={n}"


def pytest_generate_tests(metafunc):
    if "limit_case" in metafunc.fixturenames:
        from server.gateway import openapi

        cases = list(_limit_cases(openapi.DOCUMENT))
        metafunc.parametrize("limit_case", cases, ids=[_case_id(c) for c in cases])


def test_every_documented_limit_is_enforced_at_its_boundary(document, service, channel, limit_case):
    path, method, where, keyword, n = limit_case
    tenant = new_tenant(channel)
    op = document["paths"][path][method]
    caller = Caller(document, service.http_base, tenant, path, method, op)
    outcomes = {}
    for size in (n, n + 1):
        request = caller.baseline(f"s{size}-")
        if where[0] == "body":
            schema = _schema_at(document, caller.body_schema, where[1])
            sized = _sized(document, schema, keyword, size, f"b{size}")
            request["body"] = _set(document, caller.body_schema, request["body"], where[1], sized)
        else:
            _, name, at = where
            p = caller.params[(where[0], name)]
            schema = p["schema"]["items"] if p["schema"].get("type") == "array" else p["schema"]
            value = _sized(document, schema, keyword, size, f"p{size}")
            request["params"][(where[0], name)] = [value] if schema is not p["schema"] else value
        note = _note_for(document, service.http_base, tenant, path, request["params"])
        outcomes[size] = caller.send(request, note)
    at_limit, past_limit = outcomes[n], outcomes[n + 1]
    assert at_limit.is_success, (at_limit.status_code, at_limit.text)
    assert 400 <= past_limit.status_code < 500, (past_limit.status_code, past_limit.text)
    documented = op["responses"].get(str(past_limit.status_code))
    assert documented, f"{past_limit.status_code} is not documented for {method} {path}"
    schema = documented["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})
    assert validator.is_valid(past_limit.json()), past_limit.text
