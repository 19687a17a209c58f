"""Popular/trending items, cold-start fallback, light-user blend, and the recommendation filters."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark.recommend import filters, popularity

POP = "scope string, scope_value string, product_id string, n_customers long, n_orders long, weight double, " \
      "n_previous long, score double, rank int"
RECS = "customer_id string, product_id string, score double, rank int, reason string"


@pytest.fixture(scope="module")
def lines(spark):
    #  c1 (SP): o1 = pA, pB; o2 = pA      c2 (SP): o3 = pA, pC
    #  c3 (RJ): o4 = pB, pC               c4 (RJ): o5 = pC        c5 (no region): o6 = pD
    #  pA, pB toys; pC, pD books
    rows = [("o1", "c1", "pA", "toys", "SP"), ("o1", "c1", "pB", "toys", "SP"), ("o2", "c1", "pA", "toys", "SP"),
            ("o3", "c2", "pA", "toys", "SP"), ("o3", "c2", "pC", "books", "SP"),
            ("o4", "c3", "pB", "toys", "RJ"), ("o4", "c3", "pC", "books", "RJ"), ("o5", "c4", "pC", "books", "RJ"),
            ("o6", "c5", "pD", "books", None)]
    return spark.createDataFrame(rows, "order_id string, customer_id string, product_id string, category string, region string")


def test_popular_overall_category_and_region_ranks(spark, lines):
    # customers / orders: pC 3/3 (c2,c3,c4 / o3,o4,o5), pA 2/3 (c1,c2 / o1,o2,o3), pB 2/2 (c1,c3 / o1,o4), pD 1/1.
    # pA before pB: same customers, more orders.
    overall = popularity.popular_items(lines, k=3)
    assertDataFrameEqual(overall, spark.createDataFrame([
        ("overall", None, "pC", 3, 3, None, None, 3.0, 1),
        ("overall", None, "pA", 2, 3, None, None, 2.0, 2),
        ("overall", None, "pB", 2, 2, None, None, 2.0, 3)], POP))
    # toys: pA 2/3, pB 2/2; books: pC 3/3, pD 1/1
    by_cat = popularity.popular_items(lines, k=5, by="category")
    assertDataFrameEqual(by_cat.select("scope_value", "product_id", "rank"), spark.createDataFrame(
        [("toys", "pA", 1), ("toys", "pB", 2), ("books", "pC", 1), ("books", "pD", 2)], "scope_value string, product_id string, rank int"))
    assert set(r.scope for r in by_cat.select("scope").distinct().collect()) == {"category"}
    # SP (c1, c2): pA 2 customers; pB 1/1 and pC 1/1 tie -> product_id decides.  RJ (c3, c4): pC 2, pB 1.
    # c5 has no region: pD is in no region list.
    by_region = popularity.popular_items(lines, k=5, by="region")
    assertDataFrameEqual(by_region.select("scope_value", "product_id", "n_customers", "rank"), spark.createDataFrame(
        [("SP", "pA", 2, 1), ("SP", "pB", 1, 2), ("SP", "pC", 1, 3), ("RJ", "pC", 2, 1), ("RJ", "pB", 1, 2)],
        "scope_value string, product_id string, n_customers long, rank int"))


def test_popular_weight_breaks_customer_ties_and_table_unions_scopes(spark, lines):
    inter = spark.createDataFrame([("c1", "pA", 1.0), ("c2", "pA", 1.0), ("c1", "pB", 5.0), ("c3", "pB", 1.0)],
                                  "customer_id string, product_id string, weight double")
    # both have 2 customers; no order_id so n_orders counts rows (2 each); weight pB 6 > pA 2 -> pB first
    out = popularity.popular_items(inter, k=2, weight_col="weight")
    assertDataFrameEqual(out.select("product_id", "n_orders", "weight", "rank"), spark.createDataFrame(
        [("pB", 2, 6.0, 1), ("pA", 2, 2.0, 2)], "product_id string, n_orders long, weight double, rank int"))
    table = popularity.popular_table(lines, k=1)
    counts = {r.scope: r["count"] for r in table.groupBy("scope").count().collect()}  # 3 scope rows
    assert counts == {"overall": 1, "category": 2, "region": 2}
    assert table.columns == popularity.POPULAR_COLUMNS


def test_trending_ratio_with_smoothing_and_minimum(spark):
    # as_of 2024-03-01, 10 days: recent [02-20, 03-01), previous [02-10, 02-20)
    d = lambda day: dt.datetime(2024, 2, day, 12)  # noqa: E731
    rows = ([("pX", f"x{i}", d(25)) for i in range(4)] + [("pX", "old", d(12))]                      # r=4, p=1 -> 5/2 = 2.5
            + [("pY", "y1", d(21)), ("pY", "y2", d(28))]                                             # r=2, p=0 -> 3/1 = 3.0
            + [("pZ", "z1", d(22)), ("pZ", "z2", dt.datetime(2024, 3, 1)), ("pZ", "z3", d(1))]       # r=1 < 2 -> dropped
            + [("pW", f"w{i}", d(22)) for i in range(3)] + [("pW", f"v{i}", d(15)) for i in range(5)])  # r=3, p=5 -> 4/6
    lines = spark.createDataFrame(rows, "product_id string, customer_id string, ts timestamp")
    out = popularity.trending_items(lines, dt.date(2024, 3, 1), recent_days=10, k=5, min_recent=2)
    assertDataFrameEqual(out, spark.createDataFrame([
        ("trending", None, "pY", 2, 2, None, 0, 3.0, 1),
        ("trending", None, "pX", 4, 4, None, 1, 2.5, 2),
        ("trending", None, "pW", 3, 3, None, 5, 4 / 6, 3)], POP))


def test_fallback_for_unknown_customers_labelled_with_reason(spark, lines):
    # k=2 lists: overall pC, pA; SP pA, pB; RJ pC, pB
    popular = popularity.popular_table(lines, k=2, by=(None, "region"))
    customers = spark.createDataFrame([("c1", "SP"), ("n1", "SP"), ("n2", None), ("n3", "MG")], "customer_id string, region string")
    out = popularity.fallback_recommendations(customers, popular, k=3, known=lines)
    # c1 is known -> no fallback.  n1: SP list then overall pC (pA already listed).  n2, n3: overall only.
    assertDataFrameEqual(out, spark.createDataFrame([
        ("n1", "pA", 1.0, 1, "popular_in_region"), ("n1", "pB", 0.5, 2, "popular_in_region"), ("n1", "pC", 1 / 3, 3, "popular"),
        ("n2", "pC", 1.0, 1, "popular"), ("n2", "pA", 0.5, 2, "popular"),
        ("n3", "pC", 1.0, 1, "popular"), ("n3", "pA", 0.5, 2, "popular")], RECS))
    # without a region column everybody unknown gets the overall list
    no_region = popularity.fallback_recommendations(customers.select("customer_id"), popular, k=1)
    assert {(r.customer_id, r.product_id, r.reason) for r in no_region.collect()} == {
        (c, "pC", "popular") for c in ("c1", "n1", "n2", "n3")}


def test_blend_for_light_users(spark):
    popular = spark.createDataFrame([("overall", None, p, 1, 1, None, None, 1.0, r) for p, r in (("q1", 1), ("q2", 2), ("p2", 3))], POP)
    personal = spark.createDataFrame([("u0", "p1", 0.9, 1), ("u1", "p1", 0.9, 1), ("u1", "p2", 0.8, 2),
                                      ("u2", "p1", 0.9, 1), ("u2", "p2", 0.8, 2), ("u2", "p3", 0.7, 3)],
                                     "customer_id string, product_id string, score double, rank int")
    counts = spark.createDataFrame([("u1", 1), ("u2", 5)], "customer_id string, n_interactions long")  # u0 missing -> 0
    out = popularity.blend_for_light_users(personal, popular, counts, min_interactions=2, k=3)
    # u0: a = 0 -> pure popularity: q1 1/1, q2 1/2, p2 1/3 (p1 scores 0, rank 4, cut).
    # u1: a = 1/2 -> p1 .5/1 = .5 (personal), q1 .5/1 = .5 (popular; tie -> personal first),
    #     p2 .5/2 + .5/3 = .4167 (personal term .25 > popular .1667), q2 .5/2 = .25 (cut).
    # u2: 5 >= 2 -> personal list unchanged.
    assertDataFrameEqual(out, spark.createDataFrame([
        ("u0", "q1", 1.0, 1, "popular"), ("u0", "q2", 0.5, 2, "popular"), ("u0", "p2", 1 / 3, 3, "popular"),
        ("u1", "p1", 0.5, 1, "personal"), ("u1", "q1", 0.5, 2, "popular"), ("u1", "p2", 0.25 + 0.5 / 3, 3, "personal"),
        ("u2", "p1", 0.9, 1, "personal"), ("u2", "p2", 0.8, 2, "personal"), ("u2", "p3", 0.7, 3, "personal")], RECS))


# ---------------------------------------------------------------- filters

@pytest.fixture(scope="module")
def recs(spark):
    return spark.createDataFrame([("c1", "pA", 0.9, 1), ("c1", "pB", 0.8, 2), ("c1", "pC", 0.7, 3),
                                  ("c2", "pA", 0.9, 1), ("c2", "pD", 0.6, 2)],
                                 "customer_id string, product_id string, score double, rank int")


def _pairs(df):
    return sorted((r.customer_id, r.product_id, r["rank"]) for r in df.collect())


def test_exclude_purchased_on_and_off(spark, recs):
    bought = spark.createDataFrame([("c1", "pB"), ("c1", "pB"), ("c2", "pC")], "customer_id string, product_id string")
    assertDataFrameEqual(filters.exclude_purchased(recs, bought, enabled=False), recs)
    on = filters.exclude_purchased(recs, bought)
    assert _pairs(on) == [("c1", "pA", 1), ("c1", "pC", 3), ("c2", "pA", 1), ("c2", "pD", 2)]
    # re-rank closes the gap: c1 pC 3 -> 2
    assert _pairs(filters.rerank(on, k=10)) == [("c1", "pA", 1), ("c1", "pC", 2), ("c2", "pA", 1), ("c2", "pD", 2)]


def test_blocked_list_and_blocked_table(spark, recs):
    listed = filters.exclude_products(recs, filters.blocked_frame(spark, ["pA", "pA"]))
    assert _pairs(filters.rerank(listed, k=10)) == [("c1", "pB", 1), ("c1", "pC", 2), ("c2", "pD", 1)]
    table = spark.createDataFrame([("pD", "recalled"), (None, "bad row")], "product_id string, why string")
    assert _pairs(filters.exclude_products(recs, table)) == [("c1", "pA", 1), ("c1", "pB", 2), ("c1", "pC", 3), ("c2", "pA", 1)]


def test_category_include_and_exclude(spark, recs):
    products = spark.createDataFrame([("pA", "toys"), ("pB", " Toys "), ("pC", "books")], "product_id string, category string")
    # pD is not in products: dropped by include, kept by exclude
    inc = filters.filter_categories(recs, products, include=["toys"])
    assert _pairs(inc) == [("c1", "pA", 1), ("c1", "pB", 2), ("c2", "pA", 1)]
    exc = filters.filter_categories(recs, products, exclude=["TOYS"])
    assert _pairs(exc) == [("c1", "pC", 3), ("c2", "pD", 2)]
    both = filters.filter_categories(recs, products, include=["toys", "books"], exclude=["books"])
    assert _pairs(both) == [("c1", "pA", 1), ("c1", "pB", 2), ("c2", "pA", 1)]
    assertDataFrameEqual(filters.filter_categories(recs, products), recs)


def test_rerank_orders_by_score_then_rank_then_product(spark):
    recs = spark.createDataFrame([("c1", "pZ", 0.5, 7), ("c1", "pY", 0.5, 4), ("c1", "pX", 0.9, 9), ("c1", "pW", 0.1, 1),
                                  ("c2", "pB", 0.3, None), ("c2", "pA", 0.3, None)],
                                 "customer_id string, product_id string, score double, rank int")
    # c1: pX .9; pY/pZ tie at .5 -> old rank 4 < 7; k=3 cuts pW.  c2: tie, no rank -> product_id.
    assertDataFrameEqual(filters.rerank(recs, k=3), spark.createDataFrame(
        [("c1", "pX", 0.9, 1), ("c1", "pY", 0.5, 2), ("c1", "pZ", 0.5, 3), ("c2", "pA", 0.3, 1), ("c2", "pB", 0.3, 2)],
        "customer_id string, product_id string, score double, rank int"))
    # score_col=None keeps the old order
    assert _pairs(filters.rerank(recs.where("customer_id = 'c1'"), k=2, score_col=None)) == [("c1", "pW", 1), ("c1", "pY", 2)]
