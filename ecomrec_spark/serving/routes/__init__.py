"""One ``APIRouter`` per resource (customers, products, lists, events, operations, the page), wired by
:func:`ecomrec_spark.serving.api.create_app`; each module only turns HTTP into calls of :mod:`..lookup`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ecomrec_spark.serving.live import Live, LivePointer

JSON = "application/json"


async def answer(pointer: LivePointer, find: Callable[[Live], BaseModel]) -> Response:
    """``find`` on the live version, sent as JSON: the JSON endpoints' one way to answer.

    Why not FastAPI's usual path (a plain ``def`` returning the model): that runs each request in
    the thread pool, then validates the returned model a second time against ``response_model``
    and encodes it through ``jsonable_encoder``, which together cost more than the lookup.  The
    lookups already build validated models, so here they are dumped once by pydantic-core, and a
    store whose reads are local and quick (SQLite, ``Store.inline``) is read on the event loop;
    DynamoDB, a network round trip, is still read from the thread pool.  Each route keeps its
    ``response_model`` for ``/docs``.  Errors propagate to the app's handlers as before."""

    def run() -> BaseModel:
        return find(pointer.current())

    out = run() if pointer.store.inline else await run_in_threadpool(run)
    return Response(out.model_dump_json(), media_type=JSON)
