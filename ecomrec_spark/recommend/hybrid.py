"""Hybrid re-rank of KNN candidates: similarity, predicted review score and price fit.

    score = w_similarity * similarity
          + w_review     * (predicted mean review score - 1) / 4
          + w_price      * exp(-|log(price) - customer's typical log price|)
          + w_popularity * log1p(orders of the product) / log1p(orders of the top product)

Popularity is a term because normalised vectors drop the popularity bias that
makes ALS's unnormalised dot product strong on sparse shop data; the tuning
decides how much of it comes back.

A product without a predicted review score or a price gets 0.5 for that term
(neutral, so missing data neither helps nor hurts).  The weights live in
``recommend.hybrid.weights``; :func:`tune_weights` picks them from
``recommend.hybrid.grid`` by NDCG@k on a validation split (the last
``validation_days`` of the training interactions), which the build job does
before the final fit.

Example
-------
>>> scored = hybrid_scores(candidates, products, customer_price(inter, products), weights)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.recommend.metrics import ranking_metrics

log = logging.getLogger(__name__)

WEIGHT_KEYS = ("similarity", "review", "price", "popularity")


def with_terms(candidates: DataFrame, products: DataFrame, typical_price: DataFrame) -> DataFrame:
    """Add the normalised terms ``t_<weight key>`` to ``customer_id, product_id, similarity``."""
    orders = F.coalesce(F.col("n_orders").cast("double"), F.lit(0.0)) if "n_orders" in products.columns else F.lit(0.0)
    top = products.agg(F.max(orders).alias("_top"))
    attrs = products.crossJoin(F.broadcast(top)).select(
        C.PRODUCT_ID, F.col("avg_price").cast("double").alias("_price"),
        F.coalesce(F.try_divide(F.log1p(orders), F.log1p(F.col("_top"))), F.lit(0.0)).alias("_pop"),
        (F.col("predicted_mean_score").cast("double") if "predicted_mean_score" in products.columns
         else F.lit(None).cast("double")).alias("_pred"))
    price_fit = F.exp(-F.abs(F.log(F.col("_price")) - F.col("typical_log_price")))
    return (candidates.join(attrs, C.PRODUCT_ID, "left").join(typical_price, C.CUSTOMER_ID, "left")
            .withColumn("t_similarity", F.col("similarity"))
            .withColumn("t_review", F.coalesce((F.col("_pred") - F.lit(1.0)) / F.lit(4.0), F.lit(0.5)))
            .withColumn("t_price", F.coalesce(F.when(F.col("_price") > 0, price_fit), F.lit(0.5)))
            .withColumn("t_popularity", F.coalesce(F.col("_pop"), F.lit(0.0)))
            .drop("_price", "_pred", "_pop", "typical_log_price"))


def hybrid_scores(terms: DataFrame, weights: Mapping[str, float], k: int | None = None) -> DataFrame:
    """``score`` from the weighted terms and ``rank`` per customer (top ``k`` when given)."""
    score = sum((F.lit(float(weights.get(key, 0.0))) * F.col(f"t_{key}") for key in WEIGHT_KEYS), F.lit(0.0))
    out = terms.withColumn("score", score).withColumn(
        "rank", F.row_number().over(Window.partitionBy(C.CUSTOMER_ID).orderBy(F.col("score").desc(), C.PRODUCT_ID)))
    return out.where(F.col("rank") <= k) if k else out


def weight_grid(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of the per-term value lists (missing terms fixed at 0, similarity at 1)."""
    keys = list(WEIGHT_KEYS)
    values = [list(grid.get(key, [1.0 if key == "similarity" else 0.0])) for key in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def tune_weights(terms: DataFrame, truth: DataFrame, grid: Mapping[str, Sequence[float]], k: int
                 ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The grid point with the best NDCG@k on ``truth`` (ties: the earlier point), and every point's metrics.

    ``terms`` should be cached: each grid point re-ranks the same candidates and
    collects one aggregate row.
    """
    results = []
    for weights in weight_grid(grid):
        m = ranking_metrics(hybrid_scores(terms, weights, k), truth, k)
        results.append({**weights, "ndcg_at_k": m["ndcg_at_k"], "precision_at_k": m["precision_at_k"]})
        log.info("hybrid weights %s: ndcg@%d %.4f", weights, k, m["ndcg_at_k"] or 0.0)
    best = max(results, key=lambda r: (r["ndcg_at_k"] or 0.0, -results.index(r)))
    return {key: best[key] for key in WEIGHT_KEYS}, results
