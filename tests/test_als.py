"""Implicit ALS wrapper and the dense id mapping, on tiny hand-built interactions."""

from __future__ import annotations

import pytest
from pyspark.ml.linalg import Vector

from ecomrec_spark.recommend.als import fit_als, item_factors, recommend_all
from ecomrec_spark.recommend.ids import index_ids

# Two clear taste groups.  Group A (a1..a4) buys p1..p3, group B (b1..b4) buys p4..p6.
# a4 has not bought p3 and b4 has not bought p6: each should get its group's missing item first.
GROUP_A = [f"a{i}" for i in range(1, 5)]
GROUP_B = [f"b{i}" for i in range(1, 5)]


def _interactions(spark):
    rows = []
    for c in GROUP_A:
        rows += [(c, p, 1.0) for p in ("p1", "p2", "p3") if not (c == "a4" and p == "p3")]
    for c in GROUP_B:
        rows += [(c, p, 1.0) for p in ("p4", "p5", "p6") if not (c == "b4" and p == "p6")]
    rows.append(("a1", "p1", 2.0))  # a repeated pair: weights are summed
    return spark.createDataFrame(rows, "customer_id string, product_id string, weight double")


PARAMS = dict(rank=4, reg_param=0.01, alpha=10.0, max_iter=5, seed=7)


@pytest.fixture(scope="module")
def fitted(spark):
    model = fit_als(_interactions(spark), **PARAMS)
    yield model
    model.unpersist()


def test_index_ids_dense_sorted_and_deterministic(spark):
    df = spark.createDataFrame([("c",), ("a",), (None,), ("b",), ("a",), ("c",)], "customer_id string")
    first = index_ids(df.repartition(3), "customer_id", "user_idx")
    assert dict(first.dtypes) == {"customer_id": "string", "user_idx": "int"}
    got = sorted(first.collect())
    assert [(r.customer_id, r.user_idx) for r in got] == [("a", 0), ("b", 1), ("c", 2)]
    again = index_ids(df.orderBy("customer_id", ascending=False).coalesce(1), "customer_id", "user_idx")
    assert sorted(again.collect()) == got


def test_index_ids_fails_loudly_beyond_the_int_range(spark, monkeypatch):
    from ecomrec_spark.recommend import ids as ids_module

    monkeypatch.setattr(ids_module, "MAX_INT_ID", 1)  # pretend ints end at 1: the third id overflows
    df = spark.createDataFrame([("a",), ("b",), ("c",)], "customer_id string")
    with pytest.raises(Exception, match="more distinct values"):
        ids_module.index_ids(df, "customer_id", "user_idx").collect()


def test_index_ids_rejects_bad_columns(spark):
    df = spark.createDataFrame([("a",)], "x string")
    with pytest.raises(ValueError):
        index_ids(df, "missing", "idx")
    with pytest.raises(ValueError):
        index_ids(df, "x", "x")


@pytest.fixture(scope="module")
def recs3(fitted, spark):
    """Top 3 without seen products, collected once."""
    recs = recommend_all(fitted, 3, exclude_seen=_interactions(spark))
    assert recs.columns == ["customer_id", "product_id", "score", "rank"]
    return recs.collect()


def test_recommends_the_groups_unseen_item_first(recs3):
    top = {r.customer_id: r.product_id for r in recs3 if r["rank"] == 1}
    assert top["a4"] == "p3"
    assert top["b4"] == "p6"
    # ids round-trip to the original strings
    assert set(top) == set(GROUP_A + GROUP_B)
    assert {r.product_id for r in recs3} <= {f"p{i}" for i in range(1, 7)}


def test_seen_items_are_excluded_and_k_filled(recs3):
    seen = {(c, p) for c in GROUP_A for p in ("p1", "p2", "p3")} | {(c, p) for c in GROUP_B for p in ("p4", "p5", "p6")}
    seen -= {("a4", "p3"), ("b4", "p6")}
    assert not {(r.customer_id, r.product_id) for r in recs3} & seen
    # a4 has seen 2 of 6 products, the others 3 of 6: everyone still gets 3, ranked 1..3 by score
    for c in GROUP_A + GROUP_B:
        mine = sorted((r for r in recs3 if r.customer_id == c), key=lambda r: r["rank"])
        assert [r["rank"] for r in mine] == [1, 2, 3]
        assert mine[0].score >= mine[1].score >= mine[2].score


def test_without_exclusion_seen_items_come_back(fitted):
    recs = recommend_all(fitted, 3)
    top3 = {r.product_id for r in recs.where("customer_id = 'a1'").collect()}
    assert top3 == {"p1", "p2", "p3"}


def test_same_seed_same_model(spark, fitted):
    again = fit_als(_interactions(spark), **PARAMS)
    try:
        a = {r.product_id: list(r.features) for r in item_factors(fitted).collect()}
        b = {r.product_id: list(r.features) for r in item_factors(again).collect()}
        assert a.keys() == b.keys()
        for pid in a:
            assert a[pid] == pytest.approx(b[pid], abs=1e-6)
    finally:
        again.unpersist()


def test_item_factors_are_vectors_per_product(fitted):
    rows = item_factors(fitted).collect()
    assert sorted(r.product_id for r in rows) == [f"p{i}" for i in range(1, 7)]
    assert all(isinstance(r.features, Vector) and r.features.size == PARAMS["rank"] for r in rows)


def test_cold_start_ids_are_absent(fitted, spark):
    new = spark.createDataFrame([("zz", "p1"), ("a1", "p_new")], "customer_id string, product_id string")
    recs = recommend_all(fitted, 2, exclude_seen=new)
    assert recs.where("customer_id = 'zz' or product_id = 'p_new'").count() == 0


def test_bad_arguments(spark):
    df = _interactions(spark)
    with pytest.raises(ValueError):
        fit_als(df.drop("weight"))
    with pytest.raises(ValueError):
        fit_als(df, cold_start="keep")
