"""Offline ranking metrics for top-k recommendation lists, and the splits they are measured on.

Everything runs as Spark DataFrame built-ins (joins, windows, higher-order
functions); the only thing that reaches the driver is one aggregate row.

Inputs
------
``recs``
    ``(customer_id, product_id, rank)``, ``rank`` 1-based (1 = best). A customer
    may have more than ``k`` rows: only ``rank <= k`` counts. Rows with a null or
    non-positive rank are ignored, and an item listed twice for one customer
    keeps its best rank.
``truth``
    ``(customer_id, product_id)``: the relevant items of the test period.
    Duplicates are dropped, so relevance is binary and every set is a set.

Definitions (per customer ``u``, ``R_u`` the relevant set, ``hit(i) = 1`` when
the item at rank ``i <= k`` is in ``R_u``)
--------------------------------------------------------------------------
precision@k
    ``#hits / k`` -- always divided by ``k``, even when fewer than ``k`` items
    were recommended (Spark ``RankingMetrics.precisionAt``).
recall@k
    ``#hits / |R_u|`` (Spark ``recallAt``).
ndcg@k
    ``DCG / IDCG`` with ``DCG = sum_{i<=k} hit(i) / log2(i + 1)`` and
    ``IDCG = sum_{i=1}^{min(|R_u|, k)} 1 / log2(i + 1)`` (binary relevance;
    Spark ``ndcgAt``).
AP@k (averaged into map_at_k)
    ``sum_{i<=k} hit(i) * precision@i / min(|R_u|, k)``. This is exactly Spark's
    ``RankingMetrics.meanAveragePrecisionAt(k)`` / ``RankingEvaluator``
    ``meanAveragePrecisionAtK`` (checked against Spark 4.0: predictions
    ``[a, x, b]``, relevant ``{a, b, c, d}``, k = 3 give ``(1/1 + 2/3) / 3 =
    0.5556``). It is *not* Spark's plain ``meanAveragePrecision`` on a truncated
    list, which divides by ``|R_u|`` (0.4167 in that example) and which older
    versions of the Microsoft recommenders ``SparkRankingEvaluation.map_at_k``
    reported; the two agree whenever ``|R_u| <= k``.
reciprocal rank (averaged into mrr)
    ``1 / (rank of the first hit)``, 0 when there is no hit within ``k``.
hit rate
    share of customers with at least one hit within ``k``.
coverage
    distinct products in anybody's top ``k`` (all customers of ``recs``, not
    only those in ``truth``) divided by ``catalogue_size``.

The averages run over the customers present in ``truth``: a customer in
``truth`` without any recommendation scores 0 on every metric, and
recommendations for customers absent from ``truth`` are ignored (except by
coverage).

>>> m = ranking_metrics(recs, truth, k=10, catalogue_size=n_products)  # doctest: +SKIP
>>> m["ndcg_at_k"], m["hit_rate"]  # doctest: +SKIP
(0.081, 0.19)
"""

from __future__ import annotations

import datetime as _dt
import logging
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from ecomrec_spark import columns as C

log = logging.getLogger(__name__)

# Per-customer output columns of ``metrics_by_user``.
N_RELEVANT = "n_relevant"
N_RECOMMENDED = "n_recommended"
N_HITS = "n_hits"
PRECISION = "precision_at_k"
RECALL = "recall_at_k"
NDCG = "ndcg_at_k"
AP = "ap_at_k"
RR = "reciprocal_rank"
HIT = "hit"

METRIC_KEYS = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "mrr", "hit_rate", "coverage", "n_users")


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return k


def _relevant(truth: DataFrame, user_col: str, item_col: str) -> DataFrame:
    """Distinct, non-null ``(user, item)`` pairs of ``truth``."""
    return (truth.select(user_col, item_col)
            .where(F.col(user_col).isNotNull() & F.col(item_col).isNotNull())
            .dropDuplicates([user_col, item_col]))


def _top_k(recs: DataFrame, k: int, user_col: str, item_col: str, rank_col: str) -> DataFrame:
    """``(user, item, rank)`` with ``1 <= rank <= k``, one row per pair (its best rank), rank as long."""
    rank = F.col(rank_col).cast("long")
    return (recs.select(user_col, item_col, rank.alias(rank_col))
            .where(F.col(user_col).isNotNull() & F.col(item_col).isNotNull()
                   & (F.col(rank_col) >= 1) & (F.col(rank_col) <= F.lit(k).cast("long")))
            .groupBy(user_col, item_col).agg(F.min(rank_col).alias(rank_col)))


