"""Content-based similarity: product text -> TF-IDF vectors -> LSH neighbours and customer profiles.

``product_text`` gathers whatever text a source has for a product, ``tfidf_vectors``
turns it into L2-normalised TF-IDF vectors with an MLlib Pipeline, and
``content_similar_items`` / ``customer_content_recs`` find neighbours with
``BucketedRandomProjectionLSH``.  For unit vectors the Euclidean distance ``d``
and the cosine similarity are tied by ``cos = 1 - d**2 / 2``, so the LSH
distance ``threshold`` is a minimum cosine: ``threshold = 1.2`` keeps pairs
with ``cos >= 0.28``; ``sqrt(2)`` keeps every pair sharing a term.

Choosing the LSH parameters: each hash table projects a vector on a random
unit vector and buckets ``floor(projection / bucket_length)``.  A unit vector's
projection lies in ``[-1, 1]``, so ``bucket_length >= 1`` makes every table a
random-hyperplane (sign) hash: two vectors at angle ``t`` share a bucket with
probability ``1 - t/pi``, and ``num_tables`` tables OR-ed together give high
recall (cos 0.5, 4 tables: miss probability (1/3)**4 = 1.2 %) but nearly all
pairs become candidates, which only suits small catalogues.  For large ones
use a smaller ``bucket_length`` (of the order of a few times
``1/sqrt(vocab_size)``, the spread of random projections) and more tables.
The seed makes the random projections, and so the result, reproducible.

Example
-------
>>> text = product_text(products, reviews=reviews, lines=lines)               # doctest: +SKIP
>>> vectors, model = tfidf_vectors(text, vocab_size=5000, min_df=2)           # doctest: +SKIP
>>> content_similar_items(vectors, k=10).show()                               # doctest: +SKIP
>>> customer_content_recs(interactions, vectors, k=10, exclude_seen=True)     # doctest: +SKIP
"""

from __future__ import annotations

import logging

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import (
    IDF,
    BucketedRandomProjectionLSH,
    BucketedRandomProjectionLSHModel,
    CountVectorizer,
    Normalizer,
    RegexTokenizer,
    StopWordsRemover,
)
from pyspark.ml.functions import vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C

log = logging.getLogger(__name__)

TEXT = "text"
FEATURES = "features"
TOKEN_PATTERN = r"[^\p{L}\p{N}]+"  # split on anything but letters/digits (keeps Portuguese accents; splits snake_case)
REASON_CONTENT = "content"

# Product text columns, in order, of silver products (transaction sources fill title, Olist only the category).
PRODUCT_TEXT_COLUMNS = ["category_original", "brand", "title", "description"]
# Review text columns: silver reviews, then Olist's bronze names.
REVIEW_TEXT_COLUMNS = ["title", "text", "review_comment_title", "review_comment_message"]


def _clean(c: Column) -> Column:
    """Lower-cased, trimmed text, null when empty."""
    t = F.lower(F.trim(c.cast("string")))
    return F.when(t != "", t)


