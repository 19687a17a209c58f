"""Scoring a fitted item-item model (:mod:`ecomrec_spark.recommend.item_item`): each customer's top k.

A pruned model is scored by a join of the history with the neighbour table; a
dense one (EASE's full ``W`` within ``dense_max_items``) by broadcasting ``W`` as
float32 and multiplying each customer's history row in blocks (``mapInArrow``),
with the candidates re-scored in float64.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType

from ecomrec_spark import columns as C
from ecomrec_spark.recommend.item_item import ITEM_IDX, NEIGHBOR_ID, WEIGHT, FittedItemItem, history_values

log = logging.getLogger(__name__)

REC_COLUMNS = [C.CUSTOMER_ID, C.PRODUCT_ID, "score", "rank"]
_REFINE_EXTRA = 8  # float32 candidates kept beyond k before the float64 re-score


def history_arrays(fitted: FittedItemItem, history: DataFrame) -> DataFrame:
    """Each customer's history as one array of ``(item index, value)`` for dense scoring.

    Dense models fitted together (:func:`iter_ease_grid`) share their item indices,
    so tuning builds this once, caches it and passes it to every
    :func:`recommend_item_item` call with ``arrays=``.

    Parameters
    ----------
    fitted : FittedItemItem
        A dense model (``params["scoring"] == "dense"``).
    history : DataFrame
        As for :func:`recommend_item_item`.

    Returns
    -------
    DataFrame
        ``[customer_id, h array<struct<i int, v double>>]``, one row per customer with
        at least one product of the model.

    Examples
    --------
    >>> arrays = history_arrays(fits[0], train).cache()                              # doctest: +SKIP
    >>> recs = recommend_item_item(fits[0], train, 10, arrays=arrays)               # doctest: +SKIP
    """
    if fitted.dense is None:
        raise ValueError("history_arrays needs a dense model (max_neighbors=None within dense_max_items)")
    h = history_values(history, fitted.params.get("binary", True))
    ids = fitted.dense.ids
    spark = h.sparkSession
    index = pa.array(np.arange(len(ids), dtype=np.int32))
    id_map = spark.createDataFrame(pa.table({C.PRODUCT_ID: ids, ITEM_IDX: index}))
    id_map = id_map.select(F.col(C.PRODUCT_ID).cast(h.schema[C.PRODUCT_ID].dataType).alias(C.PRODUCT_ID), ITEM_IDX)
    return (h.join(F.broadcast(id_map), C.PRODUCT_ID)
            .groupBy(C.CUSTOMER_ID)
            .agg(F.collect_list(F.struct(F.col(ITEM_IDX).alias("i"), F.col("v").alias("v"))).alias("h")))


def recommend_item_item(fitted: FittedItemItem, history: DataFrame, k: int, exclude_history: bool = True,
                        arrays: DataFrame | None = None) -> DataFrame:
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
    arrays : DataFrame, optional
        Dense models only: :func:`history_arrays` of ``history``, built once and
        reused across models fitted together (``history`` is then not read).

    Returns
    -------
    DataFrame
        ``[customer_id, product_id, score double, rank int]``, rank 1..k by
        descending score, ties by product id.  Customers without any product in
        the model are absent (cold start).  A dense model scores every product
        of the model (zero scores included); a pruned one only products reachable
        through the weight table.

    Examples
    --------
    >>> recs = recommend_item_item(fitted, train, 10)                   # doctest: +SKIP
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if fitted.dense is not None:
        return _recommend_dense(fitted, history_arrays(fitted, history) if arrays is None else arrays, k,
                                exclude_history)
    h = history_values(history, fitted.params.get("binary", True))
    scores = (h.select(C.CUSTOMER_ID, F.col(C.PRODUCT_ID).alias(NEIGHBOR_ID), "v")
              .join(fitted.weights, NEIGHBOR_ID)
              .groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(F.sum(F.col("v") * F.col(WEIGHT)).alias("score")))
    if exclude_history:
        scores = scores.join(h.select(C.CUSTOMER_ID, C.PRODUCT_ID), [C.CUSTOMER_ID, C.PRODUCT_ID], "left_anti")
    order = Window.partitionBy(C.CUSTOMER_ID).orderBy(F.col("score").desc(), F.col(C.PRODUCT_ID).asc())
    return (scores.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)
            .select(C.CUSTOMER_ID, C.PRODUCT_ID, "score", F.col("rank").cast("int").alias("rank")))


def _top_rows(score: np.ndarray, kk: int) -> np.ndarray:
    """Per row the ``kk`` column indices of largest ``score``; ties straddling the cut kept by lowest index."""
    n = score.shape[1]
    if kk >= n:
        return np.broadcast_to(np.arange(n), score.shape).copy()
    neg = -score
    part = np.argpartition(neg, kk - 1, axis=1)[:, :kk]
    kth = np.take_along_axis(neg, part, axis=1).max(axis=1)
    crowded = np.flatnonzero((neg <= kth[:, None]).sum(axis=1) > kk)
    for r in crowded:  # equal scores across the cut (e.g. zeros): keep the lowest indices (= smallest ids)
        idx = np.flatnonzero(neg[r] <= kth[r])
        part[r] = idx[np.lexsort((idx, neg[r, idx]))[:kk]]
    return part


def _score_block(rows: np.ndarray, items: np.ndarray, vals: np.ndarray, n_rows: int, w: np.ndarray, k: int,
                 exclude_history: bool) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ``(item index, float64 score)`` per customer of a block, each ``(n_rows, <=k)``.

    ``rows, items, vals`` are the block's history entries (customer row 0..n_rows-1,
    item index, value), grouped by row.  Candidates come from one float32 multiply;
    the ``k + 8`` best are re-scored in float64 from the history (so the scores are
    exact up to the float32 rounding of ``w``) and sorted, ties by item index.
    Excluded (history) items come back with score ``-inf``.
    """
    n = w.shape[0]
    x = np.zeros((n_rows, n), dtype=np.float32)
    x[rows, items] = vals
    score = x @ w
    if exclude_history:
        score[rows, items] = -np.inf
    kk = min(n, k + _REFINE_EXTRA)
    cand = _top_rows(score, kk)
    contrib = w[items[:, None], cand[rows]].astype(np.float64) * vals[:, None]  # (history entries, kk)
    exact = np.zeros((n_rows, kk))
    np.add.at(exact, rows, contrib)
    if exclude_history:
        exact[np.isneginf(np.take_along_axis(score, cand, axis=1))] = -np.inf
    order = np.lexsort((cand, -exact), axis=1)[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(exact, order, axis=1)


def _recommend_dense(fitted: FittedItemItem, per_customer: DataFrame, k: int, exclude_history: bool,
                     block_rows: int = 1024, score_budget_mb: int = 128) -> DataFrame:
    """Dense scoring: per-customer history arrays, a broadcast float32 ``W`` and ``mapInArrow`` (numpy)."""
    assert fitted.dense is not None
    spark = per_customer.sparkSession
    ids, n = fitted.dense.ids, fitted.dense.w.shape[0]
    if fitted._broadcast is None:
        w32 = np.ascontiguousarray(fitted.dense.w, dtype=np.float32)
        fitted._broadcast = spark.sparkContext.broadcast({"ids": ids, "w": w32})
    bc = fitted._broadcast
    block = max(1, min(int(block_rows), (int(score_budget_mb) << 20) // (8 * max(n, 1))))  # x and score, float32
    log.info("EASE dense scoring: W %d x %d broadcast (%.1f MiB), %d customers per block", n, n,
             n * n * 4 / 2**20, block)
    id_type = from_arrow_type(ids.type)
    schema = StructType([per_customer.schema[C.CUSTOMER_ID], StructField(C.PRODUCT_ID, id_type),
                         StructField("score", DoubleType(), False), StructField("rank", IntegerType(), False)])
    k_out = int(k)

    def score_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        model = bc.value
        item_ids, wm = model["ids"], model["w"]
        for batch in batches:
            if batch.num_rows == 0:
                continue
            cust, hist = batch.column(0), batch.column(1)
            parent = pc.list_parent_indices(hist).to_numpy(zero_copy_only=False).astype(np.int64)
            flat = pc.list_flatten(hist)
            items = flat.field("i").to_numpy(zero_copy_only=False).astype(np.int64)
            vals = flat.field("v").to_numpy(zero_copy_only=False).astype(np.float32)
            bounds = np.searchsorted(parent, np.arange(0, batch.num_rows + block, block))
            for b, lo in enumerate(range(0, batch.num_rows, block)):
                hi = min(lo + block, batch.num_rows)
                s, e = bounds[b], bounds[b + 1]
                cand, sc = _score_block(parent[s:e] - lo, items[s:e], vals[s:e], hi - lo, wm, k_out,
                                        exclude_history)
                kk = cand.shape[1]
                keep = np.isfinite(sc).ravel()
                qrow = np.repeat(np.arange(lo, hi), kk)[keep]
                # rank counts only kept entries: excluded items sort last, so the kept ones come first
                rank = np.tile(np.arange(1, kk + 1, dtype=np.int32), hi - lo)[keep]
                yield pa.RecordBatch.from_arrays([
                    cust.take(pa.array(qrow)), item_ids.take(pa.array(cand.ravel()[keep])),
                    pa.array(sc.ravel()[keep]), pa.array(rank, pa.int32())],
                    names=[C.CUSTOMER_ID, C.PRODUCT_ID, "score", "rank"])

    out = per_customer.mapInArrow(score_batches, schema)
    return out.select(*REC_COLUMNS)
