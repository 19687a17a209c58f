"""tune_models and apply_tuned on tiny planted interactions where one setting is clearly better."""

from __future__ import annotations

import pytest

from ecomrec_spark.config import load_settings
from ecomrec_spark.recommend.tuning import als_grid, apply_tuned, tune_models
from ecomrec_spark.settings import Recommend

# EASE: in each block g, q co-occurs with r and h four times and with t three times, but r explains h.
# A customer holding only q should get t (what EASE finds with a small lambda: 0.44 against 0.11 for r at
# lambda 1); a large lambda scores by raw co-occurrence and puts h or r first (lambda 100: h 0.035, r 0.035,
# t 0.029).  Truth: each block's holdout customer bought t.
EASE_ROWS = ([(f"{g}qrh{i}", f"{g}{p}") for g in "ab" for i in range(4) for p in "qrh"]
             + [(f"{g}qt{i}", f"{g}{p}") for g in "ab" for i in range(3) for p in "qt"]
             + [(f"{g}rh{i}", f"{g}{p}") for g in "ab" for i in range(3) for p in "rh"]
             + [(f"{g}hold", f"{g}q") for g in "ab"])
EASE_TRUTH = [("ahold", "at"), ("bhold", "bt")]

# ALS: three disjoint blocks of three products, four buyers each; the fourth lacks the block's third product
# (the truth).  Rank 1 orders every customer's list by one item factor (or its reverse), so at most two
# blocks can have their own product first; rank 3 separates all three.
ALS_ROWS = [(f"{g}{c}", f"{g}p{i}", 1.0) for g in "abc" for c in range(1, 5) for i in range(1, 4)
            if not (c == 4 and i == 3)]
ALS_TRUTH = [(f"{g}4", f"{g}p3") for g in "abc"]


def _rc(**changes: object) -> Recommend:
    """The configured ``recommend`` settings with ``k`` 1 and ``section__key=value`` changes (YAML values)."""
    sets = ["recommend.k=1", *(f"recommend.{dotted.replace('__', '.')}={value}" for dotted, value in changes.items())]
    return load_settings(None, sets).recommend


@pytest.fixture(scope="module")
def ease_frames(spark):
    inter = spark.createDataFrame([(c, p, 1.0) for c, p in EASE_ROWS],
                                  "customer_id string, product_id string, weight double").cache()
    truth = spark.createDataFrame(EASE_TRUTH, "customer_id string, product_id string")
    return inter, truth


def test_tune_models_picks_the_planted_ease_lambda(ease_frames):
    inter, truth = ease_frames
    rc = _rc(item_item__ease_lambdas="[100.0,1.0]", als__tune="false")
    tuned = tune_models(inter, truth, rc, ("ease", "knn"), exclude_seen=True)  # ALS tuning is off
    assert set(tuned) == {"ease"}
    assert tuned["ease"]["reg_lambda"] == 1.0
    trials = tuned["ease"]["trials"]
    assert [t["reg_lambda"] for t in trials] == [100.0, 1.0]
    assert [t["ndcg_at_k"] for t in trials] == [0.0, 1.0]
    assert {t["scoring"] for t in trials} == {"dense"}  # ease_neighbors null: unpruned
    assert tune_models(inter, truth, _rc(item_item__tune="false", als__tune="false"), ("ease", "als"), True) == {}
    assert tune_models(inter, truth, rc, ("popular", "content"), True) == {}


def test_tune_models_picks_the_planted_als_point(spark):
    inter = spark.createDataFrame(ALS_ROWS, "customer_id string, product_id string, weight double").cache()
    truth = spark.createDataFrame(ALS_TRUTH, "customer_id string, product_id string")
    rc = _rc(als__grid="{rank: [1, 3], reg_param: [0.01], alpha: [10.0]}", als__max_iter=5, item_item__tune="true")
    tuned = tune_models(inter, truth, rc, ("knn",), exclude_seen=True)  # knn uses ALS factors; no ease requested
    assert set(tuned) == {"als"}
    als = tuned["als"]
    assert (als["rank"], als["reg_param"], als["alpha"]) == (3, 0.01, 10.0)
    assert [(t["rank"], t["reg_param"], t["alpha"]) for t in als["trials"]] == [(1, 0.01, 10.0), (3, 0.01, 10.0)]
    assert als["trials"][1]["ndcg_at_k"] == 1.0
    assert als["trials"][0]["ndcg_at_k"] <= 2 / 3 + 1e-9


def test_als_grid_lists_every_point_and_needs_every_key():
    points = als_grid({"rank": [32, 64], "reg_param": [0.1, 1.0], "alpha": [10.0]})
    assert points == [{"rank": 32, "reg_param": 0.1, "alpha": 10.0}, {"rank": 32, "reg_param": 1.0, "alpha": 10.0},
                      {"rank": 64, "reg_param": 0.1, "alpha": 10.0}, {"rank": 64, "reg_param": 1.0, "alpha": 10.0}]
    with pytest.raises(ValueError, match="alpha"):
        als_grid({"rank": [32], "reg_param": [0.1]})


def test_apply_tuned_writes_a_copy():
    rc = load_settings(None).recommend
    before = rc.model_dump()
    tuned = {"ease": {"reg_lambda": 250.0, "trials": []},
             "als": {"rank": 64, "reg_param": 1.0, "alpha": 1.0, "trials": []}}
    out = apply_tuned(rc, tuned)
    assert out.item_item.ease_lambda == 250.0
    assert (out.als.rank, out.als.reg_param, out.als.alpha) == (64, 1.0, 1.0)
    assert out.als.max_iter == rc.als.max_iter
    assert out.item_item.max_items == rc.item_item.max_items
    assert rc.model_dump() == before  # the input is untouched
    only_ease = apply_tuned(rc, {"ease": tuned["ease"]})
    assert only_ease.als == rc.als and only_ease.item_item.ease_lambda == 250.0
    assert apply_tuned(rc, {}) == rc
