"""The event feed: ``GET /events?after=SEQ`` (JSON, paged) and ``GET /events/stream``
(Server-Sent Events of new events).

Events are numbered (``id``) in the order they were recorded; ``after`` is the last id a
follower has seen. The stream sends every event after ``after`` (or the ``Last-Event-ID``
header a reconnecting EventSource sends) as ``id: N`` + ``data: <event JSON>``, then polls the
catalog for new ones; a comment line every 15 s keeps proxies from closing an idle stream.
A stream ends when the client goes away, when the server stops, or after ``timeout`` seconds
(default one hour; clients reconnect with ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from package_storage.errors import InvalidInputError
from package_storage.manage.deps import Guarded, api_of
from package_storage.manage.schemas import MAX_ID, EventOut, EventsPage
from package_storage.store.access import GuardedService
from package_storage.store.storage.base import EventFilter

router = APIRouter(tags=["events"])

PAGE = 100
MAX_PAGE = 1000
KEEPALIVE_SECONDS = 15.0


@router.get("/events", summary="Events after a sequence number (paged)")
def events(
    service: Guarded,
    after: Annotated[
        int, Query(ge=0, le=MAX_ID, description="The last event id seen (0: from the start).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
) -> EventsPage:
    found = service.history(EventFilter(after_id=after, limit=limit + 1))
    page = found[:limit]
    return EventsPage(
        events=[EventOut.of(e) for e in page],
        next_after=page[-1].id if page else after,
        more=len(found) > limit,
    )


def _start(after: int | None, last_event_id: str | None) -> int:
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().isdigit():
            raise InvalidInputError(f"Last-Event-ID {last_event_id!r} is not an event id")
        return int(last_event_id.strip())
    return after or 0


@router.get(
    "/events/stream",
    summary="Server-Sent Events of new events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream(
    request: Request,
    service: Guarded,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    timeout: Annotated[float | None, Query(gt=0, le=86400, description="Seconds")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    start = _start(after, last_event_id)
    api = api_of(request)
    seconds = timeout if timeout is not None else api.stream_seconds
    return StreamingResponse(
        _feed(service, start, api.poll_interval, seconds, api.closing.is_set),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _feed(
    service: GuardedService,
    after: int,
    poll: float,
    seconds: float,
    closing: object,
) -> AsyncIterator[bytes]:
    assert callable(closing)
    deadline = time.monotonic() + seconds
    last_sent = time.monotonic()
    yield b": package-storage events\n\n"
    while not closing() and time.monotonic() < deadline:
        found = await run_in_threadpool(
            service.history, EventFilter(after_id=after, limit=MAX_PAGE)
        )
        for event in found:
            body = json.dumps(EventOut.of(event).model_dump(), ensure_ascii=False)
            yield f"id: {event.id}\ndata: {body}\n\n".encode()
            after = event.id
            last_sent = time.monotonic()
        if len(found) == MAX_PAGE:
            continue
        if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(poll)
