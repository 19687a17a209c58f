"""What each endpoint answers, as plain functions of a :class:`~.live.Live` snapshot (no HTTP here).

Why apart from the routes: the JSON endpoints and the HTML page give the same answers, and a
test can call these directly.  Input problems raise :class:`ApiError` with the status the
client should get (422 bad input, 404 unknown product); store problems raise
:class:`~.store.StoreUnavailable` (503).  The rules:

* ``k`` is in [1, min(100, the version's k)]; the default is 10 (or the version's k if smaller);
* an unknown customer gets a popularity list and ``fallback: true``: the region's list when
  ``region`` is given and published, else the category's when ``category`` is given, else the
  overall one; ``category`` then also filters it;
* a known customer gets the list of ``model=`` (variant ``override``) or of their A/B variant's
  model; if the customer has no list of that model (a model not built for everyone), the
  version's default model's list; ``category`` filters the list, ``region`` plays no part;
* ranks are renumbered 1..n in the order returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecomrec_spark.identifiers import CUSTOMER_ID_PATTERN, PRODUCT_ID_PATTERN
from ecomrec_spark.serving import keys
from ecomrec_spark.serving.live import Live
from ecomrec_spark.serving.models import (
    Item,
    ItemList,
    PopularList,
    ProductList,
    Recommendations,
    ReviewScore,
    TogetherItem,
    TogetherList,
)
from ecomrec_spark.serving.variants import OVERRIDE, Variant, assign, resolve_model

DEFAULT_K = 10
MAX_K = 100
POPULAR, TRENDING = "popular", "trending"
CUSTOMER_ID_RULE = "1-64 letters, digits, '_', '-', '.' or ':'"
PRODUCT_ID_RULE = "1-64 letters, digits, '_', '-' or '.'"


class ApiError(Exception):
    """A client error with its HTTP status, a short ``error`` and a ``detail`` for the JSON body."""

    def __init__(self, status: int, error: str, detail: Any = None):
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


@dataclass(frozen=True)
class Assignment:
    """How the API picks a customer's list: the A/B variants and their salt."""

    variants: tuple[Variant, ...] = ()
    salt: str = ""


def check_customer_id(customer_id: str) -> str:
    if not isinstance(customer_id, str) or not CUSTOMER_ID_PATTERN.fullmatch(customer_id):
        raise ApiError(422, "invalid customer_id", f"customer_id must be {CUSTOMER_ID_RULE}, got {customer_id!r}")
    return customer_id


def check_product_id(product_id: str) -> str:
    if not isinstance(product_id, str) or not PRODUCT_ID_PATTERN.fullmatch(product_id):
        raise ApiError(422, "invalid product_id", f"product_id must be {PRODUCT_ID_RULE}, got {product_id!r}")
    return product_id


def max_k(live: Live) -> int:
    return max(1, min(MAX_K, live.k))


def check_k(live: Live, k: int | None) -> int:
    """``k`` or the default, checked against [1, min(100, the version's k)]."""
    top = max_k(live)
    if k is None:
        return min(DEFAULT_K, top)
    if not 1 <= k <= top:
        raise ApiError(422, "k out of range",
                       f"k must be in [1, {top}] (version {live.version} keeps {live.k} items per list), got {k}")
    return k


def check_model(live: Live, model: str | None) -> str | None:
    if model is not None and model not in live.models:
        raise ApiError(422, "unknown model",
                       f"model {model!r} is not served by version {live.version}; choose from {', '.join(live.models)}")
    return model


def to_items(rows: Iterable[Mapping[str, Any]], k: int, category: str | None = None,
             cls: type[Item] = Item) -> list[Any]:
    """The first ``k`` rows (of ``category`` when given) as items ranked 1..n."""
    out: list[Any] = []
    for row in rows:
        if category is not None and row.get("category") != category:
            continue
        out.append(cls.model_validate({**row, "rank": len(out) + 1}))
        if len(out) == k:
            break
    return out


def popularity_list(live: Live, category: str | None, region: str | None) -> tuple[str, Sequence[Mapping[str, Any]]]:
    """The fallback list and its label: the region's, else the category's, else the overall one."""
    candidates = []
    if region is not None:
        candidates.append((f"region:{region}", keys.popular("region", region)))
    if category is not None:
        candidates.append((f"category:{category}", keys.popular("category", category)))
    candidates.append((keys.OVERALL, keys.popular()))
    for label, key in candidates:
        doc = live.get(key)
        if doc is not None:
            return label, doc.get("items") or []
    return keys.OVERALL, []


