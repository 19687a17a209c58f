"""``/v1/customers``: a customer's recommendations (their A/B variant's model, or the popularity fallback)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ecomrec_spark.serving import lookup
from ecomrec_spark.serving.deps import AssignmentDep, MetricsDep, PointerDep
from ecomrec_spark.serving.live import Live
from ecomrec_spark.serving.models import ErrorBody, Recommendations
from ecomrec_spark.serving.routes import answer
from ecomrec_spark.serving.routes.params import Category, CustomerId, K, Model, Region

router = APIRouter(prefix="/v1/customers", tags=["customers"],
                   responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}})


@router.get("/{customer_id}/recommendations", response_model=Recommendations)
async def recommendations(customer_id: CustomerId, pointer: PointerDep, assignment: AssignmentDep,
                          metrics: MetricsDep, k: K = None, model: Model = None, category: Category = None,
                          region: Region = None) -> Response:
    """The customer's top k, with each product's category, price, predicted review score and reason.

    A customer the shop has never seen gets the popularity list (the region's when ``region`` is
    given) and ``"fallback": true``."""

    def find(live: Live) -> Recommendations:
        out = lookup.recommendations(live, assignment, customer_id, k, model, category, region)
        if out.fallback:
            metrics.fallbacks.inc()
        return out

    return await answer(pointer, find)
