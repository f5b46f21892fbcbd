"""Cheap reads: answers kept per version of the database, sent with an ETag, and 304 to `If-None-Match`.

An answer kept here may depend only on what is stored, on its inputs and on today's date in the
promotion timezone (the campaign of a request without a date, and the preview's campaign date,
change at midnight): those three make its key. Every committed change moves the version on
(storage/changes.py), so a kept answer is never served after the rows it came from changed:
answers are invalidated by the writes, not by time. While nothing changes, a page polling the
campaign or the preview costs no database access at all.

The ETag is a digest of the body, so an answer recomputed after an unrelated change keeps its
ETag, and a client holding it still gets its 304.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel

from storage.changes import Changes, Memo

MAX_ANSWERS: Final = 512
CACHE_CONTROL: Final = "private, no-cache"  # a browser may keep it, but asks (If-None-Match) every time

AnswerHandler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Answer:
    model: BaseModel
    body: bytes
    etag: str  # quoted, as the header carries it

    @property
    def event_id(self) -> str:
        return self.etag.strip('"')


def etag_of(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison of `If-None-Match` (a list of tags, or `*`) with our tag."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in if_none_match.split(","))


class AnswerCache:
    def __init__(self, changes: Changes, today: Callable[[], date], max_entries: int = MAX_ANSWERS) -> None:
        self._today = today
        self._memo: Memo[Hashable, Answer] = Memo(changes, max_entries)

    async def answer(self, request: web.Request, handler: AnswerHandler, inputs: dict[str, Any]) -> Answer:
        """The kept answer of `handler` to `inputs` (frozen, so hashable), else a fresh one, kept."""
        key = (handler, tuple(sorted(inputs.items())), self._today())

        async def load() -> Answer:
            model = await handler(request, **inputs)
            body = model.model_dump_json().encode()
            return Answer(model, body, etag_of(body))

        return await self._memo.get_or_load(key, load)


ANSWERS = web.AppKey("answers", AnswerCache)


async def answer_conditionally(
    request: web.Request, handler: AnswerHandler, inputs: dict[str, Any]
) -> web.Response:
    """200 with the body and its ETag, or 304 when the client's `If-None-Match` already names it."""
    answer = await request.app[ANSWERS].answer(request, handler, inputs)
    headers = {"ETag": answer.etag, "Cache-Control": CACHE_CONTROL}
    if etag_matches(request.headers.get("If-None-Match"), answer.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=answer.body, content_type="application/json", headers=headers)
