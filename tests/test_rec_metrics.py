"""Ranking metrics and evaluation splits of ``ecomrec_spark.recommend.metrics`` on hand-checked data."""

from __future__ import annotations

import math

import pytest

from ecomrec_spark.recommend.metrics import (
    METRIC_KEYS,
    metrics_by_user,
    new_items_only,
    ranking_metrics,
    stratified_random_split,
    time_split,
)

RECS_SCHEMA = "customer_id string, product_id string, rank int"
PAIR_SCHEMA = "customer_id string, product_id string"

L3 = 1 / math.log2(3)  # gain at rank 2 = 0.6309...
L4 = 1 / math.log2(4)  # gain at rank 3 = 0.5
L5 = 1 / math.log2(5)  # gain at rank 4 = 0.4307...

# u1: 4 recs, only p2 (rank 2) is relevant within k=3; p4 is relevant but at rank 4.
# u2: 3 recs, no hit.
# u3: 2 recs (fewer than k), both relevant.
# u4: recs but not in truth -> ignored by accuracy metrics, counted by coverage.
# u5: in truth, no recs -> zeros everywhere.
RECS = [
    ("u1", "p1", 1), ("u1", "p2", 2), ("u1", "p3", 3), ("u1", "p4", 4),
    ("u2", "p5", 1), ("u2", "p6", 2), ("u2", "p7", 3),
    ("u3", "p8", 1), ("u3", "p1", 2),
    ("u4", "p9", 1),
]
TRUTH = [
    ("u1", "p2"), ("u1", "p2"), ("u1", "p4"), ("u1", "p9"),  # p2 twice: |R_u1| = 3
    ("u2", "p1"),
    ("u3", "p8"), ("u3", "p1"),
    ("u5", "p3"),
]


@pytest.fixture(scope="module")
def recs(spark):
    return spark.createDataFrame(RECS, RECS_SCHEMA)


@pytest.fixture(scope="module")
def truth(spark):
    return spark.createDataFrame(TRUTH, PAIR_SCHEMA)


@pytest.fixture(scope="module")
def per_user_k3(recs, truth):
    return {r["customer_id"]: r.asDict() for r in metrics_by_user(recs, truth, 3).collect()}


def test_metrics_by_user_k3(per_user_k3):
    assert set(per_user_k3) == {"u1", "u2", "u3", "u5"}  # truth users only, u4 dropped
    u1, u2, u3, u5 = (per_user_k3[u] for u in ("u1", "u2", "u3", "u5"))
    # u1: |R| = 3 (duplicate p2 dropped), 3 recs in top 3, one hit (p2 at rank 2)
    assert (u1["n_relevant"], u1["n_recommended"], u1["n_hits"]) == (3, 3, 1)
    assert u1["precision_at_k"] == pytest.approx(1 / 3)  # 1 hit / k=3
    assert u1["recall_at_k"] == pytest.approx(1 / 3)  # 1 hit / |R|=3
    # DCG = 1/log2(3); IDCG over min(3, 3) = 3 positions = 1 + 1/log2(3) + 1/log2(4)
    assert u1["ndcg_at_k"] == pytest.approx(L3 / (1 + L3 + L4))  # 0.2961
    assert u1["ap_at_k"] == pytest.approx((1 / 2) / 3)  # precision@2 = 1/2, / min(3, 3)
    assert u1["reciprocal_rank"] == pytest.approx(1 / 2)
    assert u1["hit"] == 1.0
    # u2: recs but no hit
    assert (u2["n_relevant"], u2["n_recommended"], u2["n_hits"]) == (1, 3, 0)
    for m in ("precision_at_k", "recall_at_k", "ndcg_at_k", "ap_at_k", "reciprocal_rank", "hit"):
        assert u2[m] == 0.0
    # u3: hits at ranks 1 and 2, |R| = 2
    assert u3["precision_at_k"] == pytest.approx(2 / 3)  # still / k, although only 2 recs
    assert u3["recall_at_k"] == pytest.approx(1.0)  # 2 / 2
    assert u3["ndcg_at_k"] == pytest.approx(1.0)  # (1 + 1/log2 3) / (1 + 1/log2 3)
    assert u3["ap_at_k"] == pytest.approx(1.0)  # (1/1 + 2/2) / min(2, 3)
    assert u3["reciprocal_rank"] == pytest.approx(1.0)
    # u5: in truth, no recs
    assert (u5["n_relevant"], u5["n_recommended"], u5["n_hits"]) == (1, 0, 0)
    for m in ("precision_at_k", "recall_at_k", "ndcg_at_k", "ap_at_k", "reciprocal_rank", "hit"):
        assert u5[m] == 0.0


