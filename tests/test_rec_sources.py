"""Recommendations for sources without order lines: Amazon-format reviews and REES46 events only.

Unit tests of :mod:`ecomrec_spark.recommend.sources` and the direct review join of
``build_interactions`` on tiny frames, then two end-to-end runs (ingest -> transform
-> build-recommendations) on a planted Amazon CSV and on the real REES46 sample,
and the error for a lake with nothing to recommend from.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark import lake as lk
from ecomrec_spark.config import load_config
from ecomrec_spark.recommend import sources as S
from ecomrec_spark.settings import Settings

T0 = dt.datetime(2019, 10, 1, 0, 0, 0)
T1 = dt.datetime(2019, 10, 1, 0, 5, 0)
EVENTS_SCHEMA = ("event_ts timestamp, event_type string, product_id string, category_id string, category_code string, "
                 "category string, brand string, price double, user_id string, session_id string")
LINES_SCHEMA = ("customer_id string, product_id string, order_id string, order_ts timestamp, quantity int, "
                "price double, category string, region string, order_status string")
REVIEWS_SCHEMA = ("review_id string, order_id string, customer_id string, product_id string, review_score int, "
                  "title string, text string, review_ts timestamp")


@pytest.fixture(scope="module")
def events(spark):
    return spark.createDataFrame([
        (T0, "view", "p1", "11", "electronics.smartphone", "electronics", "samsung", 130.0, "u1", "s1"),
        (T1, "purchase", "p1", "11", "electronics.smartphone", "electronics", "samsung", 129.5, "u1", "s1"),
        (T1, "cart", "p2", "22", None, "unknown", None, 29.5, "u2", "s2"),          # no category_code: category_id
        (T0, "view", "p2", "22", None, "unknown", "Xiaomi", 29.0, "u3", "s3"),      # the only brand seen for p2
        (T1, "purchase", "p3", "33", "furniture.bathroom.toilet", "furniture", None, 54.4, None, "s4"),  # no user
        (T1, "PURCHASE", "p4", None, None, "unknown", None, None, "u2", "s2"),       # nothing but ids
    ], EVENTS_SCHEMA)


def test_lines_from_events_are_purchase_events_with_session_orders(spark, events):
    expected = spark.createDataFrame([
        ("u1", "p1", "s1", T1, 1, 129.5, "electronics", None, "purchase"),
        ("u2", "p4", "s2", T1, 1, None, "unknown", None, "purchase"),   # no user -> the p3 purchase is dropped
    ], LINES_SCHEMA)
    assertDataFrameEqual(S.lines_from_events(events), expected)
    carts = spark.createDataFrame([("u2", "p2", "s2", T1, 1, 29.5, "22", None, "cart")], LINES_SCHEMA)
    assertDataFrameEqual(S.lines_from_events(events, ["cart"]), carts)
    with pytest.raises(ValueError, match="event_types"):
        S.lines_from_events(events, [])


def test_events_without_drops_the_events_that_became_lines(events):
    kept = S.events_without(events).groupBy("event_type").count()
    assertDataFrameEqual(kept, kept.sparkSession.createDataFrame([("view", 2), ("cart", 1)], "event_type string, count long"))


def test_catalogue_from_events_takes_latest_non_empty_values(spark, events):
    expected = spark.createDataFrame([
        ("p1", "electronics", "samsung", "electronics smartphone", None),
        ("p2", "22", "xiaomi", None, None),
        ("p3", "furniture", None, "furniture bathroom toilet", None),
        ("p4", "unknown", None, None, None),
    ], "product_id string, category string, brand string, title string, description string")
    assertDataFrameEqual(S.catalogue_from_events(events), expected)


@pytest.fixture(scope="module")
def reviews(spark):
    return spark.createDataFrame([
        ("r1", None, "u1", "p1", 5, "Great", "Lovely coffee", T0),
        ("r2", None, "u1", "p2", 1, "Bad", "Stale beans", T0),
        ("r3", None, None, "p2", 4, None, "anonymous", T0),     # no customer: neither a line nor a weight
        ("r4", "o9", "u3", None, 4, None, "olist-style", T0),   # per-order review: joins through the order
    ], REVIEWS_SCHEMA)


def test_lines_from_reviews_one_line_per_review(spark, reviews):
    products = spark.createDataFrame([("p1", "coffee")], "product_id string, category string")
    expected = spark.createDataFrame([
        ("u1", "p1", "r1", T0, 1, None, "coffee", None, "reviewed"),
        ("u1", "p2", "r2", T0, 1, None, "unknown", None, "reviewed"),
    ], LINES_SCHEMA)
    assertDataFrameEqual(S.lines_from_reviews(reviews, products), expected)


def test_catalogue_from_lines_most_frequent_category(spark):
    lines = spark.createDataFrame([
        ("u1", "p1", "o1", T0, 1, 1.0, "b", None, None), ("u2", "p1", "o2", T0, 1, 1.0, "a", None, None),
        ("u3", "p1", "o3", T0, 1, 1.0, "a", None, None), ("u1", "p2", "o1", T0, 1, 1.0, None, None, None),
    ], LINES_SCHEMA)
    expected = spark.createDataFrame([("p1", "a", None, None, None), ("p2", "unknown", None, None, None)],
                                     "product_id string, category string, brand string, title string, description string")
    assertDataFrameEqual(S.catalogue_from_lines(lines), expected)


def test_direct_reviews_weight_their_own_lines(spark, reviews):
    from ecomrec_spark.recommend.interactions import build_interactions

    olist_line = spark.createDataFrame([("u3", "p4", "o9", T0, 1, 9.0, "x", None, "delivered")], LINES_SCHEMA)
    lines = S.lines_from_reviews(reviews).unionByName(olist_line)
    inter = build_interactions(lines, reviews=reviews, as_of=T0, purchase_weight=3.0, review_weight=0.5)
    # purchase 3 x 1 + review 0.5 x (score - 3), no decay at as_of: 5 stars -> 4.0, 1 star -> 2.0, 4 stars -> 3.5
    expected = spark.createDataFrame([("u1", "p1", 4.0, 1, 0, T0), ("u1", "p2", 2.0, 1, 0, T0), ("u3", "p4", 3.5, 1, 0, T0)],
                                     "customer_id string, product_id string, weight double, n_purchases int, "
                                     "n_events int, last_ts timestamp")
    assertDataFrameEqual(inter, expected, rtol=1e-9)


def test_product_text_uses_reviews_without_order_id(spark, reviews):
    from ecomrec_spark.recommend.content import product_text

    products = spark.createDataFrame([("p1", "unknown", None), ("p2", "unknown", None)],
                                     "product_id string, category string, title string")
    lines = S.lines_from_reviews(reviews)
    expected = spark.createDataFrame([("p1", "great lovely coffee"), ("p2", "anonymous bad stale beans")],
                                     "product_id string, text string")
    assertDataFrameEqual(product_text(products, reviews=reviews, lines=lines), expected)


# ------------------------------------------------------------------ end to end

def _cfg(root, sources: str, *extra: str):
    return load_config(None, [
        f"paths.raw={root / 'raw'}", f"paths.lake={root / 'lake'}", f"paths.reports={root / 'reports'}",
        f"ingest.sources=[{sources}]", "recommend.models=[als,item_knn,content,popular]",
        "recommend.als.max_iter=3", "recommend.als.rank=4", "recommend.als.tune=false", "recommend.item_item.tune=false",
        "recommend.popularity.min_interactions=1", *extra])


def _top(recs, customer: str, model: str, n: int) -> list[str]:
    rows = (recs.where((F.col("customer_id") == customer) & (F.col("model") == model) & (F.col("rank") <= n))
            .orderBy("rank").select("product_id").collect())  # n rows of one customer
    return [r.product_id for r in rows]


COFFEE = ["C1", "C2", "C3", "C4"]
DOGS = ["D1", "D2", "D3", "D4"]
# who reviewed what (day offset); coffee drinkers U1..U6 and the target T, dog owners U7..U12.
# U3's C3 and U8's D3 come last: the evaluation's test window (the last 20 days).
REVIEWS = {
    "U1": [("C1", 1), ("C2", 2), ("C3", 3), ("C4", 4)], "U2": [("C1", 5), ("C2", 6), ("C3", 7), ("C4", 8)],
    "U3": [("C1", 9), ("C2", 10), ("C3", 90)], "U4": [("C1", 11), ("C2", 12), ("C3", 13)],
    "U5": [("C1", 14), ("C2", 15), ("C3", 16)], "U6": [("C1", 17), ("C2", 18)], "T": [("C1", 40), ("C2", 41)],
    "U7": [("D1", 19), ("D2", 20), ("D3", 21), ("D4", 22)], "U8": [("D1", 23), ("D2", 24), ("D3", 95)],
    "U9": [("D1", 25), ("D2", 26), ("D3", 27)], "U10": [("D1", 28), ("D2", 29)], "U11": [("D1", 30), ("D2", 31)],
    "U12": [("D1", 32)],
}
TEXT = {"C": ('Rich espresso roast, "smooth" coffee beans,\nperfect crema for my morning coffee.', "Espresso coffee"),
        "D": ("My dog loves these chew treats;\nthe puppy food keeps him healthy, dog approved.", "Dog treats")}


def write_amazon_csv(path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    base = int(dt.datetime(2012, 1, 1, tzinfo=dt.UTC).timestamp())
    n = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Id", "ProductId", "UserId", "ProfileName", "HelpfulnessNumerator", "HelpfulnessDenominator",
                    "Score", "Time", "Summary", "Text"])
        for user, items in REVIEWS.items():
            for product, day in items:
                n += 1
                text, summary = TEXT[product[0]]
                score = 1 if (user, product) == ("U6", "C2") else 5 - n % 2
                w.writerow([n, product, user, f"{user}, a shopper", n % 3, 3, score, base + day * 86400, summary,
                            f"{text} Review {n} of {product}."])
    return n


@pytest.fixture(scope="module")
def amazon_run(spark, tmp_path_factory):
    from ecomrec_spark.ingest.run import ingest
    from ecomrec_spark.recommend.run import recommend
    from ecomrec_spark.transform.run import transform

    root = tmp_path_factory.mktemp("amazon")
    n = write_amazon_csv(root / "raw" / "amazon" / "Reviews.csv")
    cfg = _cfg(root, "amazon", "recommend.evaluate.test_days=20",
               "recommend.evaluate.models=[item_knn,popular]")
    settings = Settings.from_config(cfg)
    ingest(spark, settings)
    transform(spark, settings)
    built = recommend(spark, settings)
    recs = lk.read(spark, cfg["paths"]["lake"], "gold", "recommendations").cache()
    return {"cfg": cfg, "settings": settings, "n": n, "built": built, "recs": recs}


def test_amazon_reviews_reach_every_model(spark, amazon_run):
    recs, cfg = amazon_run["recs"], amazon_run["cfg"]
    assert amazon_run["n"] == 36
    lake = cfg["paths"]["lake"]
    assert lk.read(spark, lake, "silver", "reviews").count() == 36  # the multi-line texts parsed as one review each
    # every reviewer gets a list from every model, except item_knn for U1, U2 and U7: they reviewed every
    # product their co-reviewers did, so once their own products are excluded the item model has nothing left
    per_model = recs.groupBy("model").agg(F.countDistinct("customer_id").alias("n"))
    assertDataFrameEqual(per_model, spark.createDataFrame(
        [("als", 13), ("item_knn", 10), ("content", 13), ("popular", 13)], "model string, n long"))
    assert _top(recs, "U1", "item_knn", 1) == []
    # T reviewed C1 and C2, like every coffee drinker; five of them also reviewed C3, two C4
    assert _top(recs, "T", "item_knn", 2) == ["C3", "C4"]
    assert _top(recs, "T", "als", 1) == ["C3"]          # rank 4, 3 iterations: only the top item is clear-cut
    assert _top(recs, "U12", "als", 1) == ["D2"]
    assert set(_top(recs, "T", "content", 2)) == {"C3", "C4"}        # described like T's coffee, not like dog food
    assert _top(recs, "T", "popular", 1) == ["D1"]                   # 6 reviewers; C1, C2 (7) are T's own
    assert _top(recs, "U12", "item_knn", 1) == ["D2"]                # reviewed with D1 by five dog owners


def test_amazon_serve_evaluate_and_review_stages(spark, amazon_run):
    from ecomrec_spark import registry
    from ecomrec_spark.recommend.evaluate import evaluate
    from ecomrec_spark.recommend.run import sample_lists
    from ecomrec_spark.recommend.serve import recommend_for

    settings = amazon_run["settings"]
    one = recommend_for(spark, settings, "T", 2, "item_knn")
    assert [(i["product_id"], i["category"], i["price"]) for i in one["items"]] == [("C3", "unknown", None),
                                                                                   ("C4", "unknown", None)]
    samples = sample_lists(spark, settings)
    assert [s["customer_id"] for s in samples[::4]] == ["U1", "U2"]  # most reviews first; no cold customer exists
    for name in ("train-review", "score-reviews"):
        assert "reviews without orders" in registry.BY_NAME[name].load()(spark, settings)["skipped"]
    out = evaluate(spark, settings)
    # test window: U3 -> C3 and U8 -> D3, each the top co-reviewed item of the customer's earlier reviews
    knn_new = next(r for r in out["results"] if (r["model"], r["setting"]) == ("item_knn", "new"))
    assert (knn_new["n_users"], knn_new["hit_rate"], knn_new["mrr"]) == (2, 1.0, 1.0)


REES46_USERS = 330
BUYERS = ["514591159", "524325294", "524601178", "533624186", "543272936", "548691404", "551377651", "555083442",
          "555332717"]


@pytest.fixture(scope="module")
def events_run(spark, tmp_path_factory, shared_data):
    from ecomrec_spark.ingest.run import ingest
    from ecomrec_spark.recommend.run import recommend
    from ecomrec_spark.transform.run import transform

    root = tmp_path_factory.mktemp("rees46")
    (root / "raw" / "events").mkdir(parents=True)
    shutil.copy(shared_data / "rees46-sample" / "2019-Oct-sample.csv", root / "raw" / "events")
    # the sample covers 17 minutes: no validation window fits, so the build skips validation (logged) and still serves
    cfg = _cfg(root, "events")
    settings = Settings.from_config(cfg)
    ingest(spark, settings)
    transform(spark, settings)
    built = recommend(spark, settings)
    return {"cfg": cfg, "settings": settings, "built": built,
            "recs": lk.read(spark, cfg["paths"]["lake"], "gold", "recommendations").cache()}


def test_rees46_events_only(spark, events_run):
    from ecomrec_spark.recommend.evaluate import evaluate
    from ecomrec_spark.recommend.run import load_inputs
    from ecomrec_spark.recommend.serve import recommend_for

    recs, cfg = events_run["recs"], events_run["cfg"]
    # interactions count up to the last purchase (00:14:14): the 298 of the 330 users with an event by then get
    # the popular list; the 32 seen only later are new customers (served the fallback by `ecomrec recommend`)
    events = lk.read(spark, cfg["paths"]["lake"], "silver", "events")
    last = events.where(F.col("event_type") == "purchase").agg(F.max("event_ts")).first()[0]
    assert str(last) == "2019-10-01 00:14:14"
    assert events.select("user_id").distinct().count() == REES46_USERS
    active = events.where(F.col("event_ts") <= F.lit(last)).select(F.col("user_id").alias("customer_id")).distinct()
    popular = recs.where(F.col("model") == "popular").select("customer_id").distinct()
    assertDataFrameEqual(popular, active)
    assert popular.count() == 298
    # the 10 purchase events became 10 lines (9 buyers); they are no longer events (not counted twice)
    inputs = load_inputs(spark, cfg["paths"]["lake"])
    assert sorted(r.customer_id for r in inputs.lines.select("customer_id").distinct().collect()) == BUYERS
    assert inputs.lines.count() == 10 and inputs.events.where(F.col("event_type") == "purchase").count() == 0
    # popularity is the 10 bought products, one buyer each: ties go by product id; the viewer 541312140 gets all 10
    assert _top(recs, "541312140", "popular", 3) == ["1002524", "1002532", "1004856"]
    # 533624186 carted 4804056 and bought 4802036 (apple headphones): the content model's closest products are
    # the other two apple headphones (the same category, brand and title text), the bought one excluded
    assert set(_top(recs, "533624186", "content", 2)) == {"4804055", "4804056"}
    served = recommend_for(spark, events_run["settings"], "533624186", 2, "content")
    assert {(i["category"], i["price"]) for i in served["items"]} == {("electronics", 189.91), ("electronics", 161.98)}
    # no validation window fits in 17 minutes: nothing is tuned and the first configured model is the default
    assert events_run["built"]["info"]["validation"] == [] and events_run["built"]["default_model"] == "als"
    with pytest.raises(ValueError, match="no purchases before the evaluation cutoff"):  # 17 minutes, test_days 90
        evaluate(spark, events_run["settings"])


def test_nothing_to_recommend_names_the_missing_tables(spark, tmp_path):
    from ecomrec_spark.recommend.run import load_inputs

    lake = str(tmp_path / "lake")
    with pytest.raises(ValueError, match=r"no silver/order_lines.*olist or transactions.*no silver/events.*"
                                         r"ingest.sources events.*no silver/reviews.*amazon"):
        load_inputs(spark, lake)
    views = spark.createDataFrame([(T0, "view", "p1", "11", None, "unknown", None, 1.0, "u1", "s1")], EVENTS_SCHEMA)
    lk.overwrite(views, lake, "silver", "events")
    with pytest.raises(ValueError, match="silver/events has no purchase or cart events"):
        load_inputs(spark, lake)
