"""Item-item recommenders: EASE (closed-form ridge) and cosine item-kNN, fitted in Spark.

Scoring a fitted model (each customer's top k) is in :mod:`ecomrec_spark.recommend.item_item_scoring`.

Both models learn an item x item weight matrix and score a customer's candidate
product ``j`` as ``score(u, j) = sum_i x_ui * w_ij`` over the products ``i`` in
the customer's history (``x_ui`` = 1, or the interaction weight with
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

Two ways to score
-----------------
*Dense (EASE, unpruned).*  With ``max_neighbors=None`` and at most
``dense_max_items`` products (default 6,000), EASE keeps the whole ``W``: it is
broadcast as float32 (``n^2 x 4`` bytes: 137 MiB at 6,000 products, 381 MiB at
10,000, which is why the bound sits below ``max_items`` for a 4 GB driver; every
Python worker holds one copy), each customer's history is gathered into one
array per customer inside Spark (``groupBy`` + ``collect_list``), and
``mapInArrow`` scores blocks of customers with one matrix multiply ``X_b @ W``,
picks candidates with ``np.argpartition`` and re-scores them in float64 (exact up
to the float32 rounding of ``W``).  On MovieLens 100k this is what makes EASE
reach the accuracy of a plain numpy EASE (BENCHMARKS.md).

*Pruned (sparse join).*  Each candidate ``j`` keeps its ``max_neighbors``
largest weights ``w_ij`` (its nearest neighbours ``i``); the rest are set to
zero, and scoring is a Spark join ``history rows x max_neighbors``.  Cosine
always scores this way; EASE does when ``max_neighbors`` is an int, or when
``max_neighbors=None`` but the catalogue is above ``dense_max_items`` (then
``fallback_neighbors``, default 200, are kept and a warning is logged).

:func:`fit_ease_grid` fits several ``(reg_lambda, max_neighbors)`` pairs from one
Gram matrix (for tuning; :func:`iter_ease_grid` yields them one at a time so only
one solution is held).  The pruned EASE weight table (``n_items x max_neighbors``
rows, about 16 bytes each) is built on the driver and shipped with the tasks
that read it; Spark warns about large tasks beyond 1 MB, which is expected here.
A dense model builds that table (top ``fallback_neighbors`` per product) only
when :attr:`FittedItemItem.weights` is read, e.g. by :func:`similar_items`.

Cold start: customers without history and products outside the model
(not in training, or beyond ``max_items``) get no scores - callers fall back to
popularity.  A customer with fewer than ``k`` reachable candidates gets fewer
than ``k`` rows.

Example
-------
>>> fitted = fit_item_item(train, method="ease", reg_lambda=500.0, max_neighbors=None)   # doctest: +SKIP
>>> fitted.params["scoring"]                                                              # doctest: +SKIP
'dense'
>>> from ecomrec_spark.recommend.item_item_scoring import recommend_item_item          # doctest: +SKIP
>>> recs = recommend_item_item(fitted, train, 10)                                         # doctest: +SKIP
>>> similar_items(fitted, 5).where("product_id = 'p1'").show()                            # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.recommend.ids import index_ids

log = logging.getLogger(__name__)

NEIGHBOR_ID = "neighbor_id"
WEIGHT = "weight"
ITEM_IDX = "item_idx"
METHODS = ("ease", "cosine")
DENSE_MAX_ITEMS = 6_000  # float32 W broadcast: n^2 x 4 bytes = 137 MiB at 6,000 (one copy per Python worker)
FALLBACK_NEIGHBORS = 200  # EASE neighbours kept when an unpruned model is too large to score densely


@dataclass
class DenseWeights:
    """The full EASE matrix of a dense model.

    Attributes
    ----------
    ids : pyarrow.Array
        Product ids by item index (ascending id order, as :func:`~.ids.index_ids` numbers them).
    w : numpy.ndarray
        float64 ``n_items x n_items`` on the driver (the solve's own array, not a copy);
        ``w[i, j]`` is the weight of history item ``i`` for candidate ``j``, zero
        diagonal.  Scoring broadcasts it as float32.
    """

    ids: pa.Array
    w: np.ndarray


class FittedItemItem:
    """Learned item-item weights: a pruned weight table, or the dense EASE matrix.

    Attributes
    ----------
    weights : DataFrame
        ``[product_id, neighbor_id, weight double]``: ``weight`` is ``w_ij`` with
        ``product_id = j`` (the candidate) and ``neighbor_id = i`` (a product in the
        history), at most ``max_neighbors`` rows per ``product_id``, no ``i = j`` rows.
        A dense model builds it (top ``fallback_neighbors`` per product) on first read.
    params : dict
        Method and hyper-parameters, plus ``n_items`` (products in the model) and
        ``scoring`` (``"dense"`` or ``"pruned"``).
    dense : DenseWeights or None
        The whole matrix when ``params["scoring"] == "dense"``.
    """

    def __init__(self, weights: DataFrame | Callable[[], DataFrame], params: dict[str, Any] | None = None,
                 dense: DenseWeights | None = None) -> None:
        self._weights = weights if isinstance(weights, DataFrame) else None
        self._make_weights = None if isinstance(weights, DataFrame) else weights
        self.params: dict[str, Any] = dict(params or {})
        self.dense = dense
        self._broadcast: Any = None

    @property
    def weights(self) -> DataFrame:
        """The (pruned) weight table, built on first read for a dense model."""
        if self._weights is None:
            assert self._make_weights is not None
            self._weights = self._make_weights()
        return self._weights

    def unpersist(self) -> None:
        """Release the cached weight table and the broadcast matrix (materialise recommendations first)."""
        if self._weights is not None:
            self._weights.unpersist()
        if self._broadcast is not None:
            self._broadcast.unpersist()
            self._broadcast = None


def history_values(interactions: DataFrame, binary: bool) -> DataFrame:
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
    values = history_values(interactions, binary)
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
    return FittedItemItem(weights, params)


def _dense_table(spark: Any, dense: DenseWeights, neighbors: int) -> DataFrame:
    """The pruned weight table of a dense model, straight from the driver matrix (no id joins)."""
    i, j, vals = _top_per_column(dense.w, neighbors)
    table = pa.table({C.PRODUCT_ID: dense.ids.take(pa.array(j)), NEIGHBOR_ID: dense.ids.take(pa.array(i)),
                      WEIGHT: pa.array(vals.astype(np.float64))})
    return spark.createDataFrame(table).persist()


def fit_item_item(interactions: DataFrame, method: str = "ease", reg_lambda: float = 500.0,
                  max_neighbors: int | None = 200, max_items: int = 10_000, binary: bool = True,
                  dense_max_items: int = DENSE_MAX_ITEMS, fallback_neighbors: int = FALLBACK_NEIGHBORS
                  ) -> FittedItemItem:
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
        Weights kept per candidate product.  ``None``: cosine keeps all non-zero
        ones; EASE keeps the whole dense matrix when the model has at most
        ``dense_max_items`` products, else ``fallback_neighbors``.
    max_items : int
        EASE only: largest catalogue solved on the driver; beyond it the most-bought
        ``max_items`` products are kept.
    binary : bool
        Use 1 per (customer, product) instead of the weight.
    dense_max_items : int
        EASE only: largest model scored with the broadcast dense matrix.
    fallback_neighbors : int
        EASE only: neighbours kept when ``max_neighbors=None`` but the model is
        above ``dense_max_items``.

    Returns
    -------
    FittedItemItem
        Call :meth:`FittedItemItem.unpersist` when done.

    Examples
    --------
    >>> fitted = fit_item_item(train, method="cosine", max_neighbors=100)       # doctest: +SKIP
    >>> fitted.weights.columns                                                   # doctest: +SKIP
    ['product_id', 'neighbor_id', 'weight']
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "ease":
        return fit_ease_grid(interactions, [(reg_lambda, max_neighbors)], max_items=max_items, binary=binary,
                             dense_max_items=dense_max_items, fallback_neighbors=fallback_neighbors)[0]
    _check_neighbors(max_neighbors)
    x, product_ids, n_items = _prepare(interactions, binary, None)
    try:
        return _finish(_cosine_weights(x, max_neighbors), product_ids, n_items,
                       {"method": "cosine", "max_neighbors": max_neighbors, "binary": binary, "scoring": "pruned"})
    finally:
        product_ids.unpersist()


def fit_ease_grid(interactions: DataFrame, grid: Sequence[tuple[float, int | None]], max_items: int = 10_000,
                  binary: bool = True, dense_max_items: int = DENSE_MAX_ITEMS,
                  fallback_neighbors: int = FALLBACK_NEIGHBORS) -> list[FittedItemItem]:
    """Fit EASE for several ``(reg_lambda, max_neighbors)`` pairs from one Gram matrix.

    The Spark self-join runs once; each pair costs one driver solve (skipped when the
    lambda repeats) and one weight table or dense matrix.  Every fit is held at
    once; :func:`iter_ease_grid` yields them one at a time instead.

    Parameters
    ----------
    interactions : DataFrame
        As for :func:`fit_item_item`.
    grid : sequence of (float, int or None)
        ``(reg_lambda, max_neighbors)`` pairs; ``None`` neighbours means the dense,
        unpruned model (see :func:`fit_item_item`).
    max_items : int
        Largest catalogue solved on the driver (see the module docstring).
    binary : bool
        Use 1 per (customer, product) instead of the weight.
    dense_max_items, fallback_neighbors : int
        See :func:`fit_item_item`.

    Returns
    -------
    list of FittedItemItem
        In the order of ``grid``.

    Examples
    --------
    >>> fits = fit_ease_grid(train, [(100.0, 200), (300.0, 200), (300.0, None)])   # doctest: +SKIP
    """
    return list(iter_ease_grid(interactions, grid, max_items, binary, dense_max_items, fallback_neighbors))


def iter_ease_grid(interactions: DataFrame, grid: Sequence[tuple[float, int | None]], max_items: int = 10_000,
                   binary: bool = True, dense_max_items: int = DENSE_MAX_ITEMS,
                   fallback_neighbors: int = FALLBACK_NEIGHBORS) -> Iterator[FittedItemItem]:
    """:func:`fit_ease_grid` as a generator: one Gram matrix, then each fit when asked for.

    Arguments are checked before the first fit.  Let go of (and unpersist) a fit
    before asking for the next one to keep a single dense matrix in memory.

    Examples
    --------
    >>> for fitted in iter_ease_grid(train, [(250.0, None), (500.0, None)]):       # doctest: +SKIP
    ...     score(fitted); fitted.unpersist()
    """
    if not grid:
        raise ValueError("grid is empty")
    for reg_lambda, max_neighbors in grid:
        if reg_lambda <= 0:
            raise ValueError(f"reg_lambda must be > 0, got {reg_lambda}")
        _check_neighbors(max_neighbors)
    if max_items < 2:
        raise ValueError(f"max_items must be >= 2, got {max_items}")
    if dense_max_items < 0 or fallback_neighbors < 1:
        raise ValueError(f"dense_max_items must be >= 0 and fallback_neighbors >= 1, got {dense_max_items}, "
                         f"{fallback_neighbors}")
    return _ease_fits(interactions, list(grid), max_items, binary, dense_max_items, fallback_neighbors)


def _ease_fits(interactions: DataFrame, grid: list[tuple[float, int | None]], max_items: int, binary: bool,
               dense_max_items: int, fallback_neighbors: int) -> Iterator[FittedItemItem]:
    spark = interactions.sparkSession
    x, product_ids, n_items = _prepare(interactions, binary, max_items)
    try:
        gram = gram_matrix(x, n_items)
        dense_ok = n_items <= dense_max_items
        ids: pa.Array | None = None
        if dense_ok and any(nn is None for _, nn in grid):
            # the id map in index order: one row per product of the model (a model, not row-level data)
            ids = product_ids.orderBy(ITEM_IDX).select(C.PRODUCT_ID).toArrow().column(0).combine_chunks()
            log.info("EASE: %d products <= dense_max_items=%d: unpruned W scored densely (%.1f MiB float32)",
                     n_items, dense_max_items, n_items * n_items * 4 / 2**20)
        elif any(nn is None for _, nn in grid):
            log.warning("EASE: %d products > dense_max_items=%d: a dense W would be %.1f MiB per copy; "
                        "keeping %d neighbours per product instead", n_items, dense_max_items,
                        n_items * n_items * 4 / 2**20, fallback_neighbors)
        solved: dict[float, np.ndarray] = {}
        for reg_lambda, max_neighbors in grid:
            if reg_lambda not in solved:
                solved.clear()  # keep one dense solution in memory at a time
                solved[reg_lambda] = ease_weights(gram, reg_lambda)
            params: dict[str, Any] = {"method": "ease", "reg_lambda": reg_lambda, "max_neighbors": max_neighbors,
                                      "binary": binary, "max_items": max_items}
            if max_neighbors is None and ids is not None:
                dense = DenseWeights(ids=ids, w=solved[reg_lambda])
                params.update(scoring="dense", n_items=n_items, n_weights=n_items * (n_items - 1))
                log.info("item-item weights fitted: %s", params)
                yield FittedItemItem(functools.partial(_dense_table, spark, dense, fallback_neighbors), params, dense)
                continue
            kept = fallback_neighbors if max_neighbors is None else max_neighbors
            i, j, vals = _top_per_column(solved[reg_lambda], kept)
            table = pa.table({"i": pa.array(i, pa.int32()), "j": pa.array(j, pa.int32()), WEIGHT: pa.array(vals)})
            params.update(scoring="pruned", neighbors_kept=kept)
            yield _finish(spark.createDataFrame(table), product_ids, n_items, params)
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
