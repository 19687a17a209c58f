"""What the routes are handed through ``Depends``: the live-version pointer, the A/B assignment, the sink, metrics.

Why dependencies and not module globals: each :func:`~ecomrec_spark.serving.api.create_app` holds
its own store, settings and registry on ``app.state``, so several apps (the tests build many) live
side by side, and a test can swap any of them with ``app.dependency_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from ecomrec_spark.serving.events import Sink
from ecomrec_spark.serving.live import LivePointer
from ecomrec_spark.serving.lookup import Assignment
from ecomrec_spark.serving.metrics import ApiMetrics
from ecomrec_spark.serving.store import Store
from ecomrec_spark.serving.variants import parse_variants

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ApiSettings:
    """The API's own settings, taken from ``serving`` and ``paths.raw`` of the run's settings."""

    refresh_seconds: float
    k: int
    max_events: int
    assignment: Assignment
    raw: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiSettings:
        s = settings.serving
        return cls(refresh_seconds=float(s.refresh_seconds), k=s.k, max_events=s.max_events,
                   assignment=Assignment(parse_variants(v.model_dump() for v in s.variants), s.salt),
                   raw=settings.paths.raw)


@dataclass
class AppState:
    """Everything one app holds (``app.state.api``)."""

    settings: ApiSettings
    store: Store
    pointer: LivePointer
    sink: Sink
    metrics: ApiMetrics
    templates: Jinja2Templates


async def get_state(request: Request) -> AppState:
    return request.app.state.api


async def get_store(state: Annotated[AppState, Depends(get_state)]) -> Store:
    return state.store


async def get_pointer(state: Annotated[AppState, Depends(get_state)]) -> LivePointer:
    """The live-version pointer; an endpoint calls ``.current()`` after its own parameters are checked,
    so a malformed id is a 422 even when the store is down (``StoreUnavailable`` then gives 503)."""
    return state.pointer


async def get_assignment(state: Annotated[AppState, Depends(get_state)]) -> Assignment:
    return state.settings.assignment


async def get_sink(state: Annotated[AppState, Depends(get_state)]) -> Sink:
    return state.sink


async def get_templates(state: Annotated[AppState, Depends(get_state)]) -> Jinja2Templates:
    return state.templates


async def get_metrics(state: Annotated[AppState, Depends(get_state)]) -> ApiMetrics:
    return state.metrics


StateDep = Annotated[AppState, Depends(get_state)]
StoreDep = Annotated[Store, Depends(get_store)]
PointerDep = Annotated[LivePointer, Depends(get_pointer)]
AssignmentDep = Annotated[Assignment, Depends(get_assignment)]
SinkDep = Annotated[Sink, Depends(get_sink)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
