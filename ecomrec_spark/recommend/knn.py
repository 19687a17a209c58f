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
* :func:`~ecomrec_spark.recommend.lsh_rule.lsh_params` -- derives ``bucket_length``,
  ``num_tables`` and ``threshold`` from a sample.
* :func:`recall_at_k` -- mean over queries of ``|approx & exact| / k``.

The rule that derives LSH's parameters from a sample, :func:`lsh_params`, is in
:mod:`ecomrec_spark.recommend.lsh_rule`.

Example
-------
>>> from ecomrec_spark.recommend.lsh_rule import lsh_params                      # doctest: +SKIP
>>> p = lsh_params(products, customers, k=10)                                     # doctest: +SKIP
>>> recs = lsh_top_k(customers, products, 10, p["bucket_length"], p["num_tables"],
...                  p["threshold"])                                                # doctest: +SKIP
>>> recall_at_k(recs, exact_top_k(customers, products, 10), 10)                   # doctest: +SKIP
0.97
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.ml.feature import BucketedRandomProjectionLSH
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from ecomrec_spark import columns as C

log = logging.getLogger(__name__)

DISTANCE, SIMILARITY, RANK = "distance", "similarity", "rank"
FEATURES = "features"
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
        (pairs with ``distance < threshold`` are kept); see :func:`ecomrec_spark.recommend.lsh_rule.lsh_params`.
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
