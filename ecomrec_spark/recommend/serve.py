"""Look up one customer's list in ``gold/recommendations`` (what ``ecomrec recommend`` prints).

A customer the shop has never seen gets the overall popular list from
``gold/popular_items``, labelled as the fallback.  Only the ``k`` rows of one
customer reach the driver.  Category and price come from ``gold/product_features``
or, on lakes without order lines, from the derived inputs (:func:`product_attributes`).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.recommend.interactions import purchases
from ecomrec_spark.recommend.popularity import OVERALL, SCOPE
from ecomrec_spark.settings import Settings

FALLBACK_REASON = "popular overall (customer not seen before)"


def product_attributes(spark: SparkSession, lake: str) -> DataFrame:
    """``product_id, category, avg_price`` of every product: ``gold/product_features`` when the lake has it.

    Lakes without order lines (Amazon reviews, REES46 events only) have no
    ``gold/product_features``; their attributes come from what the recommenders
    read (:func:`~.run.load_inputs`): the catalogue's category and the mean price
    of the purchase-like lines, else of the product's other events (null for
    reviews, which carry no price).
    """
    features = lk.read_optional(spark, lake, "gold", "product_features")
    if features is not None:
        return features.select(C.PRODUCT_ID, C.CATEGORY, "avg_price")
    from ecomrec_spark.recommend.models import product_attributes as derived
    from ecomrec_spark.recommend.run import load_inputs

    inputs = load_inputs(spark, lake)
    attrs = derived(purchases(inputs.lines), inputs.catalogue, None)
    if inputs.events is not None and C.PRICE in inputs.events.columns:  # views carry prices too
        seen = inputs.events.groupBy(F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID)).agg(
            F.avg(F.col(C.PRICE).cast("double")).alias("_seen_price"))
        attrs = attrs.join(seen, C.PRODUCT_ID, "left").withColumn(
            "avg_price", F.coalesce(F.col("avg_price"), F.col("_seen_price")))
    return attrs.select(C.PRODUCT_ID, C.CATEGORY, "avg_price")


def default_model(spark: SparkSession, lake: str) -> str:
    """The served default the latest build picked (``gold/recommendation_runs.default_model``), else ``popular``."""
    runs = lk.read_optional(spark, lake, "gold", "recommendation_runs")
    if runs is None or "default_model" not in runs.columns:
        return "popular"
    row = runs.where(F.col("default_model").isNotNull()).orderBy(F.col("generated_at").desc()).select(
        "default_model").first()  # one row
    return row["default_model"] if row else "popular"


def recommend_for(spark: SparkSession, settings: Settings, customer_id: str, k: int, model: str) -> dict[str, Any]:
    """``{"customer_id", "model", "fallback", "items": [{rank, product_id, category, price, score, reason}]}``."""
    lake = settings.paths.lake
    recs = lk.read(spark, lake, "gold", "recommendations")
    mine = recs.where((F.col(C.CUSTOMER_ID) == F.lit(customer_id)) & (F.col("model") == F.lit(model))
                      & (F.col("rank") <= F.lit(k)))
    fallback = mine.limit(1).count() == 0
    if fallback:
        pop = lk.read(spark, lake, "gold", "popular_items").where(
            (F.col(SCOPE) == F.lit(OVERALL)) & (F.col("rank") <= F.lit(k)))
        mine = pop.select(F.lit(customer_id).alias(C.CUSTOMER_ID), "rank", C.PRODUCT_ID,
                          (F.lit(1.0) / F.col("rank")).alias("score"), F.lit(FALLBACK_REASON).alias("reason"))
    attrs = product_attributes(spark, lake).select(C.PRODUCT_ID, C.CATEGORY, F.round("avg_price", 2).alias(C.PRICE))
    rows = mine.join(attrs, C.PRODUCT_ID, "left").orderBy("rank").select(
        "rank", C.PRODUCT_ID, C.CATEGORY, C.PRICE, "score", "reason").collect()  # k rows of one customer
    return {"customer_id": customer_id, "model": model, "fallback": fallback, "items": [r.asDict() for r in rows]}
