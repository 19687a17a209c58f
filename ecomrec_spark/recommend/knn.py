"""Top-k nearest neighbours between query vectors and item vectors: LSH or exact.

Both frames hold an id (string) and an L2-normalised ``pyspark.ml.linalg`` vector,
so the Euclidean distance ``d`` ranks like the cosine: ``similarity = 1 - d**2 / 2``.
Every method returns the same frame::

    <query_col> string, <item_col> string, distance double, similarity double, rank int

with ``rank`` 1-based by ascending distance, ties broken by ascending item id.

* :func:`lsh_top_k` -- ``BucketedRandomProjectionLSH`` fitted on the items,
  ``approxSimilarityJoin`` and a ``row_number`` window per query.  Approximate:
  a query gets fewer than ``k`` rows when fewer candidates fall under ``threshold``.
* :func:`exact_top_k` -- the item matrix (the catalogue, a model rather than row
  data) is collected once, broadcast as float32, and every partition of queries
  scores blocks of rows with one matrix multiply (``mapInArrow``).  Candidates
  are picked on float32 scores and re-ranked on float64 distances.
* :func:`exact_top_k_few_queries` -- the same answer for a few queries against
  a catalogue too big to broadcast: the queries are broadcast instead.
* :func:`lsh_params` -- derives ``bucket_length``, ``num_tables`` and
  ``threshold`` from a sample (the rule below).
* :func:`recall_at_k` -- mean over queries of ``|approx & exact| / k``.

The rule of :func:`lsh_params`
------------------------------
Spark's BRP hash is ``h_t(x) = floor(r_t . x / bucket_length)`` with one random
unit vector ``r_t`` per table, and the join keeps a pair when *any* table
agrees (OR-amplification).  The projection of a difference vector ``u`` on a
random unit vector is about ``|u| N(0, 1/dim)``, so what sets the collision
probability of a true neighbour is ``bucket_length / (d_k / sqrt(dim))``, where
``d_k`` is the distance to the k-th neighbour.  Spark's docstring suggestion of
1-10 x ``n**(-1/dim)`` ignores ``k`` and the data, and for dim 32 it puts
most of the catalogue in every bucket.  The rule is:

1. Sample ``sample_queries`` queries by a seeded hash of their id (``xxhash64``,
   so the sample does not depend on partitioning) and compute their exact
   top-k with :func:`exact_top_k_few_queries` (the sample is broadcast and the
   items streamed, so any catalogue size works).
2. ``threshold = max k-th distance in the sample x (1 + threshold_margin)``
   (the join keeps ``distance < threshold``); capped at 2.0, the largest
   distance between unit vectors, unless the sample itself reaches 2.
3. Evaluate a grid ``bucket_length = m x s`` with ``s = median(d_k) / sqrt(dim)``
   and ``m`` in ``multipliers`` (default 0.5 ... 16).  One model with
   ``max_tables`` tables is fitted and copied with each grid bucket length
   (the random vectors do not depend on it).  Spark draws table ``t``'s
   vector as the ``t``-th block of one seeded Gaussian stream, so the first
   ``L`` tables of that model *are* the ``L``-table model with the same seed.
   From the buckets of the sample queries, of their true neighbours and of
   all items, for every grid point and every ``L <= max_tables``:

   * ``recall(L)``: share of the sample's true (query, neighbour) pairs that
     collide in one of the first ``L`` tables.  This is exactly the recall
     :func:`lsh_top_k` gets on those queries, since a true neighbour that is
     a candidate always makes the top k.
   * ``candidates(L)``: mean over the sample of the summed sizes of the query's
     buckets in the first ``L`` tables, which is the rows the join produces
     before ``distinct``.

4. ``recall`` is the mean of the per-query recalls (as :func:`recall_at_k`);
   keep the ``(bucket_length, L)`` whose one-sided lower bound
   ``recall - z * sd(per-query recall) / sqrt(n_sample)`` reaches
   ``target_recall`` and whose estimated join rows
   ``n_queries * candidates(L) + L * (n_queries + n_items)`` are fewest.  If
   no pair reaches the target, take the one with the best bound and log a
   warning (``target_met`` is then False).

The rule costs one exact top-k on the sample, a count of the queries and two
aggregate jobs over the grid (a few seconds once the JVM is warm).  Only
aggregates come back: ``len(multipliers) x max_tables`` rows per job.

What to expect: with one projection per table, the share of the catalogue in
a query's bucket is about ``bucket_length / (sqrt(2 pi) x spread of the
projections)`` and does not shrink as the catalogue grows, so LSH's join
stays proportional to ``n_queries x n_items`` like the exact method, with a
much larger constant (rows through a shuffle and a ``distinct`` against one
BLAS multiply-add).  On clustered dim-32 data (``bench/knn.py``,
``BENCHMARKS.md``) the exact method was the faster one at every measured size.

Example
-------
>>> p = lsh_params(products, customers, k=10)                                     # doctest: +SKIP
>>> recs = lsh_top_k(customers, products, 10, p["bucket_length"], p["num_tables"],
...                  p["threshold"])                                                # doctest: +SKIP
>>> recall_at_k(recs, exact_top_k(customers, products, 10), 10)                   # doctest: +SKIP
0.97
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.ml.feature import BucketedRandomProjectionLSH
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from ecomrec_spark import columns as C

log = logging.getLogger(__name__)

DISTANCE, SIMILARITY, RANK = "distance", "similarity", "rank"
FEATURES = "features"
MAX_DISTANCE = 2.0  # between unit vectors (opposite directions)
DEFAULT_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
_REFINE_EXTRA = 8  # float32 candidates kept beyond k before the float64 re-rank


# ================================================================================================
# Shared helpers
# ================================================================================================

def _names(query_col: str, item_col: str, item_out: str | None) -> tuple[str, str]:
    """Output names of the query and item id columns (the item one renamed for a self-join)."""
    out = item_out or (f"neighbour_{item_col}" if item_col == query_col else item_col)
    if out == query_col:
        raise ValueError(f"the output id columns would both be called {query_col!r}; pass item_out=")
    return query_col, out


def _schema(q_out: str, i_out: str, distance_col: str, similarity_col: str, rank_col: str) -> StructType:
    return StructType([
        StructField(q_out, StringType(), False), StructField(i_out, StringType(), False),
        StructField(distance_col, DoubleType(), False), StructField(similarity_col, DoubleType(), False),
        StructField(rank_col, IntegerType(), False),
    ])


def _prepared(df: DataFrame, id_col: str, features_col: str) -> DataFrame:
    """``(_id string, _f vector)`` without null ids or vectors."""
    for name in (id_col, features_col):
        if name not in df.columns:
            raise ValueError(f"column {name!r} not found in {df.columns}")
    return (df.select(F.col(id_col).cast("string").alias("_id"), F.col(features_col).alias("_f"))
            .where(F.col("_id").isNotNull() & F.col("_f").isNotNull()))


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


# ================================================================================================
# LSH
# ================================================================================================

def lsh_top_k(queries: DataFrame, items: DataFrame, k: int, bucket_length: float, num_tables: int,
              threshold: float, seed: int = 42, exclude_self: bool = False, *,
              query_col: str = C.CUSTOMER_ID, item_col: str = C.PRODUCT_ID, features_col: str = FEATURES,
              item_out: str | None = None, distance_col: str = DISTANCE, similarity_col: str = SIMILARITY,
              rank_col: str = RANK) -> DataFrame:
    """Approximate top-k items per query with ``BucketedRandomProjectionLSH``.

    The model is fitted on ``items`` (the fit only draws the random vectors),
    ``approxSimilarityJoin`` keeps the pairs that share a bucket in at least
    one table and lie closer than ``threshold``, and a ``row_number`` window
    per query keeps the ``k`` nearest (ties by item id).

    Parameters
    ----------
    queries, items : DataFrame
        ``query_col`` / ``item_col`` (string ids) and ``features_col``
        (L2-normalised vectors of one dimension).  Rows with a null id or
        vector are ignored.  For similar items pass the item frame twice with
        ``query_col == item_col``; the neighbour column is then called
        ``neighbour_<item_col>`` unless ``item_out`` is given.
    k : int
        Neighbours per query.
    bucket_length, num_tables, threshold : float, int, float
        BRP ``bucketLength``, ``numHashTables`` and the join's distance limit
        (pairs with ``distance < threshold`` are kept); see :func:`lsh_params`.
    seed : int
        Seed of the random projections.
    exclude_self : bool
        Drop pairs whose query id equals the item id (item-item self-join).

    Returns
    -------
    DataFrame
        ``query_col, item_col (or item_out), distance, similarity, rank``; at
        most ``k`` rows per query, fewer when LSH finds fewer candidates.

    Examples
    --------
    >>> lsh_top_k(products, products, 10, 0.2, 4, 1.2, exclude_self=True,
    ...           query_col="product_id", item_col="product_id").show()   # doctest: +SKIP
    """
    _check_k(k)
    if bucket_length <= 0 or num_tables < 1 or threshold <= 0:
        raise ValueError("bucket_length and threshold must be > 0 and num_tables >= 1")
    q_out, i_out = _names(query_col, item_col, item_out)
    q = _prepared(queries, query_col, features_col)
    it = q if queries is items and query_col == item_col else _prepared(items, item_col, features_col)
    model = BucketedRandomProjectionLSH(inputCol="_f", outputCol="_h", bucketLength=float(bucket_length),
                                        numHashTables=int(num_tables), seed=int(seed)).fit(it)
    pairs = (model.approxSimilarityJoin(q, it, float(threshold), distCol="_d")
             .select(F.col("datasetA._id").alias("_q"), F.col("datasetB._id").alias("_i"), F.col("_d")))
    if exclude_self:
        pairs = pairs.where(F.col("_q") != F.col("_i"))
    w = Window.partitionBy("_q").orderBy(F.col("_d").asc(), F.col("_i").asc())
    return (pairs.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= F.lit(int(k)))
            .select(F.col("_q").alias(q_out), F.col("_i").alias(i_out), F.col("_d").alias(distance_col),
                    (F.lit(1.0) - F.col("_d") * F.col("_d") / F.lit(2.0)).alias(similarity_col),
                    F.col("_r").cast("int").alias(rank_col)))


# ================================================================================================
# Exact, blocked
# ================================================================================================

def collect_item_matrix(items: DataFrame, item_col: str = C.PRODUCT_ID, features_col: str = FEATURES,
                        max_items: int = 200_000, dtype: str = "float32") -> tuple[pa.Array, np.ndarray]:
    """The item catalogue as ``(ids, matrix)`` on the driver, sorted by id.

    Parameters
    ----------
    items : DataFrame
        ``item_col`` and ``features_col``; null ids or vectors are skipped.
    max_items : int
        Refuse larger catalogues (the matrix is broadcast to every worker).
    dtype : str
        ``float32`` (the broadcast catalogue) or ``float64`` (queries, kept exact).

    Returns
    -------
    ids : pyarrow.StringArray
        Item ids in ascending (byte) order, the order Spark sorts strings in.
    matrix : numpy.ndarray
        ``dtype`` of shape ``(n_items, dim)``, row ``j`` for ``ids[j]``.

    Raises
    ------
    ValueError
        With more than ``max_items`` items or vectors of different sizes.

    Examples
    --------
    >>> ids, mat = collect_item_matrix(products, max_items=100_000)   # doctest: +SKIP
    """
    prep = _prepared(items, item_col, features_col).select("_id", vector_to_array(F.col("_f"), dtype).alias("_v"))
    table = prep.limit(int(max_items) + 1).toArrow()  # the catalogue itself: a model, not row-level data
    if table.num_rows > max_items:
        raise ValueError(
            f"exact_top_k broadcasts the item matrix, and items has more than max_items={max_items:,} rows; "
            "raise max_items if the driver and every worker can hold n_items x dim float32 values, "
            "or use lsh_top_k for a catalogue this large")
    table = table.sort_by([("_id", "ascending")]).combine_chunks()
    ids = table.column("_id").chunk(0) if table.num_rows else pa.array([], pa.string())
    if table.num_rows == 0:
        return ids, np.zeros((0, 0), dtype=np.dtype(dtype))
    vecs = table.column("_v").chunk(0)
    lengths = pc.list_value_length(vecs)
    dim = pc.min(lengths).as_py()
    if dim != pc.max(lengths).as_py():
        raise ValueError(f"item vectors have different sizes ({dim} to {pc.max(lengths).as_py()})")
    mat = np.ascontiguousarray(vecs.flatten().to_numpy(zero_copy_only=False).reshape(len(vecs), dim),
                               dtype=np.dtype(dtype))
    return ids, mat


def _select(score: np.ndarray, kk: int) -> np.ndarray:
    """Per row the ``kk`` column indices of smallest ``score``, ties straddling the cut kept by lowest index."""
    n = score.shape[1]
    if kk >= n:
        return np.broadcast_to(np.arange(n), score.shape).copy()
    part = np.argpartition(score, kk - 1, axis=1)[:, :kk]
    kth = np.take_along_axis(score, part, axis=1).max(axis=1)
    crowded = np.flatnonzero((score <= kth[:, None]).sum(axis=1) > kk)
    for r in crowded:  # rare: equal scores across the cut; keep the lowest indices (= smallest ids)
        idx = np.flatnonzero(score[r] <= kth[r])
        part[r] = idx[np.lexsort((idx, score[r, idx]))[:kk]]
    return part


def _top_k_block(q64: np.ndarray, aug: np.ndarray, k: int, self_idx: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of a block of queries: ``(item_index, squared_distance)``, each ``(b, <=k)``.

    ``aug`` is the item matrix with ``|i|^2`` appended as a last column, so one
    float32 multiply by ``[-2 q, 1]`` gives ``|i|^2 - 2 q.i`` (``|q|^2`` is the
    same along a row).  The ``k + 8`` smallest are re-ranked on float64
    squared distances with ties by item index.  ``self_idx`` (item index per
    query, -1 for none) marks pairs to drop; those come back as ``inf``.
    """
    n, dim = aug.shape[0], aug.shape[1] - 1
    qa = np.empty((len(q64), dim + 1), dtype=np.float32)
    qa[:, :dim] = -2.0 * q64
    qa[:, dim] = 1.0
    score = qa @ aug.T
    rows = np.arange(len(q64))
    if self_idx is not None:
        has = self_idx >= 0
        score[rows[has], self_idx[has]] = np.inf
    kk = min(n, k + _REFINE_EXTRA)
    cand = _select(score, kk)
    diff = q64[:, None, :] - aug[cand, :dim].astype(np.float64)
    d2 = np.einsum("bkd,bkd->bk", diff, diff)
    if self_idx is not None:
        d2[cand == self_idx[:, None]] = np.inf
    order = np.lexsort((cand, d2), axis=1)[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(d2, order, axis=1)


def exact_top_k(queries: DataFrame, items: DataFrame, k: int, block_rows: int = 2048, *,
                max_items: int = 200_000, exclude_self: bool = False, query_col: str = C.CUSTOMER_ID,
                item_col: str = C.PRODUCT_ID, features_col: str = FEATURES, item_out: str | None = None,
                distance_col: str = DISTANCE, similarity_col: str = SIMILARITY, rank_col: str = RANK,
                score_budget_mb: int = 128) -> DataFrame:
    """Exact top-k items per query: a blocked matrix multiply against a broadcast item matrix.

    The items are collected once (:func:`collect_item_matrix`, at most
    ``max_items``) and broadcast as float32.  Queries stay distributed:
    ``vector_to_array`` then ``mapInArrow`` scores ``block_rows`` queries at a
    time (``Q @ I.T``, fewer rows when the score block would pass
    ``score_budget_mb``), picks candidates with ``np.argpartition`` and
    re-ranks them on float64 distances, so ranks and distances are exact up to
    the float32 rounding of the item vectors.

    Parameters
    ----------
    queries, items : DataFrame
        As for :func:`lsh_top_k`.
    k : int
        Neighbours per query; with fewer items every item is returned.
    block_rows : int
        Query rows per matrix multiply.
    max_items : int
        Largest catalogue accepted (ValueError beyond it).
    exclude_self : bool
        Drop the pair of a query with the item of the same id.
    score_budget_mb : int
        Memory for one float32 score block per Python worker.

    Returns
    -------
    DataFrame
        ``query_col, item_col (or item_out), distance, similarity, rank``,
        ``min(k, n_items)`` rows per query (one fewer with ``exclude_self``
        when the query is an item and ``k >= n_items``).

    Examples
    --------
    >>> exact_top_k(customers, products, 10).where("rank = 1").show()   # doctest: +SKIP
    """
    _check_k(k)
    if block_rows < 1:
        raise ValueError("block_rows must be >= 1")
    q_out, i_out = _names(query_col, item_col, item_out)
    schema = _schema(q_out, i_out, distance_col, similarity_col, rank_col)
    spark = queries.sparkSession
    ids, mat = collect_item_matrix(items, item_col, features_col, max_items)
    n_items = len(ids)
    if n_items == 0:
        log.warning("exact_top_k: no items, returning no rows")
        return spark.createDataFrame([], schema)
    aug = np.hstack([mat, (mat.astype(np.float64) ** 2).sum(axis=1, keepdims=True)]).astype(np.float32)
    block = max(1, min(int(block_rows), (int(score_budget_mb) << 20) // (8 * n_items)))  # score + a boolean pass
    log.info("exact_top_k: %s items x dim %s broadcast (%.1f MiB), %s query rows per block",
             f"{n_items:,}", mat.shape[1], mat.nbytes / 2**20, block)
    bc = spark.sparkContext.broadcast({"ids": ids, "aug": aug})
    k_out, dim = int(k), mat.shape[1]
    out_names = [q_out, i_out, distance_col, similarity_col, rank_col]

    def score_batches(batches: Iterable[Any]) -> Iterator[Any]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        model = bc.value
        item_ids, aug_mat = model["ids"], model["aug"]
        for batch in batches:
            if batch.num_rows == 0:
                continue
            qids, vecs = batch.column(0), batch.column(1)
            lengths = pc.list_value_length(vecs)
            if pc.min(lengths).as_py() != dim or pc.max(lengths).as_py() != dim:
                raise ValueError(f"query vectors must have the items' size {dim}")
            qmat = vecs.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, dim).astype(np.float64)
            self_all = None
            if exclude_self:
                self_all = pc.fill_null(pc.index_in(qids.cast(pa.string()), value_set=item_ids), -1)
                self_all = self_all.to_numpy(zero_copy_only=False).astype(np.int64)
            id_type = qids.type
            for lo in range(0, batch.num_rows, block):
                hi = min(lo + block, batch.num_rows)
                cand, d2 = _top_k_block(qmat[lo:hi], aug_mat, k_out, None if self_all is None else self_all[lo:hi])
                kk = cand.shape[1]
                keep = np.isfinite(d2).ravel()
                d2 = np.maximum(d2.ravel()[keep], 0.0)
                qrow = (np.repeat(np.arange(lo, hi), kk))[keep]
                rank = np.tile(np.arange(1, kk + 1, dtype=np.int32), hi - lo)[keep]
                yield pa.RecordBatch.from_arrays([
                    qids.take(pa.array(qrow)).cast(id_type),
                    item_ids.take(pa.array(cand.ravel()[keep])).cast(id_type),
                    pa.array(np.sqrt(d2)), pa.array(1.0 - d2 / 2.0), pa.array(rank, pa.int32()),
                ], names=out_names)

    prep = _prepared(queries, query_col, features_col).select("_id", vector_to_array(F.col("_f")).alias("_v"))
    return prep.mapInArrow(score_batches, schema)


def exact_top_k_few_queries(queries: DataFrame, items: DataFrame, k: int, *, max_queries: int = 10_000,
                            exclude_self: bool = False, query_col: str = C.CUSTOMER_ID, item_col: str = C.PRODUCT_ID,
                            features_col: str = FEATURES, item_out: str | None = None, distance_col: str = DISTANCE,
                            similarity_col: str = SIMILARITY, rank_col: str = RANK,
                            score_budget_mb: int = 128) -> DataFrame:
    """Exact top-k for a few queries against a catalogue of any size: the queries are broadcast instead.

    The mirror image of :func:`exact_top_k`, for :func:`lsh_params`' sample,
    whose catalogue is past what ``exact_top_k`` may broadcast (that is when
    LSH is chosen).  The query matrix (at most ``max_queries`` rows) goes to
    every worker; each batch of items, sorted by id, yields its own top-k per
    query with the same float32-pick, float64-rerank as ``exact_top_k``; a
    window then keeps the ``k`` nearest per query over all batches (ties by
    item id).  So the answer equals ``exact_top_k``'s, and the work is
    ``n_queries x n_items x dim`` spread over the cluster.

    Parameters are those of :func:`exact_top_k`; ``max_queries`` bounds the
    broadcast side (ValueError beyond it).

    Examples
    --------
    >>> exact_top_k_few_queries(sample, products, 10).where("rank = 1").show()   # doctest: +SKIP
    """
    _check_k(k)
    q_out, i_out = _names(query_col, item_col, item_out)
    schema = _schema(q_out, i_out, distance_col, similarity_col, rank_col)
    spark = queries.sparkSession
    q_ids, q_mat = collect_item_matrix(queries, query_col, features_col, max_queries, dtype="float64")
    if len(q_ids) == 0:
        return spark.createDataFrame([], schema)
    n_q, dim, k_out = len(q_ids), q_mat.shape[1], int(k)
    block = max(1, (int(score_budget_mb) << 20) // (8 * n_q))  # items per multiply: score + a boolean pass
    bc = spark.sparkContext.broadcast({"ids": q_ids, "q": q_mat})

    def top_per_batch(batches: Iterable[Any]) -> Iterator[Any]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        query_ids, q64 = bc.value["ids"], bc.value["q"]
        for batch in batches:
            if batch.num_rows == 0:
                continue
            batch = batch.sort_by([("_id", "ascending")])  # index order = id order: _top_k_block's ties
            iids, vecs = batch.column(0), batch.column(1)
            lengths = pc.list_value_length(vecs)
            if pc.min(lengths).as_py() != dim or pc.max(lengths).as_py() != dim:
                raise ValueError(f"item vectors must have the queries' size {dim}")
            mat = vecs.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, dim).astype(np.float32)
            for lo in range(0, batch.num_rows, block):
                hi = min(lo + block, batch.num_rows)
                aug = np.hstack([mat[lo:hi], (mat[lo:hi].astype(np.float64) ** 2).sum(axis=1, keepdims=True)]
                                ).astype(np.float32)
                self_idx = None
                if exclude_self:
                    self_idx = pc.fill_null(pc.index_in(query_ids, value_set=iids.slice(lo, hi - lo)), -1)
                    self_idx = self_idx.to_numpy(zero_copy_only=False).astype(np.int64)
                cand, d2 = _top_k_block(q64, aug, k_out, self_idx)
                keep = np.isfinite(d2).ravel()
                yield pa.RecordBatch.from_arrays([
                    query_ids.take(pa.array(np.repeat(np.arange(n_q), cand.shape[1])[keep])),
                    iids.take(pa.array(lo + cand.ravel()[keep])).cast(pa.string()),
                    pa.array(np.maximum(d2.ravel()[keep], 0.0)),
                ], names=["_q", "_i", "_d2"])

    prep = _prepared(items, item_col, features_col).select("_id", vector_to_array(F.col("_f"), "float32").alias("_v"))
    partial = prep.mapInArrow(top_per_batch, "_q string, _i string, _d2 double")
    w = Window.partitionBy("_q").orderBy(F.col("_d2").asc(), F.col("_i").asc())
    return (partial.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= F.lit(k_out))
            .select(F.col("_q").alias(q_out), F.col("_i").alias(i_out), F.sqrt("_d2").alias(distance_col),
                    (F.lit(1.0) - F.col("_d2") / F.lit(2.0)).alias(similarity_col),
                    F.col("_r").cast("int").alias(rank_col)))


# ================================================================================================
# Recall
# ================================================================================================

def recall_at_k(approx: DataFrame, exact: DataFrame, k: int, *, query_col: str = C.CUSTOMER_ID,
                item_col: str = C.PRODUCT_ID, rank_col: str = RANK) -> float:
    """Mean over the queries of ``exact`` of ``|approx_q & exact_q| / k``.

    Both frames are top-k outputs (``query_col, item_col`` and, if present,
    ``rank_col``, which limits them to ``rank <= k``).  A query missing from
    ``approx`` counts 0; when a query has fewer than ``k`` exact neighbours
    (a catalogue smaller than ``k``) the denominator is that number.  One
    aggregate row reaches the driver.

    Examples
    --------
    >>> recall_at_k(lsh_top_k(q, i, 10, 0.3, 4, 1.0), exact_top_k(q, i, 10), 10)   # doctest: +SKIP
    0.96
    """
    _check_k(k)

    def top(df: DataFrame) -> DataFrame:
        if rank_col in df.columns:
            df = df.where(F.col(rank_col) <= F.lit(int(k)))
        return df.select(F.col(query_col).alias("_q"), F.col(item_col).alias("_i")).distinct()

    hits = top(approx).withColumn("_hit", F.lit(1))
    per_query = (top(exact).join(hits, ["_q", "_i"], "left").groupBy("_q")
                 .agg(F.sum(F.coalesce(F.col("_hit"), F.lit(0))).alias("_h"), F.count(F.lit(1)).alias("_n")))
    row = per_query.agg(F.avg(F.col("_h") / F.least(F.col("_n"), F.lit(int(k)))).alias("r")).collect()[0]
    return float(row["r"]) if row["r"] is not None else float("nan")


# ================================================================================================
# Parameter rule
# ================================================================================================

def _bucket_columns(models: Sequence[Any], df: DataFrame, vector_col: str) -> tuple[DataFrame, list[str]]:
    """Add one ``array<double>`` column of per-table buckets of ``vector_col`` per model (grid point)."""
    names = []
    for g, model in enumerate(models):
        name = f"_b{g}_{vector_col}"
        df = (model.copy({model.inputCol: vector_col, model.outputCol: "_hv"}).transform(df)
              .withColumn(name, F.transform("_hv", lambda v: vector_to_array(v)[0])).drop("_hv"))
        names.append(name)
    return df, names


def _exploded_buckets(df: DataFrame, names: Sequence[str], keep: Sequence[str]) -> DataFrame:
    """``keep + (_g grid point, _t table, _b bucket)``: one row per grid point and table."""
    def cell(g: int) -> Callable[[Column, Column], Column]:
        return lambda b, t: F.struct(F.lit(g).alias("_g"), t.alias("_t"), b.alias("_b"))

    cells = F.flatten(F.array(*[F.transform(F.col(name), cell(g)) for g, name in enumerate(names)]))
    return df.select(*keep, F.inline(cells))


def lsh_params(items: DataFrame, queries: DataFrame, k: int, target_recall: float = 0.95,
               sample_queries: int = 200, seed: int = 42, max_tables: int = 12, *,
               query_col: str = C.CUSTOMER_ID, item_col: str = C.PRODUCT_ID, features_col: str = FEATURES,
               exclude_self: bool = False, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
               z: float = 1.645, threshold_margin: float = 0.05) -> dict[str, Any]:
    """``bucket_length``, ``num_tables`` and ``threshold`` for :func:`lsh_top_k`, from a sample.

    Implements the rule of the module docstring: exact top-k of a seeded
    sample of queries, threshold from the sample's largest k-th distance, and
    the cheapest ``(bucket_length, num_tables)`` on a grid whose sample recall
    reaches ``target_recall`` (as a one-sided lower bound at ``z``).  Pass
    ``seed`` on to :func:`lsh_top_k`: the recall holds for those projections.

    Parameters
    ----------
    items, queries : DataFrame
        As for :func:`lsh_top_k` (note the order: items first).
    k : int
        Neighbours per query.
    target_recall : float
        Recall@k to reach on the sample.
    sample_queries : int
        Queries in the sample (picked by ``xxhash64(id, seed)``).
    seed : int
        Seed of the sample and of the projections.
    max_tables : int
        Most hash tables considered.
    exclude_self : bool
        As in :func:`lsh_top_k` (similar items).
    multipliers : sequence of float
        Grid of ``bucket_length`` in units of ``median(d_k) / sqrt(dim)``.
    z : float
        Normal quantile of the recall's lower bound (1.645: one-sided 95 %; 0
        to compare the sample recall itself).
    threshold_margin : float
        Relative margin over the sample's largest k-th distance.

    Returns
    -------
    dict
        ``bucket_length``, ``num_tables``, ``threshold``, ``sample_recall``,
        ``sample_size`` plus ``target_met``, ``recall_lower_bound``,
        ``est_candidates_per_query``, ``kth_distance_median``,
        ``kth_distance_max``, ``dim``, ``seed`` and ``grid`` (every evaluated
        ``(bucket_length, num_tables)`` with its recall and cost).

    Examples
    --------
    >>> p = lsh_params(products, customers, k=10, target_recall=0.95)       # doctest: +SKIP
    >>> p["bucket_length"], p["num_tables"], p["threshold"], p["sample_recall"]  # doctest: +SKIP
    (0.21, 3, 0.93, 0.975)
    """
    _check_k(k)
    if not 0 < target_recall <= 1 or sample_queries < 1 or max_tables < 1 or not multipliers:
        raise ValueError("need 0 < target_recall <= 1, sample_queries >= 1, max_tables >= 1 and multipliers")
    t_start = time.perf_counter()
    q_prep = _prepared(queries, query_col, features_col)
    i_prep = _prepared(items, item_col, features_col)
    n_queries = q_prep.count()
    sample = (q_prep.orderBy(F.xxhash64(F.col("_id"), F.lit(int(seed))), F.col("_id"))
              .limit(int(sample_queries)).cache())
    truth = None
    try:
        n_sample = sample.count()
        if n_sample == 0:
            raise ValueError("queries has no rows with an id and a vector")
        # the sample is broadcast, not the catalogue: LSH is chosen when the catalogue is too big to broadcast
        truth = exact_top_k_few_queries(sample, i_prep, k, max_queries=int(sample_queries), exclude_self=exclude_self,
                                        query_col="_id", item_col="_id", item_out="_n", features_col="_f").cache()
        kth = truth.groupBy("_id").agg(F.max("distance").alias("_dk"), F.count(F.lit(1)).alias("_c"))
        stats = kth.agg(F.percentile_approx("_dk", 0.5, 10_000).alias("med"), F.max("_dk").alias("mx"),
                        F.count(F.lit(1)).alias("n")).collect()[0]
        if not stats["n"]:
            raise ValueError("no neighbours in the sample (too few items?)")
        d_med, d_max, n_eval = float(stats["med"]), float(stats["mx"]), int(stats["n"])
        shape = i_prep.agg(F.count(F.lit(1)).alias("n"), F.max(F.size(vector_to_array(F.col("_f")))).alias("dim")).collect()[0]
        n_items, dim = int(shape["n"]), int(shape["dim"])
        threshold = d_max * (1.0 + threshold_margin) + 1e-9
        if d_max < MAX_DISTANCE:
            threshold = min(threshold, MAX_DISTANCE)
        scale = max(d_med / math.sqrt(dim), 1e-6)
        grid = [float(m) * scale for m in multipliers]

        # one model, max_tables tables; every grid point is a copy with another bucketLength (same projections)
        base = BucketedRandomProjectionLSH(inputCol="_f", outputCol="_hv", bucketLength=grid[0],
                                           numHashTables=int(max_tables), seed=int(seed)).fit(i_prep)
        models = [base.copy({base.bucketLength: w}) for w in grid]
        n_tables = int(max_tables)

        # recall: per true pair, the first table where query and neighbour share a bucket (n_tables if none)
        pairs = (truth.select(F.col("_id").alias("_q"), F.col("_n").alias("_i"))
                 .join(sample.select(F.col("_id").alias("_q"), F.col("_f").alias("_qf")), "_q")
                 .join(i_prep.select(F.col("_id").alias("_i"), F.col("_f").alias("_if")), "_i"))
        pairs, q_names = _bucket_columns(models, pairs, "_qf")
        pairs, i_names = _bucket_columns(models, pairs, "_if")
        firsts = [F.struct(F.lit(g).alias("_g"), F.array_position(
            F.zip_with(F.col(qn), F.col(in_), lambda a, b: a == b), True).alias("_pos"))
            for g, (qn, in_) in enumerate(zip(q_names, i_names, strict=True))]
        first = (pairs.select("_q", F.inline(F.array(*firsts)))
                 .select("_q", "_g", F.when(F.col("_pos") == 0, F.lit(n_tables))
                         .otherwise(F.col("_pos") - 1).cast("int").alias("_first")))
        per_query = (first.groupBy("_g", "_q").agg(F.collect_list("_first").alias("_fs"))
                     .select("_g", F.explode(F.transform(
                         F.sequence(F.lit(1), F.lit(n_tables)),
                         lambda L: F.struct(L.alias("_L"), (F.size(F.filter("_fs", lambda f: f < L))
                                                             / F.size("_fs")).alias("_r")))).alias("_x"))
                     .select("_g", "_x._L", "_x._r"))
        found = {(r["_g"], r["_L"]): (float(r["s1"]), float(r["s2"])) for r in
                 per_query.groupBy("_g", "_L").agg(F.sum("_r").alias("s1"), F.sum(F.col("_r") * F.col("_r")).alias("s2"))
                 .collect()}

        # cost: size of each query's bucket, per grid point and table (rows the join makes before distinct)
        items_b, names = _bucket_columns(models, i_prep, "_f")
        sizes = _exploded_buckets(items_b, names, []).groupBy("_g", "_t", "_b").agg(F.count(F.lit(1)).alias("_s"))
        sample_b, s_names = _bucket_columns(models, sample, "_f")
        cands = {(r["_g"], r["_t"]): int(r["n"]) for r in
                 _exploded_buckets(sample_b, s_names, ["_id"]).join(sizes, ["_g", "_t", "_b"])
                 .groupBy("_g", "_t").agg(F.sum("_s").alias("n")).collect()}
    finally:
        if truth is not None:
            truth.unpersist()
        sample.unpersist()

    evaluated = []
    for g, w in enumerate(grid):
        cand = 0
        for t in range(int(max_tables)):
            cand += cands.get((g, t), 0)
            s1, s2 = found.get((g, t + 1), (0.0, 0.0))
            rec = s1 / n_eval  # mean per-query recall, as recall_at_k
            var = max(s2 - n_eval * rec * rec, 0.0) / (n_eval - 1) if n_eval > 1 else 0.0
            lb = rec - z * math.sqrt(var / n_eval)
            per_q = cand / n_sample
            evaluated.append({"bucket_length": w, "num_tables": t + 1, "sample_recall": rec, "recall_lower_bound": lb,
                              "est_candidates_per_query": per_q,
                              "est_join_rows": n_queries * per_q + (t + 1) * (n_queries + n_items)})
    ok = [e for e in evaluated if e["recall_lower_bound"] >= target_recall]
    if ok:
        best = min(ok, key=lambda e: (e["est_join_rows"], e["num_tables"]))
    else:
        best = max(evaluated, key=lambda e: (e["recall_lower_bound"], -e["est_join_rows"]))
        log.warning("lsh_params: no grid point reaches recall %.3f within %d tables (best %.3f); "
                    "raise max_tables or use exact_top_k", target_recall, max_tables, best["sample_recall"])
    out = {**best, "threshold": threshold, "sample_size": n_sample, "target_met": bool(ok),
           "kth_distance_median": d_med, "kth_distance_max": d_max, "dim": dim, "seed": int(seed),
           "n_queries": n_queries, "n_items": n_items, "grid": evaluated}
    log.info("lsh_params: bucket_length %.4g, %d tables, threshold %.4g, sample recall %.4f (lower bound %.4f, "
             "%d queries), ~%.0f candidates per query; %.1f s", out["bucket_length"], out["num_tables"], threshold,
             out["sample_recall"], out["recall_lower_bound"], n_sample, out["est_candidates_per_query"],
             time.perf_counter() - t_start)
    return out
