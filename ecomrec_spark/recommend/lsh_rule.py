"""How :func:`lsh_params` picks LSH's ``bucket_length``, ``num_tables`` and ``threshold`` from a sample.

The top-k searches themselves are in :mod:`ecomrec_spark.recommend.knn`.

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
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from pyspark.ml.feature import BucketedRandomProjectionLSH
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.recommend.knn import FEATURES, _check_k, _prepared, exact_top_k_few_queries

log = logging.getLogger(__name__)

MAX_DISTANCE = 2.0  # between unit vectors (opposite directions)
DEFAULT_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)



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