def recommendations(live: Live, assignment: Assignment, customer_id: str, k: int | None = None,
                    model: str | None = None, category: str | None = None,
                    region: str | None = None) -> Recommendations:
    """A customer's list (see the module notes for the rules)."""
    check_customer_id(customer_id)
    k, model = check_k(live, k), check_model(live, model)
    variant_name: str | None
    if model is not None:
        wanted, variant_name = model, OVERRIDE
    else:
        variant = assign(customer_id, assignment.variants, assignment.salt)
        wanted, variant_name = resolve_model(variant, live.default_model), (variant.name if variant else None)
    for served in dict.fromkeys((wanted, live.default_model)):  # one read when the two are the same model
        doc = live.get(keys.customer(customer_id, served))
        if doc is not None:
            return Recommendations(version=live.version, model=served, variant=variant_name, k=k,
                                   items=to_items(doc.get("items") or [], k, category), customer_id=customer_id,
                                   category=category, region=region)
    label, rows = popularity_list(live, category, region)
    return Recommendations(version=live.version, model=POPULAR, variant=variant_name, k=k,
                           items=to_items(rows, k, category), customer_id=customer_id, fallback=True,
                           fallback_list=label, category=category, region=region)


def every_list(live: Live, customer_id: str, k: int | None = None) -> tuple[bool, list[tuple[str, list[Item]]]]:
    """The page's view: ``(known, [(model, items), ...])`` for every served model the customer has a list of;
    an unknown customer gets ``(False, [("popular", overall list)])``."""
    check_customer_id(customer_id)
    k = check_k(live, k)
    docs = ((m, live.get(keys.customer(customer_id, m))) for m in live.models)
    shown = [(m, to_items(doc.get("items") or [], k)) for m, doc in docs if doc is not None]
    if shown:
        return True, shown
    return False, [(POPULAR, to_items(popularity_list(live, None, None)[1], k))]


def popular(live: Live, k: int | None = None, category: str | None = None, region: str | None = None) -> PopularList:
    """``popular#region#<r>`` (filtered to ``category`` when both are given), ``popular#category#<c>`` or overall."""
    k = check_k(live, k)
    if region is not None:
        key, what = keys.popular("region", region), f"region {region!r}"
    elif category is not None:
        key, what = keys.popular("category", category), f"category {category!r}"
    else:
        key, what = keys.popular(), "overall"
    doc = live.get(key)
    if doc is None:
        raise ApiError(404, "no such list", f"version {live.version} has no popular list for {what}")
    return PopularList(version=live.version, model=POPULAR, k=k, category=category, region=region,
                       items=to_items(doc.get("items") or [], k, category if region is not None else None))


def trending(live: Live, k: int | None = None) -> ItemList:
    k = check_k(live, k)
    doc = live.get(keys.trending()) or {}
    return ItemList(version=live.version, model=TRENDING, k=k, items=to_items(doc.get("items") or [], k))


def product_doc(live: Live, product_id: str) -> Mapping[str, Any]:
    """The product's document, or 404."""
    check_product_id(product_id)
    doc = live.get(keys.product(product_id))
    if doc is None:
        raise ApiError(404, "unknown product", f"product {product_id!r} is not in serving version {live.version}")
    return doc


def similar(live: Live, product_id: str, k: int | None = None) -> ProductList:
    k = check_k(live, k)
    doc = product_doc(live, product_id)
    return ProductList(version=live.version, product_id=product_id, k=k, items=to_items(doc.get("similar") or [], k))


def together(live: Live, product_id: str, k: int | None = None) -> TogetherList:
    k = check_k(live, k)
    doc = product_doc(live, product_id)
    return TogetherList(version=live.version, product_id=product_id, k=k,
                        items=to_items(doc.get("together") or [], k, cls=TogetherItem))


def review_score(live: Live, product_id: str) -> ReviewScore:
    p = product_doc(live, product_id).get("product") or {}
    return ReviewScore(version=live.version, model=live.info.get("review_model_version"), product_id=product_id,
                       name=p.get("name"), description=p.get("description"), category=p.get("category"),
                       price=p.get("price"), review_score=p.get("review_score"), p_satisfied=p.get("p_satisfied"))
