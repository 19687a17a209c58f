"""Resolve the ``generate`` settings into a frozen plan of sizes and driver-side tables.

Everything here is plain Python and runs before any Spark job: entity counts,
the per-category product blocks, the zip-prefix universe per city, the
order-to-day layout and the affine permutation that spreads first-time and
returning customers' orders over time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ecomrec_spark.generate.calendar import Layout, order_layout
from ecomrec_spark.generate.settings import Generate
from ecomrec_spark.generate.tables import CATEGORIES, CITIES, N_CATEGORIES

log = logging.getLogger(__name__)

MIN_PRODUCTS_PER_CATEGORY = 3  # one per price tier
ORDERS_PER_PARTITION = 200_000
MAX_CHUNK = 100_000


@dataclass(frozen=True)
class Plan:
    """All sizes and small tables one generator run needs.

    Attributes
    ----------
    settings : the settings with every default filled in and derived counts resolved.
    seed, n_orders, n_customers, n_products, n_sellers : sizes (``n_customers`` counts
        distinct ``customer_unique_id``).
    cat_count, cat_start : products per category and the first product slot of each.
    zip_count, zip_stride : zip prefixes per city (``zip = zip_lo + stride * j``).
    perm_a, perm_b, perm_a_inv : ``q = (a*o + b) mod N``; order ``o`` is the first order
        of customer ``q`` when ``q < n_customers``, and customer ``c``'s first order is
        ``(a_inv * (c - b)) mod N``.
    layout : the order-to-day layout.
    partitions : number of Spark partitions for order-level data.
    """

    settings: dict[str, Any]
    seed: int
    n_orders: int
    n_customers: int
    n_products: int
    n_sellers: int
    start: dt.date
    end: dt.date
    repeat_rate: float
    complement_rate: float
    events_per_order: float
    messy: dict[str, float]
    cat_count: tuple[int, ...]
    cat_start: tuple[int, ...]
    zip_count: tuple[int, ...]
    zip_stride: tuple[int, ...]
    perm_a: int
    perm_b: int
    perm_a_inv: int
    layout: Layout = field(repr=False)
    partitions: int


def _allocate(total: int, weights: list[float], minimum: int) -> list[int]:
    """Largest-remainder split of ``total`` by ``weights`` with a floor per item."""
    n = len(weights)
    rest = total - minimum * n
    wsum = sum(weights)
    raw = [rest * w / wsum for w in weights]
    out = [minimum + int(math.floor(r)) for r in raw]
    order = sorted(range(n), key=lambda i: (-(raw[i] - math.floor(raw[i])), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def _coprime_near(n: int, target: int) -> int:
    if n <= 1:
        return 1
    a = max(1, min(n - 1, target))
    while math.gcd(a, n) != 1:
        a += 1
        if a >= n:
            a = 1
    return a


def resolve_settings(settings: Generate | Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``generate`` section with every default filled in and ``n_customers``/``n_products``/``n_sellers`` derived.

    A mapping is validated by :class:`~ecomrec_spark.generate.settings.Generate` (the one set of rules ``load_config``
    applies too); the result is plain JSON values, as ``_truth/summary.json`` records them.

    Raises
    ------
    ConfigError
        On a bad count, rate or date, naming the ``generate.*`` key and the fix.
    """
    s = Generate.resolve(settings).model_dump(mode="json")
    n, rr = s["orders"], float(s["repeat_rate"])
    if s["n_customers"] is None:
        s["n_customers"] = int(round(n * (1.0 - rr)))
    if s["n_products"] is None:
        s["n_products"] = max(50, n // 6)
    if s["n_sellers"] is None:
        s["n_sellers"] = max(10, s["n_products"] // 10)
    s["n_customers"] = max(1, min(int(s["n_customers"]), n))
    s["n_products"] = max(int(s["n_products"]), MIN_PRODUCTS_PER_CATEGORY * N_CATEGORIES)
    s["n_sellers"] = max(1, int(s["n_sellers"]))
    return s


def build_plan(settings: Generate | Mapping[str, Any] | None) -> Plan:
    """Resolve ``settings`` and compute every driver-side table of the run."""
    s = resolve_settings(settings)
    n, seed = s["orders"], int(s["seed"])
    start, end = dt.date.fromisoformat(s["start_date"]), dt.date.fromisoformat(s["end_date"])
    parts = s["partitions"] or max(2, math.ceil(n / ORDERS_PER_PARTITION))
    max_chunk = max(1, min(MAX_CHUNK, math.ceil(n / parts)))
    layout = order_layout(n, start, end, seed, max_chunk)
    cat_count = _allocate(s["n_products"], [c.weight for c in CATEGORIES], MIN_PRODUCTS_PER_CATEGORY)
    cat_start = [0]
    for c in cat_count[:-1]:
        cat_start.append(cat_start[-1] + c)
    # zip universe: about one zip prefix per five customers, spread by city share
    n_zips = max(len(CITIES), min(20000, (s["n_customers"] + s["n_sellers"]) // 5))
    wmix = [0.8 * c.customer_weight + 0.2 * c.seller_weight for c in CITIES]
    wsum = sum(wmix)
    zip_count, zip_stride = [], []
    for city, w in zip(CITIES, wmix, strict=True):
        room = city.zip_hi - city.zip_lo + 1
        nz = max(1, min(room, int(round(n_zips * w / wsum))))
        zip_count.append(nz)
        zip_stride.append(max(1, room // nz))
    a = _coprime_near(n, int(n * 0.6180339887))
    b = int(hashlib.sha256(f"{seed}:perm".encode()).hexdigest()[:15], 16) % n
    a_inv = pow(a, -1, n) if n > 1 else 0
    if s["n_customers"] < n * (1 - s["repeat_rate"]) - 0.5 or s["n_customers"] > n * (1 - s["repeat_rate"]) + 0.5:
        log.info("n_customers=%d: %.1f%% of orders come from returning customers (repeat_rate %.3f is not used)",
                 s["n_customers"], 100.0 * (n - s["n_customers"]) / n, s["repeat_rate"])
    return Plan(
        settings=s, seed=seed, n_orders=n, n_customers=s["n_customers"], n_products=s["n_products"],
        n_sellers=s["n_sellers"], start=start, end=end, repeat_rate=float(s["repeat_rate"]),
        complement_rate=float(s["complement_rate"]), events_per_order=float(s["events_per_order"]),
        messy={k: float(v) for k, v in s["messy"].items()}, cat_count=tuple(cat_count), cat_start=tuple(cat_start),
        zip_count=tuple(zip_count), zip_stride=tuple(zip_stride), perm_a=a, perm_b=b, perm_a_inv=a_inv,
        layout=layout, partitions=int(parts),
    )
