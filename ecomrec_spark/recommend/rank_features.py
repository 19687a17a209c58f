"""Features and labels for the learned ranker: one row per (customer, candidate) as of a cut ``T``.

Every feature is computed from data strictly before ``T`` (the caller passes
purchases, reviews and review predictions; each function filters on ``T``
itself, so a frame that also holds later rows cannot leak).  Labels come from
the window ``[T, T + label_days)`` only, in :func:`with_labels`.

Feature groups (``feature_names`` gives the exact, ordered list the pipeline
assembles; a missing value stays null and XGBoost treats it as missing):

- **generators**: ``<g>_score``, ``<g>_rank`` and ``<g>_in`` (1 when generator
  ``g`` proposed the item) for every generator, plus ``n_generators``;
- **the customer's history with the item**: ``hist_orders`` (times bought),
  ``hist_days_since``, ``hist_interval`` (mean days between the orders of the
  item: the re-purchase cycle), ``hist_cycle`` (days since / interval: about 1
  when a re-order is due), ``hist_quantity``;
- **the item**: distinct buyers over the last 7/30/90/365 days, ``item_trend``
  (last 30 days against the 30 before), ``item_season`` (its share of all sales
  in the same weeks a year before ``T``, null without that history),
  ``item_price``;
- **the customer and the item**: ``cat_affinity`` (share of the customer's lines
  in the item's category), ``price_ratio`` (log of item price over the
  customer's mean price), ``review_pred`` and ``p_satisfied`` (the review
  model's predictions for the item's orders before ``T``), ``review_mean``
  (actual scores before ``T``), ``sentiment`` (review-text sentiment of reviews
  before ``T``, when ``ecomrec insights`` has written it);
- **the customer**: ``cust_orders``, ``cust_days_since``, ``cust_basket`` (lines
  per order), ``cust_products``, ``cust_tenure``.

One known second-order effect: ``review_pred`` and ``p_satisfied`` average the
review model's predictions for orders placed before ``T``, but that model was
trained on a time split over all reviews, so its parameters saw reviews written
after ``T``.  No purchase of the label window enters a feature.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.recommend.candidates import GENERATOR
from ecomrec_spark.recommend.interactions import TS

LABEL = "label"
QID = "qid"
POP_WINDOWS = (7, 30, 90, 365)
HISTORY = ["hist_orders", "hist_days_since", "hist_interval", "hist_cycle", "hist_quantity"]
ITEM = [*(f"item_buyers_{d}d" for d in POP_WINDOWS), "item_trend", "item_season", "item_price"]
PAIR = ["cat_affinity", "price_ratio", "review_pred", "p_satisfied", "review_mean", "sentiment"]
CUSTOMER = ["cust_orders", "cust_days_since", "cust_basket", "cust_products", "cust_tenure"]


def generator_columns(generators: Sequence[str]) -> list[str]:
    return [f"{g}_{x}" for g in generators for x in ("score", "rank", "in")] + ["n_generators"]


def feature_names(generators: Sequence[str]) -> list[str]:
    """The ordered feature list for a generator set (saved with the model and checked at load)."""
    return generator_columns(generators) + HISTORY + ITEM + PAIR + CUSTOMER


def _before(df: DataFrame, ts: str, as_of: dt.datetime) -> DataFrame:
    return df.where(F.col(ts) < F.lit(as_of))


def _days(as_of: dt.datetime, ts: Column) -> Column:
    return (F.unix_timestamp(F.lit(as_of)) - F.unix_timestamp(ts)).cast("double") / F.lit(86400.0)


def generator_frame(candidates: DataFrame, generators: Sequence[str]) -> DataFrame:
    """Long candidates -> one row per pair with each generator's score, rank and a proposed flag.

    Examples
    --------
    >>> generator_frame(cands, ["ease", "buy_again"]).columns[:4]   # doctest: +SKIP
    ['customer_id', 'product_id', 'ease_score', 'ease_rank']
    """
    aggs = []
    for g in generators:
        is_g = F.col(GENERATOR) == F.lit(g)
        aggs += [F.max(F.when(is_g, F.col("score"))).alias(f"{g}_score"),
                 F.min(F.when(is_g, F.col("rank"))).cast("double").alias(f"{g}_rank"),
                 F.max(F.when(is_g, F.lit(1.0)).otherwise(F.lit(0.0))).alias(f"{g}_in")]
    wide = candidates.where(F.col(GENERATOR).isin(list(generators))).groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(*aggs)
    return wide.withColumn("n_generators", sum((F.col(f"{g}_in") for g in generators), F.lit(0.0)))


def history_features(bought: DataFrame, as_of: dt.datetime) -> DataFrame:
    """``customer_id, product_id`` + ``HISTORY``: the customer's own record with the item before ``as_of``."""
    per_order = (_before(bought, TS, as_of).groupBy(C.CUSTOMER_ID, C.PRODUCT_ID, C.ORDER_ID)
                 .agg(F.min(TS).alias("_ts"), F.sum(C.QUANTITY).alias("_q")))
    agg = per_order.groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(
        F.count(F.lit(1)).cast("double").alias("hist_orders"), F.min("_ts").alias("_first"),
        F.max("_ts").alias("_last"), F.sum("_q").cast("double").alias("hist_quantity"))
    span = (F.unix_timestamp("_last") - F.unix_timestamp("_first")).cast("double") / F.lit(86400.0)
    interval = F.when(F.col("hist_orders") > 1, span / (F.col("hist_orders") - F.lit(1.0)))
    return (agg.withColumn("hist_days_since", _days(as_of, F.col("_last")))
            .withColumn("hist_interval", interval)
            .withColumn("hist_cycle", F.try_divide(F.col("hist_days_since"), F.col("hist_interval")))
            .select(C.CUSTOMER_ID, C.PRODUCT_ID, *HISTORY))