def _ideal_dcg(n: Column) -> Column:
    """``sum_{i=1}^{n} 1 / log2(i + 1)`` for ``n >= 1`` (a long column)."""
    return F.aggregate(F.sequence(F.lit(1).cast("long"), n), F.lit(0.0),
                       lambda acc, i: acc + F.lit(1.0) / F.log2(i.cast("double") + F.lit(1.0)))


def metrics_by_user(recs: DataFrame, truth: DataFrame, k: int, *, user_col: str = C.CUSTOMER_ID,
                    item_col: str = C.PRODUCT_ID, rank_col: str = "rank") -> DataFrame:
    """Per-customer ranking metrics at ``k``, one row per customer in ``truth``.

    Parameters
    ----------
    recs : DataFrame
        ``user_col, item_col, rank_col`` (1-based rank); rows with rank > k are ignored.
    truth : DataFrame
        ``user_col, item_col`` relevant pairs; duplicates are dropped.
    k : int
        List length evaluated (>= 1).
    user_col, item_col, rank_col : str
        Column names.

    Returns
    -------
    DataFrame
        ``user_col, n_relevant, n_recommended, n_hits`` (longs) and the doubles
        ``precision_at_k, recall_at_k, ndcg_at_k, ap_at_k, reciprocal_rank`` plus
        ``hit`` (1.0 or 0.0), all defined in the module docstring. Customers in
        ``truth`` without recommendations get ``n_recommended = 0`` and zeros.

    Examples
    --------
    >>> per_user = metrics_by_user(recs, truth, k=10)  # doctest: +SKIP
    >>> per_user.orderBy(F.desc("ndcg_at_k")).show(5)  # doctest: +SKIP
    """
    k = _check_k(k)
    rel = _relevant(truth, user_col, item_col)
    top = _top_k(recs, k, user_col, item_col, rank_col)

    n_rel = rel.groupBy(user_col).agg(F.count(F.lit(1)).alias(N_RELEVANT))
    n_rec = top.groupBy(user_col).agg(F.count(F.lit(1)).alias(N_RECOMMENDED))

    # Hits, numbered in rank order: the j-th hit at rank r adds j / r (precision@r) to AP.
    by_rank = Window.partitionBy(user_col).orderBy(F.col(rank_col).asc(), F.col(item_col).asc())
    hits = (top.join(rel, [user_col, item_col], "inner")
            .withColumn("_j", F.row_number().over(by_rank).cast("double")))
    rank_d = F.col(rank_col).cast("double")
    hit_stats = hits.groupBy(user_col).agg(
        F.count(F.lit(1)).alias(N_HITS),
        F.sum(F.lit(1.0) / F.log2(rank_d + F.lit(1.0))).alias("_dcg"),
        F.sum(F.col("_j") / rank_d).alias("_ap_sum"),
        F.min(rank_col).alias("_first"),
    )

    base = (n_rel.join(n_rec, user_col, "left").join(hit_stats, user_col, "left")
            .select(user_col, N_RELEVANT,
                    F.coalesce(N_RECOMMENDED, F.lit(0).cast("long")).alias(N_RECOMMENDED),
                    F.coalesce(N_HITS, F.lit(0).cast("long")).alias(N_HITS),
                    F.coalesce("_dcg", F.lit(0.0)).alias("_dcg"),
                    F.coalesce("_ap_sum", F.lit(0.0)).alias("_ap_sum"),
                    "_first"))

    # n_relevant >= 1 for every row (rows come from truth) and k >= 1, so the
    # denominators below are positive; try_divide keeps ANSI mode safe anyway.
    ideal_n = F.least(F.col(N_RELEVANT), F.lit(k).cast("long"))
    hits_d = F.col(N_HITS).cast("double")
    return base.select(
        user_col, N_RELEVANT, N_RECOMMENDED, N_HITS,
        (hits_d / F.lit(float(k))).alias(PRECISION),
        F.try_divide(hits_d, F.col(N_RELEVANT).cast("double")).alias(RECALL),
        F.try_divide(F.col("_dcg"), _ideal_dcg(ideal_n)).alias(NDCG),
        F.try_divide(F.col("_ap_sum"), ideal_n.cast("double")).alias(AP),
        F.when(F.col("_first").isNull(), F.lit(0.0))
         .otherwise(F.lit(1.0) / F.col("_first").cast("double")).alias(RR),
        F.when(F.col(N_HITS) > 0, F.lit(1.0)).otherwise(F.lit(0.0)).alias(HIT),
    )


