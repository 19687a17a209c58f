"""Look up one customer's list in ``gold/recommendations`` (what ``ecomrec recommend`` prints).

A customer the shop has never seen gets the overall popular list from
``gold/popular_items``, labelled as the fallback.  Only the ``k`` rows of one
customer reach the driver.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.recommend.popularity import OVERALL, SCOPE

CUSTOMER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
SERVE_MODELS = ("knn", "hybrid", "als", "content", "popular", "item_knn", "ease")
FALLBACK_REASON = "popular overall (customer not seen before)"


def recommend_for(spark: SparkSession, cfg: Mapping[str, Any], customer_id: str, k: int, model: str) -> dict[str, Any]:
    """``{"customer_id", "model", "fallback", "items": [{rank, product_id, category, price, score, reason}]}``."""
    lake = cfg["paths"]["lake"]
    recs = lk.read(spark, lake, "gold", "recommendations")
    mine = recs.where((F.col(C.CUSTOMER_ID) == F.lit(customer_id)) & (F.col("model") == F.lit(model))
                      & (F.col("rank") <= F.lit(k)))
    fallback = mine.limit(1).count() == 0
    if fallback:
        pop = lk.read(spark, lake, "gold", "popular_items").where(
            (F.col(SCOPE) == F.lit(OVERALL)) & (F.col("rank") <= F.lit(k)))
        mine = pop.select(F.lit(customer_id).alias(C.CUSTOMER_ID), "rank", C.PRODUCT_ID,
                          (F.lit(1.0) / F.col("rank")).alias("score"), F.lit(FALLBACK_REASON).alias("reason"))
    attrs = lk.read(spark, lake, "gold", "product_features").select(
        C.PRODUCT_ID, C.CATEGORY, F.round("avg_price", 2).alias(C.PRICE))
    rows = mine.join(attrs, C.PRODUCT_ID, "left").orderBy("rank").select(
        "rank", C.PRODUCT_ID, C.CATEGORY, C.PRICE, "score", "reason").collect()  # k rows of one customer
    return {"customer_id": customer_id, "model": model, "fallback": fallback, "items": [r.asDict() for r in rows]}
