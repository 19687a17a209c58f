"""Each transform on a tiny hand-built frame, expected values beside the inputs."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark.transform import aggregates, clean, events, features, quality

T = dt.datetime


def test_iqr_flags_only_values_outside_the_category_fences(spark):
    df = spark.createDataFrame(
        [("a", 1, 10.0), ("a", 2, 11.0), ("a", 3, 12.0), ("a", 4, 13.0), ("a", 5, 100.0),
         ("b", 6, 5.0), ("b", 7, 5.0), ("b", 8, None)],
        "category string, id int, price double")
    # a: q1 = 11, q3 = 13 -> fences [11 - 1.5*2, 13 + 1.5*2] = [8, 16]; b: all equal, nothing outside
    bounds = quality.iqr_bounds(df, "price", "category")
    assertDataFrameEqual(bounds, spark.createDataFrame(
        [("a", 11.0, 13.0, 8.0, 16.0), ("b", 5.0, 5.0, 5.0, 5.0)], "category string, q1 double, q3 double, lower double, upper double"))
    kept, outliers = quality.split_outliers(df, ["price"], "category", k=1.5)
    assert sorted(r.id for r in kept.collect()) == [1, 2, 3, 4, 6, 7, 8]
    row = outliers.first()
    assert (row.id, row.outlier_reason) == (5, "IQR outlier: price=100.0 outside [8.0, 16.0] for a")
    # a larger k keeps it
    assert quality.split_outliers(df, ["price"], "category", k=50)[1].count() == 0


def test_mean_imputation_per_category_with_global_fallback(spark):
    df = spark.createDataFrame(
        [(1, "a", 10.0, 1.0), (2, "a", None, 3.0), (3, "a", 20.0, None), (4, "b", None, None), (5, "c", 30.0, 2.0)],
        "id int, category string, price double, freight_value double")
    out = quality.impute_mean(df, ["price", "freight_value"], "category")
    # a: price mean 15, freight mean 2; b has no values -> global means: price 20, freight 2
    expected = spark.createDataFrame(
        [(1, "a", 10.0, 1.0, False, False), (2, "a", 15.0, 3.0, True, False), (3, "a", 20.0, 2.0, False, True),
         (4, "b", 20.0, 2.0, True, True), (5, "c", 30.0, 2.0, False, False)],
        "id int, category string, price double, freight_value double, price_imputed boolean, freight_value_imputed boolean")
    assertDataFrameEqual(out.select(*expected.columns), expected)


def test_price_freight_ratio_is_defined_for_free_shipping(spark):
    df = spark.createDataFrame([(1, 10.0, 5.0), (2, 10.0, 0.0), (3, 10.0, None), (4, 3.0, 0.5)],
                               "id int, price double, freight_value double")
    out = features.price_freight_ratio(df, min_freight=1.0).select("id", "price_freight_ratio")
    assertDataFrameEqual(out, spark.createDataFrame([(1, 2.0), (2, 10.0), (3, None), (4, 3.0)], "id int, price_freight_ratio double"))


def test_delivery_and_calendar_features(spark):
    df = spark.createDataFrame(
        [(1, T(2017, 11, 24, 10), T(2017, 11, 24, 16), T(2017, 11, 26, 10), T(2017, 12, 6, 10), T(2017, 12, 4, 10)),
         (2, T(2017, 11, 10, 9), None, None, None, T(2017, 11, 30, 0))],
        "id int, order_ts timestamp, approved_ts timestamp, carrier_ts timestamp, delivered_ts timestamp, estimated_ts timestamp")
    out = features.calendar_features(features.delivery_features(df), [[11, 20, 30], [12, 1, 31]])
    got = {r.id: r for r in out.collect()}
    assert (got[1].delivery_delay_days, got[1].is_late, got[1].approval_hours, got[1].carrier_days, got[1].delivery_days) == (
        2.0, True, 6.0, 1.75, 12.0)
    assert (got[1].purchase_month, got[1].purchase_weekday, got[1].purchase_hour, got[1].is_holiday_season) == (11, 6, 10, True)
    assert (got[2].delivery_delay_days, got[2].is_late, got[2].is_holiday_season) == (None, None, False)


def test_popularity_uses_only_earlier_days(spark):
    lines = spark.createDataFrame(
        [("p1", dt.date(2018, 1, 1), 1), ("p2", dt.date(2018, 1, 1), 3), ("p1", dt.date(2018, 1, 2), 1),
         ("p2", dt.date(2018, 1, 20), 1)],
        "product_id string, order_date date, quantity int")
    out = features.product_popularity(lines, window_days=7)
    # day 1: nothing earlier -> 0; day 2: p1 sold 1 of 4 units in the 7 days before; day 20: window empty -> 0
    assertDataFrameEqual(out, spark.createDataFrame(
        [("p1", dt.date(2018, 1, 1), 0.0), ("p2", dt.date(2018, 1, 1), 0.0), ("p1", dt.date(2018, 1, 2), 0.25),
         ("p2", dt.date(2018, 1, 20), 0.0)], "product_id string, order_date date, popularity_index double"))


def test_dedupe_and_orphans_go_to_rejects_with_reasons(spark):
    items = spark.createDataFrame([("o1", 1, "p1"), ("o1", 1, "p1"), ("o2", 1, "p9"), ("o3", 1, "p1")],
                                  "order_id string, order_item_id int, product_id string")
    kept, dups = clean.dedupe(items, ["order_id", "order_item_id"], "order_lines")
    assert kept.count() == 3 and dups.count() == 1
    assert dups.first().reason == "duplicate of an earlier row with the same (order_id, order_item_id)"
    products = spark.createDataFrame([("p1",)], "product_id string")
    kept, orphans = clean.require_parent(kept, products, "product_id", "order_lines")
    assert sorted(r.order_id for r in kept.collect()) == ["o1", "o3"]
    o = orphans.first()
    assert (o.reason, o.table, o.raw_text) == ("orphan product_id: no such product_id in the parent table", "order_lines",
                                               '{"order_id":"o2","order_item_id":1,"product_id":"p9"}')


def test_event_category_split_and_gap_sessions(spark):
    ev = spark.createDataFrame(
        [(T(2019, 10, 1, 0, 0), "view", "p1", "c1", "electronics.smartphone", "Apple", 10.0, "u1", ""),
         (T(2019, 10, 1, 0, 10), "cart", "p1", "c1", "electronics.smartphone", "apple", 10.0, "u1", None),
         (T(2019, 10, 1, 2, 0), "purchase", "p2", "c2", None, None, 5.0, "u1", None),
         (T(2019, 10, 1, 2, 0), "view", "p3", "c3", "appliances.environment.water_heater", "aqua", 5.0, "u2", "s9")],
        "event_time timestamp, event_type string, product_id string, category_id string, category_code string, "
        "brand string, price double, user_id string, user_session string")
    ev = ev.withColumn("_source_file", F.lit("f")).withColumn("_ingest_run", F.lit("r"))
    out = events.event_features(ev, gap_minutes=30)
    got = [(r.category, r.sub_category, r.session_id, r.event_strength) for r in out.orderBy("event_ts", "user_id").collect()]
    assert got == [("electronics", "smartphone", "u1-1", 1), ("electronics", "smartphone", "u1-1", 2),
                   ("unknown", None, "u1-2", 3), ("appliances", "environment", "s9", 1)]
    s = {r.session_id: r for r in events.sessions(out).collect()}
    assert (s["u1-1"].n_events, s["u1-1"].duration_s, s["u1-1"].converted, s["u1-2"].converted) == (2, 600, False, True)


def test_customer_rfm_affinity_and_price_level(spark):
    lines = spark.createDataFrame(
        [("c1", "o1", "toys", T(2018, 1, 1), 10.0, 1, 1.0, "SP"), ("c1", "o2", "toys", T(2018, 1, 30), 30.0, 1, 1.0, "SP"),
         ("c1", "o2", "books", T(2018, 1, 30), 10.0, 2, 1.0, "SP"), ("c2", "o3", "toys", T(2018, 1, 11), 20.0, 1, 0.0, "RJ")],
        "customer_id string, order_id string, category string, order_ts timestamp, price double, quantity int, "
        "freight_value double, region string")
    out = {r.customer_id: r for r in aggregates.customer_features(lines, n_levels=2).collect()}
    # reference date is the last order (2018-01-30); toys mean price 20, books 10
    assert (out["c1"].recency_days, out["c1"].frequency, out["c1"].monetary, out["c1"].units) == (0, 2, 63.0, 4)
    assert (out["c2"].recency_days, out["c2"].frequency, out["c2"].monetary) == (19, 1, 20.0)
    assert out["c1"].category_affinity == {"toys": 0.5, "books": 0.5} and out["c2"].top_category == "toys"
    assert abs(out["c1"].relative_price - (0.5 + 1.5 + 1.0) / 3) < 1e-9 and out["c2"].relative_price == 1.0
    assert (out["c1"].recency_days_score, out["c2"].recency_days_score) == (2, 1)
    assert (out["c1"].frequency_score, out["c2"].frequency_score) == (2, 1)


def test_both_iqr_methods_give_the_same_split(spark):
    df = spark.createDataFrame(
        [("a", i, float(v)) for i, v in enumerate([10, 11, 12, 13, 100, 2, 12, 11])] + [("b", 99, None), ("b", 98, 4.0)],
        "category string, id int, price double")
    w_kept, w_out = quality.split_outliers(df, ["price"], "category", method="window")
    a_kept, a_out = quality.split_outliers(df, ["price"], "category", method="aggregate")
    assertDataFrameEqual(w_kept, a_kept)
    assertDataFrameEqual(w_out, a_out)
    # a sorted: 2 10 11 11 12 12 13 100 -> q1 = 10, q3 = 12, fences [7, 15]: 100 (id 4) and 2 (id 5) are out
    assert sorted(r.id for r in w_out.collect()) == [4, 5]


def test_review_stages_skip_a_lake_without_reviews(spark, cfg, lake):
    from ecomrec_spark import registry
    from ecomrec_spark.settings import Settings

    run_cfg = {**cfg, "paths": {**cfg["paths"], "lake": lake}}
    for name in ("train-review", "score-reviews"):
        stage = registry.BY_NAME[name].load()
        assert stage(spark, Settings.from_config(run_cfg)) == {"skipped": "no gold/order_features table (the configured sources have no orders with reviews)"}, name