def item_features(bought: DataFrame, as_of: dt.datetime, label_days: int) -> DataFrame:
    """``product_id`` + ``ITEM``: popularity over several windows, trend, seasonality and price before ``as_of``."""
    b = _before(bought, TS, as_of)
    age = _days(as_of, F.col(TS))
    buyers = [F.countDistinct(F.when(age <= F.lit(float(d)), F.col(C.CUSTOMER_ID))).cast("double").alias(f"item_buyers_{d}d")
              for d in POP_WINDOWS]
    prev30 = F.countDistinct(F.when((age > F.lit(30.0)) & (age <= F.lit(60.0)), F.col(C.CUSTOMER_ID))).cast("double")
    # the same weeks one year earlier: [T - 365 d, T - 365 d + label_days)
    season_from, season_to = as_of - dt.timedelta(days=365), as_of - dt.timedelta(days=365 - label_days)
    in_season = (F.col(TS) >= F.lit(season_from)) & (F.col(TS) < F.lit(season_to))
    units = b.groupBy(C.PRODUCT_ID).agg(
        *buyers, prev30.alias("_prev30"), F.sum(F.when(in_season, F.col(C.QUANTITY))).alias("_season_units"),
        F.avg(C.PRICE).alias("item_price"))
    total = b.where(in_season).agg(F.sum(C.QUANTITY).alias("_season_total"))
    return (units.crossJoin(F.broadcast(total))
            .withColumn("item_trend", (F.col("item_buyers_30d") + F.lit(1.0)) / (F.col("_prev30") + F.lit(1.0)))
            .withColumn("item_season", F.try_divide(F.coalesce(F.col("_season_units"), F.lit(0.0)),
                                                    F.col("_season_total").cast("double")))
            .select(C.PRODUCT_ID, *ITEM))


def customer_features(bought: DataFrame, as_of: dt.datetime) -> DataFrame:
    """``customer_id`` + ``CUSTOMER``: frequency, recency, basket size, breadth and tenure before ``as_of``."""
    b = _before(bought, TS, as_of)
    agg = b.groupBy(C.CUSTOMER_ID).agg(
        F.countDistinct(C.ORDER_ID).cast("double").alias("cust_orders"), F.count(F.lit(1)).alias("_lines"),
        F.countDistinct(C.PRODUCT_ID).cast("double").alias("cust_products"), F.max(TS).alias("_last"),
        F.min(TS).alias("_first"), F.avg(C.PRICE).alias("_cust_price"))
    return (agg.withColumn("cust_days_since", _days(as_of, F.col("_last")))
            .withColumn("cust_tenure", _days(as_of, F.col("_first")))
            .withColumn("cust_basket", F.col("_lines") / F.col("cust_orders"))
            .select(C.CUSTOMER_ID, *CUSTOMER, "_cust_price"))


def category_shares(bought: DataFrame, as_of: dt.datetime) -> DataFrame:
    """``customer_id, category, cat_affinity``: the share of the customer's lines in each category."""
    b = _before(bought, TS, as_of).withColumn(C.CATEGORY, F.coalesce(F.col(C.CATEGORY), F.lit(C.UNKNOWN_CATEGORY)))
    per = b.groupBy(C.CUSTOMER_ID, C.CATEGORY).agg(F.count(F.lit(1)).alias("_n"))
    tot = b.groupBy(C.CUSTOMER_ID).agg(F.count(F.lit(1)).alias("_t"))
    return per.join(tot, C.CUSTOMER_ID).select(C.CUSTOMER_ID, C.CATEGORY,
                                               (F.col("_n") / F.col("_t")).alias("cat_affinity"))


def review_features(as_of: dt.datetime, reviews: DataFrame | None, predictions: DataFrame | None,
                    sentiment: DataFrame | None) -> DataFrame | None:
    """``product_id, review_pred, p_satisfied, review_mean, sentiment`` from what was known before ``as_of``.

    ``predictions`` is gold ``review_predictions`` (per order line, with ``order_ts``);
    ``sentiment`` is gold ``review_sentiment`` (per review, dated through ``reviews``).
    """
    parts: list[DataFrame] = []
    if predictions is not None:
        parts.append(_before(predictions, C.ORDER_TS, as_of).groupBy(C.PRODUCT_ID).agg(
            F.avg("expected_score").alias("review_pred"), F.avg("p_satisfied").alias("p_satisfied")))
    if reviews is not None:
        r = _before(reviews.where(F.col(C.PRODUCT_ID).isNotNull()), C.REVIEW_TS, as_of)
        parts.append(r.groupBy(C.PRODUCT_ID).agg(F.avg(F.col(C.REVIEW_SCORE).cast("double")).alias("review_mean")))
        if sentiment is not None:
            dated = sentiment.select(C.REVIEW_ID, "sentiment").join(
                r.select(C.REVIEW_ID, C.PRODUCT_ID).distinct(), C.REVIEW_ID)
            parts.append(dated.groupBy(C.PRODUCT_ID).agg(F.avg("sentiment").alias("sentiment")))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out.join(p, C.PRODUCT_ID, "full")
    return out