def _review_text(reviews: DataFrame, lines: DataFrame | None, max_reviews: int) -> DataFrame | None:
    """``product_id, _reviews``: the newest ``max_reviews`` review texts per product, joined by a space."""
    cols = [c for c in REVIEW_TEXT_COLUMNS if c in reviews.columns]
    if not cols:
        log.info("product_text: reviews have no text column, skipped")
        return None
    pid = F.col(C.PRODUCT_ID) if C.PRODUCT_ID in reviews.columns else F.lit(None).cast("string")
    r = reviews.select(pid.alias(C.PRODUCT_ID),
                       (F.col(C.ORDER_ID) if C.ORDER_ID in reviews.columns else F.lit(None).cast("string")).alias(C.ORDER_ID),
                       (F.col(C.REVIEW_TS).cast("timestamp") if C.REVIEW_TS in reviews.columns
                        else F.lit(None).cast("timestamp")).alias("_ts"),
                       F.concat_ws(" ", *[_clean(F.col(c)) for c in cols]).alias("_t")).where(F.col("_t") != "")
    per_product = r.where(F.col(C.PRODUCT_ID).isNotNull()).drop(C.ORDER_ID)
    if lines is not None:
        # Olist reviews are per order: every product of the order gets the review.
        order_product = lines.select(C.ORDER_ID, C.PRODUCT_ID).distinct()
        per_product = per_product.unionByName(
            r.where(F.col(C.PRODUCT_ID).isNull() & F.col(C.ORDER_ID).isNotNull()).drop(C.PRODUCT_ID)
            .join(order_product, C.ORDER_ID).drop(C.ORDER_ID))
    newest = Window.partitionBy(C.PRODUCT_ID).orderBy(F.col("_ts").desc_nulls_last(), F.col("_t"))
    return (per_product.withColumn("_n", F.row_number().over(newest)).where(F.col("_n") <= max_reviews)
            .groupBy(C.PRODUCT_ID).agg(F.array_join(F.array_sort(F.collect_list("_t")), " ").alias("_reviews")))


def product_text(products: DataFrame, translations: DataFrame | None = None, reviews: DataFrame | None = None,
                 lines: DataFrame | None = None, max_reviews: int = 50) -> DataFrame:
    """One ``text`` per product from every text piece the source has; missing pieces are skipped.

    Pieces, each lower-cased and used once (``array_distinct``), joined by spaces:

    - ``category`` (unless ``'unknown'``) and ``category_original`` (Olist's Portuguese name);
    - the English name from Olist's ``translations`` (``product_category_name`` ->
      ``product_category_name_english``), joined on ``category_original`` or
      ``product_category_name``, whichever ``products`` has;
    - ``brand``, ``title``, ``description`` when the columns exist;
    - review title/text: reviews with a ``product_id`` directly, Olist's per-order
      reviews through ``lines`` (``order_id -> product_id``); at most the newest
      ``max_reviews`` per product.

    Products with no text at all get ``''`` (``tfidf_vectors`` drops them).
    ``products`` is expected to have one row per ``product_id``.

    Example
    -------
    >>> product_text(products, reviews=reviews, lines=lines).show(truncate=False)  # doctest: +SKIP
    +----------+-----------------------------------------------+
    |product_id|text                                           |
    |p1        |bed_bath_table cama_mesa_banho lovely sheets   |
    """
    pieces: list[Column] = []
    df = products
    if C.CATEGORY in df.columns:
        pieces.append(F.when(_clean(F.col(C.CATEGORY)) != C.UNKNOWN_CATEGORY, _clean(F.col(C.CATEGORY))))
    if translations is not None:
        key = next((c for c in ("category_original", "product_category_name") if c in df.columns), None)
        if key and {"product_category_name", "product_category_name_english"} <= set(translations.columns):
            tr = (translations.select(F.col("product_category_name").alias("_tr_key"),
                                      F.col("product_category_name_english").alias("_tr_en"))
                  .dropDuplicates(["_tr_key"]))
            df = df.join(F.broadcast(tr), df[key] == tr["_tr_key"], "left").drop("_tr_key")
            pieces.append(_clean(F.col("_tr_en")))
        else:
            log.info("product_text: translations cannot be joined (no category key), skipped")
    pieces += [_clean(F.col(c)) for c in PRODUCT_TEXT_COLUMNS if c in df.columns]
    if reviews is not None:
        rt = _review_text(reviews, lines, max_reviews)
        if rt is not None:
            df = df.join(rt, C.PRODUCT_ID, "left")
            pieces.append(F.col("_reviews"))
    text = F.array_join(F.array_distinct(F.array(*pieces)), " ") if pieces else F.lit("")
    return df.select(C.PRODUCT_ID, text.alias(TEXT))


