""""Bought together" association rules with MLlib's ``FPGrowth``, for products or categories.

A *basket* is a set of distinct items: the products of an order (``basket_col="order_id"``)
or of a browsing session (``basket_col="session_id"`` on events).  :func:`baskets` builds
them from line-level rows, :func:`category_baskets` builds baskets of categories, so the
same :func:`association_rules` gives product-level and category-level rules.

Metrics (``n`` = number of baskets, ``freq(X)`` = number of baskets containing itemset ``X``):

- ``support``            = ``freq(A ∪ C) / n``  (rule support);
- ``antecedent_support`` = ``freq(A) / n``, ``consequent_support`` = ``freq(C) / n``;
- ``confidence``         = ``freq(A ∪ C) / freq(A)``;
- ``lift``               = ``confidence / consequent_support``.

What Spark's own ``support`` column means: ``FPGrowthModel.associationRules`` (Spark 4.0)
returns ``antecedent, consequent, confidence, lift, support`` and its ``support`` is the
*rule* support ``freqUnion / numTrainingRecords`` -- the share of (non-null) training baskets
containing antecedent ∪ consequent, not the antecedent's support (Scala
``AssociationRules.getAssociationRulesFromFP``; the PySpark docstring only lists four columns).
Here every support is recomputed from ``freqItemsets`` by joins on the sorted itemset, and
``confidence``/``lift`` are Spark's.  MLlib only generates rules with a single-item consequent.

Platform notes:

- ``FPGrowthModel.transform`` collects every rule to the driver and broadcasts it, so this
  module never calls it; rules are plain DataFrames to be joined with a user's items.
- An itemset is frequent when ``freq >= ceil(min_support * n)`` (MLlib's rule).  The number of
  frequent itemsets grows combinatorially as ``min_support`` falls: keep the minimum count at
  tens of baskets or more (a warning is logged below 2) -- e.g. 0.001-0.01 for orders,
  a bit higher for sessions -- rather than mining every pair seen once.
- ``fit`` only counts single items; the mining runs lazily and every use of
  ``freqItemsets``/``associationRules`` would repeat it.  The functions here therefore cache
  the input baskets and the frequent itemsets while they work and return a *local checkpoint*
  of the result (stored on the executors, freed when the DataFrame is garbage-collected; no
  rows go to the driver).  With dynamic allocation, write the result out before executors go.

>>> rules = association_rules(baskets(order_lines), 0.001, 0.1)        # doctest: +SKIP
>>> rules.orderBy(F.desc("lift")).show()                                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomrec_spark import columns as C

log = logging.getLogger(__name__)

ITEMS = "items"
BASKET_ID = "basket_id"

RULE_COLUMNS = ["level", "antecedent", "consequent", "support", "confidence", "lift",
                "antecedent_support", "consequent_support", "n_baskets", "freq"]

_ITEMS_TYPE = T.ArrayType(T.StringType(), containsNull=False)

RULES_SCHEMA = T.StructType([
    T.StructField("level", T.StringType(), False),
    T.StructField("antecedent", _ITEMS_TYPE, False),
    T.StructField("consequent", _ITEMS_TYPE, False),
    T.StructField("support", T.DoubleType(), False),
    T.StructField("confidence", T.DoubleType(), False),
    T.StructField("lift", T.DoubleType(), True),
    T.StructField("antecedent_support", T.DoubleType(), False),
    T.StructField("consequent_support", T.DoubleType(), False),
    T.StructField("n_baskets", T.LongType(), False),
    T.StructField("freq", T.LongType(), False),
])

ITEMSETS_SCHEMA = T.StructType([
    T.StructField("items", _ITEMS_TYPE, False),
    T.StructField("freq", T.LongType(), False),
    T.StructField("support", T.DoubleType(), False),
])


# --------------------------------------------------------------------------- baskets

def baskets(lines: DataFrame, basket_col: str = C.ORDER_ID, item_col: str = C.PRODUCT_ID) -> DataFrame:
    """One row per basket with its distinct items.

    Rows with a null basket or a null item are dropped; items are cast to string,
    de-duplicated (FPGrowth requires unique items per basket) and sorted.

    Parameters
    ----------
    lines : DataFrame
        Line-level rows, e.g. order lines or behaviour events.
    basket_col : str
        What makes a basket: ``"order_id"`` for orders, ``"session_id"`` for sessions.
    item_col : str
        The item column (``"product_id"``, or ``"category"`` for category baskets).

    Returns
    -------
    DataFrame
        ``basket_id`` (type of ``basket_col``), ``items`` (``array<string>``, non-empty).

    Examples
    --------
    >>> baskets(lines).show()                       # doctest: +SKIP
    +---------+------------+
    |basket_id|       items|
    +---------+------------+
    |       o1|[p1, p2, p3]|
    +---------+------------+
    """
    for name in (basket_col, item_col):
        if name not in lines.columns:
            raise ValueError(f"baskets: column {name!r} is not in the frame (columns: {lines.columns}); "
                             f"pass basket_col/item_col naming existing columns")
    return (lines.where(F.col(basket_col).isNotNull() & F.col(item_col).isNotNull())
            .groupBy(F.col(basket_col).alias(BASKET_ID))
            .agg(F.array_sort(F.collect_set(F.col(item_col).cast("string"))).alias(ITEMS)))


def category_baskets(lines: DataFrame, category_col: str = C.CATEGORY, basket_col: str = C.ORDER_ID,
                     exclude: Iterable[str] = (C.UNKNOWN_CATEGORY,)) -> DataFrame:
    """Baskets of categories: each basket holds the distinct categories of its lines.

    Feed the result to :func:`association_rules` with ``level="category"``.

    Parameters
    ----------
    lines : DataFrame
        Line-level rows carrying ``basket_col`` and ``category_col``.
    category_col : str
        The category column (``"category"``; ``"sub_category"`` also works).
    basket_col : str
        ``"order_id"`` or ``"session_id"``.
    exclude : iterable of str
        Category values to leave out (by default the ``"unknown"`` placeholder, which
        would otherwise pair with everything).  A basket left with no category is dropped.

    Returns
    -------
    DataFrame
        ``basket_id``, ``items`` (``array<string>`` of categories).

    Examples
    --------
    >>> rules = association_rules(category_baskets(order_lines), 0.01, 0.2, level="category")  # doctest: +SKIP
    """
    if category_col not in lines.columns:
        raise ValueError(f"category_baskets: column {category_col!r} is not in the frame (columns: {lines.columns}); "
                         f"pass category_col naming the category column")
    excluded = [str(x) for x in exclude]
    kept = lines.where(~F.col(category_col).cast("string").isin(excluded)) if excluded else lines
    return baskets(kept, basket_col=basket_col, item_col=category_col)


# --------------------------------------------------------------------------- checks

def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not (isinstance(x, float) and math.isnan(x))


def _check_support(min_support: object) -> float:
    if not _is_number(min_support) or not 0.0 < float(min_support) <= 1.0:  # type: ignore[arg-type]
        raise ValueError(f"min_support must be a number in (0, 1] (a share of baskets), got {min_support!r}; "
                         f"pass e.g. 0.01 for itemsets in at least 1% of baskets")
    return float(min_support)  # type: ignore[arg-type]


def _check_confidence(min_confidence: object) -> float:
    if not _is_number(min_confidence) or not 0.0 <= float(min_confidence) <= 1.0:  # type: ignore[arg-type]
        raise ValueError(f"min_confidence must be a number in [0, 1], got {min_confidence!r}; "
                         f"pass e.g. 0.1 (P(consequent | antecedent) >= 10%)")
    return float(min_confidence)  # type: ignore[arg-type]


def _check_max_items(max_items: object, least: int) -> int | None:
    if max_items is None:
        return None
    if not isinstance(max_items, int) or isinstance(max_items, bool) or max_items < least:
        raise ValueError(f"max_items must be None or an integer >= {least}, got {max_items!r}; "
                         f"pass None for no limit or e.g. 3")
    return max_items


def _check_baskets(baskets_df: DataFrame) -> None:
    if ITEMS not in baskets_df.columns or not isinstance(baskets_df.schema[ITEMS].dataType, T.ArrayType):
        raise ValueError(f"baskets_df needs an array column {ITEMS!r} (columns: {baskets_df.columns}); "
                         f"build it with baskets(lines, basket_col, item_col)")


# --------------------------------------------------------------------------- mining

def _mine(baskets_df: DataFrame, min_support: float, min_confidence: float, max_items: int | None,
          build: Callable[[Any, DataFrame | None, int], DataFrame]) -> DataFrame:
    """Fit FPGrowth on cached baskets, let ``build(model, fi, n)`` derive a frame, checkpoint it."""
    from pyspark.ml.fpm import FPGrowth

    items = baskets_df.select(
        F.array_compact(F.array_distinct(F.col(ITEMS).cast("array<string>"))).alias(ITEMS)
    ).where(F.col(ITEMS).isNotNull())
    own_cache = not baskets_df.is_cached
    if own_cache:
        items = items.persist(StorageLevel.MEMORY_AND_DISK)
    fi_cached: DataFrame | None = None
    try:
        n = items.count()  # one scalar: the support denominator (FPGrowth counts the same rows)
        if n == 0:
            log.warning("association rules: no baskets, nothing to mine")
            return build(None, None, 0)
        min_count = math.ceil(min_support * n)
        if min_count < 2:
            log.warning("min_support=%s over %d baskets makes an itemset seen in %d basket(s) frequent; "
                        "mining may explode -- raise min_support", min_support, n, min_count)
        log.info("FPGrowth over %d baskets: min_support=%s (min count %d), min_confidence=%s, max_items=%s",
                 n, min_support, min_count, min_confidence, max_items)
        model = FPGrowth(itemsCol=ITEMS, minSupport=min_support, minConfidence=min_confidence).fit(items)
        # The same JVM Dataset backs associationRules, so caching it here spares re-mining.
        fi_cached = model.freqItemsets.persist(StorageLevel.MEMORY_AND_DISK)
        return build(model, fi_cached, n).localCheckpoint(eager=True)
    finally:
        if fi_cached is not None:
            fi_cached.unpersist()
        if own_cache:
            items.unpersist()


def frequent_itemsets(baskets_df: DataFrame, min_support: float, max_items: int | None = None) -> DataFrame:
    """Frequent itemsets with their basket count and support.

    Parameters
    ----------
    baskets_df : DataFrame
        An ``items`` array column (see :func:`baskets`); null arrays are ignored.
    min_support : float
        In (0, 1]; an itemset is kept when ``freq >= ceil(min_support * n_baskets)``.
    max_items : int, optional
        Keep itemsets of at most this many items (filtered after mining: MLlib's
        FPGrowth has no length limit, so this does not make mining cheaper).

    Returns
    -------
    DataFrame
        ``items`` (sorted ``array<string>``), ``freq`` (long), ``support`` (= freq / n_baskets),
        locally checkpointed.

    Raises
    ------
    ValueError
        On a parameter out of range or a frame without ``items``, before any Spark job.

    Examples
    --------
    >>> frequent_itemsets(baskets(lines), 0.3).orderBy("items").show()   # doctest: +SKIP
    +---------------+----+------------------+
    |          items|freq|           support|
    +---------------+----+------------------+
    |        [bread]|   4|0.6666666666666666|
    |  [bread, milk]|   3|               0.5|
    """
    ms = _check_support(min_support)
    mi = _check_max_items(max_items, 1)
    _check_baskets(baskets_df)

    def build(model: Any, fi: DataFrame | None, n: int) -> DataFrame:
        if fi is None:
            return baskets_df.sparkSession.createDataFrame([], ITEMSETS_SCHEMA)
        out = fi.select(F.array_sort(ITEMS).alias("items"), F.col("freq").cast("long").alias("freq"))
        if mi is not None:
            out = out.where(F.size("items") <= mi)
        return out.withColumn("support", F.col("freq") / F.lit(float(n)))

    return _mine(baskets_df, ms, 1.0, mi, build)


def association_rules(baskets_df: DataFrame, min_support: float, min_confidence: float, level: str = "product",
                      max_items: int | None = None) -> DataFrame:
    """Association rules ``antecedent => consequent`` with supports, confidence and lift.

    Parameters
    ----------
    baskets_df : DataFrame
        An ``items`` array column (see :func:`baskets` / :func:`category_baskets`);
        null arrays are ignored, duplicate or null items inside an array are dropped.
    min_support : float
        In (0, 1]: minimum *rule* support (share of baskets holding antecedent ∪ consequent).
        Keep the minimum count ``ceil(min_support * n_baskets)`` well above 1 (see module notes).
    min_confidence : float
        In [0, 1]: minimum ``freq(A ∪ C) / freq(A)``.
    level : str
        Label written to the ``level`` column, e.g. ``"product"`` or ``"category"``.
    max_items : int, optional
        Keep rules with at most this many items in antecedent ∪ consequent (>= 2; filtered
        after mining).

    Returns
    -------
    DataFrame
        ``level, antecedent, consequent, support, confidence, lift, antecedent_support,
        consequent_support, n_baskets, freq``; item arrays sorted; consequents have one
        item (MLlib).  Locally checkpointed (see module notes).

    Raises
    ------
    ValueError
        On a parameter out of range or a frame without ``items``, before any Spark job.

    Examples
    --------
    Six orders: {milk, bread, butter}, {milk, bread} x2, {milk, eggs}, {bread, butter}, {eggs}

    >>> r = association_rules(baskets(lines), 0.3, 0.5)               # doctest: +SKIP
    >>> r.where("antecedent = array('butter')")                                # doctest: +SKIP
    ...  .select("consequent", "support", "confidence", "lift").show()
    +----------+------------------+----------+----+
    |consequent|           support|confidence|lift|
    +----------+------------------+----------+----+
    |   [bread]|0.3333333333333333|       1.0| 1.5|
    +----------+------------------+----------+----+
    """
    ms = _check_support(min_support)
    mc = _check_confidence(min_confidence)
    mi = _check_max_items(max_items, 2)
    if not isinstance(level, str) or not level:
        raise ValueError(f"level must be a non-empty string, got {level!r}; pass 'product' or 'category'")
    _check_baskets(baskets_df)

    def build(model: Any, fi: DataFrame | None, n: int) -> DataFrame:
        if fi is None:
            return baskets_df.sparkSession.createDataFrame([], RULES_SCHEMA)
        nn = F.lit(float(n))
        keyed = fi.select(F.array_sort(ITEMS).alias("_k"), F.col("freq").cast("long").alias("_f"))
        rules = model.associationRules.select(
            F.array_sort("antecedent").alias("antecedent"),
            F.array_sort("consequent").alias("consequent"),
            F.array_sort(F.concat("antecedent", "consequent")).alias("_union"),
            "confidence", "lift")
        if mi is not None:
            rules = rules.where(F.size("_union") <= mi)
        joined = (rules
                  .join(keyed.select(F.col("_k").alias("_union"), F.col("_f").alias("freq")), "_union")
                  .join(keyed.select(F.col("_k").alias("antecedent"), F.col("_f").alias("_fa")), "antecedent")
                  .join(keyed.select(F.col("_k").alias("consequent"), F.col("_f").alias("_fc")), "consequent"))
        return joined.select(
            F.lit(level).alias("level"), "antecedent", "consequent",
            (F.col("freq") / nn).alias("support"),
            "confidence", "lift",
            (F.col("_fa") / nn).alias("antecedent_support"),
            (F.col("_fc") / nn).alias("consequent_support"),
            F.lit(n).cast("long").alias("n_baskets"),
            "freq")

    return _mine(baskets_df, ms, mc, mi, build)
