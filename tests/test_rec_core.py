"""Interactions, product/customer vectors and the hybrid re-rank on tiny hand-built frames."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import StringType, StructField, StructType

from ecomrec_spark.config import ConfigError, load_config
from ecomrec_spark.recommend import hybrid, vectors
from ecomrec_spark.recommend.interactions import build_interactions

T0 = dt.datetime(2024, 1, 1)
VEC_SCHEMA = StructType([StructField("product_id", StringType()), StructField("features", VectorUDT())])
LINE_SCHEMA = ("order_id string, customer_id string, product_id string, order_ts timestamp, quantity int, "
               "price double, category string, region string, order_status string")


def test_interactions_weigh_quantity_recency_events_and_reviews(spark):
    lines = spark.createDataFrame([
        ("o1", "c1", "p1", T0, 2, 10.0, "toys", "SP", "delivered"),          # 180 days before as_of: half weight
        ("o2", "c1", "p2", T0 + dt.timedelta(days=180), 50, 5.0, "toys", "SP", "delivered"),  # quantity capped at 10
        ("o3", "c2", "p1", T0 + dt.timedelta(days=180), 1, 10.0, "toys", "RJ", "canceled"),   # not a purchase
    ], LINE_SCHEMA)
    events = spark.createDataFrame([
        ("c2", "p3", "view", T0 + dt.timedelta(days=180)),
        ("c2", "p3", "cart", T0 + dt.timedelta(days=180)),
        ("c2", "p3", "unknown_kind", T0 + dt.timedelta(days=180)),  # no weight configured: ignored
    ], "user_id string, product_id string, event_type string, event_ts timestamp")
    reviews = spark.createDataFrame([("o1", 1, T0 + dt.timedelta(days=10))],
                                    "order_id string, review_score int, review_ts timestamp")
    got = {(r.customer_id, r.product_id): r for r in build_interactions(
        lines, events, reviews, half_life_days=180, purchase_weight=3.0, max_quantity=10,
        review_weight=0.5).collect()}
    assert set(got) == {("c1", "p1"), ("c1", "p2"), ("c2", "p3")}
    # c1/p1: purchase 3 x 2 x 0.5 (180 days old) = 3.0; review 0.5 x (1 - 3) x 0.5^(170/180)
    review = 0.5 * -2 * 0.5 ** (170 / 180)
    assert got[("c1", "p1")].weight == pytest.approx(3.0 + review)
    assert got[("c1", "p2")].weight == pytest.approx(3.0 * 10)  # as_of = its own day: no decay
    assert got[("c2", "p3")].weight == pytest.approx(0.5 + 1.5)
    assert (got[("c1", "p1")].n_purchases, got[("c2", "p3")].n_events) == (1, 2)


def test_interactions_floor_a_hated_purchase_at_the_minimum_weight(spark):
    lines = spark.createDataFrame([("o1", "c1", "p1", T0, 1, 10.0, "toys", "SP", "delivered")], LINE_SCHEMA)
    reviews = spark.createDataFrame([("o1", 1, T0)], "order_id string, review_score int, review_ts timestamp")
    row = build_interactions(lines, None, reviews, purchase_weight=0.5, review_weight=1.0, min_weight=0.05).first()
    assert row.weight == pytest.approx(0.05)  # 0.5 - 2.0 < 0: floored, still an implicit positive


def test_product_vectors_are_unit_length_with_zero_embedding_for_unbought_products(spark):
    products = spark.createDataFrame([
        ("p1", "toys", 10.0, 5, 4.5), ("p2", "toys", 20.0, 1, None), ("p3", "books", 30.0, 0, 2.0),
    ], "product_id string, category string, avg_price double, n_orders long, predicted_mean_score double")
    emb = spark.createDataFrame([("p1", Vectors.dense([3.0, 4.0])), ("p2", Vectors.dense([0.0, 2.0]))],
                                VEC_SCHEMA)
    w = {"embedding": 1.0, "category": 1.0, "price": 0.0, "review": 0.0, "popularity": 0.0}
    pv = {r.product_id: r.features.toArray() for r in vectors.product_vectors(emb, products, w, 3).collect()}
    for v in pv.values():
        assert float((v ** 2).sum()) == pytest.approx(1.0)
    # blocks: [emb 2][category one-hot: books, toys][price 3][review][popularity], all but emb+category weighted 0
    s = 1 / math.sqrt(2)
    assert list(pv["p1"][:4]) == pytest.approx([0.6 * s, 0.8 * s, 0.0, s])
    assert list(pv["p3"][:4]) == pytest.approx([0.0, 0.0, 1.0, 0.0])  # nobody bought it: zero embedding block


def test_customer_vector_is_the_weighted_mean_normalised(spark):
    pv = spark.createDataFrame([("p1", Vectors.dense([1.0, 0.0])), ("p2", Vectors.dense([0.0, 1.0]))],
                               VEC_SCHEMA)
    inter = spark.createDataFrame([("c1", "p1", 3.0), ("c1", "p2", 1.0)], "customer_id string, product_id string, weight double")
    v = vectors.customer_vectors(inter, pv).first().features.toArray()
    assert list(v) == pytest.approx([3 / math.sqrt(10), 1 / math.sqrt(10)])  # (0.75, 0.25) normalised


def test_hybrid_score_arithmetic_and_tuning_picks_the_best_grid_point(spark):
    cand = spark.createDataFrame([("c1", "p1", 0.9), ("c1", "p2", 0.8)],
                                 "customer_id string, product_id string, similarity double")
    products = spark.createDataFrame([("p1", 100.0, 2.0), ("p2", 10.0, 5.0)],
                                     "product_id string, avg_price double, predicted_mean_score double")
    typical = spark.createDataFrame([("c1", math.log(10.0))], "customer_id string, typical_log_price double")
    terms = hybrid.with_terms(cand, products, typical).cache()
    got = {r.product_id: r for r in hybrid.hybrid_scores(terms, {"similarity": 1.0, "review": 0.5, "price": 0.2}).collect()}
    # p1: 0.9 + 0.5 x (2-1)/4 + 0.2 x exp(-|log 100 - log 10|) = 0.9 + 0.125 + 0.2 x 0.1 = 1.045
    assert got["p1"].score == pytest.approx(1.045)
    # p2: 0.8 + 0.5 x 1.0 + 0.2 x 1.0 = 1.5 -> rank 1
    assert got["p2"].score == pytest.approx(1.5) and (got["p2"].rank, got["p1"].rank) == (1, 2)
    truth = spark.createDataFrame([("c1", "p1")], "customer_id string, product_id string")
    best, grid = hybrid.tune_weights(terms, truth, {"similarity": [1.0], "review": [0.0, 0.5], "price": [0.0]}, 1)
    assert best == {"similarity": 1.0, "review": 0.0, "price": 0.0, "popularity": 0.0}  # similarity alone: p1 first
    assert [g["ndcg_at_k"] for g in grid] == pytest.approx([1.0, 0.0])


@pytest.mark.parametrize("override, key", [
    ("recommend.models=[knn,svd]", "recommend.models"),
    ("recommend.knn.method=annoy", "recommend.knn.method"),
    ("recommend.k=0", "recommend.k"),
    ("recommend.rules.min_support=0", "recommend.rules.min_support"),
    ("recommend.filters.blocked_products=['bad id!']", "recommend.filters.blocked_products"),
    ("recommend.evaluate.cutoff=2018-13-01", "recommend.evaluate.cutoff"),
    ("recommend.interactions.event_weights.view=-1", "recommend.interactions.event_weights.view"),
])
def test_recommend_config_errors_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_unknown_customer_id_and_bad_k_fail_before_spark(capsys):
    from ecomrec_spark.cli import main

    assert main(["recommend", "--customer-id", "x' OR 1=1", "--set", "paths.lake=/nonexistent/lake"]) == 2
    assert "is not a customer id" in capsys.readouterr().err
    assert main(["recommend", "--customer-id", "c1", "--k", "0", "--set", "paths.lake=/nonexistent/lake"]) == 2
    assert "--k must be in [1, 100]" in capsys.readouterr().err
