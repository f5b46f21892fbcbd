"""Read a request's body, query and path into their pydantic models, or fail with a 400 naming the field."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.api.connections import CONNECTIONS
from bot.api.errors import InvalidJson, RequestTimeout
from services.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

_MAX_LOC_PART = 40


def describe(exc: ValidationError, where: str) -> str:
    """Say `body.quiet_hours.start: expected a time as HH:MM (24-hour), got '25:00'` (and how many more)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    # Field names come from the client: keep an unknown 60 KiB key out of the answer.
    parts = [where, *(str(p)[:_MAX_LOC_PART] for p in first["loc"])]
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{'.'.join(parts)}: {message}{more}"


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def refuse_duplicate_keys(raw: bytes) -> None:
    """Refuse a JSON object that names a key twice: parsers differ on which one wins.

    Anything that is not JSON is left to the model's own parser, which says why.
    """
    try:
        json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise InvalidInput(f"body: the key {exc.key[:_MAX_LOC_PART]!r} is given more than once") from None
    except (ValueError, RecursionError):
        return


async def parse_body(request: web.Request, model: type[M], *, required: bool = True) -> M:
    try:
        async with asyncio.timeout(request.app[CONNECTIONS].limits.body_timeout):
            raw = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge (413)
    except TimeoutError:
        raise RequestTimeout() from None
    if not required and not raw.strip():
        raw = b"{}"
    refuse_duplicate_keys(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            detail = errors[0]["msg"].removeprefix("Invalid JSON: ")
            raise InvalidJson(f"The request body is not valid JSON: {detail}.") from None
        raise InvalidInput(describe(exc, "body")) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    data: dict[str, str] = {}
    for key in set(request.query.keys()):
        values = request.query.getall(key)
        if len(values) > 1:
            raise InvalidInput(f"query.{key[:_MAX_LOC_PART]}: given more than once")
        data[key] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe(exc, "query")) from None


def parse_path(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.match_info))
    except ValidationError as exc:
        raise InvalidInput(describe(exc, "path")) from None
