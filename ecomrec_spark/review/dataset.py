"""Training rows for the review model: one row per order, leak-free history features, a time split.

Every function is a pure ``DataFrame -> DataFrame`` transform; nothing here
collects rows to the driver.

Leakage rules
-------------
- No review text and no review dates are features (``FEATURES`` lists every
  column the model sees; ``LEAKY_COLUMNS`` names what must never be in it).
- Seller, product and customer history features of an order placed at ``t``
  use only reviews with ``review_ts < t``: review events and order events are
  unioned per key, sorted by ``(ts, order-events-first)``, and summed over
  ``rowsBetween(unboundedPreceding, -1)``, so a review at ``t`` or later never
  reaches the order.

Example
-------
>>> rows = build_dataset(spark.read.format("delta").load(f"{lake}/gold/order_features"),
...                      spark.read.format("delta").load(f"{lake}/silver/reviews"))  # doctest: +SKIP
>>> time_split(labelled(rows), 0.7, 0.15).groupBy("split").count().show()         # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C

LABEL_SCORE = "label_score"  # review_score - 1, in 0..4 (double, as MLlib wants)
LABEL_SATISFIED = "label_satisfied"  # 1.0 when review_score >= 4
TARGET_LABELS = {"score": LABEL_SCORE, "satisfied": LABEL_SATISFIED}
TARGET_CLASSES = {"score": 5, "satisfied": 2}
SPLIT = "split"
IS_VALIDATION = "is_validation"
WEIGHT = "class_weight"

CATEGORICAL = [C.CATEGORY, C.ORDER_STATUS]
HISTORY = [f"{who}_{what}" for who in ("seller", "product", "customer") for what in ("n_reviews", "mean_score", "late_rate")]
BASE_FEATURES = [
    "n_lines", "n_products", "n_sellers", "order_value", "total_price", "total_freight", "freight_share",
    "max_price_freight_ratio", "is_delivered", "delivery_delay_days", "is_late", "late_days", "early_days",
    "approval_hours", "carrier_days", "delivery_days", "estimated_days", "purchase_month", "purchase_weekday",
    "purchase_hour", "is_holiday_season", "popularity_index",
]
FEATURES = BASE_FEATURES + HISTORY  # numeric model inputs; CATEGORICAL are indexed by the pipeline
LEAKY_COLUMNS = (C.REVIEW_SCORE, C.REVIEW_TS, "answer_ts", "title", "text", C.REVIEW_ID, LABEL_SCORE, LABEL_SATISFIED)

# Priors that smooth a history mean towards a fixed value while a key has few earlier reviews.
PRIOR_SCORE = 4.0
PRIOR_LATE = 0.08


def _flag(c: str) -> Column:
    return F.coalesce(F.col(c).cast("int"), F.lit(0))


def order_rows(order_features: DataFrame) -> DataFrame:
    """Aggregate the gold order lines to one row per order (features known at delivery + labels).

    Returns ``order_id, customer_id, order_ts, category, order_status``, every
    name in ``BASE_FEATURES`` (nulls filled with 0; ``is_delivered`` tells an
    undelivered order apart) and the labels (null when the order has no review).
    """
    first_line = F.struct(C.LINE_ID, C.CATEGORY, C.ORDER_STATUS)  # the first line decides the category
    agg = order_features.groupBy(C.ORDER_ID).agg(
        F.min(C.CUSTOMER_ID).alias(C.CUSTOMER_ID),
        F.min(C.ORDER_TS).alias(C.ORDER_TS),
        F.min(first_line).alias("_first"),
        F.count(F.lit(1)).alias("n_lines"),
        F.countDistinct(C.PRODUCT_ID).alias("n_products"),
        F.countDistinct(C.SELLER_ID).alias("n_sellers"),
        F.max("order_value").alias("order_value"),
        F.sum(F.col(C.PRICE) * F.coalesce(F.col(C.QUANTITY), F.lit(1))).alias("total_price"),
        F.sum(F.coalesce(F.col(C.FREIGHT), F.lit(0.0))).alias("total_freight"),
        F.max("price_freight_ratio").alias("max_price_freight_ratio"),
        F.max(F.col(C.DELIVERED_TS).isNotNull().cast("int")).alias("is_delivered"),
        F.max("delivery_delay_days").alias("delivery_delay_days"),
        F.max(_flag("is_late")).alias("is_late"),
        F.max("approval_hours").alias("approval_hours"),
        F.max("carrier_days").alias("carrier_days"),
        F.max("delivery_days").alias("delivery_days"),
        F.max("estimated_days").alias("estimated_days"),
        F.min("purchase_month").alias("purchase_month"),
        F.min("purchase_weekday").alias("purchase_weekday"),
        F.min("purchase_hour").alias("purchase_hour"),
        F.max(_flag("is_holiday_season")).alias("is_holiday_season"),
        F.avg("popularity_index").alias("popularity_index"),
        F.max(C.REVIEW_SCORE).alias(C.REVIEW_SCORE),
    )
    delay = F.col("delivery_delay_days")
    out = (agg
           .withColumn(C.CATEGORY, F.coalesce(F.col("_first")[C.CATEGORY], F.lit(C.UNKNOWN_CATEGORY)))
           .withColumn(C.ORDER_STATUS, F.coalesce(F.col("_first")[C.ORDER_STATUS], F.lit("unknown")))
           .withColumn("freight_share", F.try_divide(F.col("total_freight"), F.col("total_price")))
           .withColumn("late_days", F.greatest(delay, F.lit(0.0)))
           .withColumn("early_days", F.greatest(-delay, F.lit(0.0)))
           .drop("_first"))
    filled = {c: F.coalesce(F.col(c).cast("double"), F.lit(0.0)) for c in BASE_FEATURES}
    return out.withColumns(filled).withColumns({
        LABEL_SCORE: (F.col(C.REVIEW_SCORE) - 1).cast("double"),
        LABEL_SATISFIED: (F.col(C.REVIEW_SCORE) >= 4).cast("double"),
    })


def history_features(order_features: DataFrame, reviews: DataFrame, key: str, prefix: str,
                     prior_weight: float = 5.0) -> DataFrame:
    """Per order: the ``key``'s review history strictly before the order was placed.

    Parameters
    ----------
    order_features : order lines with ``order_id``, ``key``, ``order_ts``, ``is_late``.
    reviews : ``order_id, review_score, review_ts`` (silver reviews; every review is one event).
    key : ``seller_id``, ``product_id`` or ``customer_id``.
    prefix : output column prefix (``seller`` gives ``seller_n_reviews``, ...).
    prior_weight : pseudo-count of the smoothing prior (``PRIOR_SCORE``, ``PRIOR_LATE``).

    Returns
    -------
    DataFrame
        ``order_id, <prefix>_n_reviews, <prefix>_mean_score, <prefix>_late_rate``: the means
        are smoothed, ``(sum + prior * m) / (n + m)``; an order with several keys (lines
        from several sellers) gets the average over its keys.
    """
    keyed = (order_features.where(F.col(key).isNotNull() & F.col(C.ORDER_TS).isNotNull())
             .groupBy(key, C.ORDER_ID)
             .agg(F.min(C.ORDER_TS).alias("_ts"), F.max(_flag("is_late")).alias("_late")))
    revs = reviews.where(F.col(C.ORDER_ID).isNotNull() & F.col(C.REVIEW_TS).isNotNull() & F.col(C.REVIEW_SCORE).isNotNull())
    review_events = (revs.select(C.ORDER_ID, C.REVIEW_SCORE, C.REVIEW_TS).join(keyed.select(key, C.ORDER_ID, "_late"), C.ORDER_ID)
                     .select(F.col(key), F.col(C.ORDER_ID), F.col(C.REVIEW_TS).alias("_ts"), F.lit(1).alias("_kind"),
                             F.col(C.REVIEW_SCORE).cast("double").alias("_score"), F.col("_late").cast("double").alias("_late")))
    order_events = keyed.select(key, C.ORDER_ID, "_ts", F.lit(0).alias("_kind"), F.lit(None).cast("double").alias("_score"),
                                F.lit(None).cast("double").alias("_late"))
    # order events sort before review events at the same instant: a review at t never counts for an order at t
    before = Window.partitionBy(key).orderBy("_ts", "_kind", C.ORDER_ID).rowsBetween(Window.unboundedPreceding, -1)
    m = float(prior_weight)
    hist = (order_events.unionByName(review_events)
            .withColumn("_n", F.coalesce(F.sum("_kind").over(before), F.lit(0)).cast("double"))
            .withColumn("_s", F.coalesce(F.sum("_score").over(before), F.lit(0.0)))
            .withColumn("_l", F.coalesce(F.sum("_late").over(before), F.lit(0.0)))
            .where(F.col("_kind") == 0))
    # try_divide: with prior_weight 0 a key without history has 0 / 0, which is null (ANSI would raise)
    return hist.groupBy(C.ORDER_ID).agg(
        F.avg("_n").alias(f"{prefix}_n_reviews"),
        F.avg(F.try_divide(F.col("_s") + F.lit(PRIOR_SCORE * m), F.col("_n") + F.lit(m))).alias(f"{prefix}_mean_score"),
        F.avg(F.try_divide(F.col("_l") + F.lit(PRIOR_LATE * m), F.col("_n") + F.lit(m))).alias(f"{prefix}_late_rate"),
    )


def build_dataset(order_features: DataFrame, reviews: DataFrame, prior_weight: float = 5.0) -> DataFrame:
    """Every order with its features (``FEATURES`` + ``CATEGORICAL``) and labels (null without a review).

    >>> build_dataset(of, reviews).select(*FEATURES).columns == FEATURES  # doctest: +SKIP
    True
    """
    rows = order_rows(order_features)
    for key, prefix in ((C.SELLER_ID, "seller"), (C.PRODUCT_ID, "product"), (C.CUSTOMER_ID, "customer")):
        rows = rows.join(history_features(order_features, reviews, key, prefix, prior_weight), C.ORDER_ID, "left")
    defaults = {}
    for prefix in ("seller", "product", "customer"):
        defaults[f"{prefix}_n_reviews"] = 0.0
        defaults[f"{prefix}_mean_score"] = PRIOR_SCORE
        defaults[f"{prefix}_late_rate"] = PRIOR_LATE
    return rows.withColumns({c: F.coalesce(F.col(c), F.lit(v)) for c, v in defaults.items()})


def labelled(rows: DataFrame) -> DataFrame:
    """The rows that have a review, i.e. a label."""
    return rows.where(F.col(LABEL_SCORE).isNotNull())


def _to_ts(date: str | None) -> Column | None:
    if date is None:
        return None
    dt.date.fromisoformat(date)  # raises ValueError with the bad text
    return F.to_timestamp(F.lit(date))


def time_split(rows: DataFrame, train_fraction: float = 0.7, validation_fraction: float = 0.15,
               train_until: str | None = None, validation_until: str | None = None, ts_col: str = C.ORDER_TS,
               accuracy: int = 10000) -> DataFrame:
    """Add ``split`` (train / validation / test) by order time, and ``is_validation``.

    Orders up to the ``train_fraction`` quantile of ``ts_col`` (inclusive) train, those up
    to the ``train_fraction + validation_fraction`` quantile validate, later ones test.
    Dates (``YYYY-MM-DD``, exclusive upper bounds) replace the quantiles when given.
    The quantiles are one aggregate row broadcast back, so nothing reaches the driver.

    >>> time_split(rows, 0.6, 0.2).groupBy("split").count()  # 10 daily orders: 6 / 2 / 2  # doctest: +SKIP
    """
    if not (0 < train_fraction < 1 and 0 < validation_fraction < 1 and train_fraction + validation_fraction < 1):
        raise ValueError(f"split fractions must be in (0, 1) and sum below 1, got train={train_fraction}, "
                         f"validation={validation_fraction}")
    secs = F.unix_timestamp(F.col(ts_col))
    cuts = rows.agg(F.percentile_approx(secs, [train_fraction, train_fraction + validation_fraction], accuracy).alias("_q"))
    t1, t2 = _to_ts(train_until), _to_ts(validation_until)
    in_train = secs < F.unix_timestamp(t1) if t1 is not None else secs <= F.col("_q")[0]
    in_validation = secs < F.unix_timestamp(t2) if t2 is not None else secs <= F.col("_q")[1]
    split = F.when(in_train, F.lit("train")).when(in_validation, F.lit("validation")).otherwise(F.lit("test"))
    return (rows.crossJoin(F.broadcast(cuts)).withColumn(SPLIT, split)
            .withColumn(IS_VALIDATION, F.col(SPLIT) == F.lit("validation")).drop("_q"))


def with_class_weights(rows: DataFrame, label_col: str, weight_col: str = WEIGHT) -> DataFrame:
    """Add ``weight_col`` = n / (K * n_k) from the *train* rows' class counts (1.0 for a class unseen in train)."""
    train = rows.where(F.col(SPLIT) == "train")
    counts = train.groupBy(label_col).agg(F.count(F.lit(1)).alias("_nk"))
    totals = counts.agg(F.sum("_nk").alias("_n"), F.count(F.lit(1)).alias("_k"))
    weights = counts.crossJoin(totals).select(label_col, (F.col("_n") / (F.col("_k") * F.col("_nk"))).alias(weight_col))
    return rows.join(F.broadcast(weights), label_col, "left").withColumn(
        weight_col, F.coalesce(F.col(weight_col), F.lit(1.0)))


def feature_columns(categorical: Sequence[str] = CATEGORICAL) -> list[str]:
    """Every input column the model reads: numeric features, then the categorical ones."""
    return list(FEATURES) + list(categorical)