def tfidf_vectors(text_df: DataFrame, vocab_size: int = 5000, min_df: float = 2.0, text_col: str = TEXT,
                  log_empty: bool = True) -> tuple[DataFrame, PipelineModel]:
    """Fit RegexTokenizer -> StopWordsRemover -> CountVectorizer -> IDF -> Normalizer(p=2) on product text.

    Stop words are Spark's default Portuguese and English lists.  Tokens are
    runs of letters/digits of length >= 2.  Every stage is deterministic, so
    there is no seed.  Products whose vector is all zeros (no text, only stop
    words, or only terms below ``min_df``) are dropped rather than kept as
    zero vectors: a zero vector has no direction, so a cosine with it is
    undefined and LSH would bucket it with everything.  With ``log_empty``
    their count is logged (one extra aggregate job).

    Parameters
    ----------
    text_df : ``product_id`` and ``text_col`` (see :func:`product_text`).
    vocab_size : most frequent terms kept.
    min_df : a term must occur in this many products (a fraction when < 1).

    Returns
    -------
    ``(vectors, model)``: ``product_id, features`` (unit L2 norm) and the fitted PipelineModel.

    Example
    -------
    >>> vectors, model = tfidf_vectors(product_text(products), vocab_size=2000, min_df=2)  # doctest: +SKIP
    >>> model.stages[2].vocabulary[:5]                                                     # doctest: +SKIP
    """
    stop = StopWordsRemover.loadDefaultStopWords("portuguese") + StopWordsRemover.loadDefaultStopWords("english")
    pipeline = Pipeline(stages=[
        RegexTokenizer(inputCol=text_col, outputCol="_tokens", pattern=TOKEN_PATTERN, gaps=True, minTokenLength=2,
                       toLowercase=True),
        StopWordsRemover(inputCol="_tokens", outputCol="_terms", stopWords=sorted(set(stop))),
        CountVectorizer(inputCol="_terms", outputCol="_tf", vocabSize=vocab_size, minDF=float(min_df)),
        IDF(inputCol="_tf", outputCol="_tfidf"),
        Normalizer(inputCol="_tfidf", outputCol=FEATURES, p=2.0),
    ])
    prepared = text_df.select(C.PRODUCT_ID, F.coalesce(F.col(text_col).cast("string"), F.lit("")).alias(text_col))
    model = pipeline.fit(prepared)
    scored = model.transform(prepared).withColumn(
        "_nonzero", F.exists(vector_to_array(F.col(FEATURES)), lambda x: x != 0.0))
    if log_empty:
        n_empty = scored.where(~F.col("_nonzero")).count()
        log.info("tfidf_vectors: %d products without usable text dropped from content similarity", n_empty)
    return scored.where(F.col("_nonzero")).select(C.PRODUCT_ID, FEATURES), model


def _cosine(dist_col: str) -> Column:
    return F.lit(1.0) - F.col(dist_col) * F.col(dist_col) / F.lit(2.0)


def _lsh(vectors: DataFrame, bucket_length: float, num_tables: int, seed: int) -> BucketedRandomProjectionLSHModel:
    return BucketedRandomProjectionLSH(inputCol=FEATURES, outputCol="_hashes", bucketLength=bucket_length,
                                       numHashTables=num_tables, seed=seed).fit(vectors)


def content_similar_items(vectors: DataFrame, k: int, bucket_length: float = 1.0, num_tables: int = 4,
                          threshold: float = 1.2, seed: int = 42) -> DataFrame:
    """Top ``k`` most similar other products per product by cosine of TF-IDF vectors (approximate).

    An LSH self-join (``approxSimilarityJoin``) finds pairs within Euclidean
    distance ``threshold``; a product is never its own neighbour; similarity
    is ``1 - d**2/2``; ties rank by ``similar_product_id``.  See the module
    docstring for choosing ``bucket_length`` and ``num_tables``.

    Returns
    -------
    DataFrame ``product_id, similar_product_id, similarity, rank``.

    Example
    -------
    >>> # two unit vectors sharing one of two equally weighted terms: cos 0.5, d = 1.0
    >>> content_similar_items(vectors, k=10, threshold=1.2, seed=7).show()  # doctest: +SKIP
    """
    v = vectors.select(C.PRODUCT_ID, FEATURES)
    pairs = (_lsh(v, bucket_length, num_tables, seed).approxSimilarityJoin(v, v, threshold, distCol="_dist")
             .select(F.col(f"datasetA.{C.PRODUCT_ID}").alias(C.PRODUCT_ID),
                     F.col(f"datasetB.{C.PRODUCT_ID}").alias("similar_product_id"), _cosine("_dist").alias("similarity"))
             .where(F.col(C.PRODUCT_ID) != F.col("similar_product_id")))
    w = Window.partitionBy(C.PRODUCT_ID).orderBy(F.col("similarity").desc(), F.col("similar_product_id"))
    return pairs.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k)


