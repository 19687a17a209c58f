"""``/v1/products``: similar items, what is bought together, and the predicted review score."""

from __future__ import annotations

from fastapi import APIRouter

from ecomrec_spark.serving import lookup
from ecomrec_spark.serving.deps import PointerDep
from ecomrec_spark.serving.models import ErrorBody, ProductList, ReviewScore, TogetherList
from ecomrec_spark.serving.routes.params import K, ProductId

router = APIRouter(prefix="/v1/products", tags=["products"],
                   responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}})


@router.get("/{product_id}/similar", response_model=ProductList)
def similar(product_id: ProductId, pointer: PointerDep, k: K = None) -> ProductList:
    """The products most like this one."""
    return lookup.similar(pointer.current(), product_id, k)


@router.get("/{product_id}/bought-together", response_model=TogetherList)
def bought_together(product_id: ProductId, pointer: PointerDep, k: K = None) -> TogetherList:
    """Products bought with this one, from the association rules (by lift, then confidence)."""
    return lookup.together(pointer.current(), product_id, k)


@router.get("/{product_id}/review-score", response_model=ReviewScore)
def review_score(product_id: ProductId, pointer: PointerDep) -> ReviewScore:
    """The product's predicted review score and P(satisfied), with its category and price."""
    return lookup.review_score(pointer.current(), product_id)
