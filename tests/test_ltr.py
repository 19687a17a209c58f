"""The two-stage recommender on tiny hand-built frames: generators, features, labels, leakage, the ranker, the default."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark.recommend import candidates as cands
from ecomrec_spark.recommend import rank_features as RF

T = dt.datetime(2024, 3, 1)
BOUGHT_SCHEMA = "customer_id string, product_id string, order_id string, ts timestamp, quantity double, " \
                "category string, price double, region string"


def _bought(spark, rows):
    return spark.createDataFrame(rows, BOUGHT_SCHEMA)


def d(day: int, month: int = 2) -> dt.datetime:
    return dt.datetime(2024, month, day)


@pytest.fixture(scope="module")
def bought(spark):
    # u1 re-orders p1 every 10 days; u2 bought p2 once and p3 once; a purchase on T itself belongs to the label window
    return _bought(spark, [
        ("u1", "p1", "o1", d(1), 2.0, "food", 10.0, "PT"),
        ("u1", "p1", "o2", d(11), 1.0, "food", 10.0, "PT"),
        ("u1", "p1", "o3", d(21), 1.0, "food", 12.0, "PT"),
        ("u1", "p2", "o3", d(21), 1.0, "toys", 40.0, "PT"),
        ("u2", "p2", "o4", d(25), 1.0, "toys", 40.0, "ES"),
        ("u2", "p3", "o5", d(28), 3.0, "food", 5.0, "ES"),
        ("u2", "p1", "o6", T, 1.0, "food", 10.0, "ES"),
        ("u1", "p3", "o7", d(5, 3), 1.0, "food", 5.0, "PT"),
    ])


def test_buy_again_ranks_by_orders_then_recency(spark, bought):
    got = cands.buy_again(bought, T, 5).withColumn("score", F.round("score", 4))
    # score = distinct orders x 0.5 ** (days since last / 90)
    expected = spark.createDataFrame([
        ("u1", "p1", "buy_again", round(3 * 0.5 ** (9 / 90), 4), 1),
        ("u1", "p2", "buy_again", round(1 * 0.5 ** (9 / 90), 4), 2),
        ("u2", "p3", "buy_again", round(1 * 0.5 ** (2 / 90), 4), 1),
        ("u2", "p2", "buy_again", round(1 * 0.5 ** (5 / 90), 4), 2),
    ], "customer_id string, product_id string, generator string, score double, rank int")
    assertDataFrameEqual(got, expected)


def test_rules_fire_only_when_the_whole_antecedent_was_bought_recently(spark, bought):
    rules = spark.createDataFrame([
        ("product", ["p2"], ["p9"], 0.5, 2.0),          # u1 and u2 bought p2 within 30 days
        ("product", ["p1", "p3"], ["p8"], 0.8, 3.0),    # u2 has p3 but p1 only on T (not before): only u1? no p3 -> none
        ("product", ["p3"], ["p2"], 0.4, 1.5),          # u2 already has p2 in the recent basket: not proposed
        ("category", ["food"], ["toys"], 0.9, 9.0),     # category rules are not product candidates
    ], "level string, antecedent array<string>, consequent array<string>, confidence double, lift double")
    got = cands.rules_fired(bought, rules, T, 10, recent_days=30)
    expected = spark.createDataFrame([("u1", "p9", "rules", 1.0, 1), ("u2", "p9", "rules", 1.0, 1)],
                                     "customer_id string, product_id string, generator string, score double, rank int")
    assertDataFrameEqual(got, expected)


def test_popular_lists_per_region_and_category(spark, bought):
    popular = spark.createDataFrame([
        ("overall", None, "p1", 3.0, 1), ("overall", None, "p2", 2.0, 2),
        ("region", "PT", "p2", 1.0, 1), ("category", "toys", "p7", 5.0, 1), ("category", "food", "p1", 3.0, 1),
        ("trending", None, "p3", 2.5, 1),
    ], "scope string, scope_value string, product_id string, score double, rank int")
    who = spark.createDataFrame([("u1", "PT"), ("u2", None)], "customer_id string, region string")
    cats = cands.top_categories(bought, T)
    got = cands.union(cands.popular_lists(who, cats, popular, 5)).where(F.col("customer_id") == "u1")
    expected = spark.createDataFrame([
        ("u1", "p1", "popular", 3.0, 1), ("u1", "p2", "popular", 2.0, 2), ("u1", "p3", "trending", 2.5, 1),
        ("u1", "p2", "popular_region", 1.0, 1),
        # u1: 3 of 4 lines food, 1 toys -> p1 scores 3 x 0.75, p7 scores 5 x 0.25
        ("u1", "p1", "popular_category", 2.25, 1), ("u1", "p7", "popular_category", 1.25, 2),
    ], "customer_id string, product_id string, generator string, score double, rank int")
    assertDataFrameEqual(got, expected)


def test_generator_frame_pivots_scores_ranks_and_flags(spark):
    long = spark.createDataFrame([("u1", "p1", "ease", 0.9, 1), ("u1", "p1", "buy_again", 2.0, 3),
                                  ("u1", "p2", "ease", 0.5, 2)],
                                 "customer_id string, product_id string, generator string, score double, rank int")
    got = RF.generator_frame(long, ["ease", "buy_again"])
    expected = spark.createDataFrame([("u1", "p1", 0.9, 1.0, 1.0, 2.0, 3.0, 1.0, 2.0),
                                      ("u1", "p2", 0.5, 2.0, 1.0, None, None, 0.0, 1.0)],
                                     "customer_id string, product_id string, ease_score double, ease_rank double, "
                                     "ease_in double, buy_again_score double, buy_again_rank double, "
                                     "buy_again_in double, n_generators double")
    assertDataFrameEqual(got, expected)


def test_history_features_measure_the_repurchase_cycle(spark, bought):
    got = RF.history_features(bought, T).where(F.col("customer_id") == "u1")
    # p1 bought on Feb 1, 11, 21: interval 10 days, last 9 days before T -> 0.9 into the cycle
    expected = spark.createDataFrame([("u1", "p1", 3.0, 9.0, 10.0, 0.9, 4.0), ("u1", "p2", 1.0, 9.0, None, None, 1.0)],
                                     "customer_id string, product_id string, hist_orders double, "
                                     "hist_days_since double, hist_interval double, hist_cycle double, "
                                     "hist_quantity double")
    assertDataFrameEqual(got, expected, rtol=1e-9)


def test_labels_use_only_the_window_after_the_cut(spark, bought):
    frame = spark.createDataFrame([("u1", "p3"), ("u2", "p1"), ("u1", "p1")], "customer_id string, product_id string")
    got = RF.with_labels(frame, bought, T, dt.datetime(2024, 3, 5))
    # u2/p1 on T itself is in [T, end); u1/p3 on Mar 5 is not
    expected = spark.createDataFrame([("u1", "p3", 0.0), ("u2", "p1", 1.0), ("u1", "p1", 0.0)],
                                     "customer_id string, product_id string, label double")
    assertDataFrameEqual(got, expected)


def test_training_rows_keep_groups_with_a_positive_and_cap_negatives(spark):
    rows = spark.createDataFrame(
        [("a", f"p{i}", 1.0 if i == 0 else 0.0) for i in range(6)] + [("b", f"p{i}", 0.0) for i in range(4)],
        "customer_id string, product_id string, label double")
    got = RF.training_rows(rows, max_negatives=2, seed=1)
    counts = {(r["customer_id"], r["label"]): r["n"] for r in got.groupBy("customer_id", "label").count()
              .withColumnRenamed("count", "n").collect()}
    assert counts == {("a", 1.0): 1, ("a", 0.0): 2}
    assert got.select("qid").distinct().count() == 1


def _review_inputs(spark, future: bool):
    reviews = [("r1", "o2", "p1", 4, d(12)), ("r2", "o4", "p2", 2, d(26))]
    preds = [("o1", "p1", d(1), 4.2, 0.8), ("o4", "p2", d(25), 2.5, 0.3)]
    sentiment = [("r1", 0.9), ("r2", 0.2)]
    if future:  # rows at or after T must change nothing
        reviews += [("r3", "o6", "p1", 1, T), ("r4", "o7", "p3", 5, d(6, 3))]
        preds += [("o6", "p1", T, 1.0, 0.0), ("o7", "p3", d(5, 3), 5.0, 1.0)]
        sentiment += [("r3", 0.0), ("r4", 1.0)]
    return (spark.createDataFrame(reviews, "review_id string, order_id string, product_id string, review_score int, "
                                           "review_ts timestamp"),
            spark.createDataFrame(preds, "order_id string, product_id string, order_ts timestamp, "
                                         "expected_score double, p_satisfied double"),
            spark.createDataFrame(sentiment, "review_id string, sentiment double"))


def test_no_feature_uses_the_label_window(spark, bought):
    """Features at T from the full data equal features from data cut at T: later purchases, reviews,
    review predictions and sentiment (the label window and beyond) leave every feature unchanged."""
    long = spark.createDataFrame(
        [("u1", "p1", "buy_again", 2.0, 1), ("u1", "p3", "ease", 0.4, 1), ("u2", "p1", "popular", 3.0, 1),
         ("u2", "p2", "buy_again", 1.0, 1)], "customer_id string, product_id string, generator string, score double, rank int")
    catalogue = spark.createDataFrame([("p1", "food"), ("p2", "toys"), ("p3", "food")], "product_id string, category string")
    gens = ["ease", "popular", "buy_again"]
    full = RF.build_features(long, gens, bought, catalogue, T, 60, *_review_inputs(spark, True))
    cut = RF.build_features(long, gens, bought.where(F.col("ts") < F.lit(T)), catalogue, T, 60,
                            *_review_inputs(spark, False))
    assert full.columns == ["customer_id", "product_id", *RF.feature_names(gens)]
    assertDataFrameEqual(full, cut)
    row = full.where("customer_id = 'u1' AND product_id = 'p1'").first()
    # buyers of p1 before T: u1 only (u2's purchase is on T); review features from before T only
    assert (row["item_buyers_30d"], row["review_mean"], row["review_pred"], row["sentiment"]) == (1.0, 4.0, 4.2, 0.9)
    assert row["cat_affinity"] == 0.75 and row["cust_orders"] == 3.0


def test_ranker_learns_a_planted_rule_and_explains_its_lists(spark):
    from ecomrec_spark.recommend import ranker as R

    # label = 1 exactly when the buy-again rank is 1 (the strongest re-order signal), whatever the ease score says
    rows = [(f"c{c}", f"p{i}", float(i == c % 5), float(5 - i), float(i + 1), 1.0, 1.0)
            for c in range(60) for i in range(5)]
    frame = spark.createDataFrame(rows, "customer_id string, product_id string, ease_score double, "
                                        "buy_again_score double, buy_again_rank double, buy_again_in double, "
                                        "ease_in double")
    frame = frame.withColumn("buy_again_rank", F.when(F.col("ease_score") == 1.0, 1.0).otherwise(F.col("buy_again_rank") + 1))
    frame = frame.withColumn("ease_rank", F.lit(1.0)).withColumn("label", (F.col("buy_again_rank") == 1.0).cast("double"))
    names = ["ease_score", "buy_again_score", "buy_again_rank"]
    model = R.fit_ranker(RF.with_qid(frame), names, {"max_depth": 2, "n_estimators": 10, "learning_rate": 0.5})
    top = R.rank_candidates(model, frame.drop("label"), 1)
    assert top.count() == 60
    assert top.join(frame.where("label = 1"), ["customer_id", "product_id"], "left_anti").count() == 0
    explained = R.with_reason(top, ["ease", "buy_again"]).select("reason").first()["reason"]
    assert explained == "learned ranker; proposed by EASE #1, buy again #1"
    assert list(R.gain_importance(model, names))[0] in ("ease_score", "buy_again_rank")


def test_default_pick_uses_validation_ndcg_in_the_shops_setting():
    from ecomrec_spark.recommend.run import pick_default

    rows = [{"model": "ltr", "setting": "all", "ndcg_at_k": 0.30}, {"model": "ease", "setting": "all", "ndcg_at_k": 0.25},
            {"model": "ltr_new", "setting": "new", "ndcg_at_k": 0.10}, {"model": "ease", "setting": "new", "ndcg_at_k": 0.12}]
    served = ["ltr", "ltr_new", "ease", "popular"]
    assert pick_default(rows, "all", "auto", served)["model"] == "ltr"
    assert pick_default(rows, "new", "auto", served)["model"] == "ease"
    assert pick_default(rows, "new", "ltr_new", served) == {"model": "ltr_new", "by": "config", "setting": "new",
                                                             "validation_ndcg": 0.10}
