"""Customer-product interactions from any source: purchases, clickstream events and review scores.

One row per ``(customer_id, product_id)`` with a positive ``weight`` that every
recommender reads (ALS's implicit confidence, the customer vectors' recency
weights, FPGrowth's baskets come from the purchases themselves):

- a purchase adds ``purchase_weight x min(quantity, max_quantity) x decay``;
- an event adds ``event_weights[event_type] x decay`` (view < cart < purchase);
  an event's ``user_id`` is the customer id (the generated data and shops that
  log their own customer ids) -- events of users who never bought stay
  interactions of that id;
- a review adds ``review_weight x (score - 3) x decay``: a 1-star review takes
  weight away from the purchase, a 5-star review adds to it.  A review with an
  ``order_id`` (Olist) applies to every product of that order; one without
  (Amazon) applies to its own ``customer_id, product_id``.  A review alone is
  not an interaction: the pair needs a purchase or an event too (for Amazon
  the purchase is the review's own line, :mod:`.sources`);

with ``decay = 0.5 ** (age_days / half_life_days)``, age counted back from
``as_of`` (the data's last timestamp unless given, so a re-run on the same data
gives the same weights).  The sum is floored at ``min_weight``: a bought item
that was hated is still a (weak) positive for implicit ALS, never negative.

Ids stay the shop's own strings; :mod:`ecomrec_spark.recommend.ids` maps them
to ALS's ints inside :func:`ecomrec_spark.recommend.als.fit_als`.

Example
-------
>>> inter = build_interactions(lines, events, reviews, half_life_days=180)       # doctest: +SKIP
>>> inter.columns                                                                 # doctest: +SKIP
['customer_id', 'product_id', 'weight', 'n_purchases', 'n_events', 'last_ts']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecomrec_spark import columns as C

TS = "ts"
WEIGHT = "weight"
EVENT_WEIGHTS = {"view": 0.5, "click": 0.5, "cart": 1.5, "purchase": 3.0}  # click: an API click on a served list
INTERACTION_COLUMNS = [C.CUSTOMER_ID, C.PRODUCT_ID, WEIGHT, "n_purchases", "n_events", "last_ts"]


def purchases(lines: DataFrame) -> DataFrame:
    """``customer_id, product_id, order_id, ts, quantity, category, price, region`` of order lines with a customer.

    Canceled and unavailable orders are not purchases.
    """
    status = F.lower(F.coalesce(F.col(C.ORDER_STATUS), F.lit("")))
    cols = {c: (F.col(c) if c in lines.columns else F.lit(None).cast("string")) for c in (C.CATEGORY, C.REGION)}
    return (lines.where(F.col(C.CUSTOMER_ID).isNotNull() & F.col(C.PRODUCT_ID).isNotNull()
                        & ~status.isin("canceled", "unavailable"))
            .select(C.CUSTOMER_ID, C.PRODUCT_ID, C.ORDER_ID, F.col(C.ORDER_TS).alias(TS),
                    F.coalesce(F.col(C.QUANTITY), F.lit(1)).cast("double").alias(C.QUANTITY),
                    cols[C.CATEGORY].alias(C.CATEGORY), F.col(C.PRICE).cast("double").alias(C.PRICE),
                    cols[C.REGION].alias(C.REGION)))


def _decay(ts: Column, as_of: Column, half_life_days: float) -> Column:
    age_days = F.greatest(F.lit(0.0), (F.unix_timestamp(as_of) - F.unix_timestamp(ts)).cast("double") / F.lit(86400.0))
    return F.pow(F.lit(0.5), age_days / F.lit(float(half_life_days)))


def build_interactions(lines: DataFrame, events: DataFrame | None = None, reviews: DataFrame | None = None, *,
                       as_of: dt.datetime | str | None = None, half_life_days: float = 180.0,
                       purchase_weight: float = 3.0, max_quantity: float = 10.0,
                       event_weights: Mapping[str, float] | None = None, review_weight: float = 0.5,
                       min_weight: float = 0.05) -> DataFrame:
    """Weighted interactions from order lines and, when given, events and reviews.

    Parameters
    ----------
    lines : DataFrame
        Silver/gold order lines (canonical columns).
    events : DataFrame, optional
        Silver events: ``user_id, product_id, event_type, event_ts``.
    reviews : DataFrame, optional
        Silver reviews: ``order_id`` (or ``product_id`` + ``customer_id``), ``review_score``, ``review_ts``.
    as_of : datetime or str, optional
        The reference time of the recency decay; default the latest purchase.
    half_life_days, purchase_weight, max_quantity, event_weights, review_weight, min_weight
        The weighting (module docstring).  Quantity is capped so one bulk order
        does not drown a customer's other purchases.

    Returns
    -------
    DataFrame
        ``customer_id, product_id, weight, n_purchases, n_events, last_ts``; only
        time before ``as_of`` counts.
    """
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}; use e.g. 180")
    weights = dict(EVENT_WEIGHTS if event_weights is None else event_weights)
    bought = purchases(lines)
    ref = (bought.agg(F.max(TS).alias("_as_of")) if as_of is None
           else bought.sparkSession.range(1).select(F.lit(as_of).cast("timestamp").alias("_as_of")))
    parts = [bought.select(C.CUSTOMER_ID, C.PRODUCT_ID, TS,
                           (F.lit(purchase_weight) * F.least(F.col(C.QUANTITY), F.lit(max_quantity))).alias("_w"),
                           F.lit(1).alias("_p"), F.lit(0).alias("_e"))]
    if events is not None:
        w = F.lit(None).cast("double")
        for kind, value in weights.items():
            w = F.when(F.lower(F.col(C.EVENT_TYPE)) == F.lit(kind), F.lit(float(value))).otherwise(w)
        parts.append(events.where(F.col(C.USER_ID).isNotNull() & F.col(C.PRODUCT_ID).isNotNull())
                     .select(F.col(C.USER_ID).cast("string").alias(C.CUSTOMER_ID),
                             F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID),
                             F.col(C.EVENT_TS).alias(TS), w.alias("_w"), F.lit(0).alias("_p"), F.lit(1).alias("_e"))
                     .where(F.col("_w").isNotNull()))
    if reviews is not None and review_weight:
        per_line = bought.select(C.ORDER_ID, C.CUSTOMER_ID, C.PRODUCT_ID).distinct()
        scored = reviews.where(F.col(C.REVIEW_SCORE).isNotNull())
        has_order = F.col(C.ORDER_ID).isNotNull() if C.ORDER_ID in reviews.columns else F.lit(False)
        # a review with an order id (Olist) reaches every product of that order ...
        keyed = scored.where(has_order).select(C.ORDER_ID, C.REVIEW_SCORE, C.REVIEW_TS).join(per_line, C.ORDER_ID)
        # ... one without (Amazon) names its customer and product itself; never both, so no review counts twice
        if {C.CUSTOMER_ID, C.PRODUCT_ID} <= set(reviews.columns):
            direct = scored.where(~has_order & F.col(C.CUSTOMER_ID).isNotNull() & F.col(C.PRODUCT_ID).isNotNull())
            keyed = keyed.select(C.CUSTOMER_ID, C.PRODUCT_ID, C.REVIEW_SCORE, C.REVIEW_TS).unionByName(
                direct.select(F.col(C.CUSTOMER_ID).cast("string").alias(C.CUSTOMER_ID),
                              F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID), C.REVIEW_SCORE, C.REVIEW_TS))
        parts.append(keyed.select(C.CUSTOMER_ID, C.PRODUCT_ID, F.col(C.REVIEW_TS).alias(TS),
                                  (F.lit(review_weight) * (F.col(C.REVIEW_SCORE).cast("double") - F.lit(3.0))).alias("_w"),
                                  F.lit(0).alias("_p"), F.lit(0).alias("_e")))
    allp = parts[0]
    for p in parts[1:]:
        allp = allp.unionByName(p)
    allp = allp.crossJoin(F.broadcast(ref)).where(F.col(TS).isNotNull() & (F.col(TS) <= F.col("_as_of")))
    decayed = F.col("_w") * _decay(F.col(TS), F.col("_as_of"), half_life_days)
    agg = allp.groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(
        F.sum(decayed).alias(WEIGHT), F.sum("_p").cast("int").alias("n_purchases"),
        F.sum("_e").cast("int").alias("n_events"), F.max(TS).alias("last_ts"))
    # a row made only of reviews (a review without a kept purchase) is not an interaction
    agg = agg.where((F.col("n_purchases") > 0) | (F.col("n_events") > 0))
    return agg.withColumn(WEIGHT, F.greatest(F.col(WEIGHT), F.lit(float(min_weight)))).select(*INTERACTION_COLUMNS)
