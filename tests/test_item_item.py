"""EASE and cosine item-item recommenders on tiny hand-built interactions."""

from __future__ import annotations

import numpy as np
import pytest

from ecomrec_spark.recommend.item_item import (
    ease_weights,
    fit_ease_grid,
    fit_item_item,
    similar_items,
)
from ecomrec_spark.recommend.item_item_scoring import recommend_item_item

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


# Dense (unpruned) EASE scoring against numpy.  Seven customers, five products, no ties in any top 2.
DENSE_HISTORY = {"u1": ["p1", "p2"], "u2": ["p1", "p3"], "u3": ["p2", "p3", "p4"], "u4": ["p1", "p2", "p3"],
                 "u5": ["p4"], "u6": ["p2", "p4"], "u7": ["p3", "p5"]}
# top 2 new products per customer with lambda = 1 (numpy float64 EASE, x_u @ W, history excluded)
DENSE_EXPECTED_TOP2 = {"u1": [("p3", 0.583333), ("p4", 0.153846)], "u2": [("p2", 0.576923), ("p5", 0.159091)],
                       "u3": [("p1", 0.440678), ("p5", 0.181818)], "u4": [("p4", 0.307692), ("p5", 0.113636)],
                       "u5": [("p2", 0.461538), ("p3", 0.166667)], "u6": [("p3", 0.333333), ("p1", 0.101695)],
                       "u7": [("p1", 0.169492), ("p2", 0.076923)]}


@pytest.fixture(scope="module")
def dense_history(spark):
    rows = [(c, p) for c, ps in DENSE_HISTORY.items() for p in ps]
    return spark.createDataFrame(rows, "customer_id string, product_id string").cache()


def _numpy_scores(reg_lambda: float):
    users, items = sorted(DENSE_HISTORY), sorted({p for ps in DENSE_HISTORY.values() for p in ps})
    x = np.zeros((len(users), len(items)))
    for c, ps in DENSE_HISTORY.items():
        for p in ps:
            x[users.index(c), items.index(p)] = 1.0
    w = ease_weights(x.T @ x, reg_lambda)
    return users, items, x, x @ w.astype(np.float32).astype(np.float64)


def test_dense_ease_scoring_matches_numpy(dense_history):
    fitted = fit_item_item(dense_history, method="ease", reg_lambda=1.0, max_neighbors=None)
    try:
        assert fitted.params["scoring"] == "dense" and fitted.dense is not None
        assert fitted.dense.w.shape == (5, 5)
        recs = recommend_item_item(fitted, dense_history, 2)
        assert recs.columns == ["customer_id", "product_id", "score", "rank"]
        got = {}
        for r in recs.orderBy("customer_id", "rank").collect():
            got.setdefault(r.customer_id, []).append((r.product_id, r.score, r["rank"]))
        assert {c: [(p, rk) for p, _, rk in v] for c, v in got.items()} == {
            c: [(p, i + 1) for i, (p, _) in enumerate(v)] for c, v in DENSE_EXPECTED_TOP2.items()}
        for c, v in DENSE_EXPECTED_TOP2.items():
            assert [s for _, s, _ in got[c]] == pytest.approx([s for _, s in v], abs=5e-7)
        # every score of every product (history included) equals x_u @ W from numpy
        users, items, _, ref = _numpy_scores(1.0)
        full = recommend_item_item(fitted, dense_history, 5, exclude_history=False).collect()
        assert len(full) == len(users) * len(items)
        for r in full:
            assert r.score == pytest.approx(ref[users.index(r.customer_id), items.index(r.product_id)], abs=1e-9)
        ranks = {}
        for r in full:
            ranks.setdefault(r.customer_id, {})[r["rank"]] = r.product_id
        for ui, c in enumerate(users):  # rank order = numpy order, ties by product id
            order = np.lexsort((np.arange(len(items)), -ref[ui]))
            assert [ranks[c][i + 1] for i in range(len(items))] == [items[j] for j in order]
        # a dense model still serves similar items (its pruned table is built on demand)
        assert {r.product_id for r in similar_items(fitted, 1).collect()} <= set(items)
    finally:
        fitted.unpersist()


def test_pruned_path_above_the_dense_bound_or_when_configured(dense_history, caplog):
    with caplog.at_level("WARNING", logger="ecomrec_spark.recommend.item_item"):
        above = fit_item_item(dense_history, method="ease", reg_lambda=1.0, max_neighbors=None, dense_max_items=4,
                              fallback_neighbors=2)
    forced = fit_item_item(dense_history, method="ease", reg_lambda=1.0, max_neighbors=3)
    try:
        assert above.dense is None and above.params["scoring"] == "pruned" and above.params["neighbors_kept"] == 2
        assert "dense_max_items=4" in caplog.text
        counts = {r["count"] for r in above.weights.groupBy("product_id").count().collect()}
        assert counts == {2}
        assert forced.dense is None and forced.params["neighbors_kept"] == 3
        # the pruned scores are x_u @ W with each column's 3 largest off-diagonal weights kept (numpy)
        users, items, x, _ = _numpy_scores(1.0)
        w = ease_weights(x.T @ x, 1.0)
        off = np.where(np.eye(len(items), dtype=bool), -np.inf, w)
        pruned = np.where(off >= np.sort(off, axis=0)[-3][None, :], w, 0.0)
        ref = x @ pruned
        got = {(r.customer_id, r.product_id): r.score for r in recommend_item_item(forced, dense_history, 5).collect()}
        assert got and all(x[users.index(c), items.index(p)] == 0 for c, p in got)
        for (c, p), score in got.items():
            assert score == pytest.approx(ref[users.index(c), items.index(p)], abs=1e-12)
    finally:
        above.unpersist()
        forced.unpersist()
