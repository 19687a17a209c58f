"""Item-item recommenders: EASE (closed-form ridge) and cosine item-kNN, fitted and scored in Spark.

Both models learn a sparse item x item weight table and score a customer's
candidate product ``j`` as ``score(u, j) = sum_i x_ui * w_ij`` over the products
``i`` in the customer's history (``x_ui`` = 1, or the interaction weight with
``binary=False``).

``method="ease"``
    Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse Data": with the
    Gram matrix ``G = X^T X``, ``P = (G + lambda I)^-1`` and ``W = -P / diag(P)``
    (column-wise), ``diag(W) = 0``.  ``G`` is computed in Spark (a self-join of the
    interactions on the customer, summed per item pair, upper triangle only); only
    the ``n_items x n_items`` aggregate reaches the driver, which solves it with
    numpy (Cholesky).  That bounds the catalogue: ``max_items`` (default 10,000,
    about 0.8 GB per dense float64 copy) keeps the most-bought products and drops
    the rest from the model.
``method="cosine"``
    ``w_ij = G_ij / sqrt(G_ii G_jj)`` for ``i != j``, entirely in Spark (no driver
    matrix, no catalogue bound).

In both, each candidate ``j`` keeps its ``max_neighbors`` largest weights
``w_ij`` (its nearest neighbours ``i``); the rest are set to zero, which bounds
the scoring join at ``history rows x max_neighbors``.

:func:`fit_ease_grid` fits several ``(reg_lambda, max_neighbors)`` pairs from one
Gram matrix (for tuning).  The EASE weight table (``n_items x max_neighbors`` rows,
about 16 bytes each) is built on the driver and shipped with the tasks that read it;
Spark warns about large tasks beyond 1 MB, which is expected here.

On MovieLens 100k (``bench/movielens.py``) EASE (``reg_lambda`` 500) and implicit
ALS are the most accurate models of the project; see BENCHMARKS.md.

Cold start: customers without history and products outside the weight table
(not in training, or beyond ``max_items``) get no scores - callers fall back to
popularity.  A customer with fewer than ``k`` reachable candidates gets fewer
than ``k`` rows.

Example
-------
>>> fitted = fit_item_item(train, method="ease", reg_lambda=500.0, max_neighbors=200)   # doctest: +SKIP
>>> recs = recommend_item_item(fitted, train, 10)                                        # doctest: +SKIP
>>> similar_items(fitted, 5).where("product_id = 'p1'").show()                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.recommend.ids import index_ids

log = logging.getLogger(__name__)

NEIGHBOR_ID = "neighbor_id"
WEIGHT = "weight"
ITEM_IDX = "item_idx"
METHODS = ("ease", "cosine")
REC_COLUMNS = [C.CUSTOMER_ID, C.PRODUCT_ID, "score", "rank"]


@dataclass
class FittedItemItem:
    """Learned item-item weights.

    Attributes
    ----------
    weights : DataFrame
        ``[product_id, neighbor_id, weight double]``: ``weight`` is ``w_ij`` with
        ``product_id = j`` (the candidate) and ``neighbor_id = i`` (a product in the
        history), at most ``max_neighbors`` rows per ``product_id``, no ``i = j`` rows.
    params : dict
        Method and hyper-parameters, plus ``n_items`` (products in the model).
    """

    weights: DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def unpersist(self) -> None:
        """Release the cached weight table."""
        self.weights.unpersist()


def _values(interactions: DataFrame, binary: bool) -> DataFrame:
    """``[customer_id, product_id, v]``: one row per pair, ``v`` 1.0 or the summed positive weight."""
    missing = [c for c in (C.CUSTOMER_ID, C.PRODUCT_ID) if c not in interactions.columns]
    if missing:
        raise ValueError(f"interactions lack {missing}; expected customer_id, product_id[, weight]")
    if not binary and WEIGHT not in interactions.columns:
        raise ValueError("binary=False needs a weight column")
    pairs = interactions.where(F.col(C.CUSTOMER_ID).isNotNull() & F.col(C.PRODUCT_ID).isNotNull())
    if binary:
        return pairs.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct().withColumn("v", F.lit(1.0))
    return (pairs.groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(F.sum(F.col(WEIGHT).cast("double")).alias("v"))
            .where(F.col("v") > 0))


def _limit_items(values: DataFrame, max_items: int) -> DataFrame:
    """Keep the ``max_items`` products bought by most customers (ties by product id)."""
    counts = values.groupBy(C.PRODUCT_ID).agg(F.count(F.lit(1)).alias("n"))
    n_items = counts.count()
    if n_items <= max_items:
        return values
    log.warning("EASE: %d products > max_items=%d; keeping the %d most-bought", n_items, max_items, max_items)
    keep = counts.orderBy(F.col("n").desc(), F.col(C.PRODUCT_ID).asc()).limit(max_items).select(C.PRODUCT_ID)
    return values.join(keep, C.PRODUCT_ID)


def _gram_upper(x: DataFrame) -> DataFrame:
    """``[i, j, g]`` with ``i <= j``: ``g = sum_u x_ui x_uj`` from ``x[customer_id, item_idx, v]``."""
    a = x.select(C.CUSTOMER_ID, F.col(ITEM_IDX).alias("i"), F.col("v").alias("vi"))
    b = x.select(C.CUSTOMER_ID, F.col(ITEM_IDX).alias("j"), F.col("v").alias("vj"))
    return (a.join(b, C.CUSTOMER_ID).where(F.col("i") <= F.col("j"))
            .groupBy("i", "j").agg(F.sum(F.col("vi") * F.col("vj")).alias("g")))


def ease_weights(gram: np.ndarray, reg_lambda: float) -> np.ndarray:
    """Dense EASE weights ``W`` from a Gram matrix (driver side, item x item).

    Parameters
    ----------
    gram : numpy.ndarray
        Symmetric ``n x n`` ``X^T X``.
    reg_lambda : float
        Ridge penalty added to the diagonal (> 0).

    Returns
    -------
    numpy.ndarray
        ``W`` with ``W[i, j]`` the weight of history item ``i`` for candidate ``j``
        and a zero diagonal.

    Examples
    --------
    >>> w = ease_weights(np.array([[2.0, 1.0], [1.0, 2.0]]), 1.0)
    >>> round(float(w[0, 1]), 4), float(w[0, 0])
    (0.3333, 0.0)
    """
    if reg_lambda <= 0:
        raise ValueError(f"reg_lambda must be > 0, got {reg_lambda}")
    from scipy.linalg import cho_factor, cho_solve

    n = gram.shape[0]
    a = gram.astype(np.float64, copy=True)
    a[np.diag_indices(n)] += reg_lambda
    p = cho_solve(cho_factor(a, overwrite_a=True, check_finite=False), np.eye(n), overwrite_b=True,
                  check_finite=False)
    w = p / (-np.diag(p))[None, :]
    w[np.diag_indices(n)] = 0.0
    return w


def _top_per_column(w: np.ndarray, max_neighbors: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, w_ij)`` triplets keeping, per column ``j``, its ``max_neighbors`` largest off-diagonal entries."""
    n = w.shape[0]
    off = ~np.eye(n, dtype=bool)
    if max_neighbors is None or max_neighbors >= n - 1:
        i, j = np.nonzero(off & (w != 0))
        return i, j, w[i, j]
    masked = np.where(off, w, -np.inf)
    rows = np.argpartition(-masked, max_neighbors - 1, axis=0)[:max_neighbors]  # (m, n): top rows per column
    cols = np.broadcast_to(np.arange(n), rows.shape)
    i, j = rows.ravel(), cols.ravel()
    vals = w[i, j]
    keep = vals != 0
    return i[keep], j[keep], vals[keep]


