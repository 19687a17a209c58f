"""``/v1/popular`` and ``/v1/trending``: the lists that need no customer."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ecomrec_spark.serving import lookup
from ecomrec_spark.serving.deps import PointerDep
from ecomrec_spark.serving.models import ErrorBody, ItemList, PopularList
from ecomrec_spark.serving.routes import answer
from ecomrec_spark.serving.routes.params import Category, K, Region

router = APIRouter(prefix="/v1", tags=["lists"],
                   responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}})


@router.get("/popular", response_model=PopularList)
async def popular(pointer: PointerDep, k: K = None, category: Category = None, region: Region = None) -> Response:
    """The most popular products: overall, in a category, or in a region (and category)."""
    return await answer(pointer, lambda live: lookup.popular(live, k, category, region))


@router.get("/trending", response_model=ItemList)
async def trending(pointer: PointerDep, k: K = None) -> Response:
    """Products whose popularity is rising."""
    return await answer(pointer, lambda live: lookup.trending(live, k))
