"""Query and path parameters shared by the routers, declared once so ``/docs`` shows the same rules everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from ecomrec_spark.identifiers import SERVE_MODELS
from ecomrec_spark.serving.lookup import CUSTOMER_ID_RULE, PRODUCT_ID_RULE
from ecomrec_spark.serving.models import CUSTOMER_ID_REGEX, PRODUCT_ID_REGEX

CustomerId = Annotated[str, Path(pattern=CUSTOMER_ID_REGEX, description=f"customer id: {CUSTOMER_ID_RULE}")]
ProductId = Annotated[str, Path(pattern=PRODUCT_ID_REGEX, description=f"product id: {PRODUCT_ID_RULE}")]
K = Annotated[int | None, Query(ge=1, le=100, description="list length: 1 to min(100, the published k); default 10")]
Model = Annotated[str | None, Query(min_length=1, max_length=32, description=(
    "the model whose list to return, overriding the A/B variant (variant is then 'override'); "
    f"one of the live version's models ({', '.join(SERVE_MODELS)})"))]
Category = Annotated[str | None, Query(min_length=1, max_length=128, description="only products of this category")]
Region = Annotated[str | None, Query(min_length=1, max_length=128, description=(
    "the customer's region (e.g. a state): an unknown customer gets that region's popular list"))]
