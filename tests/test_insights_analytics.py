"""Insights analytics tables on tiny hand-built frames, against hand-computed values."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark import lake as lk
from ecomrec_spark.insights import analytics as A
from ecomrec_spark.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the old sales_trends lives in bench/insights.py as the reference
    sys.path.insert(0, str(ROOT))

D = dt.date

EVENTS_SCHEMA = ("event_date date, event_type string, product_id string, category string, sub_category string, "
                 "brand string, price double, user_id string, session_id string")
# Order lines for the sales tables.  2018-01-01, 01-08 and 02-05 are Mondays, 01-03 a Wednesday;
# 01-08 and 02-05 are flagged holiday season.  o4 is canceled (never counted); o6 has no quantity (1 unit).
ORDER_FEATURES_SCHEMA = ("order_id string, line_id string, product_id string, category string, region string, "
                         "order_status string, order_date date, price double, quantity int, is_holiday_season boolean")
ORDER_FEATURES = [
    ("o1", "l1", "p1", "toys", "SP", "delivered", D(2018, 1, 1), 10.0, 1, False),   # 10
    ("o1", "l2", "p2", "books", "SP", "delivered", D(2018, 1, 1), 5.0, 2, False),   # 10
    ("o2", "l1", "p1", "toys", "RJ", "delivered", D(2018, 1, 3), 10.0, 1, False),   # 10
    ("o3", "l1", "p2", "books", "RJ", "delivered", D(2018, 1, 8), 5.0, 1, True),    # 5
    ("o4", "l1", "p1", "toys", "SP", "canceled", D(2018, 1, 8), 10.0, 3, True),     # excluded
    ("o5", "l1", "p3", "toys", "SP", "delivered", D(2018, 2, 5), 20.0, 3, True),    # 60
    ("o6", "l1", "p2", "books", "RJ", "shipped", D(2018, 2, 5), 5.0, None, True),   # 1 unit, 5
]


def _df(spark: SparkSession, schema: str, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, schema)


@pytest.fixture(scope="module")
def order_features(spark: SparkSession) -> DataFrame:
    return _df(spark, ORDER_FEATURES_SCHEMA, ORDER_FEATURES)


# --------------------------------------------------------------------------- behaviour

BEHAVIOUR_EVENTS = [
    (D(2019, 10, 1), "view", "p1", "elec", "phone", "acme", 10.0, "u1", "s1"),
    (D(2019, 10, 1), "view", "p1", "elec", "phone", "acme", 10.0, "u2", "s2"),
    (D(2019, 10, 1), "view", "p2", "home", "lamp", None, 5.0, "u1", "s1"),
    (D(2019, 10, 1), "purchase", "p1", "elec", "phone", "acme", 10.0, "u1", "s1"),
    (D(2019, 10, 2), "view", "p2", "home", "lamp", None, 5.0, "u3", "s5"),
    (D(2019, 10, 2), "cart", "p2", "home", "lamp", None, 5.0, "u3", "s3"),
    (D(2019, 10, 2), "purchase", "p2", "home", "lamp", None, 5.0, "u3", "s3"),
    (D(2019, 10, 2), "purchase", "p1", "elec", "phone", "acme", 12.0, "u1", "s4"),
]


def test_behaviour_schemas(spark):
    ev = _df(spark, EVENTS_SCHEMA, BEHAVIOUR_EVENTS)
    d1, d2 = D(2019, 10, 1), D(2019, 10, 2)
    assertDataFrameEqual(A.daily_category_counts(ev), _df(
        spark, "event_date date, category string, event_type string, n_events bigint",
        [(d1, "elec", "view", 2), (d1, "home", "view", 1), (d1, "elec", "purchase", 1),
         (d2, "home", "view", 1), (d2, "home", "cart", 1), (d2, "home", "purchase", 1), (d2, "elec", "purchase", 1)]))
    assertDataFrameEqual(A.views_by_date(ev), _df(
        spark, "event_date date, n_views bigint, n_viewers bigint, n_products bigint",
        [(d1, 3, 2, 2),     # u1 p1, u2 p1, u1 p2
         (d2, 1, 1, 1)]))
    assertDataFrameEqual(A.purchases_by_date(ev), _df(
        spark, "event_date date, n_purchases bigint, n_buyers bigint, revenue double",
        [(d1, 1, 1, 10.0), (d2, 2, 2, 17.0)]))  # 5 + 12
    assertDataFrameEqual(A.users_per_date(ev), _df(
        spark, "event_date date, n_users bigint, n_sessions bigint",
        [(d1, 2, 2),        # u1 u2 / s1 s2
         (d2, 2, 3)]))      # u3 u1 / s5 s3 s4
    assertDataFrameEqual(A.purchases_per_customer(ev), _df(
        spark, "user_id string, n_purchases bigint, n_products bigint, revenue double, first_purchase_date date, "
               "last_purchase_date date",
        [("u1", 2, 1, 22.0, d1, d2),   # p1 twice: 10 + 12
         ("u3", 1, 1, 5.0, d2, d2)]))
    assertDataFrameEqual(A.purchases_by_category(ev), _df(
        spark, "category string, sub_category string, brand string, n_purchases bigint, n_buyers bigint, "
               "revenue double",
        [("elec", "phone", "acme", 2, 1, 22.0), ("home", "lamp", None, 1, 1, 5.0)]))
    assertDataFrameEqual(A.product_views_by_category_day(ev), _df(
        spark, "event_date date, category string, product_id string, n_views bigint",
        [(d1, "elec", "p1", 2), (d1, "home", "p2", 1), (d2, "home", "p2", 1)]))


# --------------------------------------------------------------------------- sales and seasonality

def test_sales_trends(spark, order_features):
    def rows(grain: str, period: dt.date, total: tuple, **by: tuple) -> list[tuple]:
        out = [(grain, period, "total", None, *total)]
        for key, values in by.items():
            dim, value = key.split("_")
            out.append((grain, period, dim, value, *values))
        return out

    # (n_orders, units, revenue)
    expected = (
        rows("day", D(2018, 1, 1), (1, 3, 20.0), category_toys=(1, 1, 10.0), category_books=(1, 2, 10.0),
             region_SP=(1, 3, 20.0))
        + rows("day", D(2018, 1, 3), (1, 1, 10.0), category_toys=(1, 1, 10.0), region_RJ=(1, 1, 10.0))
        + rows("day", D(2018, 1, 8), (1, 1, 5.0), category_books=(1, 1, 5.0), region_RJ=(1, 1, 5.0))  # o4 canceled
        + rows("day", D(2018, 2, 5), (2, 4, 65.0), category_toys=(1, 3, 60.0), category_books=(1, 1, 5.0),
               region_SP=(1, 3, 60.0), region_RJ=(1, 1, 5.0))
        # week of Monday 01-01 = 01-01 + 01-03 (o1, o2)
        + rows("week", D(2018, 1, 1), (2, 4, 30.0), category_toys=(2, 2, 20.0), category_books=(1, 2, 10.0),
               region_SP=(1, 3, 20.0), region_RJ=(1, 1, 10.0))
        + rows("week", D(2018, 1, 8), (1, 1, 5.0), category_books=(1, 1, 5.0), region_RJ=(1, 1, 5.0))
        + rows("week", D(2018, 2, 5), (2, 4, 65.0), category_toys=(1, 3, 60.0), category_books=(1, 1, 5.0),
               region_SP=(1, 3, 60.0), region_RJ=(1, 1, 5.0))
        # January: o1 o2 o3; toys o1 o2 (1+1 units), books o1 o3 (2+1), SP o1, RJ o2 o3
        + rows("month", D(2018, 1, 1), (3, 5, 35.0), category_toys=(2, 2, 20.0), category_books=(2, 3, 15.0),
               region_SP=(1, 3, 20.0), region_RJ=(2, 2, 15.0))
        + rows("month", D(2018, 2, 1), (2, 4, 65.0), category_toys=(1, 3, 60.0), category_books=(1, 1, 5.0),
               region_SP=(1, 3, 60.0), region_RJ=(1, 1, 5.0)))
    assertDataFrameEqual(A.sales_trends(order_features), _df(
        spark, "grain string, period date, dimension string, value string, n_orders bigint, units bigint, "
               "revenue double",
        expected))


TRENDS_SCHEMA = ("grain string, period date, dimension string, value string, n_orders bigint, units bigint, "
                 "revenue double")


def _trend_rows(grain: str, period: dt.date | None, total: tuple, **by: tuple) -> list[tuple]:
    """Expected ``sales_trends`` rows of one period: the total, then ``category_<v>`` / ``region_<v>`` rows."""
    out = [(grain, period, "total", None, *total)]
    for key, values in by.items():
        dim, value = key.split("_", 1)
        out.append((grain, period, dim, value, *values))
    return out


def test_sales_trends_counts_an_order_once_per_period_and_value(spark):
    # 2018-03-31 is a Saturday, 04-01 the Sunday of the same ISO week (Monday 03-26) but the next month, 04-02 the
    # Monday after.  o1 spans 03-31 and 04-01 (a month boundary inside a week) and two categories, with toys on
    # both days; o2 spans 04-01 and 04-02 (a week boundary inside a month).  So on 04-01 the categories' order
    # counts (books 1 + toys 2) add up to more than the day's 2 orders, and toys' week 03-26 has 2 orders, not 3.
    lines = [  # order, category, region, status, date, price, quantity          units, revenue
        ("o1", "toys", "SP", "delivered", D(2018, 3, 31), 10.0, 1),          # 1, 10
        ("o1", "books", "SP", "delivered", D(2018, 4, 1), 5.0, 2),           # 2, 10
        ("o1", "toys", "SP", "delivered", D(2018, 4, 1), 10.0, 1),           # 1, 10
        ("o2", "toys", "RJ", "delivered", D(2018, 4, 1), 20.0, None),        # 1, 20 (no quantity: 1 unit)
        ("o2", "toys", "RJ", "delivered", D(2018, 4, 2), 20.0, 1),           # 1, 20
        ("o3", "books", None, "delivered", D(2018, 4, 2), None, 3),          # 3, null; region 'unknown'
        ("o4", "toys", "SP", "canceled", D(2018, 4, 1), 10.0, 5),            # not sold
        (None, "books", "SP", "delivered", D(2018, 4, 2), 1.0, 1),           # 1, 1; no order to count
        ("o6", "toys", "SP", "delivered", None, 2.0, 1),                     # 1, 2; no date: a null period
    ]
    of = _df(spark, "order_id string, category string, region string, order_status string, order_date date, "
                    "price double, quantity int", lines)
    mar31, apr1, apr2, week13, mar, apr = (D(2018, 3, 31), D(2018, 4, 1), D(2018, 4, 2), D(2018, 3, 26),
                                           D(2018, 3, 1), D(2018, 4, 1))
    # (n_orders, units, revenue)
    only_o1_mar31 = {"total": (1, 1, 10.0), "category_toys": (1, 1, 10.0), "region_SP": (1, 1, 10.0)}
    apr2_rows = {"total": (2, 5, 21.0), "category_toys": (1, 1, 20.0), "category_books": (1, 4, 1.0),
                 "region_RJ": (1, 1, 20.0), "region_unknown": (1, 3, None), "region_SP": (0, 1, 1.0)}
    no_date = {"total": (1, 1, 2.0), "category_toys": (1, 1, 2.0), "region_SP": (1, 1, 2.0)}
    expected = (
        _trend_rows("day", mar31, **only_o1_mar31)
        + _trend_rows("day", apr1, total=(2, 4, 40.0), category_books=(1, 2, 10.0), category_toys=(2, 2, 30.0),
                      region_SP=(1, 3, 20.0), region_RJ=(1, 1, 20.0))
        + _trend_rows("day", apr2, **apr2_rows)
        + _trend_rows("day", None, **no_date)
        # 03-31 + 04-01: o1's toys on both days count one order
        + _trend_rows("week", week13, total=(2, 5, 50.0), category_toys=(2, 3, 40.0), category_books=(1, 2, 10.0),
                      region_SP=(1, 4, 30.0), region_RJ=(1, 1, 20.0))
        + _trend_rows("week", apr2, **apr2_rows)
        + _trend_rows("week", None, **no_date)
        + _trend_rows("month", mar, **only_o1_mar31)
        # 04-01 + 04-02: o2 on both days counts once; o3's null price leaves region 'unknown' without revenue
        + _trend_rows("month", apr, total=(3, 9, 61.0), category_toys=(2, 3, 50.0), category_books=(2, 6, 11.0),
                      region_SP=(1, 4, 21.0), region_RJ=(1, 2, 40.0), region_unknown=(1, 3, None))
        + _trend_rows("month", None, **no_date))
    assertDataFrameEqual(A.sales_trends(of), _df(spark, TRENDS_SCHEMA, expected), rtol=1e-9)


def test_sales_trends_equals_the_reference_on_generated_orders(spark):
    from pyspark.sql import functions as F
    from pyspark.testing import assertSchemaEqual

    from bench import insights as bench_insights

    # the benchmark's generator (skewed categories and regions, statuses, nulls), with orders spread over days:
    # line 2 of every 3rd order a day later and line 3 of every 5th order 31 days later, so orders cross week and
    # month boundaries with their categories; a few lines lose their order id or date
    base = bench_insights.input_frame(spark, 30_000, partitions=2)
    order_no = F.substring(F.col("order_id"), 2, 11).cast("int")
    shift = (F.when((F.col("line_id") == 2) & (order_no % 3 == 0), 1)
             .when((F.col("line_id") == 3) & (order_no % 5 == 0), 31).otherwise(0))
    of = (base.withColumn("order_date", F.date_add("order_date", shift))
          .withColumn("order_id", F.when(order_no % 97 != 1, F.col("order_id")))
          .withColumn("order_date", F.when(order_no % 89 != 2, F.col("order_date"))))
    new, reference = A.sales_trends(of), bench_insights.reference_sales_trends(of)
    assertSchemaEqual(new.schema, reference.schema, ignoreNullable=False)
    assertDataFrameEqual(new, reference, rtol=1e-9)


def test_top_products_and_demand(spark, order_features):
    assertDataFrameEqual(A.top_products(order_features, 2), _df(
        spark, "month date, rank int, product_id string, category string, n_orders bigint, units bigint, "
               "revenue double",
        [(D(2018, 1, 1), 1, "p2", "books", 2, 3, 15.0),   # 2 + 1 units beat p1's 1 + 1 despite less revenue
         (D(2018, 1, 1), 2, "p1", "toys", 2, 2, 20.0),
         (D(2018, 2, 1), 1, "p3", "toys", 1, 3, 60.0),
         (D(2018, 2, 1), 2, "p2", "books", 1, 1, 5.0)]))
    assertDataFrameEqual(A.demand_by_month(order_features), _df(
        spark, "month int, n_orders bigint, units bigint, revenue double, n_days bigint, units_per_day double",
        [(1, 3, 5, 35.0, 3, 5 / 3),   # days 01-01, 01-03, 01-08
         (2, 2, 4, 65.0, 1, 4.0)]), rtol=1e-9)
    assertDataFrameEqual(A.demand_by_weekday(order_features), _df(
        spark, "weekday int, weekday_name string, n_orders bigint, units bigint, revenue double, n_days bigint, "
               "units_per_day double",
        [(2, "Mon", 4, 8, 90.0, 3, 8 / 3),   # o1 o3 o5 o6: 3 + 1 + 3 + 1 units, 20 + 5 + 60 + 5
         (4, "Wed", 1, 1, 10.0, 1, 1.0)]), rtol=1e-9)
    with pytest.raises(ValueError, match="n=0"):
        A.top_products(order_features, 0)


def test_holiday_lift(spark, order_features):
    # daily units (holiday days 01-08, 02-05; other days 01-01, 01-03):
    #   all:   3, 1 | 1, 4  -> other 2.0, holiday 2.5, lift 1.25
    #   toys:  1, 1 | 0, 3  -> other 1.0, holiday 1.5, lift 1.5  (01-08 only has the canceled o4: a zero day)
    #   books: 2, 0 | 1, 1  -> other 1.0, holiday 1.0, lift 1.0
    assertDataFrameEqual(A.holiday_lift(order_features), _df(
        spark, "level string, category string, holiday_days bigint, other_days bigint, holiday_units_per_day double, "
               "other_units_per_day double, lift double",
        [("overall", None, 2, 2, 2.5, 2.0, 1.25), ("category", "toys", 2, 2, 1.5, 1.0, 1.5),
         ("category", "books", 2, 2, 1.0, 1.0, 1.0)]), rtol=1e-9)


def test_season_correlation(spark):
    # units per month:      2017-11  2017-12  2018-11
    #   a                      1        3        2
    #   b                      2        -        4     (no sale in Dec: 0)
    #   c                      1        1        1     (constant: correlation null)
    #   total                  4        4        7
    rows = [("a", D(2017, 11, 3), 1), ("a", D(2017, 12, 3), 1), ("a", D(2017, 12, 9), 2), ("a", D(2018, 11, 3), 2),
            ("b", D(2017, 11, 4), 2), ("b", D(2018, 11, 4), 4),
            ("c", D(2017, 11, 5), 1), ("c", D(2017, 12, 5), 1), ("c", D(2018, 11, 5), 1)]
    of = _df(spark, "order_id string, category string, order_date date, quantity int, price double",
             [(f"o{i}", c, d, q, 1.0) for i, (c, d, q) in enumerate(rows)])
    # monthly: a dx = (-1, 1, 0), total dy = (-1, -1, 2): sum dx*dy = 0 -> 0
    #          b dx = (0, -2, 2): sum = 6, sum dx^2 = 8, sum dy^2 = 6 -> 6 / sqrt(48)
    # month of year (mean over the months present): total Nov (4 + 7) / 2 = 5.5, Dec 4
    #          a Nov 1.5, Dec 3 (against total going down) -> -1;  b Nov 3, Dec 0 -> +1
    assertDataFrameEqual(A.season_correlation(of), _df(
        spark, "category string, n_months bigint, corr_monthly double, n_months_of_year bigint, "
               "corr_month_of_year double",
        [("a", 3, 0.0, 2, -1.0), ("b", 3, 6 / 48 ** 0.5, 2, 1.0), ("c", 3, None, 2, None)]), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- review impact

def test_review_rating_moves(spark):
    ts = dt.datetime
    schema = ("order_id string, line_id string, product_id string, order_date date, quantity int, price double, "
              "review_score int, review_ts timestamp")
    of = _df(spark, schema, [
        ("o1", "l1", "p1", D(2018, 1, 2), 1, 1.0, 5, ts(2018, 1, 10)),
        ("o2", "l1", "p1", D(2018, 1, 5), 1, 1.0, 4, ts(2018, 1, 20)),   # two lines of p1, one review
        ("o2", "l2", "p1", D(2018, 1, 5), 1, 1.0, 4, ts(2018, 1, 20)),
        ("o3", "l1", "p1", D(2018, 1, 25), 1, 1.0, 2, ts(2018, 2, 15)),
        ("o5", "l1", "p1", D(2018, 2, 10), 2, 1.0, None, None),
        ("o4", "l1", "p1", D(2018, 3, 1), 1, 1.0, 3, ts(2018, 4, 2)),
        ("o6", "l1", "p1", D(2018, 5, 3), 1, 1.0, None, None),
        ("o7", "l1", "p2", D(2018, 5, 1), 1, 1.0, 5, ts(2018, 5, 20)),
        ("o8", "l1", "p2", D(2018, 5, 10), 2, 1.0, 5, ts(2018, 6, 5)),
    ])
    # p1 units by month: Jan 1 + 2 + 1 = 4, Feb 2, Mar 1, Apr 0, May 1; last month with a sale: May
    assertDataFrameEqual(A.review_rating_moves(of), _df(
        spark, "product_id string, month date, n_reviews bigint, mean_score double, previous_month date, "
               "score_change double, units_month bigint, units_next_month bigint, units_change bigint",
        [("p1", D(2018, 1, 1), 2, 4.5, None, None, 4, 2, -2),
         ("p1", D(2018, 2, 1), 1, 2.0, D(2018, 1, 1), -2.5, 2, 1, -1),
         ("p1", D(2018, 4, 1), 1, 3.0, D(2018, 2, 1), 1.0, 0, 1, 1),      # previous month with reviews: Feb
         ("p2", D(2018, 5, 1), 1, 5.0, None, None, 3, None, None),        # June is after the data
         ("p2", D(2018, 6, 1), 1, 5.0, D(2018, 5, 1), 0.0, None, None, None)]))


def test_rating_move_impact(spark):
    moves = _df(spark, "product_id string, score_change double, units_month bigint, units_next_month bigint, "
                       "units_change bigint",
                [("a", -0.5, 4, 2, -2),      # down (the threshold is inclusive)
                 ("b", -0.4, 1, 1, 0),       # flat
                 ("c", 0.2, 3, 5, 2),        # flat
                 ("d", 1.0, 0, 3, 3),        # up
                 ("e", None, 2, 2, 0),       # first reviewed month: left out
                 ("f", 0.7, 1, None, None)])  # next month not observed: left out
    assertDataFrameEqual(A.rating_move_impact(moves, 0.5), _df(
        spark, "band string, n_product_months bigint, mean_score_change double, mean_units_month double, "
               "mean_units_next_month double, mean_units_change double",
        [("down", 1, -0.5, 4.0, 2.0, -2.0),
         ("flat", 2, -0.1, 2.0, 3.0, 1.0),   # (-0.4 + 0.2) / 2, (1 + 3) / 2, (1 + 5) / 2, (0 + 2) / 2
         ("up", 1, 1.0, 0.0, 3.0, 3.0)]), rtol=1e-9)
    with pytest.raises(ValueError, match="threshold"):
        A.rating_move_impact(moves, 0.0)


def test_conversion_by_rating(spark):
    def events(pid: str, views: int, purchases: int, carts: int = 0) -> list[tuple]:
        kinds = ["view"] * views + ["purchase"] * purchases + ["cart"] * carts
        return [(D(2019, 10, 1), k, pid, "c", None, None, 1.0, "u", "s") for k in kinds]

    ev = _df(spark, EVENTS_SCHEMA, events("p1", 4, 1) + events("p2", 2, 1) + events("p3", 3, 0) + events("p4", 1, 0)
             + events("p5", 1, 1) + events("p7", 2, 0, carts=1))
    pf = _df(spark, "product_id string, category string, mean_review_score double",
             [("p1", "c", 5.0), ("p2", "c", 4.5), ("p3", "c", 4.4), ("p4", "c", 1.0), ("p6", "c", 3.0),
              ("p7", "c", 2.99)])
    assertDataFrameEqual(A.conversion_by_rating(ev, pf), _df(
        spark, "band string, n_products bigint, views bigint, purchases bigint, conversion double",
        [("[4.5,5]", 2, 6, 2, 2 / 6),    # p1 (5.0 is in the closed top band) + p2 (4.5)
         ("[4,4.5)", 1, 3, 0, 0.0),      # p3
         ("[2,3)", 1, 2, 0, 0.0),        # p7: a cart is neither
         ("[1,2)", 1, 1, 0, 0.0),        # p4
         ("unrated", 1, 1, 1, 1.0)]),    # p5 has no product_features row; p6 has no events
        rtol=1e-9)


# --------------------------------------------------------------------------- review prediction

def test_prediction_confusion(spark):
    preds = _df(spark, "order_id string, line_id string, predicted_score int",
                [("o1", "l1", 5), ("o1", "l2", 5), ("o2", "l1", 4), ("o3", "l1", 1), ("o7", "l1", 5),
                 ("o4", "l1", 5),     # no review: left out
                 ("o5", "l1", 2)])    # no order line: left out
    of = _df(spark, "order_id string, line_id string, category string, review_score int",
             [("o1", "l1", "toys", 5), ("o1", "l2", "books", 5), ("o2", "l1", "toys", 5), ("o3", "l1", "toys", 1),
              ("o7", "l1", "toys", 5), ("o4", "l1", "toys", None), ("o6", "l1", "toys", 3)])
    assertDataFrameEqual(A.prediction_confusion(preds, of), _df(
        spark, "category string, actual int, predicted int, n bigint, share double",
        [("toys", 5, 5, 2, 2 / 3), ("toys", 5, 4, 1, 1 / 3),   # toys actual 5: o1 l1, o7 -> 5; o2 -> 4
         ("toys", 1, 1, 1, 1.0), ("books", 5, 5, 1, 1.0)]), rtol=1e-9)


# --------------------------------------------------------------------------- recommendations

RECS_SCHEMA = "customer_id string, rank int, product_id string, score double, model string, reason string"
RECS = [  # customer, rank, product, score, model, reason
    ("c1", 1, "p1", 0.9, "knn", "knn"), ("c1", 2, "p2", 0.8, "knn", "knn"),
    ("c2", 1, "p3", 0.9, "knn", "knn"), ("c2", 2, "p1", 0.5, "knn", "popular"),             # blended
    ("c3", 1, "p1", 1.0, "knn", "popular_in_region"), ("c3", 2, "p4", 0.5, "knn", "popular_in_region"),  # cold start
    ("c1", 1, "p1", 1.0, "popular", "popular"), ("c1", 2, "p4", 0.5, "popular", "popular"),
    ("c4", 1, "p4", 1.0, "popular", "popular_in_region"), ("c4", 2, "p1", 0.5, "popular", "popular"),
]


def test_recommendation_insights(spark):
    recs = _df(spark, RECS_SCHEMA, RECS)
    pf = _df(spark, "product_id string, category string",
             [("p1", "toys"), ("p2", "toys"), ("p3", "books"), ("p4", "books"), ("p5", "toys")])
    # knn toys: p1 by c1 c2 c3 (ranks 1 2 1) beats p2; knn books: p3 and p4 have one customer each,
    # p3's list rank 1 beats p4's 2; popular: p1 (c1 c4, ranks 1 2) and p4 (c1 c4, ranks 2 1)
    assertDataFrameEqual(A.top_recommended_products(recs, pf, 1), _df(
        spark, "model string, category string, rank int, product_id string, n_customers bigint, mean_list_rank double",
        [("knn", "toys", 1, "p1", 3, 4 / 3), ("knn", "books", 1, "p3", 1, 1.0),
         ("popular", "toys", 1, "p1", 2, 1.5), ("popular", "books", 1, "p4", 2, 1.5)]), rtol=1e-9)
    assertDataFrameEqual(A.catalogue_coverage(recs, pf), _df(
        spark, "model string, n_customers bigint, n_recommended bigint, catalogue_size bigint, coverage double",
        [("knn", 3, 4, 5, 0.8), ("popular", 2, 2, 5, 0.4)]), rtol=1e-9)
    customers = _df(spark, "customer_id string, region string",
                    [("c1", "SP"), ("c1", "SP"), ("c2", "RJ"), ("c3", "SP"), ("c4", "MG"), ("c5", "MG")])
    # knn: c3 all fallback, c2 partly -> 1/3 and 2/3; popular: both all fallback; 5 distinct known customers
    assertDataFrameEqual(A.fallback_share(recs, customers), _df(
        spark, "model string, n_customers bigint, n_fallback bigint, fallback_share double, n_any_fallback bigint, "
               "any_fallback_share double, n_known_customers bigint, customer_reach double",
        [("knn", 3, 1, 1 / 3, 2, 2 / 3, 5, 0.6), ("popular", 2, 2, 1.0, 2, 1.0, 5, 0.4)]), rtol=1e-9)
    # without silver/customers the reach columns are null, not an error
    no_customers = A.fallback_share(recs).select("model", "n_fallback", "n_known_customers", "customer_reach")
    assertDataFrameEqual(no_customers, _df(
        spark, "model string, n_fallback bigint, n_known_customers bigint, customer_reach double",
        [("knn", 1, None, None), ("popular", 2, None, None)]))
    with pytest.raises(ValueError, match="n=0"):
        A.top_recommended_products(recs, pf, 0)


# --------------------------------------------------------------------------- the job

def _partition_columns(table_dir: str) -> list[str]:
    first = Path(table_dir) / "_delta_log" / "00000000000000000000.json"
    for line in first.read_text().splitlines():
        action = json.loads(line)
        if "metaData" in action:
            return list(action["metaData"]["partitionColumns"])
    raise AssertionError(f"no metaData in {first}")


def test_build_insights_writes_what_its_inputs_allow(spark, cfg, lake):
    # only silver/events in the lake; two tables are built (Delta writes are the slow part), and
    # fallback_share / conversion_by_rating are skipped: no recommendations, no product features
    lk.overwrite(_df(spark, EVENTS_SCHEMA, BEHAVIOUR_EVENTS), lake, "silver", "events")
    counts = A.build_insights(spark, Settings.from_config({**cfg, "paths": {**cfg["paths"], "lake": lake}}),
                              only=["daily_category_counts", "views_by_date", "fallback_share", "conversion_by_rating"])
    assert counts == {"gold/insights_daily_category_counts": 7, "gold/insights_views_by_date": 2}
    assert _partition_columns(lk.table_path(lake, "gold", "insights_daily_category_counts")) == ["event_date"]
    assert _partition_columns(lk.table_path(lake, "gold", "insights_views_by_date")) == []
    assert not Path(lk.table_path(lake, "gold", "insights_fallback_share")).exists()


def test_build_insights_fails_fast(spark, cfg, lake):
    conf = Settings.from_config({**cfg, "paths": {**cfg["paths"], "lake": lake}})
    with pytest.raises(ValueError, match="sales_trend"):
        A.build_insights(spark, conf, only=["sales_trend"])
    with pytest.raises(FileNotFoundError, match="ecomrec transform"):
        A.build_insights(spark, conf)
