"""``/v1/products``: similar items, what is bought together, and the predicted review score."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ecomrec_spark.serving import lookup
from ecomrec_spark.serving.deps import PointerDep
from ecomrec_spark.serving.models import ErrorBody, ProductList, ReviewScore, TogetherList
from ecomrec_spark.serving.routes import answer
from ecomrec_spark.serving.routes.params import K, ProductId

router = APIRouter(prefix="/v1/products", tags=["products"],
                   responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}})


@router.get("/{product_id}/similar", response_model=ProductList)
async def similar(product_id: ProductId, pointer: PointerDep, k: K = None) -> Response:
    """The products most like this one."""
    return await answer(pointer, lambda live: lookup.similar(live, product_id, k))


@router.get("/{product_id}/bought-together", response_model=TogetherList)
async def bought_together(product_id: ProductId, pointer: PointerDep, k: K = None) -> Response:
    """Products bought with this one, from the association rules (by lift, then confidence)."""
    return await answer(pointer, lambda live: lookup.together(live, product_id, k))


@router.get("/{product_id}/review-score", response_model=ReviewScore)
async def review_score(product_id: ProductId, pointer: PointerDep) -> Response:
    """The product's predicted review score and P(satisfied), with its category and price."""
    return await answer(pointer, lambda live: lookup.review_score(live, product_id))
