"""``/healthz`` and ``/metrics``: what a load balancer and Prometheus poll."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from ecomrec_spark.serving.deps import AssignmentDep, MetricsDep, PointerDep, StoreDep
from ecomrec_spark.serving.models import ErrorBody, Health, VariantInfo
from ecomrec_spark.serving.variants import resolve_model

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses={503: {"model": ErrorBody}})
def healthz(store: StoreDep, pointer: PointerDep, assignment: AssignmentDep) -> Health:
    """200 when the store is reachable and has a live version (named in the answer); 503 otherwise."""
    store.ping()  # every time: a cached pointer must not hide a store that went away
    live = pointer.current()
    variants = [VariantInfo(name=v.name, model=resolve_model(v, live.default_model), weight=v.weight)
                for v in assignment.variants]
    return Health(version=live.version, model=live.default_model, store=store.description,
                  published_at=live.published_at, default_model=live.default_model, models=list(live.models),
                  variants=variants)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text: requests and latency per route template, fallbacks, events, the live version."""
    body = await run_in_threadpool(metrics.render)
    return Response(content=body, media_type=metrics.content_type)