def _cosine_weights(x: DataFrame, max_neighbors: int | None) -> DataFrame:
    """``[j, i, weight]`` cosine similarities in Spark, top ``max_neighbors`` per ``j``."""
    upper = _gram_upper(x)
    diag = upper.where(F.col("i") == F.col("j")).select(F.col("i").alias("k"), F.col("g").alias("d"))
    off = upper.where(F.col("i") < F.col("j"))
    sim = (off.join(diag.select(F.col("k").alias("i"), F.col("d").alias("di")), "i")
           .join(diag.select(F.col("k").alias("j"), F.col("d").alias("dj")), "j")
           .select("i", "j", (F.col("g") / F.sqrt(F.col("di") * F.col("dj"))).alias(WEIGHT)))
    both = sim.unionByName(sim.select(F.col("j").alias("i"), F.col("i").alias("j"), WEIGHT))
    if max_neighbors is not None:
        order = Window.partitionBy("j").orderBy(F.col(WEIGHT).desc(), F.col("i").asc())
        both = both.withColumn("_r", F.row_number().over(order)).where(F.col("_r") <= max_neighbors).drop("_r")
    return both


def _check_neighbors(max_neighbors: int | None) -> None:
    if max_neighbors is not None and max_neighbors < 1:
        raise ValueError(f"max_neighbors must be >= 1 or None, got {max_neighbors}")


def _prepare(interactions: DataFrame, binary: bool, max_items: int | None) -> tuple[DataFrame, DataFrame, int]:
    """``x[customer_id, item_idx, v]``, the cached id map ``[product_id, item_idx]`` and the item count."""
    values = _values(interactions, binary)
    if max_items is not None:
        values = _limit_items(values, max_items)
    product_ids = index_ids(values, C.PRODUCT_ID, ITEM_IDX).persist()
    x = values.join(product_ids, C.PRODUCT_ID).select(C.CUSTOMER_ID, ITEM_IDX, "v")
    return x, product_ids, product_ids.count()