def ranking_metrics(recs: DataFrame, truth: DataFrame, k: int, catalogue_size: int | None = None, *,
                    user_col: str = C.CUSTOMER_ID, item_col: str = C.PRODUCT_ID,
                    rank_col: str = "rank") -> dict[str, Any]:
    """Mean ranking metrics at ``k`` over the customers in ``truth``.

    Parameters
    ----------
    recs : DataFrame
        ``user_col, item_col, rank_col`` (1-based rank, 1 = best).
    truth : DataFrame
        ``user_col, item_col`` relevant pairs of the test period (deduplicated here).
    k : int
        List length evaluated (>= 1).
    catalogue_size : int, optional
        Number of recommendable products; ``coverage`` is ``None`` without it.
    user_col, item_col, rank_col : str
        Column names.

    Returns
    -------
    dict
        ``precision_at_k, recall_at_k, ndcg_at_k, map_at_k, mrr, hit_rate`` (floats,
        means of :func:`metrics_by_user` columns over the customers in ``truth``;
        ``None`` when ``truth`` is empty), ``coverage`` (float or ``None``) and
        ``n_users`` (int). Definitions are in the module docstring; ``map_at_k``
        normalises each customer's AP by ``min(|truth|, k)`` as Spark's
        ``meanAveragePrecisionAt`` does.

    Examples
    --------
    >>> schema = "customer_id string, product_id string, rank int"  # doctest: +SKIP
    >>> recs = spark.createDataFrame([("u1", "p1", 1), ("u1", "p2", 2)], schema)  # doctest: +SKIP
    >>> truth = spark.createDataFrame([("u1", "p2")], "customer_id string, product_id string")  # doctest: +SKIP
    >>> ranking_metrics(recs, truth, k=2)["ndcg_at_k"]  # 1/log2(3) / 1  # doctest: +SKIP
    0.6309297535714575
    """
    k = _check_k(k)
    if catalogue_size is not None and catalogue_size <= 0:
        raise ValueError(f"catalogue_size must be positive, got {catalogue_size!r}")
    per_user = metrics_by_user(recs, truth, k, user_col=user_col, item_col=item_col, rank_col=rank_col)
    aggs = [F.count(F.lit(1)).alias("n_users"),
            F.avg(PRECISION).alias("precision_at_k"), F.avg(RECALL).alias("recall_at_k"),
            F.avg(NDCG).alias("ndcg_at_k"), F.avg(AP).alias("map_at_k"),
            F.avg(RR).alias("mrr"), F.avg(HIT).alias("hit_rate")]
    summary = per_user.agg(*aggs)
    if catalogue_size is not None:
        # coverage in the same query (one row each side): on small data a query's fixed cost outweighs its work
        summary = summary.crossJoin(_top_k(recs, k, user_col, item_col, rank_col)
                                    .agg(F.countDistinct(item_col).alias("_n_items")))
    row = summary.collect()[0]  # one aggregate row
    out: dict[str, Any] = {key: (None if row[key] is None else float(row[key]))
                           for key in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "mrr", "hit_rate")}
    out["n_users"] = int(row["n_users"])
    if out["n_users"] == 0:
        log.warning("ranking_metrics: truth has no customers; metrics are None")
    out["coverage"] = None if catalogue_size is None else int(row["_n_items"]) / catalogue_size
    log.info("ranking metrics at k=%d over %d users: %s", k, out["n_users"], out)
    return {key: out[key] for key in METRIC_KEYS}


def time_split(interactions: DataFrame, cutoff_ts: Any, ts_col: str = "ts") -> tuple[DataFrame, DataFrame]:
    """Split interactions at a point in time: train ``ts < cutoff``, test ``ts >= cutoff``.

    Parameters
    ----------
    interactions : DataFrame
        Any frame with a timestamp (or date) column ``ts_col``.
    cutoff_ts : str, datetime.datetime, datetime.date or Column
        The boundary; a string is cast to ``ts_col``'s type (ANSI: a malformed
        string raises), so ``"2018-06-01"`` or ``"2018-06-01 00:00:00"`` both work
        and are read in the session time zone.
    ts_col : str
        Timestamp column.

    Returns
    -------
    (DataFrame, DataFrame)
        ``(train, test)``. A row exactly at the cutoff goes to test; rows with a
        null timestamp go to neither.

    Examples
    --------
    >>> train, test = time_split(lines, "2018-06-01", ts_col="order_ts")  # doctest: +SKIP
    """
    if isinstance(cutoff_ts, Column):
        cutoff = cutoff_ts
    elif isinstance(cutoff_ts, str):
        cutoff = F.lit(cutoff_ts).cast(interactions.schema[ts_col].dataType)
    elif isinstance(cutoff_ts, (_dt.datetime, _dt.date)):
        cutoff = F.lit(cutoff_ts)
    else:
        raise TypeError(f"cutoff_ts must be a str, datetime, date or Column, got {type(cutoff_ts).__name__}")
    ts = F.col(ts_col)
    return interactions.where(ts < cutoff), interactions.where(ts >= cutoff)