def item_categories(bought: DataFrame, catalogue: DataFrame) -> DataFrame:
    """``product_id, category`` from the catalogue, else from the order lines, else ``unknown``."""
    cat = catalogue.select(C.PRODUCT_ID, F.col(C.CATEGORY).alias("_c1")).dropDuplicates([C.PRODUCT_ID])
    lines = bought.groupBy(C.PRODUCT_ID).agg(F.max(C.CATEGORY).alias("_c2"))
    return cat.join(lines, C.PRODUCT_ID, "full").select(
        C.PRODUCT_ID, F.coalesce("_c1", "_c2", F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY))


def build_features(candidates: DataFrame, generators: Sequence[str], bought: DataFrame, catalogue: DataFrame,
                   as_of: dt.datetime, label_days: int, reviews: DataFrame | None = None,
                   predictions: DataFrame | None = None, sentiment: DataFrame | None = None) -> DataFrame:
    """``customer_id, product_id`` + :func:`feature_names` (doubles) for every candidate pair, as of ``as_of``."""
    frame = generator_frame(candidates, generators)
    cust = customer_features(bought, as_of)
    items = item_features(bought, as_of, label_days).join(item_categories(bought, catalogue), C.PRODUCT_ID, "left")
    frame = (frame.join(history_features(bought, as_of), [C.CUSTOMER_ID, C.PRODUCT_ID], "left")
             .join(items, C.PRODUCT_ID, "left").join(cust, C.CUSTOMER_ID, "left")
             .join(category_shares(bought, as_of), [C.CUSTOMER_ID, C.CATEGORY], "left")
             .withColumn("price_ratio", F.log(F.try_divide(F.col("item_price"), F.col("_cust_price")))))
    rev = review_features(as_of, reviews, predictions, sentiment)
    if rev is not None:
        frame = frame.join(rev, C.PRODUCT_ID, "left")
    names = feature_names(generators)
    cols = [(F.col(n) if n in frame.columns else F.lit(None)).cast("double").alias(n) for n in names]
    # a customer with no purchase of the category has affinity 0, not "unknown"
    return (frame.select(C.CUSTOMER_ID, C.PRODUCT_ID, *cols)
            .fillna(0.0, subset=["cat_affinity", "hist_orders", "hist_quantity",
                                 *[f"item_buyers_{d}d" for d in POP_WINDOWS]]))


def with_labels(frame: DataFrame, bought: DataFrame, start: dt.datetime, end: dt.datetime | None) -> DataFrame:
    """``label`` 1.0 when the customer bought the candidate in ``[start, end)`` (``end`` None: to the end), else 0.0.

    The features of a cut at ``start`` use only rows before ``start``, so the two never overlap.
    """
    window = bought.where(F.col(TS) >= F.lit(start))
    if end is not None:
        window = window.where(F.col(TS) < F.lit(end))
    pos = window.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct().withColumn(LABEL, F.lit(1.0))
    return frame.join(pos, [C.CUSTOMER_ID, C.PRODUCT_ID], "left").fillna(0.0, subset=[LABEL])


def training_rows(labelled: DataFrame, max_negatives: int, seed: int) -> DataFrame:
    """Groups with at least one positive, all positives and at most ``max_negatives`` seeded negatives each, + ``qid``.

    A group without a positive teaches a ranking objective nothing, and capping
    the negatives keeps the fit proportional to the number of customers.
    """
    from pyspark.sql import Window

    has_pos = labelled.groupBy(C.CUSTOMER_ID).agg(F.max(LABEL).alias("_p")).where(F.col("_p") > 0).drop("_p")
    rows = labelled.join(has_pos, C.CUSTOMER_ID, "left_semi")
    order = Window.partitionBy(C.CUSTOMER_ID, LABEL).orderBy(F.xxhash64(F.lit(seed), C.CUSTOMER_ID, C.PRODUCT_ID))
    rows = rows.withColumn("_n", F.row_number().over(order)).where(
        (F.col(LABEL) > 0) | (F.col("_n") <= max_negatives)).drop("_n")
    return with_qid(rows)


def with_qid(frame: DataFrame) -> DataFrame:
    """Add an int ``qid`` per customer (XGBoost's query group)."""
    from ecomrec_spark.recommend.ids import index_ids

    ids = index_ids(frame, C.CUSTOMER_ID, QID)
    return frame.join(ids, C.CUSTOMER_ID)
