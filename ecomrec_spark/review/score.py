"""Batch scoring with the saved review model: per order line and per product.

- ``gold/review_predictions``: one row per order line: ``predicted_score`` (1..5),
  ``prob_1..prob_5``, ``expected_score`` (sum of k * prob_k), ``p_satisfied`` and
  ``model_version``.
- ``gold/product_review_scores``: ``product_id``, ``predicted_mean_score`` (mean
  expected score over the product's orders), ``p_satisfied`` (mean), ``n_orders``,
  ``model_version``.

``P(satisfied)`` comes from the binary model when it was trained, else from
``prob_4 + prob_5`` of the score model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark import model_store
from ecomrec_spark.identifiers import PRODUCT_ID_PATTERN  # noqa: F401  (re-exported for the CLI)
from ecomrec_spark.review import dataset as D
from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)


class UnknownProductError(LookupError):
    """``predict-review`` was asked about a product with no entry."""


def validate_product_id(product_id: str) -> str:
    """Letters, digits and ``_-.`` only, at most 64 characters (checked before Spark starts)."""
    if not PRODUCT_ID_PATTERN.fullmatch(product_id or ""):
        raise ValueError(f"--product-id {product_id!r} is not a product id: use 1-64 letters, digits, '_', '-' or '.'")
    return product_id


def _probabilities(model: PipelineModel, rows: DataFrame, n_classes: int, prefix: str) -> DataFrame:
    from pyspark.ml.functions import vector_to_array

    out = model.transform(rows).withColumn("_p", vector_to_array(F.col("probability")))
    return out.select(C.ORDER_ID, *[F.col("_p")[k].alias(f"{prefix}{k + 1}") for k in range(n_classes)])


def score_orders(models: Mapping[str, PipelineModel], rows: DataFrame, version: str) -> DataFrame:
    """Per order: ``predicted_score, prob_1..prob_5, expected_score, p_satisfied, model_version``."""
    if "score" not in models:
        raise ValueError("the saved review model has no 'score' target; train with review.targets including score")
    probs = [F.col(f"prob_{k}") for k in range(1, 6)]
    arr = F.array(*probs)
    out = (_probabilities(models["score"], rows, 5, "prob_")
           .withColumn("predicted_score", F.array_position(arr, F.array_max(arr)).cast("int"))
           .withColumn("expected_score", sum((F.lit(float(k)) * p for k, p in enumerate(probs, start=1)), F.lit(0.0))))
    if "satisfied" in models:
        sat = _probabilities(models["satisfied"], rows, 2, "_sat").select(C.ORDER_ID, F.col("_sat2").alias("p_satisfied"))
        out = out.join(sat, C.ORDER_ID, "left")
    else:
        out = out.withColumn("p_satisfied", probs[3] + probs[4])
    return out.withColumn("model_version", F.lit(version))


def review_predictions(order_features: DataFrame, scored: DataFrame) -> DataFrame:
    """Join the per-order scores onto every order line."""
    lines = order_features.select(C.ORDER_ID, C.LINE_ID, C.PRODUCT_ID, C.SELLER_ID, C.CUSTOMER_ID, C.ORDER_TS,
                                  F.col(C.REVIEW_SCORE).alias("actual_review_score"))
    return lines.join(scored, C.ORDER_ID, "inner")


def product_review_scores(predictions: DataFrame) -> DataFrame:
    """Per product: mean expected score, mean P(satisfied), number of orders, model version."""
    return (predictions.where(F.col(C.PRODUCT_ID).isNotNull())
            .groupBy(C.PRODUCT_ID)
            .agg(F.avg("expected_score").alias("predicted_mean_score"), F.avg("p_satisfied").alias("p_satisfied"),
                 F.countDistinct(C.ORDER_ID).alias("n_orders"), F.max("model_version").alias("model_version")))


def score_reviews(spark: SparkSession, settings: Settings, version: str | None = None) -> dict[str, Any]:
    """Load the ``latest`` (or given) model, score every order, write both gold tables."""
    root = settings.paths.lake
    models, meta = model_store.load_models(spark, root, D.feature_columns(), version)
    of = lk.read(spark, root, "gold", "order_features")
    reviews = lk.read(spark, root, "silver", "reviews")
    # the prior the model was trained with (its metadata), else the configured one
    prior = meta.get("config", {}).get("history_prior_weight", settings.review.history_prior_weight)
    rows = D.build_dataset(of, reviews, float(prior))
    rows = rows.persist()  # read by each target's model
    try:
        preds = review_predictions(of, score_orders(models, rows, meta["version"]))
        lk.overwrite(preds, root, "gold", "review_predictions")
    finally:
        rows.unpersist()
    written = lk.read(spark, root, "gold", "review_predictions")
    lk.overwrite(product_review_scores(written), root, "gold", "product_review_scores")
    counts = {"gold/review_predictions": written.count(),
              "gold/product_review_scores": lk.read(spark, root, "gold", "product_review_scores").count()}
    log.info("scored with review model %s: %s", meta["version"], counts)
    return {"model_version": meta["version"], "tables": counts}


def predict_review(spark: SparkSession, settings: Settings, product_id: str) -> dict[str, Any]:
    """The ``product_review_scores`` entry of one product; ``UnknownProductError`` when it has none."""
    validate_product_id(product_id)
    root = settings.paths.lake
    path = lk.table_path(root, "gold", "product_review_scores")
    if not lk.exists(spark, path):
        raise FileNotFoundError(f"Delta table {path} does not exist yet; run `ecomrec score-reviews` first")
    rows = lk.read(spark, root, "gold", "product_review_scores").where(F.col(C.PRODUCT_ID) == F.lit(product_id)).limit(1).collect()
    if not rows:
        raise UnknownProductError(f"unknown product '{product_id}': no entry in {path} "
                                  "(it has no scored orders; check the id or re-run `ecomrec score-reviews`)")
    return rows[0].asDict()
