"""The OpenAPI 3.1 document, generated from the operation table and its pydantic models."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.api.auth import SESSION_COOKIE, USER_HEADER
from bot.api.models import ErrorResponse
from bot.api.routes import OPERATIONS, Operation

_REF_TEMPLATE = "#/components/schemas/{model}"
_SECURITY: list[dict[str, list[str]]] = [{"serviceToken": []}, {"session": []}]


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
        security = [] if op.public else [{"serviceToken": []}] if op.service_only else _SECURITY
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "security": security,
        }
        parameters: list[dict[str, Any]] = []
        if op.path_params is not None:
            parameters += _parameters("path", schemas, name_of(op.path_params))
            parameter_models.add(name_of(op.path_params))
        if op.query is not None:
            parameters += _parameters("query", schemas, name_of(op.query))
            parameter_models.add(name_of(op.query))
        if not op.public and not op.service_only:
            parameters.append({
                "name": USER_HEADER,
                "in": "header",
                "required": False,
                "description": "The acting Discord user; required with a service token.",
                "schema": {"type": "string", "pattern": "^[0-9]{1,20}$"},
            })
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": op.body_required,
                "content": _json(ref(op.body, "validation")),
            }
        if op.responses:
            bodies = [ref(model, "serialization") for model in op.responses]
            success = _json(bodies[0] if len(bodies) == 1 else {"oneOf": bodies})
        elif op.media_type != "application/json":
            success = {op.media_type: {"schema": {"type": "string"}}}
        else:
            success = _json({"type": "object"})
        responses: dict[str, Any] = {
            str(status): {"description": HTTPStatus(status).phrase, "content": success}
            for status in (op.status, *op.also)
        }
        errors = set(op.errors)
        if not op.public:
            errors |= {400, 401}
        if op.body is not None:
            errors |= {400, 413}
        for status in sorted(errors):
            responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": _json(error_ref)}
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
                    "description": f"A service token; the acting user goes in {USER_HEADER}.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "A browser session from /auth/login; POSTs need "
                    "X-Requested-With: XMLHttpRequest.",
                },
            },
        },
    }
