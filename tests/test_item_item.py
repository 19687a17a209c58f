"""EASE and cosine item-item recommenders on tiny hand-built interactions."""

from __future__ import annotations

import numpy as np
import pytest

from ecomrec_spark.recommend.item_item import (ease_weights, fit_ease_grid, fit_item_item, recommend_item_item,
                                               similar_items)

# Group A (a1..a4) buys p1..p3, group B (b1..b4) buys p4..p6; a4 lacks p3, b4 lacks p6.
ROWS = ([(c, p) for c in ("a1", "a2", "a3", "a4") for p in ("p1", "p2", "p3") if (c, p) != ("a4", "p3")]
        + [(c, p) for c in ("b1", "b2", "b3", "b4") for p in ("p4", "p5", "p6") if (c, p) != ("b4", "p6")]
        + [("a1", "p1")])  # a duplicate pair counts once


@pytest.fixture(scope="module")
def interactions(spark):
    return spark.createDataFrame(ROWS, "customer_id string, product_id string").cache()


def _dense_x():
    users = sorted({c for c, _ in ROWS})
    items = sorted({p for _, p in ROWS})
    x = np.zeros((len(users), len(items)))
    for c, p in ROWS:
        x[users.index(c), items.index(p)] = 1.0
    return x, items


def test_ease_weights_match_the_closed_form():
    x, _ = _dense_x()
    g = x.T @ x
    w = ease_weights(g, 2.0)
    p = np.linalg.inv(g + 2.0 * np.eye(len(g)))
    expected = np.eye(len(g)) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(w, expected, atol=1e-12)
    with pytest.raises(ValueError):
        ease_weights(g, 0.0)


@pytest.mark.parametrize("method", ["ease", "cosine"])
def test_recommends_the_groups_unseen_item_first(spark, interactions, method):
    fitted = fit_item_item(interactions, method=method, reg_lambda=1.0, max_neighbors=None)
    try:
        recs = recommend_item_item(fitted, interactions, 2).collect()
        top = {r.customer_id: r.product_id for r in recs if r["rank"] == 1}
        assert top["a4"] == "p3" and top["b4"] == "p6"
        seen = set(ROWS)
        assert not {(r.customer_id, r.product_id) for r in recs} & seen
        if method == "ease":  # the Spark weight table equals the numpy solution
            x, items = _dense_x()
            w = ease_weights(x.T @ x, 1.0)
            got = {(r.neighbor_id, r.product_id): r.weight for r in fitted.weights.collect()}
            want = {(items[i], items[j]): w[i, j] for i in range(len(items)) for j in range(len(items))
                    if i != j and w[i, j] != 0}
            assert got.keys() == want.keys()
            for key, val in want.items():
                assert got[key] == pytest.approx(val, abs=1e-9)
    finally:
        fitted.unpersist()


def test_neighbours_pruning_grid_and_similar_items(interactions):
    fits = fit_ease_grid(interactions, [(1.0, 1), (5.0, 2)])
    try:
        assert [f.params["max_neighbors"] for f in fits] == [1, 2]
        per_product = {r.product_id: r["count"] for r in fits[0].weights.groupBy("product_id").count().collect()}
        assert set(per_product.values()) == {1}
        sims = similar_items(fits[1], 1).collect()
        best = {r.product_id: r.neighbor_id for r in sims}
        assert best["p3"] in {"p1", "p2"} and best["p6"] in {"p4", "p5"}
        assert all(r["rank"] == 1 and r.weight > 0 for r in sims)
    finally:
        for f in fits:
            f.unpersist()


def test_max_items_keeps_the_most_bought(spark):
    rows = [("u1", "hot"), ("u2", "hot"), ("u3", "hot"), ("u1", "warm"), ("u2", "warm"), ("u3", "cold")]
    df = spark.createDataFrame(rows, "customer_id string, product_id string")
    fitted = fit_item_item(df, method="ease", reg_lambda=1.0, max_items=2)
    try:
        assert fitted.params["n_items"] == 2
        ids = {r.product_id for r in fitted.weights.collect()} | {r.neighbor_id for r in fitted.weights.collect()}
        assert ids == {"hot", "warm"}
    finally:
        fitted.unpersist()


def test_bad_arguments(interactions):
    with pytest.raises(ValueError):
        fit_item_item(interactions, method="svd")
    with pytest.raises(ValueError):
        fit_item_item(interactions, max_neighbors=0)
    with pytest.raises(ValueError):
        fit_item_item(interactions, binary=False)  # no weight column
