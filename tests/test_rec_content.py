"""Content-based similarity: product text, TF-IDF vectors, LSH neighbours, customer profiles."""

from __future__ import annotations

import math

import pytest
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark.recommend import content

# min_df=1 over the 6 products with text below (p7 has only stop words, p8 none):
#   idf = ln((m + 1) / (df + 1)), m = 8 documents fitted (empty ones count).
M = 8
IDF2, IDF1 = math.log((M + 1) / 3), math.log((M + 1) / 2)  # a term in 2 products / in 1 product
# p1 = (red, cotton, shirt) = (IDF2, IDF2, IDF1); p2 = (red, cotton, dress): cos = 2 IDF2^2 / (2 IDF2^2 + IDF1^2)
PAIR_COS = 2 * IDF2 ** 2 / (2 * IDF2 ** 2 + IDF1 ** 2)

TEXTS = [("p1", "Red cotton shirt"), ("p2", "red COTTON dress"), ("p3", "wooden kitchen spoon"),
         ("p4", "Wooden kitchen bowl"), ("p5", "garden hose"), ("p6", "desk lamp"),
         ("p7", "the and of de para"), ("p8", None)]


@pytest.fixture(scope="module")
def text(spark):
    return spark.createDataFrame(TEXTS, "product_id string, text string")


@pytest.fixture(scope="module")
def vectors(text):
    v, _ = content.tfidf_vectors(text, vocab_size=100, min_df=1)
    return v.cache()


def test_tfidf_drops_empty_products_and_normalises(spark, text, vectors):
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    # p7 (stop words only) and p8 (null) have no vector
    assert sorted(r.product_id for r in vectors.select("product_id").collect()) == ["p1", "p2", "p3", "p4", "p5", "p6"]
    norms = vectors.select(F.aggregate(vector_to_array("features"), F.lit(0.0), lambda a, x: a + x * x).alias("n2"))
    assert all(abs(r.n2 - 1.0) < 1e-9 for r in norms.collect())
    # min_df=2 keeps only red, cotton, wooden, kitchen: p1 = p2 and p3 = p4, the rest is dropped
    v2, model = content.tfidf_vectors(text, vocab_size=100, min_df=2)
    assert sorted(model.stages[2].vocabulary) == ["cotton", "kitchen", "red", "wooden"]
    sims = content.content_similar_items(v2, k=5, num_tables=8, seed=1)
    assertDataFrameEqual(sims, spark.createDataFrame(
        [("p1", "p2", 1.0, 1), ("p2", "p1", 1.0, 1), ("p3", "p4", 1.0, 1), ("p4", "p3", 1.0, 1)],
        "product_id string, similar_product_id string, similarity double, rank int"))


def test_similar_items_pairs_sharing_words(spark, vectors):
    # p1-p2 share red+cotton, p3-p4 share wooden+kitchen: cos = PAIR_COS, d = sqrt(2 - 2 cos) = 0.98 < 1.2.
    # Every other pair shares nothing: cos 0, d = sqrt(2) > threshold; p5 and p6 have no neighbour.
    assert abs(PAIR_COS - 0.516) < 1e-3  # 2 * 1.0986^2 / (2 * 1.0986^2 + 1.5041^2)
    sims = content.content_similar_items(vectors, k=3, bucket_length=1.0, num_tables=8, threshold=1.2, seed=7)
    assertDataFrameEqual(sims, spark.createDataFrame(
        [("p1", "p2", PAIR_COS, 1), ("p2", "p1", PAIR_COS, 1), ("p3", "p4", PAIR_COS, 1), ("p4", "p3", PAIR_COS, 1)],
        "product_id string, similar_product_id string, similarity double, rank int"))


def test_customer_content_recs_weighted_profile(spark, vectors):
    inter = spark.createDataFrame([("u1", "p1", 1.0), ("u2", "p3", 3.0), ("u2", "p1", 1.0), ("u2", "p5", 0.0), ("u3", "p8", 1.0)],
                                  "customer_id string, product_id string, weight double")
    # u1 = p1.  u2 = norm(.75 p3 + .25 p1) (p3 . p1 = 0; p5 has weight 0, ignored):
    #   cos(u2, p3) = .75 / sqrt(.75^2 + .25^2) = .9487, cos(u2, p1) = .3162,
    #   cos(u2, p4) = .9487 * PAIR_COS, cos(u2, p2) = .3162 * PAIR_COS = .16 -> d = 1.30 > 1.2, not joined.
    # u3 bought only p8, which has no vector: no profile, no recs.
    n = math.sqrt(0.75 ** 2 + 0.25 ** 2)
    out = content.customer_content_recs(inter, vectors, k=3, num_tables=8, threshold=1.2, seed=3)
    assertDataFrameEqual(out, spark.createDataFrame([
        ("u1", "p1", 1.0, 1, "content"), ("u1", "p2", PAIR_COS, 2, "content"),
        ("u2", "p3", 0.75 / n, 1, "content"), ("u2", "p4", 0.75 / n * PAIR_COS, 2, "content"), ("u2", "p1", 0.25 / n, 3, "content")],
        "customer_id string, product_id string, score double, rank int, reason string"), atol=1e-6)
    unseen = content.customer_content_recs(inter, vectors, k=3, num_tables=8, threshold=1.2, seed=3, exclude_seen=True)
    assert sorted((r.customer_id, r.product_id, r["rank"]) for r in unseen.collect()) == [("u1", "p2", 1), ("u2", "p4", 1)]


def test_product_text_skips_missing_pieces(spark):
    products = spark.createDataFrame(
        [("q1", "bed_bath_table", "cama_mesa_banho", None, None), ("q2", "unknown", None, "Acme", " Blue Mug "),
         ("q3", "unknown", None, None, None), ("q4", "beleza_saude", "beleza_saude", None, None)],
        "product_id string, category string, category_original string, brand string, title string")  # no description column
    translations = spark.createDataFrame([("cama_mesa_banho", "bed_bath_table"), ("beleza_saude", "health_beauty")],
                                         "product_category_name string, product_category_name_english string")
    reviews = spark.createDataFrame(
        [("r1", "o1", None, "Great", "Soft sheets"), ("r2", None, "q2", None, "nice mug"),
         ("r3", "o9", None, "lost", "order"), ("r4", "o1", None, None, "   ")],
        "review_id string, order_id string, product_id string, title string, text string")
    lines = spark.createDataFrame([("o1", "q1")], "order_id string, product_id string")
    out = content.product_text(products, translations=translations, reviews=reviews, lines=lines)
    # q1: category, translation (same as category: once), original, review r1 via o1 (r4 is blank, r3's order unknown)
    # q2: 'unknown' skipped; brand, title, direct review.  q3: nothing.  q4: category, translation, original (dup).
    assertDataFrameEqual(out, spark.createDataFrame([
        ("q1", "bed_bath_table cama_mesa_banho great soft sheets"), ("q2", "acme blue mug nice mug"), ("q3", ""),
        ("q4", "beleza_saude health_beauty")], "product_id string, text string"))
    # only a category column, no translations/reviews given
    bare = content.product_text(products.select("product_id", "category"))
    assertDataFrameEqual(bare, spark.createDataFrame(
        [("q1", "bed_bath_table"), ("q2", ""), ("q3", ""), ("q4", "beleza_saude")], "product_id string, text string"))
