"""The OpenAPI 3.1 document, generated from the operation table and its pydantic models.

The committed copy, docs/openapi.json, is regenerated with `make openapi`; a test fails when it
differs from the document the server serves.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.api.auth import CSRF_HEADER, CSRF_VALUE, SESSION_COOKIE, USER_HEADER
from bot.api.errors import ErrorDoc
from bot.api.models import ErrorResponse
from bot.api.routes import OPERATIONS, Operation, StreamDoc

_REF_TEMPLATE = "#/components/schemas/{model}"


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query or path value is never JSON null: drop the null branch of an optional field."""
    branches = schema.get("anyOf")
    if not branches:
        return schema
    rest = [b for b in branches if b != {"type": "null"}]
    out = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    if len(rest) == 1:
        out.update(rest[0])
    else:
        out["anyOf"] = rest
    return out


def _parameters(
    where: Literal["query", "path"], schemas: dict[str, Any], name: str
) -> list[dict[str, Any]]:
    schema = schemas[name]
    required = set(schema.get("required", ()))
    return [
        {
            "name": field,
            "in": where,
            "required": where == "path" or field in required,
            "schema": _not_null(prop),
        }
        for field, prop in schema.get("properties", {}).items()
    ]


def _security(op: Operation) -> list[dict[str, list[str]]]:
    """A service token with the acting user, or a session (plus the CSRF header when it changes state)."""
    if op.public:
        return []
    if op.service_only:
        return [{"serviceToken": []}]
    session: dict[str, list[str]] = {"session": []}
    if op.changes_state:
        session["xhr"] = []
    return [{"serviceToken": [], "actingUser": []}, session]


def _errors(op: Operation, error_ref: dict[str, Any]) -> dict[str, Any]:
    """One response per error status: the codes it carries (as an enum) and an example of each."""
    by_status: dict[int, list[ErrorDoc]] = {}
    for doc in op.documented_errors():
        by_status.setdefault(doc.status, []).append(doc)
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        docs = by_status[status]
        codes = list(dict.fromkeys(d.code for d in docs))
        schema = {"allOf": [error_ref, {"properties": {"error": {"properties": {"code": {"enum": codes}}}}}]}
        examples = {d.name: {"value": {"error": {"code": d.code, "message": d.example}}} for d in docs}
        response: dict[str, Any] = {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": schema, "examples": examples}},
        }
        if status in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[status]
        responses[str(status)] = response
    return responses


def _event_schema(stream: StreamDoc, data_ref: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1 has `schema` describe each event of a stream)."""
    return {
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string"},
            "event": {"const": stream.event},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"anyOf": [data_ref, {"type": "null"}]} if stream.nullable else data_ref,
            },
            "retry": {"type": "integer"},
        },
    }


def _required_header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema}


_RETRY_AFTER = _required_header("Seconds to wait before trying again.", {"type": "string", "pattern": "^[0-9]+$"})
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": _required_header("The scheme to authenticate with.", {"type": "string"})},
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}
_ETAG_HEADERS: dict[str, Any] = {
    "ETag": _required_header(
        "A tag of this answer; send it back in If-None-Match to be told (304) that nothing changed.",
        {"type": "string", "pattern": '^"[0-9a-f]+"$'},
    ),
    "Cache-Control": _required_header("Always revalidate (If-None-Match).", {"type": "string"}),
}
_IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of an answer the caller has: 304 when it is still the answer.",
    "schema": {"type": "string"},
}


def build_openapi(
    operations: tuple[Operation, ...] = OPERATIONS, *, version: str = "1"
) -> dict[str, Any]:
    """Return the document describing `operations`."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for op in operations:
        for model in (op.body, op.query, op.path_params):
            if model is not None:
                wanted.append((model, "validation"))
        wanted.extend((model, "serialization") for model in op.responses)
        if op.stream is not None:
            wanted.append((op.stream.data, "serialization"))
    keys = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(keys, ref_template=_REF_TEMPLATE)
    schemas: dict[str, Any] = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    def name_of(model: type[BaseModel]) -> str:
        return str(refs[(model, "validation")]["$ref"]).rsplit("/", 1)[-1]

    error_ref = ref(ErrorResponse, "serialization")
    parameter_models: set[str] = set()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "security": _security(op),
        }
        if op.description:
            operation["description"] = op.description
        parameters: list[dict[str, Any]] = []
        if op.path_params is not None:
            parameters += _parameters("path", schemas, name_of(op.path_params))
            parameter_models.add(name_of(op.path_params))
        if op.query is not None:
            parameters += _parameters("query", schemas, name_of(op.query))
            parameter_models.add(name_of(op.query))
        if op.cached_for is not None:
            parameters.append(_IF_NONE_MATCH)
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": op.body_required,
                "content": _json(ref(op.body, "validation")),
            }
        if op.stream is not None:
            success = {op.media_type: {"schema": _event_schema(op.stream, ref(op.stream.data, "serialization"))}}
        elif op.responses:
            bodies = [ref(model, "serialization") for model in op.responses]
            success = _json(bodies[0] if len(bodies) == 1 else {"oneOf": bodies})
        elif op.media_type != "application/json":
            success = {op.media_type: {"schema": {"type": "string"}}}
        else:
            success = _json({"type": "object"})
        ok: dict[str, Any] = {"description": HTTPStatus(op.status).phrase, "content": success}
        responses: dict[str, Any] = {str(op.status): ok}
        for status in op.also:
            responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": success}
        if op.cached_for is not None:
            ok["headers"] = _ETAG_HEADERS
            responses["304"] = {
                "description": "Not Modified: the If-None-Match tag is still the answer's.",
                "headers": _ETAG_HEADERS,
            }
        responses.update(_errors(op, error_ref))
        operation["responses"] = responses
        paths.setdefault(op.path, {})[op.method.lower()] = operation

    # Parameters are listed one by one: their models are not components of their own.
    for name in parameter_models:
        del schemas[name]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Rallypoint API",
            "version": version,
            "description": (
                "Availability and promotions for the community website. Errors are "
                '`{"error": {"code": "...", "message": "..."}}`; times are ISO 8601 with offset in '
                "the promotion timezone."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "serviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"A service token of the website's backend; it acts for the user in {USER_HEADER}.",
                },
                "actingUser": {
                    "type": "apiKey",
                    "in": "header",
                    "name": USER_HEADER,
                    "description": "The Discord user id (1 to 20 digits) a service token acts for.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "A browser session from /auth/login.",
                },
                "xhr": {
                    "type": "apiKey",
                    "in": "header",
                    "name": CSRF_HEADER,
                    "description": f"With a session, a request that changes something sends {CSRF_HEADER}: "
                    f"{CSRF_VALUE} (a cross-site form cannot).",
                },
            },
        },
    }


def document_json(version: str) -> str:
    """The document as committed in docs/openapi.json."""
    return json.dumps(build_openapi(version=version), indent=2, ensure_ascii=False) + "\n"
