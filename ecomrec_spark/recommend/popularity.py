"""Popularity baselines: popular and trending items, cold-start fallback, blend for light users.

Every function is a pure ``DataFrame -> DataFrame`` transform; nothing collects
rows to the driver.  Popular and trending lists share one long shape,
``POPULAR_COLUMNS``, so their union is written as gold ``popular_items``:

============  ==============================================================
scope         ``'overall'`` | ``'category'`` | ``'region'`` | ``'trending'``
scope_value   the category or region (null for overall and trending)
product_id    the item
n_customers   distinct customers who bought it (trending: in the recent window)
n_orders      distinct orders (rows when the input has no ``order_id``)
weight        sum of ``weight_col`` (null when no weight column was given)
n_previous    trending only: distinct customers in the previous window
score         ``n_customers`` as double; trending: the smoothed growth ratio
rank          1..k within ``(scope, scope_value)``, deterministic
============  ==============================================================

Recommendation frames produced here (and by the other recommenders) have
``customer_id, product_id, score, rank, reason``.

Example
-------
>>> lines = spark.read.format("delta").load(f"{lake}/silver/order_lines")              # doctest: +SKIP
>>> table = popular_table(lines, 20, trending=trending_items(lines, "2018-08-01", 30, 20))  # doctest: +SKIP
>>> fallback_recommendations(new_customers, table, 10).show()                           # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C

log = logging.getLogger(__name__)

SCOPE = "scope"
SCOPE_VALUE = "scope_value"
OVERALL, CATEGORY_SCOPE, REGION_SCOPE, TRENDING = "overall", "category", "region", "trending"
POPULAR_COLUMNS = [SCOPE, SCOPE_VALUE, C.PRODUCT_ID, "n_customers", "n_orders", "weight", "n_previous", "score", "rank"]
REC_COLUMNS = [C.CUSTOMER_ID, C.PRODUCT_ID, "score", "rank", "reason"]
REASON_POPULAR, REASON_POPULAR_REGION, REASON_PERSONAL = "popular", "popular_in_region", "personal"


def _orders(df: DataFrame) -> Column:
    return F.countDistinct(C.ORDER_ID) if C.ORDER_ID in df.columns else F.count(F.lit(1))


def _ts_col(df: DataFrame, ts_col: str | None) -> str:
    if ts_col:
        return ts_col
    for c in (C.ORDER_TS, "ts", C.EVENT_TS):
        if c in df.columns:
            return c
    raise ValueError(f"no timestamp column in {df.columns}; pass ts_col")


def _as_popular(df: DataFrame) -> DataFrame:
    """Cast to the ``POPULAR_COLUMNS`` schema so every scope unions by name."""
    types = {SCOPE: "string", SCOPE_VALUE: "string", C.PRODUCT_ID: "string", "n_customers": "long", "n_orders": "long",
             "weight": "double", "n_previous": "long", "score": "double", "rank": "int"}
    return df.select(*[(F.col(c) if c in df.columns else F.lit(None)).cast(t).alias(c) for c, t in types.items()])


def popular_items(lines: DataFrame, k: int, by: str | None = None, weight_col: str | None = None) -> DataFrame:
    """Top ``k`` products overall or per value of ``by`` (``category``, ``region``, any column).

    Rank is by distinct customers, then distinct orders (or the weight sum when
    ``weight_col`` is given), then ``product_id`` ascending, so ties never
    depend on partitioning.  Rows whose ``by`` value is null are ignored.

    Parameters
    ----------
    lines : order lines or interactions with ``customer_id``, ``product_id``
        and optionally ``order_id``, ``by`` and ``weight_col``.
    k : items kept per scope value.
    by : None for one overall list; the scope is named after the column.
    weight_col : summed into ``weight`` and used as the second sort key.

    Returns
    -------
    DataFrame with ``POPULAR_COLUMNS``.

    Example
    -------
    >>> popular_items(lines, 10, by="category").where("scope_value = 'toys'").show()  # doctest: +SKIP
    """
    keys = [by] if by else []
    src = lines.where(F.col(by).isNotNull()) if by else lines
    aggs = [F.countDistinct(C.CUSTOMER_ID).alias("n_customers"), _orders(src).alias("n_orders")]
    total = F.sum(F.col(weight_col).cast("double")) if weight_col else F.lit(None).cast("double")
    aggs.append(total.alias("weight"))
    counted = src.groupBy(*keys, C.PRODUCT_ID).agg(*aggs)
    second = F.col("weight").desc_nulls_last() if weight_col else F.col("n_orders").desc()
    w = Window.partitionBy(*keys).orderBy(F.col("n_customers").desc(), second, F.col(C.PRODUCT_ID))
    ranked = counted.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k)
    return _as_popular(ranked.withColumn(SCOPE, F.lit(by or OVERALL))
                       .withColumn(SCOPE_VALUE, F.col(by).cast("string") if by else F.lit(None))
                       .withColumn("score", F.col("n_customers").cast("double")))


def trending_items(lines: DataFrame, as_of: dt.datetime | dt.date | str, recent_days: int, k: int,
                   min_recent: int = 2, ts_col: str | None = None) -> DataFrame:
    """Products whose buyer count grows fastest: recent window against the window before it.

    With ``r`` = distinct customers in ``[as_of - recent_days, as_of)`` and ``p``
    = distinct customers in ``[as_of - 2*recent_days, as_of - recent_days)``,
    ``score = (r + 1) / (p + 1)`` (add-one smoothing, so a brand-new product
    with one buyer does not get an infinite ratio and a product with no
    history does not divide by zero).  Only products with ``r >= min_recent``
    qualify.  Rank: score, then ``r``, descending, then ``product_id``.
    Rows at or after ``as_of`` are ignored, so ``as_of`` can be a split date.

    Example
    -------
    >>> # r=3, p=1 -> (3+1)/(1+1) = 2.0
    >>> trending_items(lines, "2018-08-01", 30, k=20, min_recent=3).show()  # doctest: +SKIP
    """
    ts = F.col(_ts_col(lines, ts_col))
    end = F.lit(str(as_of)).cast("timestamp")
    mid = end - F.expr(f"INTERVAL {int(recent_days)} DAYS")
    start = mid - F.expr(f"INTERVAL {int(recent_days)} DAYS")
    recent, previous = (ts >= mid) & (ts < end), (ts >= start) & (ts < mid)
    counted = (lines.where((ts >= start) & (ts < end))
               .groupBy(C.PRODUCT_ID)
               .agg(F.countDistinct(F.when(recent, F.col(C.CUSTOMER_ID))).alias("n_customers"),
                    F.countDistinct(F.when(previous, F.col(C.CUSTOMER_ID))).alias("n_previous"),
                    (F.countDistinct(F.when(recent, F.col(C.ORDER_ID))) if C.ORDER_ID in lines.columns
                     else F.count(F.when(recent, F.lit(1)))).alias("n_orders"))
               .where(F.col("n_customers") >= min_recent)
               .withColumn("score", F.try_divide((F.col("n_customers") + 1).cast("double"),
                                                 (F.col("n_previous") + 1).cast("double"))))
    w = Window.orderBy(F.col("score").desc(), F.col("n_customers").desc(), F.col(C.PRODUCT_ID))
    # Window without partition: the input is one row per product that sold recently, already aggregated.
    ranked = counted.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k)
    return _as_popular(ranked.withColumn(SCOPE, F.lit(TRENDING)))


def popular_table(lines: DataFrame, k: int, by: Sequence[str | None] = (None, C.CATEGORY, C.REGION),
                  weight_col: str | None = None, trending: DataFrame | None = None) -> DataFrame:
    """The union of :func:`popular_items` for each scope in ``by`` (plus ``trending`` if given): gold ``popular_items``.

    Scopes whose column is missing from ``lines`` are skipped with a log line.

    Example
    -------
    >>> popular_table(lines, 20).groupBy("scope").count().show()  # doctest: +SKIP
    """
    parts = []
    for col in by:
        if col is not None and col not in lines.columns:
            log.info("popular_items: no %s column, scope skipped", col)
            continue
        parts.append(popular_items(lines, k, by=col, weight_col=weight_col))
    if trending is not None:
        parts.append(_as_popular(trending))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def _reciprocal(rank: Column) -> Column:
    return F.try_divide(F.lit(1.0), rank.cast("double"))


def fallback_recommendations(customers: DataFrame, popular: DataFrame, k: int, known: DataFrame | None = None,
                             region_col: str = C.REGION) -> DataFrame:
    """Cold-start lists: region's popular items where the region is known, topped up with overall popular.

    Customers present in ``known`` (e.g. the interactions) are left out: they
    get personal recommendations.  For the rest, the region list (scope
    ``'region'``, ``scope_value`` = the customer's region) comes first with
    reason ``'popular_in_region'``; overall items not already listed fill the
    remaining slots with reason ``'popular'``.  A customer without a region, or
    whose region has no list, gets the overall list.  ``score = 1 / rank`` so a
    later :func:`ecomrec_spark.recommend.filters.rerank` keeps the order.

    Parameters
    ----------
    customers : ``customer_id`` and optionally ``region_col``.
    popular : the long popular table (``POPULAR_COLUMNS``).
    known : frame with a ``customer_id`` column of customers that have history.

    Returns
    -------
    DataFrame with ``REC_COLUMNS``.

    Example
    -------
    >>> fallback_recommendations(spark.table("customers"), popular, 10, known=interactions)  # doctest: +SKIP
    """
    who = customers.select(C.CUSTOMER_ID, (F.col(region_col) if region_col in customers.columns
                                           else F.lit(None).cast("string")).alias("_region")).dropDuplicates([C.CUSTOMER_ID])
    if known is not None:
        who = who.join(known.select(C.CUSTOMER_ID).distinct(), C.CUSTOMER_ID, "left_anti")
    overall = popular.where((F.col(SCOPE) == OVERALL) & (F.col("rank") <= k)).select(
        C.PRODUCT_ID, F.col("rank").alias("_prank"), F.lit(1).alias("_prio"), F.lit(REASON_POPULAR).alias("reason"))
    regional = popular.where((F.col(SCOPE) == REGION_SCOPE) & (F.col("rank") <= k)).select(
        F.col(SCOPE_VALUE).alias("_region"), C.PRODUCT_ID, F.col("rank").alias("_prank"), F.lit(0).alias("_prio"),
        F.lit(REASON_POPULAR_REGION).alias("reason"))
    cands = (who.join(regional, "_region").drop("_region")
             .unionByName(who.drop("_region").crossJoin(F.broadcast(overall))))
    first = Window.partitionBy(C.CUSTOMER_ID, C.PRODUCT_ID).orderBy("_prio", "_prank")
    order = Window.partitionBy(C.CUSTOMER_ID).orderBy("_prio", "_prank", C.PRODUCT_ID)
    out = (cands.withColumn("_first", F.row_number().over(first)).where(F.col("_first") == 1)
           .withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k))
    return out.select(C.CUSTOMER_ID, C.PRODUCT_ID, _reciprocal(F.col("rank")).alias("score"), "rank", "reason")


def blend_for_light_users(personal: DataFrame, popular: DataFrame, n_interactions: DataFrame, min_interactions: int,
                          k: int) -> DataFrame:
    """Mix overall popular items into the lists of customers with few interactions.

    For a customer with ``n < min_interactions`` interactions, ``a = n / min_interactions``
    weighs the personal list and ``1 - a`` the popular one, by reciprocal rank::

        score(item) = a / personal_rank + (1 - a) / popular_rank

    (a term is 0 when the item is not in that list).  So a customer with no
    interactions gets pure popularity and one just under the threshold is
    almost pure personal.  Ties prefer the personal item, then ``product_id``.
    Reason is that of the larger term: ``'popular'``, or for the personal
    term the personal frame's own ``reason`` (``'personal'`` if it has none);
    an equal split counts as personal.
    Customers with ``n >= min_interactions`` keep their personal top ``k``
    unchanged.  Already-bought items are not removed here: apply
    :func:`ecomrec_spark.recommend.filters.exclude_purchased` afterwards.

    Parameters
    ----------
    personal : ``customer_id, product_id, rank`` (and ``score``, ``reason`` if available).
    popular : the long popular table; its ``'overall'`` scope is used.
    n_interactions : ``customer_id, n_interactions``; a customer missing here counts 0.
    min_interactions : threshold, > 0.

    Returns
    -------
    DataFrame with ``REC_COLUMNS``.

    Example
    -------
    >>> # n=1, min=2: a=0.5; personal rank 1 -> 0.5, popular rank 2 -> 0.25
    >>> blend_for_light_users(als_recs, popular, counts, 5, 10)  # doctest: +SKIP
    """
    if min_interactions <= 0:
        raise ValueError("min_interactions must be positive")
    p_reason = F.col("reason") if "reason" in personal.columns else F.lit(REASON_PERSONAL)
    p_score = F.col("score").cast("double") if "score" in personal.columns else _reciprocal(F.col("rank"))
    pers = personal.select(C.CUSTOMER_ID, C.PRODUCT_ID, F.col("rank").alias("_rank"), p_score.alias("_score"),
                           p_reason.alias("_reason"))
    counts = n_interactions.select(C.CUSTOMER_ID, F.col("n_interactions").cast("double").alias("_n"))
    who = pers.select(C.CUSTOMER_ID).distinct().join(counts, C.CUSTOMER_ID, "left").withColumn(
        "_a", F.least(F.coalesce(F.try_divide(F.col("_n"), F.lit(float(min_interactions))), F.lit(0.0)), F.lit(1.0)))
    light = who.where(F.col("_a") < 1.0)

    heavy_recs = (pers.join(light.select(C.CUSTOMER_ID), C.CUSTOMER_ID, "left_anti").where(F.col("_rank") <= k)
                  .select(C.CUSTOMER_ID, C.PRODUCT_ID, F.col("_score").alias("score"), F.col("_rank").cast("int").alias("rank"),
                          F.col("_reason").alias("reason")))

    top = (popular.where((F.col(SCOPE) == OVERALL) & (F.col("rank") <= k))
           .select(C.PRODUCT_ID, F.col("rank").alias("_prank")))
    from_personal = pers.where(F.col("_rank") <= k).join(light, C.CUSTOMER_ID).select(
        C.CUSTOMER_ID, C.PRODUCT_ID, "_reason", (F.col("_a") * _reciprocal(F.col("_rank"))).alias("_part"),
        F.lit(0).alias("_prio"))
    from_popular = light.crossJoin(F.broadcast(top)).select(
        C.CUSTOMER_ID, C.PRODUCT_ID, F.lit(REASON_POPULAR).alias("_reason"),
        ((F.lit(1.0) - F.col("_a")) * _reciprocal(F.col("_prank"))).alias("_part"), F.lit(1).alias("_prio"))
    mixed = (from_personal.unionByName(from_popular)
             .groupBy(C.CUSTOMER_ID, C.PRODUCT_ID)
             .agg(F.sum("_part").alias("score"), F.min("_prio").alias("_prio"),
                  F.max_by("_reason", F.struct(F.col("_part"), (-F.col("_prio")).alias("_p"))).alias("reason")))
    order = Window.partitionBy(C.CUSTOMER_ID).orderBy(F.col("score").desc(), "_prio", C.PRODUCT_ID)
    light_recs = (mixed.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)
                  .select(C.CUSTOMER_ID, C.PRODUCT_ID, "score", "rank", "reason"))
    return heavy_recs.unionByName(light_recs)
