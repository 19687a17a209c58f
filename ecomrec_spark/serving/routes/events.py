"""``POST /v1/events``: feedback from the shop (impressions, clicks, views, carts, purchases), written for ingest.

The body is read raw and checked by :func:`ecomrec_spark.serving.events.validate_batch`, not by
FastAPI's model validation, so that a refused batch lists each bad row by index with plain
reasons; :class:`~ecomrec_spark.serving.models.EventIn` is only the schema ``/docs`` shows.
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ecomrec_spark.serving.deps import MetricsDep, SinkDep, StateDep
from ecomrec_spark.serving.events import validate_batch
from ecomrec_spark.serving.lookup import ApiError
from ecomrec_spark.serving.models import ErrorBody, EventIn, EventsAccepted

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["events"])
BYTES_PER_EVENT = 2048  # a generous bound on one event's JSON; a larger body is refused unread


@router.post("/events", status_code=202, response_model=EventsAccepted,
             responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "required": ["events"], "additionalProperties": False,
                 "properties": {"events": {"type": "array", "items": EventIn.model_json_schema()}}}}}}})
async def post_events(request: Request, state: StateDep, sink: SinkDep, metrics: MetricsDep) -> EventsAccepted:
    """Take a batch of at most ``serving.max_events`` events; all are written (202) or none (422).

    Each event: ``customer_id``, ``product_id``, ``event_type`` (impression, click, view, cart or
    purchase), ``timestamp`` (ISO-8601), optionally the ``variant`` and ``version`` the customer was shown.
    An accepted batch is one JSON Lines file under ``<paths.raw>/events_api/``, fsynced before
    the answer (an S3 object when ``paths.raw`` is on S3); the next ``ecomrec ingest`` reads it."""
    limit = state.settings.max_events * BYTES_PER_EVENT + 1024
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, "batch too large", f"the body is {length} bytes; at most {limit} "
                                               f"({state.settings.max_events} events, serving.max_events)")
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(413, "batch too large", f"the body is {len(raw)} bytes; at most {limit}")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid JSON", f"the body is not JSON: {exc}") from None
    events, problems = validate_batch(body, state.settings.max_events)
    if problems:
        metrics.rejected_batches.inc()
        raise ApiError(422, "invalid events", [p.as_dict() for p in problems])
    try:
        written = await run_in_threadpool(sink.append, events)
    except Exception:  # a full disk, S3 refusing: nothing of the batch is stored, so the client may send it again
        log.exception("events: a batch of %d event(s) could not be written to %s", len(events), sink.description)
        raise ApiError(503, "events not written", "the batch was not stored (none of it); send it again later") \
            from None
    metrics.events.inc(written.accepted)
    live = state.pointer.cached  # events need no store; name the version live when they arrived, if known
    return EventsAccepted(version=live.version if live is not None else None, accepted=written.accepted,
                          batch_id=written.batch_id, file=written.file, object=written.object)

