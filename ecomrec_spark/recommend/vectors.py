"""Product and customer vectors for the KNN recommender, all L2-normalised.

A product vector is the concatenation of weighted blocks, then L2-normalised
(so Euclidean distance ranks like cosine, which is what
``BucketedRandomProjectionLSH`` needs):

=============  ==========================================================  ==================
block          content                                                     weight key
=============  ==========================================================  ==================
embedding      ALS item factors (the co-purchase embedding), normalised;   ``embedding``
               zeros for a product nobody bought yet
category       one-hot of the category                                     ``category``
price          one-hot of the price level (catalogue quantiles)            ``price``
review         ``(predicted mean review score - 3) / 2``, 0 when unknown   ``review``
popularity     ``log1p(n_orders) / log1p(max n_orders)``                   ``popularity``
=============  ==========================================================  ==================

A customer vector is the weighted mean of the vectors of the products the
customer interacted with (weights from :mod:`.interactions`, which decay with
age, so recent purchases count more), L2-normalised.  Because every product
vector carries its category and price blocks, the mean *is* the customer's
category and price profile next to their co-purchase taste.

Everything is built-in Spark: ``vector_to_array``/``array_to_vector``, higher-order
``transform``, ``Summarizer.mean`` and ``Normalizer``; no Python UDF.

Example
-------
>>> pv = product_vectors(item_factors(fitted), products, review_scores, weights)   # doctest: +SKIP
>>> cv = customer_vectors(interactions, pv)                                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.ml.feature import Normalizer, OneHotEncoder, StringIndexer
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecomrec_spark import columns as C

FEATURES = "features"
DEFAULT_WEIGHTS = {"embedding": 1.0, "category": 0.6, "price": 0.3, "review": 0.3, "popularity": 0.2}
PRODUCT_ATTRIBUTES = [C.PRODUCT_ID, C.CATEGORY, "avg_price", "n_orders", "predicted_mean_score"]


def _scaled(arr: Column, w: float) -> Column:
    return F.transform(arr, lambda x: x * F.lit(float(w)))


def _normalised(df: DataFrame, in_col: str, out_col: str = FEATURES) -> DataFrame:
    """L2-normalise a vector column; a zero vector stays zero (Normalizer leaves it as is)."""
    normed = Normalizer(inputCol=in_col, outputCol="_normed", p=2.0).transform(df).drop(in_col)
    return normed.withColumnRenamed("_normed", out_col)


def price_levels(products: DataFrame, n_levels: int, price_col: str = "avg_price") -> DataFrame:
    """Add ``price_level`` in ``0..n_levels-1`` from catalogue quantiles (one aggregate row broadcast back)."""
    probs = [i / n_levels for i in range(1, n_levels)]
    cuts = products.agg(F.percentile_approx(price_col, probs, 10000).alias("_cuts"))
    level = F.lit(0)
    for i in range(n_levels - 1):
        level = level + F.when(F.col(price_col) > F.col("_cuts")[i], 1).otherwise(0)
    return products.crossJoin(F.broadcast(cuts)).withColumn("price_level", level).drop("_cuts")


def product_vectors(embedding: DataFrame | None, products: DataFrame, weights: Mapping[str, float] | None = None,
                    n_price_levels: int = 5) -> DataFrame:
    """``product_id, features`` (L2-normalised) for every product in ``products``.

    Parameters
    ----------
    embedding : DataFrame, optional
        ``product_id, features`` (e.g. ALS item factors); products missing from it
        get a zero embedding block.  ``None`` leaves the block out.
    products : DataFrame
        ``product_id, category, avg_price, n_orders`` and optionally
        ``predicted_mean_score`` (from ``gold/product_review_scores``).
    weights : mapping, optional
        Block weights (module docstring); default :data:`DEFAULT_WEIGHTS`.
    """
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    p = products.select(
        F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID),
        F.coalesce(F.col(C.CATEGORY), F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY),
        F.col("avg_price").cast("double").alias("avg_price"),
        F.coalesce(F.col("n_orders").cast("double"), F.lit(0.0)).alias("n_orders"),
        (F.col("predicted_mean_score").cast("double") if "predicted_mean_score" in products.columns
         else F.lit(None).cast("double")).alias("predicted_mean_score"))
    p = price_levels(p, n_price_levels)
    p = StringIndexer(inputCol=C.CATEGORY, outputCol="_cat_idx", stringOrderType="alphabetAsc").fit(p).transform(p)
    p = OneHotEncoder(inputCols=["_cat_idx"], outputCols=["_cat_vec"], dropLast=False).fit(p).transform(p)
    top = p.agg(F.max("n_orders").alias("_max_orders"))
    p = p.crossJoin(F.broadcast(top))
    price_onehot = F.transform(F.sequence(F.lit(0), F.lit(n_price_levels - 1)),
                               lambda i: F.when(i == F.col("price_level"), F.lit(1.0)).otherwise(F.lit(0.0)))
    review = F.least(F.lit(1.0), F.greatest(F.lit(-1.0), (F.col("predicted_mean_score") - F.lit(3.0)) / F.lit(2.0)))
    popularity = F.coalesce(F.try_divide(F.log1p("n_orders"), F.log1p("_max_orders")), F.lit(0.0))
    blocks = [
        _scaled(vector_to_array(F.col("_cat_vec")), w["category"]),
        _scaled(price_onehot, w["price"]),
        F.array(F.coalesce(review, F.lit(0.0)) * F.lit(float(w["review"]))),
        F.array(popularity * F.lit(float(w["popularity"]))),
    ]
    if embedding is not None:
        emb = _normalised(embedding.select(F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID),
                                           F.col(FEATURES).alias("_emb_raw")), "_emb_raw", "_emb")
        first = emb.select("_emb").first()
        assert first is not None, "_normalised keeps only non-null vectors of a non-empty embedding table"
        dim = len(first[0])  # one row: the embedding size
        p = p.join(emb, C.PRODUCT_ID, "left")
        zeros = F.array_repeat(F.lit(0.0), dim)
        emb_arr = F.when(F.col("_emb").isNotNull(), vector_to_array(F.col("_emb"))).otherwise(zeros)  # vector_to_array rejects null
        blocks.insert(0, _scaled(emb_arr, w["embedding"]))
    p = p.withColumn("_raw", array_to_vector(F.concat(*blocks)))
    return _normalised(p.select(C.PRODUCT_ID, "_raw"), "_raw")


def customer_vectors(interactions: DataFrame, product_vecs: DataFrame, weight_col: str = "weight") -> DataFrame:
    """``customer_id, features``: the weighted mean of the customer's product vectors, L2-normalised."""
    joined = interactions.select(C.CUSTOMER_ID, C.PRODUCT_ID, F.col(weight_col).cast("double").alias("_w")).join(
        product_vecs, C.PRODUCT_ID)
    mean = joined.groupBy(C.CUSTOMER_ID).agg(Summarizer.mean(F.col(FEATURES), F.col("_w")).alias("_mean"))
    return _normalised(mean, "_mean")


def customer_price(interactions: DataFrame, products: DataFrame, weight_col: str = "weight") -> DataFrame:
    """``customer_id, typical_log_price``: the weighted mean log price of what the customer bought (for price fit)."""
    priced = interactions.join(products.select(C.PRODUCT_ID, "avg_price").where(F.col("avg_price") > 0), C.PRODUCT_ID)
    return priced.groupBy(C.CUSTOMER_ID).agg(
        (F.sum(F.col(weight_col) * F.log("avg_price")) / F.sum(weight_col)).alias("typical_log_price"))