def test_ranking_metrics_k3(recs, truth):
    m = ranking_metrics(recs, truth, 3, catalogue_size=10)
    assert list(m) == list(METRIC_KEYS)
    assert m["n_users"] == 4  # u1, u2, u3, u5
    assert m["precision_at_k"] == pytest.approx((1 / 3 + 0 + 2 / 3 + 0) / 4)  # 0.25
    assert m["recall_at_k"] == pytest.approx((1 / 3 + 0 + 1 + 0) / 4)  # 1/3
    assert m["ndcg_at_k"] == pytest.approx((L3 / (1 + L3 + L4) + 0 + 1 + 0) / 4)  # 0.3240
    assert m["map_at_k"] == pytest.approx((1 / 6 + 0 + 1 + 0) / 4)  # 7/24
    assert m["mrr"] == pytest.approx((1 / 2 + 0 + 1 + 0) / 4)  # 0.375
    assert m["hit_rate"] == pytest.approx(2 / 4)  # u1, u3
    # top-3 items of all users: p1 p2 p3 | p5 p6 p7 | p8 p1 | p9 -> 8 distinct (p4 is rank 4)
    assert m["coverage"] == pytest.approx(8 / 10)


def test_coverage_none_without_catalogue(recs, truth):
    assert ranking_metrics(recs, truth, 3)["coverage"] is None


def test_k_truncation(recs, truth):
    # k = 1: only u3's p8 (rank 1) hits
    m1 = ranking_metrics(recs, truth, 1, catalogue_size=10)
    assert m1["precision_at_k"] == pytest.approx((0 + 0 + 1 + 0) / 4)  # u3: 1/1
    assert m1["recall_at_k"] == pytest.approx((0 + 0 + 1 / 2 + 0) / 4)  # u3: 1/2
    assert m1["ndcg_at_k"] == pytest.approx(1 / 4)  # u3: DCG 1 / IDCG over min(2, 1) = 1
    assert m1["map_at_k"] == pytest.approx(1 / 4)  # u3: (1/1) / min(2, 1)
    assert m1["mrr"] == pytest.approx(1 / 4)
    assert m1["hit_rate"] == pytest.approx(1 / 4)
    assert m1["coverage"] == pytest.approx(4 / 10)  # rank-1 items: p1, p5, p8, p9
    # k = 4: u1 gains p4 at rank 4
    u1 = {r["customer_id"]: r for r in metrics_by_user(recs, truth, 4).collect()}["u1"]
    assert u1["n_hits"] == 2
    assert u1["precision_at_k"] == pytest.approx(2 / 4)
    assert u1["recall_at_k"] == pytest.approx(2 / 3)
    # DCG = 1/log2 3 + 1/log2 5; IDCG over min(3, 4) = 3 positions
    assert u1["ndcg_at_k"] == pytest.approx((L3 + L5) / (1 + L3 + L4))
    assert u1["ap_at_k"] == pytest.approx((1 / 2 + 2 / 4) / 3)  # precision@2 + precision@4, / min(3, 4)


def test_duplicates_in_truth_and_recs(spark, recs, truth):
    deduped = truth.dropDuplicates()
    assert ranking_metrics(recs, truth, 3) == pytest.approx(ranking_metrics(recs, deduped, 3))
    # an item listed twice keeps its best rank and counts once
    dup_recs = spark.createDataFrame([("u1", "p2", 2), ("u1", "p2", 3), ("u1", "p1", 1)], RECS_SCHEMA)
    row = metrics_by_user(dup_recs, truth, 3).where("customer_id = 'u1'").collect()[0]
    assert (row["n_recommended"], row["n_hits"]) == (2, 1)
    assert row["precision_at_k"] == pytest.approx(1 / 3)
    assert row["reciprocal_rank"] == pytest.approx(1 / 2)


def test_overridable_columns(spark):
    recs = spark.createDataFrame([("a", "x", 1), ("a", "y", 2)], "uid string, iid string, pos int")
    truth = spark.createDataFrame([("a", "y")], "uid string, iid string")
    m = ranking_metrics(recs, truth, 2, catalogue_size=4, user_col="uid", item_col="iid", rank_col="pos")
    assert m["ndcg_at_k"] == pytest.approx(L3)  # DCG 1/log2 3, IDCG 1
    assert m["map_at_k"] == pytest.approx(0.5)  # (1/2) / min(1, 2)
    assert m["coverage"] == pytest.approx(2 / 4)


def test_empty_truth_and_bad_k(spark, recs):
    empty = spark.createDataFrame([], PAIR_SCHEMA)
    m = ranking_metrics(recs, empty, 3)
    assert m["n_users"] == 0 and m["ndcg_at_k"] is None
    with pytest.raises(ValueError):
        ranking_metrics(recs, empty, 0)