def customer_profiles(interactions: DataFrame, vectors: DataFrame, weight_col: str | None = "weight") -> DataFrame:
    """``customer_id, features``: the weighted mean of the customer's products' vectors, L2-normalised.

    Rows with a weight that is null or not positive are ignored; products
    without a vector (no usable text) do not count.

    Example
    -------
    >>> # bought a=(1,0) weight 3 and b=(0,1) weight 1: mean (0.75, 0.25) -> (0.949, 0.316)
    >>> customer_profiles(interactions, vectors).show()  # doctest: +SKIP
    """
    w = F.col(weight_col).cast("double") if weight_col else F.lit(1.0)
    joined = (interactions.select(C.CUSTOMER_ID, C.PRODUCT_ID, w.alias("_w")).where(F.col("_w") > 0)
              .join(vectors.select(C.PRODUCT_ID, FEATURES), C.PRODUCT_ID))
    means = joined.groupBy(C.CUSTOMER_ID).agg(Summarizer.mean(F.col(FEATURES), F.col("_w")).alias("_mean"))
    return Normalizer(inputCol="_mean", outputCol=FEATURES, p=2.0).transform(means).select(C.CUSTOMER_ID, FEATURES)


def customer_content_recs(interactions: DataFrame, vectors: DataFrame, k: int, bucket_length: float = 1.0,
                          num_tables: int = 4, threshold: float = 1.2, seed: int = 42, weight_col: str | None = "weight",
                          exclude_seen: bool = False) -> DataFrame:
    """Top ``k`` products whose vector is closest to the customer's profile (:func:`customer_profiles`).

    The LSH model is fitted on the product vectors and joined against the
    profiles with ``approxSimilarityJoin``; ``score`` is the cosine
    ``1 - d**2/2``.  Bought products are similar to the profile by design:
    pass ``exclude_seen=True`` to drop them here, or keep them and apply
    :func:`ecomrec_spark.recommend.filters.exclude_purchased` (configurable
    re-buys) followed by ``rerank`` (ask for a larger ``k`` then).

    Returns
    -------
    DataFrame ``customer_id, product_id, score, rank, reason`` (reason ``'content'``).

    Example
    -------
    >>> customer_content_recs(interactions, vectors, k=10, exclude_seen=True).show()  # doctest: +SKIP
    """
    v = vectors.select(C.PRODUCT_ID, FEATURES)
    profiles = customer_profiles(interactions, v, weight_col)
    pairs = (_lsh(v, bucket_length, num_tables, seed).approxSimilarityJoin(profiles, v, threshold, distCol="_dist")
             .select(F.col(f"datasetA.{C.CUSTOMER_ID}").alias(C.CUSTOMER_ID),
                     F.col(f"datasetB.{C.PRODUCT_ID}").alias(C.PRODUCT_ID), _cosine("_dist").alias("score")))
    if exclude_seen:
        pairs = pairs.join(interactions.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct(), [C.CUSTOMER_ID, C.PRODUCT_ID],
                           "left_anti")
    w = Window.partitionBy(C.CUSTOMER_ID).orderBy(F.col("score").desc(), F.col(C.PRODUCT_ID))
    return (pairs.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k)
            .withColumn("reason", F.lit(REASON_CONTENT)))
