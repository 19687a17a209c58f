"""``ecomrec serve``: the online API and page, FastAPI + uvicorn over the serving store, with no Spark and no JVM.

Why a separate, Spark-free process: a shop's page view cannot wait seconds for a JVM, so the
batch jobs publish their results into a key-value store (:mod:`.store`) and this app only
reads it.  Nothing imported here (directly or not) imports pyspark; a test checks that in a
fresh interpreter.

:func:`create_app` wires the parts: the store (SQLite file or DynamoDB), the live-version
pointer (re-read every ``serving.refresh_seconds``, so a new publish goes live without a
restart), the A/B assignment, the events sink under ``paths.raw/events_api/``, a Prometheus
registry, and one router per resource.  The error handlers give every failure one JSON shape,
``{"error": ..., "detail": ...}``: 422 for bad input, 404 for an unknown product, 503 (naming
``ecomrec publish``) when there is no readable store or live version, and 500 without a
stack trace for anything else.

>>> from ecomrec_spark.config import load_settings
>>> app = create_app(load_settings(None, ["paths.serving=/tmp/no-store"]))  # doctest: +SKIP
>>> from fastapi.testclient import TestClient
>>> TestClient(app).get("/healthz").status_code  # doctest: +SKIP
503
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecomrec_spark.serving.deps import TEMPLATES, ApiSettings, AppState
from ecomrec_spark.serving.events import open_sink
from ecomrec_spark.serving.live import LivePointer
from ecomrec_spark.serving.lookup import CUSTOMER_ID_RULE, PRODUCT_ID_RULE, ApiError
from ecomrec_spark.serving.metrics import ApiMetrics, MetricsMiddleware
from ecomrec_spark.serving.routes import customers, events, lists, ops, page, products
from ecomrec_spark.serving.store import Store, StoreUnavailable, VersionError, open_store

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)

PUBLISH_HINT = "run `ecomrec publish`"
# what a failed pattern check on a path or query parameter means, in the CLI's words
_RULES = {"customer_id": f"customer_id must be {CUSTOMER_ID_RULE}", "product_id": f"product_id must be {PRODUCT_ID_RULE}"}


def _error(status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=dict(headers or {}))


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's validation errors as ``{"in", "field", "message"}``, with the id rules spelled out."""
    out = []
    for e in exc.errors():
        loc = [str(part) for part in e.get("loc", ())]
        where, field = (loc[0], ".".join(loc[1:])) if loc else ("request", "")
        message = str(e.get("msg", "invalid"))
        if e.get("type") == "string_pattern_mismatch" and field in _RULES:
            message = _RULES[field]
        value = e.get("input")
        entry: dict[str, Any] = {"in": where, "field": field, "message": message}
        if isinstance(value, (str, int, float, bool)) or value is None:
            entry["value"] = value if not isinstance(value, str) else value[:200]
        out.append(entry)
    return out


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _error(422, "invalid request", _validation_detail(exc))


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.error, exc.detail)


async def _on_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    message = str(exc)
    if "ecomrec publish" not in message:
        message = f"{message}; {PUBLISH_HINT}"
    log.warning("503 %s %s: %s", request.method, request.url.path, message)
    return _error(503, "serving store unavailable", message, headers={"Retry-After": "5"})


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        detail: Any = f"no endpoint {request.method} {request.url.path}; see /docs"
    else:
        detail = exc.detail
    phrase = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "http error")
    return _error(exc.status_code, phrase, detail, headers=getattr(exc, "headers", None))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # the cause goes to the server log only; the client gets no stack trace and no internals
    log.error("500 %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error", "the request failed on the server; the cause is in the server log")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start-up: name the store and read its live version once (a missing one is logged, not fatal:
    the API answers 503 until ``ecomrec publish`` makes one live).  Shut-down: log it."""
    state: AppState = app.state.api
    try:
        live = state.pointer.current()
        log.info("serving %s, version %s live; events -> %s", state.store.description, live.version,
                 state.sink.description)
    except StoreUnavailable as exc:
        log.warning("serving %s: %s (answering 503 until then)", state.store.description, exc)
    yield
    log.info("API stopped (%s)", state.store.description)


def _package_version() -> str:
    try:
        return metadata.version("ecomrec-spark")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The API over ``store`` (default: the one ``serving.store`` names, opened read-only).

    Parameters
    ----------
    settings : Settings
        The run's settings (:func:`ecomrec_spark.config.load_settings`); the app reads ``serving``
        (``k``, ``refresh_seconds``, ``variants``, ``salt``, ``max_events``, the store) and ``paths``.
    store : Store, optional
        A store to read instead of opening the configured one (tests pass their own).
    """
    api = ApiSettings.from_settings(settings)
    store = store if store is not None else open_store(settings, readonly=True)
    metrics = ApiMetrics()
    state = AppState(settings=api, store=store,
                     pointer=LivePointer(store, api.refresh_seconds, api.k, on_switch=metrics.set_live),
                     sink=open_sink(api.raw), metrics=metrics, templates=Jinja2Templates(directory=TEMPLATES))
    app = FastAPI(title="ecomrec serving API", version=_package_version(), lifespan=lifespan,
                  summary="Recommendations, similar and bought-together products, predicted review scores and "
                          "feedback events, read from the published serving store (no Spark).")
    app.state.api = state
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
    app.add_exception_handler(VersionError, _on_store_unavailable)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    for module in (customers, products, lists, events, ops, page):
        app.include_router(module.router)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> dict[str, Any]:
    """Run the API with uvicorn until interrupted (``ecomrec serve``); returns where it listened."""
    import uvicorn

    app = create_app(settings)
    log.info("ecomrec serve: http://%s:%d/ (page), /docs (API), /metrics (Prometheus)", host, port)
    # no access log: a log line per request would cost more than the lookup; /metrics counts requests
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    return {"host": host, "port": port}