def test_matches_spark_ranking_evaluator(spark, recs, truth):
    from pyspark.ml.evaluation import RankingEvaluator

    # Arrays of doubles per truth user: "pN" -> N.0; predictions in rank order (all of them,
    # the evaluator truncates at k), u5 has an empty prediction list.
    def ids(items):
        return [float(p[1:]) for p in items]

    preds = {u: [p for _, p, _ in sorted((r for r in RECS if r[0] == u), key=lambda r: r[2])]
             for u in ("u1", "u2", "u3", "u5")}
    labels = {u: sorted({p for uu, p in TRUTH if uu == u}) for u in preds}
    data = spark.createDataFrame([(ids(preds[u]), ids(labels[u])) for u in preds],
                                 "prediction array<double>, label array<double>")
    for k in (1, 3, 4):
        ours = ranking_metrics(recs, truth, k)
        for spark_name, our_name in (("ndcgAtK", "ndcg_at_k"), ("precisionAtK", "precision_at_k"),
                                     ("recallAtK", "recall_at_k"), ("meanAveragePrecisionAtK", "map_at_k")):
            expected = RankingEvaluator(metricName=spark_name, k=k).evaluate(data)
            assert ours[our_name] == pytest.approx(expected), (k, spark_name)


def test_time_split_boundaries(spark):
    df = spark.createDataFrame(
        [("a", "p1", "2024-01-01 00:00:00"), ("a", "p2", "2024-01-31 23:59:59"),
         ("b", "p3", "2024-02-01 00:00:00"), ("b", "p4", "2024-02-02 10:00:00"), ("c", "p5", None)],
        "customer_id string, product_id string, ts string",
    ).selectExpr("customer_id", "product_id", "CAST(ts AS TIMESTAMP) AS ts")
    train, test = time_split(df, "2024-02-01")
    assert sorted(r["product_id"] for r in train.collect()) == ["p1", "p2"]  # strictly before
    assert sorted(r["product_id"] for r in test.collect()) == ["p3", "p4"]  # at the cutoff -> test; null ts in neither
    import datetime as dt

    train2, test2 = time_split(df, dt.datetime(2024, 2, 1, 0, 0, 1))  # UTC session; one second later
    assert sorted(r["product_id"] for r in train2.collect()) == ["p1", "p2", "p3"]
    assert sorted(r["product_id"] for r in test2.collect()) == ["p4"]


def test_new_items_only(spark):
    train = spark.createDataFrame([("a", "p1"), ("a", "p2"), ("b", "p1")], PAIR_SCHEMA)
    truth = spark.createDataFrame([("a", "p1"), ("a", "p3"), ("b", "p2"), ("b", "p1"), ("c", "p1")], PAIR_SCHEMA)
    kept = sorted(tuple(r) for r in new_items_only(truth, train).collect())
    # a/p1 and b/p1 were bought before; a/p3, b/p2 and c/p1 (other customer) are new
    assert kept == [("a", "p3"), ("b", "p2"), ("c", "p1")]


def _counts(df):
    return {r["customer_id"]: r["count"] for r in df.groupBy("customer_id").count().collect()}


def test_stratified_split_proportions_and_determinism(spark):
    # users with 1, 2, 3, 4, 8 rows
    sizes = {"u1": 1, "u2": 2, "u3": 3, "u4": 4, "u8": 8}
    rows = [(u, f"{u}_p{i}", i) for u, n in sizes.items() for i in range(n)]
    df = spark.createDataFrame(rows, "customer_id string, product_id string, qty int")
    train, test = stratified_random_split(df, ratio=0.75, seed=42)
    # n_train = round_half_up(0.75 n): 0.75 -> 1, 1.5 -> 2, 2.25 -> 2, 3 -> 3, 6 -> 6
    assert _counts(train) == {"u1": 1, "u2": 2, "u3": 2, "u4": 3, "u8": 6}
    assert _counts(test) == {"u3": 1, "u4": 1, "u8": 2}
    assert train.columns == df.columns and test.columns == df.columns
    train_rows = {tuple(r) for r in train.collect()}
    test_rows = {tuple(r) for r in test.collect()}
    assert not train_rows & test_rows and train_rows | test_rows == set(rows)  # a partition of df

    # same seed -> same split, even after reshuffling the input
    train_again, _ = stratified_random_split(df.repartition(2).orderBy("qty"), ratio=0.75, seed=42)
    assert {tuple(r) for r in train_again.collect()} == train_rows
    # another seed picks different rows for at least one user (8 rows: C(8,6) = 28 choices)
    train_other = {tuple(r) for r in stratified_random_split(df, ratio=0.75, seed=7)[0].collect()}
    assert train_other != train_rows
    with pytest.raises(ValueError):
        stratified_random_split(df, ratio=1.0)
