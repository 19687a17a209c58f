"""Implicit-feedback ALS (Spark MLlib) on customer-product interactions with string ids.

``fit_als`` maps customer and product ids to dense ints (:func:`ecomrec_spark.recommend.ids.index_ids`),
sums the weights of repeated ``(customer, product)`` pairs and trains
``pyspark.ml.recommendation.ALS`` with ``implicitPrefs=True`` (Hu, Koren and Volinsky 2008:
preference 1 for every observed pair, confidence ``1 + alpha * weight``).  The result,
:class:`FittedALS`, holds the model and both id maps, so every output speaks the
original ids again:

* :func:`recommend_all` - top-k products per known customer, with already-seen
  products removed;
* :func:`item_factors` - one latent vector per product, the co-purchase embedding
  used by the KNN recommender.

Tuning
------
On MovieLens 100k (``bench/movielens.py``, chosen on a validation split) the best
setting was rank 64, ``reg_param`` 1.0, ``alpha`` 10, 5 iterations, binary weights
(nDCG@10 0.45 on the recommenders protocol); purchase data is much sparser, so tune
on the project's own validation split rather than reuse these:
:func:`ecomrec_spark.recommend.tuning.tune_models` tries ``recommend.als.grid``.

Cold start
----------
Customers and products that are not in the training interactions have no factors:
they never appear in the output of :func:`recommend_all` or :func:`item_factors`,
and ``model.transform`` drops them (``cold_start="drop"``, which also keeps ranking
metrics from turning NaN).  Callers fill those customers from the popularity
recommender (:mod:`ecomrec_spark.recommend.popularity`).

Example
-------
>>> fitted = fit_als(interactions, rank=32, reg_param=0.1, alpha=10.0, max_iter=15, seed=42)   # doctest: +SKIP
>>> recs = recommend_all(fitted, 10, exclude_seen=interactions)                                # doctest: +SKIP
>>> recs.columns                                                                                 # doctest: +SKIP
['customer_id', 'product_id', 'score', 'rank']
>>> fitted.unpersist()                                                                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from typing import Any

from pyspark.ml.functions import array_to_vector
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.recommend.ids import index_ids
from ecomrec_spark.session import runs_locally

log = logging.getLogger(__name__)

USER_IDX, ITEM_IDX = "user_idx", "item_idx"
WEIGHT = "weight"
REC_COLUMNS = [C.CUSTOMER_ID, C.PRODUCT_ID, "score", "rank"]
COLD_START_STRATEGIES = ("drop", "nan")


@dataclass
class FittedALS:
    """A trained ALS model and the id maps that translate its int ids back.

    Attributes
    ----------
    model : ALSModel
        The MLlib model; its ``userCol``/``itemCol`` are ``user_idx``/``item_idx``.
    customer_ids : DataFrame
        ``[customer_id, user_idx int]``, one row per training customer (cached).
    product_ids : DataFrame
        ``[product_id, item_idx int]``, one row per training product (cached).
    params : dict
        The hyper-parameters used, for logs and reports.
    """

    model: ALSModel
    customer_ids: DataFrame
    product_ids: DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def unpersist(self) -> None:
        """Release the cached id maps."""
        self.customer_ids.unpersist()
        self.product_ids.unpersist()


def _check(interactions: DataFrame, rank: int, reg_param: float, alpha: float, max_iter: int,
           cold_start: str) -> None:
    missing = [c for c in (C.CUSTOMER_ID, C.PRODUCT_ID, WEIGHT) if c not in interactions.columns]
    if missing:
        raise ValueError(f"interactions lack {missing}; expected customer_id, product_id, weight")
    if rank < 1 or max_iter < 1:
        raise ValueError(f"rank and max_iter must be >= 1, got rank={rank}, max_iter={max_iter}")
    if reg_param < 0 or alpha < 0:
        raise ValueError(f"reg_param and alpha must be >= 0, got reg_param={reg_param}, alpha={alpha}")
    if cold_start not in COLD_START_STRATEGIES:
        raise ValueError(f"cold_start must be one of {COLD_START_STRATEGIES}, got {cold_start!r}")


def _default_parallelism(df: DataFrame) -> int:
    try:
        return int(df.sparkSession.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect has no SparkContext
        return 10


def _ensure_checkpoint_dir(df: DataFrame, checkpoint_dir: str | None, needed: bool) -> None:
    """Set the checkpoint directory ALS needs for long runs (see ``fit_als``)."""
    try:
        sc = df.sparkSession.sparkContext
    except Exception:  # Spark Connect: the server's settings apply
        return
    if checkpoint_dir:
        sc.setCheckpointDir(checkpoint_dir)
        return
    if not needed or sc.getCheckpointDir() is not None:
        return
    if runs_locally(df.sparkSession):
        path = tempfile.mkdtemp(prefix="ecomrec-als-checkpoints-")
        sc.setCheckpointDir(path)
        log.info("ALS: no checkpoint directory was set; using %s", path)
    else:
        log.warning("ALS: no checkpoint directory; long runs may fail with StackOverflowError - pass checkpoint_dir")


def fit_als(interactions: DataFrame, rank: int = 32, reg_param: float = 0.1, alpha: float = 10.0,
            max_iter: int = 15, seed: int = 42, nonnegative: bool = False, cold_start: str = "drop",
            num_blocks: int | None = None, checkpoint_dir: str | None = None,
            checkpoint_interval: int = 5) -> FittedALS:
    """Train implicit-feedback ALS on ``(customer_id, product_id, weight)``.

    Parameters
    ----------
    interactions : DataFrame
        ``customer_id``, ``product_id`` (any type; strings in the lake) and a numeric
        ``weight`` (purchases, quantities, event scores...).  Rows with a null id or
        weight are dropped; weights of repeated pairs are summed.  ALS treats a pair
        with weight ``w > 0`` as preference 1 with confidence ``1 + alpha * w``; a
        non-positive sum means preference 0 with confidence ``1 + alpha * |w|``.
    rank : int
        Number of latent factors.
    reg_param : float
        L2 regularisation (``regParam``; MLlib scales it by each row's count).
    alpha : float
        Confidence scale of implicit ALS.
    max_iter : int
        Alternating iterations.
    seed : int
        Seed of the factor initialisation; the same data, seed and partitioning give
        the same model.
    nonnegative : bool
        Constrain factors to be non-negative.
    cold_start : {"drop", "nan"}
        ``coldStartStrategy`` for ``model.transform`` on unseen ids; "drop" (the
        default) is what evaluation needs.
    num_blocks : int, optional
        ``numUserBlocks`` and ``numItemBlocks``; ``None`` uses the session's default
        parallelism (MLlib's own default, 10, is too many tasks for small data and
        too few for a large cluster).
    checkpoint_dir : str, optional
        Where ALS checkpoints its factors every ``checkpoint_interval`` iterations
        (set with ``SparkContext.setCheckpointDir``; on a cluster a shared path such
        as ``hdfs:///tmp/als-checkpoints`` or an S3 prefix).  Without checkpoints the
        RDD lineage grows with every iteration and long runs can fail with
        ``java.lang.StackOverflowError`` (seen here at 20 iterations).  When neither
        this nor an existing checkpoint directory is set and ``max_iter`` exceeds
        ``checkpoint_interval``, a temporary local directory is used on a ``local``
        master and a warning is logged elsewhere.
    checkpoint_interval : int
        Iterations between checkpoints (``checkpointInterval``), used only when a
        checkpoint directory is set.

    Returns
    -------
    FittedALS
        Model plus cached id maps; call :meth:`FittedALS.unpersist` when done.

    Examples
    --------
    >>> fitted = fit_als(interactions, rank=16, reg_param=0.05, alpha=20.0, max_iter=10, seed=7)  # doctest: +SKIP
    >>> fitted.model.itemFactors.count() == fitted.product_ids.count()                           # doctest: +SKIP
    True
    """
    _check(interactions, rank, reg_param, alpha, max_iter, cold_start)
    pairs = (interactions.select(C.CUSTOMER_ID, C.PRODUCT_ID, F.col(WEIGHT).cast("double").alias(WEIGHT))
             .dropna(subset=[C.CUSTOMER_ID, C.PRODUCT_ID, WEIGHT])
             .groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(F.sum(WEIGHT).alias(WEIGHT)))
    customer_ids = index_ids(pairs, C.CUSTOMER_ID, USER_IDX).persist()
    product_ids = index_ids(pairs, C.PRODUCT_ID, ITEM_IDX).persist()
    ratings = (pairs.join(customer_ids, C.CUSTOMER_ID).join(product_ids, C.PRODUCT_ID)
               .select(USER_IDX, ITEM_IDX, F.col(WEIGHT).cast("float").alias(WEIGHT)))
    if num_blocks is None:
        num_blocks = max(1, _default_parallelism(interactions))
    if checkpoint_interval < 1:
        raise ValueError(f"checkpoint_interval must be >= 1, got {checkpoint_interval}")
    _ensure_checkpoint_dir(interactions, checkpoint_dir, max_iter > checkpoint_interval)
    params = {"rank": rank, "reg_param": reg_param, "alpha": alpha, "max_iter": max_iter, "seed": seed,
              "nonnegative": nonnegative, "cold_start": cold_start, "num_blocks": num_blocks}
    als = ALS(rank=rank, maxIter=max_iter, regParam=reg_param, alpha=alpha, implicitPrefs=True,
              nonnegative=nonnegative, seed=seed, coldStartStrategy=cold_start,
              numUserBlocks=num_blocks, numItemBlocks=num_blocks, checkpointInterval=checkpoint_interval,
              userCol=USER_IDX, itemCol=ITEM_IDX, ratingCol=WEIGHT)
    log.info("fitting implicit ALS %s", params)
    model = als.fit(ratings)
    return FittedALS(model=model, customer_ids=customer_ids, product_ids=product_ids, params=params)


def _max_seen(fitted: FittedALS, seen: DataFrame) -> int:
    """Largest number of distinct model products any one known customer has in ``seen`` (0 if none)."""
    per_user = (seen.join(fitted.customer_ids, C.CUSTOMER_ID).join(fitted.product_ids, C.PRODUCT_ID)
                .groupBy(USER_IDX).agg(F.count(F.lit(1)).alias("n")))
    row = per_user.agg(F.max("n").alias("m")).first()  # one aggregate row, not row-level data
    assert row is not None, "an aggregate without groupBy returns exactly one row"
    return int(row["m"] or 0)


def recommend_all(fitted: FittedALS, k: int, exclude_seen: DataFrame | None = None,
                  margin: int | None = None) -> DataFrame:
    """Top-``k`` products for every training customer, optionally without products already seen.

    Parameters
    ----------
    fitted : FittedALS
        From :func:`fit_als`.
    k : int
        Recommendations per customer (>= 1).
    exclude_seen : DataFrame, optional
        ``customer_id, product_id`` pairs never to recommend (usually the training
        interactions); extra columns are ignored.
    margin : int, optional
        How many candidates beyond ``k`` to ask ``recommendForAllUsers`` for.  With
        ``None`` (the default) the margin is the largest number of model products any
        one customer has in ``exclude_seen`` (an aggregate computed first), which
        guarantees ``k`` results for every customer who has at least ``k`` unseen
        products.  A fixed margin bounds the cost (``customers x (k + margin)`` rows)
        when a few customers have seen very many products, but such customers may get
        fewer than ``k`` results.

    Returns
    -------
    DataFrame
        ``[customer_id, product_id, score double, rank int]``, ``rank`` 1..k by
        descending score (ties by ascending product index, i.e. product id order).
        Only customers and products seen in training appear (cold start: the caller
        falls back to popularity).

    Examples
    --------
    >>> recs = recommend_all(fitted, 10, exclude_seen=train)                              # doctest: +SKIP
    >>> recs.where("rank = 1").show()                                                      # doctest: +SKIP
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if margin is not None and margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    seen = None
    if exclude_seen is not None:
        seen = exclude_seen.select(C.CUSTOMER_ID, C.PRODUCT_ID).dropna().distinct()
        if margin is None:
            margin = _max_seen(fitted, seen)
    n = k + (margin or 0)
    log.info("recommendForAllUsers(%d) for k=%d", n, k)
    raw = fitted.model.recommendForAllUsers(n)
    cand = raw.select(USER_IDX, F.explode("recommendations").alias("r")).select(
        USER_IDX, F.col(f"r.{ITEM_IDX}").alias(ITEM_IDX), F.col("r.rating").cast("double").alias("score"))
    cand = cand.join(fitted.customer_ids, USER_IDX).join(fitted.product_ids, ITEM_IDX)
    if seen is not None:
        cand = cand.join(seen, [C.CUSTOMER_ID, C.PRODUCT_ID], "left_anti")
    order = Window.partitionBy(C.CUSTOMER_ID).orderBy(F.col("score").desc(), F.col(ITEM_IDX).asc())
    return (cand.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)
            .select(C.CUSTOMER_ID, C.PRODUCT_ID, "score", F.col("rank").cast("int").alias("rank")))


def item_factors(fitted: FittedALS) -> DataFrame:
    """The latent vector of every training product, keyed by the original product id.

    Parameters
    ----------
    fitted : FittedALS
        From :func:`fit_als`.

    Returns
    -------
    DataFrame
        ``[product_id, features]`` with ``features`` a dense ``pyspark.ml.linalg.Vector``
        of length ``rank`` (ready for ``Normalizer`` / ``BucketedRandomProjectionLSH``).

    Examples
    --------
    >>> emb = item_factors(fitted)                                                          # doctest: +SKIP
    >>> emb.first().features.size == fitted.params["rank"]                                  # doctest: +SKIP
    True
    """
    factors = fitted.model.itemFactors.select(F.col("id").alias(ITEM_IDX), "features")
    return factors.join(fitted.product_ids, ITEM_IDX).select(
        C.PRODUCT_ID, array_to_vector(F.col("features")).alias("features"))