def new_items_only(truth: DataFrame, train: DataFrame, *, user_col: str = C.CUSTOMER_ID,
                   item_col: str = C.PRODUCT_ID) -> DataFrame:
    """Drop from ``truth`` the ``(customer, product)`` pairs the customer already had in ``train``.

    This is the "new to the customer" setting: a repeat purchase is not counted as
    a relevant item, so models are not rewarded for recommending what was bought.

    Parameters
    ----------
    truth : DataFrame
        Relevant pairs (all its columns are kept).
    train : DataFrame
        Training interactions with ``user_col, item_col``.
    user_col, item_col : str
        Column names.

    Returns
    -------
    DataFrame
        ``truth`` rows whose pair does not occur in ``train`` (a left anti join;
        duplicates in ``truth`` are left as they are).

    Examples
    --------
    >>> truth_new = new_items_only(time_split(lines, "2018-06-01", "order_ts")[1], train)  # doctest: +SKIP
    """
    seen = train.select(user_col, item_col).where(F.col(user_col).isNotNull() & F.col(item_col).isNotNull()).distinct()
    return truth.join(seen, [user_col, item_col], "left_anti")


def stratified_random_split(df: DataFrame, ratio: float = 0.75, seed: int = 42,
                            user_col: str = C.CUSTOMER_ID) -> tuple[DataFrame, DataFrame]:
    """Per-customer random split, like Microsoft recommenders' ``spark_stratified_split``.

    Each customer's rows are ordered within the customer (a window partitioned by
    ``user_col``) by a seeded pseudo-random number and the first
    ``n_train = round_half_up(ratio * n)`` of the customer's ``n`` rows go to train,
    the rest to test. ``ratio * n`` is computed in exact decimal arithmetic, so e.g.
    with ratio 0.75: n=1 -> 1/0, n=2 -> 2/0 (1.5 rounds up), n=3 -> 2/1,
    n=4 -> 3/1, n=5 -> 4/1 (train/test). A customer with one row therefore keeps it
    in train. (recommenders keeps rows whose ``row_number / n <= ratio``, i.e.
    rounds down, which puts single-row customers in test.)

    The random number is ``xxhash64(seed, <row values>)`` rather than ``rand(seed)``:
    ``rand`` depends on partitioning and row order, so two evaluations of a lazy
    plan (train and test are two filters of it) could disagree and leak or lose
    rows; the hash depends only on the row's values and the seed. Identical rows
    hash alike, which is harmless since they are interchangeable. Map-typed columns
    are left out of the hash.

    Parameters
    ----------
    df : DataFrame
        Interactions; every column is kept.
    ratio : float
        Share of each customer's rows going to train, strictly between 0 and 1.
    seed : int
        Seed; the same seed and data give the same split.
    user_col : str
        The stratification column.

    Returns
    -------
    (DataFrame, DataFrame)
        ``(train, test)`` with ``df``'s columns. Rows with a null ``user_col`` form
        one group of their own.

    Examples
    --------
    >>> train, test = stratified_random_split(interactions, ratio=0.8, seed=7)  # doctest: +SKIP
    """
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"ratio must be strictly between 0 and 1, got {ratio!r}")
    hashable = [F.col(f.name) for f in df.schema.fields if not isinstance(f.dataType, MapType)]
    key = F.xxhash64(F.lit(int(seed)).cast("long"), *hashable)
    ratio_dec = F.lit(Decimal(repr(float(ratio))))
    n = F.count(F.lit(1)).over(Window.partitionBy(user_col))
    n_train = F.round(ratio_dec * n.cast("decimal(20,0)"), 0).cast("long")  # HALF_UP
    position = F.row_number().over(Window.partitionBy(user_col).orderBy("_srs_key")).cast("long")
    ranked = (df.withColumn("_srs_key", key)
              .withColumn("_srs_pos", position)
              .withColumn("_srs_train", F.col("_srs_pos") <= n_train))
    cols = df.columns
    return (ranked.where(F.col("_srs_train")).select(*cols),
            ranked.where(~F.col("_srs_train")).select(*cols))
