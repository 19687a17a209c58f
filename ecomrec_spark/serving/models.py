"""The API's response shapes, as pydantic models, so ``/docs`` shows exactly what a client gets.

Every JSON body names the serving ``version`` it was read from, the ``model`` whose list it is
and the A/B ``variant`` (``null`` where not applicable), so a client can log what it showed and
send it back with ``POST /v1/events``.  Errors share one shape, ``{"error", "detail"}``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ecomrec_spark.identifiers import CUSTOMER_ID_PATTERN, PRODUCT_ID_PATTERN
from ecomrec_spark.serving.events import EVENT_TYPES


def anchored(pattern: re.Pattern[str]) -> str:
    """A whole-value regex for OpenAPI and pydantic (which search) from a rule used with ``fullmatch``."""
    return "^(?:" + pattern.pattern.removeprefix("^").removesuffix("$") + ")$"


CUSTOMER_ID_REGEX = anchored(CUSTOMER_ID_PATTERN)
PRODUCT_ID_REGEX = anchored(PRODUCT_ID_PATTERN)


class Item(BaseModel):
    """One product in a list (as publish wrote it; ``rank`` is its 1-based place in this response)."""

    model_config = ConfigDict(extra="ignore")

    product_id: str
    rank: int
    score: float | None = None
    reason: str | None = None
    category: str | None = None
    price: float | None = None
    review_score: float | None = Field(default=None, description="predicted review score (1-5)")
    p_satisfied: float | None = Field(default=None, description="predicted probability of a review score >= 4")


class TogetherItem(Item):
    """A bought-together product with its association rule's strength."""

    lift: float | None = None
    confidence: float | None = None


class Served(BaseModel):
    """What every response names."""

    version: str | None = Field(default=None, description="the serving version the answer was read from")
    model: str | None = Field(default=None, description="the model whose list this is")
    variant: str | None = Field(default=None, description="the customer's A/B variant, 'override' when model= chose")


class ItemList(Served):
    """A list that needs no customer (``/v1/trending``)."""

    k: int
    items: list[Item]


class Recommendations(Served):
    customer_id: str
    fallback: bool = Field(default=False, description="true: an unknown customer got a popularity list")
    fallback_list: str | None = Field(default=None, description="which popularity list: overall, region:<r> or category:<c>")
    category: str | None = None
    region: str | None = None
    k: int
    items: list[Item]


class PopularList(Served):
    category: str | None = None
    region: str | None = None
    k: int
    items: list[Item]


class ProductList(Served):
    product_id: str
    k: int
    items: list[Item]


class TogetherList(Served):
    product_id: str
    k: int
    items: list[TogetherItem]


class ReviewScore(Served):
    """``model`` names the review model's version that predicted the score, where the version records it."""

    product_id: str
    name: str | None = None
    description: str | None = None
    category: str | None = None
    price: float | None = None
    review_score: float | None = Field(default=None, description="predicted review score (1-5)")
    p_satisfied: float | None = Field(default=None, description="predicted probability of a review score >= 4")


class VariantInfo(BaseModel):
    name: str
    model: str = Field(description="the model the variant serves in the live version")
    weight: float


class Health(Served):
    status: str = "ok"
    store: str
    published_at: str | None = None
    default_model: str | None = None
    models: list[str] = []
    variants: list[VariantInfo] = []


class EventIn(BaseModel):
    """One feedback event (the request schema ``/docs`` shows; the handler checks the batch itself)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "customer_id": "C1", "product_id": "P1", "event_type": "click", "timestamp": "2026-12-05T03:20:00Z",
        "variant": "control", "version": "20261205T031500Z-1a2b3c"}})

    customer_id: str = Field(pattern=CUSTOMER_ID_REGEX)
    product_id: str = Field(pattern=PRODUCT_ID_REGEX)
    event_type: str = Field(json_schema_extra={"enum": list(EVENT_TYPES)})
    timestamp: str = Field(description="ISO-8601; no zone means UTC")
    variant: str | None = None
    version: str | None = None


class EventsAccepted(Served):
    accepted: int
    batch_id: str
    file: str | None = Field(default=None, description="the JSON Lines file written (local paths.raw)")
    object: str | None = Field(default=None, description="the S3 object written (paths.raw on S3)")


class ErrorBody(BaseModel):
    """Every error: a short ``error`` and a ``detail`` (a message, or the list of problems)."""

    error: str
    detail: Any = None