def _finish(triplets: DataFrame, product_ids: DataFrame, n_items: int, params: dict[str, Any]) -> FittedItemItem:
    """Translate ``[i, j, weight]`` back to product ids and cache the table."""
    src = product_ids.select(F.col(ITEM_IDX).alias("i"), F.col(C.PRODUCT_ID).alias(NEIGHBOR_ID))
    dst = product_ids.select(F.col(ITEM_IDX).alias("j"), F.col(C.PRODUCT_ID).alias(C.PRODUCT_ID))
    small = n_items <= 100_000  # the id map is one row per product: broadcast it when that is cheap
    weights = (triplets.join(F.broadcast(src) if small else src, "i")
               .join(F.broadcast(dst) if small else dst, "j")
               .select(C.PRODUCT_ID, NEIGHBOR_ID, F.col(WEIGHT).cast("double").alias(WEIGHT))).persist()
    params = {**params, "n_items": n_items, "n_weights": weights.count()}
    log.info("item-item weights fitted: %s", params)
    return FittedItemItem(weights=weights, params=params)


def fit_item_item(interactions: DataFrame, method: str = "ease", reg_lambda: float = 500.0,
                  max_neighbors: int | None = 200, max_items: int = 10_000, binary: bool = True) -> FittedItemItem:
    """Learn item-item weights from ``(customer_id, product_id[, weight])`` interactions.

    Parameters
    ----------
    interactions : DataFrame
        Training interactions; null ids are dropped, repeated pairs count once
        (``binary=True``) or with their summed weight (``binary=False``, pairs with
        a non-positive sum are dropped).
    method : {"ease", "cosine"}
        See the module docstring.
    reg_lambda : float
        EASE ridge penalty (ignored by cosine).  Larger values shrink towards
        popularity-like scores; tune it on a validation split (:func:`fit_ease_grid`
        fits several values from one Gram matrix).
    max_neighbors : int or None
        Weights kept per candidate product (``None``: all non-zero ones).
    max_items : int
        EASE only: largest catalogue solved on the driver; beyond it the most-bought
        ``max_items`` products are kept.
    binary : bool
        Use 1 per (customer, product) instead of the weight.

    Returns
    -------
    FittedItemItem
        Cached weight table; call :meth:`FittedItemItem.unpersist` when done.

    Examples
    --------
    >>> fitted = fit_item_item(train, method="cosine", max_neighbors=100)       # doctest: +SKIP
    >>> fitted.weights.columns                                                   # doctest: +SKIP
    ['product_id', 'neighbor_id', 'weight']
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "ease":
        return fit_ease_grid(interactions, [(reg_lambda, max_neighbors)], max_items=max_items, binary=binary)[0]
    _check_neighbors(max_neighbors)
    x, product_ids, n_items = _prepare(interactions, binary, None)
    try:
        return _finish(_cosine_weights(x, max_neighbors), product_ids, n_items,
                       {"method": "cosine", "max_neighbors": max_neighbors, "binary": binary})
    finally:
        product_ids.unpersist()


def fit_ease_grid(interactions: DataFrame, grid: Sequence[tuple[float, int | None]], max_items: int = 10_000,
                  binary: bool = True) -> list[FittedItemItem]:
    """Fit EASE for several ``(reg_lambda, max_neighbors)`` pairs from one Gram matrix.

    The Spark self-join runs once; each pair costs one driver solve (skipped when the
    lambda repeats) and one weight table.  This is what hyper-parameter tuning uses.

    Parameters
    ----------
    interactions : DataFrame
        As for :func:`fit_item_item`.
    grid : sequence of (float, int or None)
        ``(reg_lambda, max_neighbors)`` pairs.
    max_items : int
        Largest catalogue solved on the driver (see the module docstring).
    binary : bool
        Use 1 per (customer, product) instead of the weight.

    Returns
    -------
    list of FittedItemItem
        In the order of ``grid``, each with its own cached weight table.

    Examples
    --------
    >>> fits = fit_ease_grid(train, [(100.0, 200), (300.0, 200), (300.0, None)])   # doctest: +SKIP
    """
    if not grid:
        raise ValueError("grid is empty")
    for reg_lambda, max_neighbors in grid:
        if reg_lambda <= 0:
            raise ValueError(f"reg_lambda must be > 0, got {reg_lambda}")
        _check_neighbors(max_neighbors)
    if max_items < 2:
        raise ValueError(f"max_items must be >= 2, got {max_items}")
    import pyarrow as pa

    spark = interactions.sparkSession
    x, product_ids, n_items = _prepare(interactions, binary, max_items)
    try:
        gram = gram_matrix(x, n_items)
        out: list[FittedItemItem] = []
        solved: dict[float, np.ndarray] = {}
        for reg_lambda, max_neighbors in grid:
            if reg_lambda not in solved:
                solved.clear()  # keep one dense solution in memory at a time
                solved[reg_lambda] = ease_weights(gram, reg_lambda)
            i, j, vals = _top_per_column(solved[reg_lambda], max_neighbors)
            table = pa.table({"i": pa.array(i, pa.int32()), "j": pa.array(j, pa.int32()), WEIGHT: pa.array(vals)})
            params = {"method": "ease", "reg_lambda": reg_lambda, "max_neighbors": max_neighbors,
                      "binary": binary, "max_items": max_items}
            out.append(_finish(spark.createDataFrame(table), product_ids, n_items, params))
        return out
    finally:
        product_ids.unpersist()


def gram_matrix(x: DataFrame, n_items: int) -> np.ndarray:
    """Dense ``X^T X`` on the driver from ``x[customer_id, item_idx, v]`` (item indices ``0 .. n_items-1``).

    The self-join and the per-pair sums run in Spark; only the item-pair aggregate
    (at most ``n_items * (n_items + 1) / 2`` rows) is fetched, through Arrow.

    Parameters
    ----------
    x : DataFrame
        One row per (customer, item) with value ``v``.
    n_items : int
        Matrix size.

    Returns
    -------
    numpy.ndarray
        Symmetric float64 ``n_items x n_items``.

    Examples
    --------
    >>> g = gram_matrix(x, 1682)                                      # doctest: +SKIP
    """
    upper = _gram_upper(x).select(F.col("i").cast("int"), F.col("j").cast("int"), F.col("g").cast("double"))
    table = upper.toArrow()  # item x item aggregate, not row-level data
    i = table.column("i").to_numpy()
    j = table.column("j").to_numpy()
    g = table.column("g").to_numpy()
    gram = np.zeros((n_items, n_items), dtype=np.float64)
    gram[i, j] = g
    gram[j, i] = g
    return gram


def recommend_item_item(fitted: FittedItemItem, history: DataFrame, k: int, exclude_history: bool = True) -> DataFrame:
    """Top-``k`` products per customer from the customer's history and the item-item weights.

    Parameters
    ----------
    fitted : FittedItemItem
        From :func:`fit_item_item`.
    history : DataFrame
        ``customer_id, product_id[, weight]``: what each customer has interacted
        with (the training interactions, or fresher ones: the model needs no
        refit to score a new history).  Read like the training data
        (``binary`` as fitted).
    k : int
        Recommendations per customer (>= 1).
    exclude_history : bool
        Drop products already in the customer's history.

    Returns
    -------
    DataFrame
        ``[customer_id, product_id, score double, rank int]``, rank 1..k by
        descending score, ties by product id.  Customers without any product in
        the model are absent (cold start).

    Examples
    --------
    >>> recs = recommend_item_item(fitted, train, 10)                   # doctest: +SKIP
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    h = _values(history, fitted.params.get("binary", True))
    scores = (h.select(C.CUSTOMER_ID, F.col(C.PRODUCT_ID).alias(NEIGHBOR_ID), "v")
              .join(fitted.weights, NEIGHBOR_ID)
              .groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(F.sum(F.col("v") * F.col(WEIGHT)).alias("score")))
    if exclude_history:
        scores = scores.join(h.select(C.CUSTOMER_ID, C.PRODUCT_ID), [C.CUSTOMER_ID, C.PRODUCT_ID], "left_anti")
    order = Window.partitionBy(C.CUSTOMER_ID).orderBy(F.col("score").desc(), F.col(C.PRODUCT_ID).asc())
    return (scores.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)
            .select(C.CUSTOMER_ID, C.PRODUCT_ID, "score", F.col("rank").cast("int").alias("rank")))


def similar_items(fitted: FittedItemItem, n: int) -> DataFrame:
    """The ``n`` strongest neighbours of every product ("customers who bought this also bought").

    Parameters
    ----------
    fitted : FittedItemItem
        From :func:`fit_item_item`.
    n : int
        Neighbours per product (>= 1), only positive weights.

    Returns
    -------
    DataFrame
        ``[product_id, neighbor_id, weight, rank int]``, rank 1..n by descending
        weight, ties by neighbour id.

    Examples
    --------
    >>> similar_items(fitted, 5).where("product_id = 'p1'").show()      # doctest: +SKIP
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    order = Window.partitionBy(C.PRODUCT_ID).orderBy(F.col(WEIGHT).desc(), F.col(NEIGHBOR_ID).asc())
    return (fitted.weights.where(F.col(WEIGHT) > 0).withColumn("rank", F.row_number().over(order))
            .where(F.col("rank") <= n).select(C.PRODUCT_ID, NEIGHBOR_ID, WEIGHT, F.col("rank").cast("int")))
