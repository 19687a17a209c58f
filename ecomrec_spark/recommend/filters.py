"""Business filters applied to recommendation frames, then a re-rank to 1..n.

Recommendation frames have at least ``customer_id, product_id`` and usually
``score, rank, reason``.  Each filter is a left-anti or left-semi join against
a small frame (broadcast where it is a list of products), so nothing reaches
the driver.  Filtering leaves gaps in ``rank``; :func:`rerank` closes them.

Example
-------
>>> recs = exclude_purchased(recs, interactions, enabled=settings.recommend.filters.exclude_purchased)  # doctest: +SKIP
>>> recs = exclude_products(recs, blocked_frame(spark, ["p_recalled"]))                          # doctest: +SKIP
>>> recs = rerank(filter_categories(recs, products, exclude=["gift_cards"]), k=10)                 # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C


def exclude_purchased(recs: DataFrame, purchases: DataFrame, enabled: bool = True) -> DataFrame:
    """Drop items the customer already bought; ``enabled=False`` keeps them (consumables, re-buys).

    Parameters
    ----------
    recs : recommendations with ``customer_id, product_id``.
    purchases : order lines or interactions with ``customer_id, product_id``.

    Example
    -------
    >>> exclude_purchased(recs, interactions).show()  # doctest: +SKIP
    """
    if not enabled:
        return recs
    bought = purchases.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct()
    return recs.join(bought, [C.CUSTOMER_ID, C.PRODUCT_ID], "left_anti")


def blocked_frame(spark: SparkSession, ids: Iterable[str]) -> DataFrame:
    """A one-column ``product_id`` frame from a config list (e.g. unavailable or blacklisted products).

    Example
    -------
    >>> blocked_frame(spark, ["p1", "p2"]).count()  # doctest: +SKIP
    2
    """
    rows = [(str(i),) for i in dict.fromkeys(ids)]  # a config list, not row-level data
    return spark.createDataFrame(rows, f"{C.PRODUCT_ID} string")


def exclude_products(recs: DataFrame, blocked: DataFrame) -> DataFrame:
    """Drop every recommendation of a product listed in ``blocked`` (any frame with ``product_id``).

    Example
    -------
    >>> exclude_products(recs, spark.read.format("delta").load(f"{lake}/silver/unavailable"))  # doctest: +SKIP
    """
    ids = blocked.select(C.PRODUCT_ID).where(F.col(C.PRODUCT_ID).isNotNull()).distinct()
    return recs.join(F.broadcast(ids), C.PRODUCT_ID, "left_anti")


def _norm(values: Sequence[str]) -> list[str]:
    return [v.strip().lower() for v in values]


def filter_categories(recs: DataFrame, products: DataFrame, include: Sequence[str] | None = None,
                      exclude: Sequence[str] | None = None) -> DataFrame:
    """Keep only products of ``include`` categories and/or drop those of ``exclude`` categories.

    Category names are compared trimmed and lower-cased, as silver stores them.
    With ``include``, a product missing from ``products`` is dropped; with only
    ``exclude`` it is kept.  ``products`` needs ``product_id, category``.

    Example
    -------
    >>> filter_categories(recs, products, include=["toys", "baby"], exclude=["toys"])  # -> only baby  # doctest: +SKIP
    """
    cat = products.select(C.PRODUCT_ID, F.lower(F.trim(F.col(C.CATEGORY))).alias("_cat"))
    if include:
        keep = cat.where(F.col("_cat").isin(_norm(include))).select(C.PRODUCT_ID).distinct()
        recs = recs.join(keep, C.PRODUCT_ID, "left_semi")
    if exclude:
        drop = cat.where(F.col("_cat").isin(_norm(exclude))).select(C.PRODUCT_ID).distinct()
        recs = recs.join(drop, C.PRODUCT_ID, "left_anti")
    return recs


def rerank(recs: DataFrame, k: int, score_col: str | None = "score", by: str = C.CUSTOMER_ID) -> DataFrame:
    """Renumber ``rank`` 1..n per ``by`` (customer) and keep the top ``k``.

    Order: ``score_col`` descending (skipped when None), then the previous
    ``rank`` if there is one, then ``product_id`` so ties are deterministic.

    Example
    -------
    >>> rerank(exclude_products(recs, blocked), k=10)  # ranks 1, 2, 4 -> 1, 2, 3  # doctest: +SKIP
    """
    keys = []
    if score_col:
        keys.append(F.col(score_col).desc_nulls_last())
    if "rank" in recs.columns:
        keys.append(F.col("rank").asc_nulls_last())
    keys.append(F.col(C.PRODUCT_ID))
    w = Window.partitionBy(by).orderBy(*keys)
    return recs.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k)
