"""Analytics tables over the lake: the dashboards' numbers as gold ``insights_*`` tables.

Every function here is a pure ``DataFrame -> DataFrame`` aggregate (no collect,
no Python UDF); :func:`build_insights` reads the lake, calls them and writes each
result as ``gold/insights_<name>``, so the catalog registers it as
``ecomrec.insights_<name>`` for Athena and the report.

=====================================  =========================================================================
table (``insights_`` + name)           one row per
=====================================  =========================================================================
``daily_category_counts``              (event_date, category, event_type); partitioned by event_date
``views_by_date``                      event_date (views, viewers, products viewed)
``purchases_by_date``                  event_date (purchase events, buyers, revenue)
``users_per_date``                     event_date (distinct users and sessions)
``purchases_per_customer``             user_id (purchase events, products, revenue, first/last date)
``purchases_by_category``              (category, sub_category, brand)
``product_views_by_category_day``      (event_date, category, product_id); partitioned by event_date
``sales_trends``                       (grain day|week|month, period, dimension total|category|region, value)
``top_products``                       (month, rank): the products that sell most each month
``demand_by_month``                    month of year 1..12
``demand_by_weekday``                  weekday 1..7 (1 = Sunday, as ``dayofweek``)
``holiday_lift``                       category, plus one ``level = 'overall'`` row
``season_correlation``                 category
``review_rating_moves``                (product_id, month with reviews)
``rating_move_impact``                 score-change band down | flat | up
``conversion_by_rating``               rating band ``[1,2)`` .. ``[4.5,5]`` | ``unrated``
``prediction_confusion``               (category, actual, predicted)
``top_recommended_products``           (model, category, rank)
``catalogue_coverage``                 model
``fallback_share``                     model
=====================================  =========================================================================

The sales and seasonality functions (``sales_trends`` .. ``season_correlation``) live in
:mod:`ecomrec_spark.insights.sales` and are imported here, so this module still lists every table.

Definitions shared by the sales tables: a *sold* line is an order line whose
``order_status`` is not canceled or unavailable (as the recommender's
purchases); ``units = quantity`` (a missing quantity counts one unit);
``revenue = price x quantity`` (freight excluded, as ``gold/product_features``);
``n_orders`` counts distinct orders.  Behaviour tables count events as they
are: a purchase event is one unit at its ``price``.

Example
-------
>>> from ecomrec_spark.insights import analytics as A
>>> events = spark.read.format("delta").load(f"{lake}/silver/events")   # doctest: +SKIP
>>> A.daily_category_counts(events).show()                             # doctest: +SKIP
>>> A.build_insights(spark, settings)                                   # doctest: +SKIP
{'gold/insights_daily_category_counts': 1830, ...}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.insights.sales import (
    demand_by_month,
    demand_by_weekday,
    holiday_lift,
    sales_trends,
    season_correlation,
    sold_lines,
    top_products,
)
from ecomrec_spark.insights.stats import n_rows as _n

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)

EVENT_DATE = "event_date"
VIEW, PURCHASE = "view", "purchase"
FALLBACK_REASONS = ("popular", "popular_in_region")
UNRATED = "unrated"
# (lower bound, upper bound, label); the last band includes its upper bound
RATING_BANDS: tuple[tuple[float, float, str], ...] = (
    (1.0, 2.0, "[1,2)"), (2.0, 3.0, "[2,3)"), (3.0, 4.0, "[3,4)"), (4.0, 4.5, "[4,4.5)"), (4.5, 5.0, "[4.5,5]"))
TABLE_PREFIX = "insights_"



def _is(column: str, value: str) -> Column:
    """1 when ``column == value``, else 0 (null counts 0), for summing."""
    return F.when(F.col(column) == value, 1).otherwise(0)


def _of_type(events: DataFrame, event_type: str) -> DataFrame:
    return events.where(F.col(C.EVENT_TYPE) == event_type)



# --------------------------------------------------------------------------- behaviour (silver/events)

def daily_category_counts(events: DataFrame) -> DataFrame:
    """Events per day, category and event type.

    Returns ``event_date, category, event_type, n_events``.

    Example
    -------
    >>> daily_category_counts(events).where("event_type = 'purchase'").show()  # doctest: +SKIP
    """
    return events.groupBy(EVENT_DATE, C.CATEGORY, C.EVENT_TYPE).agg(_n().alias("n_events"))


def views_by_date(events: DataFrame) -> DataFrame:
    """Views per day: ``event_date, n_views, n_viewers`` (distinct users), ``n_products`` (distinct viewed).

    Example
    -------
    >>> views_by_date(events).orderBy("event_date").show()  # doctest: +SKIP
    """
    return (_of_type(events, VIEW).groupBy(EVENT_DATE)
            .agg(_n().alias("n_views"), F.countDistinct(C.USER_ID).alias("n_viewers"),
                 F.countDistinct(C.PRODUCT_ID).alias("n_products")))


def purchases_by_date(events: DataFrame) -> DataFrame:
    """Purchase events per day: ``event_date, n_purchases, n_buyers, revenue`` (sum of ``price``).

    Example
    -------
    >>> purchases_by_date(events).orderBy("event_date").show()  # doctest: +SKIP
    """
    return (_of_type(events, PURCHASE).groupBy(EVENT_DATE)
            .agg(_n().alias("n_purchases"), F.countDistinct(C.USER_ID).alias("n_buyers"),
                 F.sum("price").alias("revenue")))


def users_per_date(events: DataFrame) -> DataFrame:
    """Active users per day, any event type: ``event_date, n_users, n_sessions``.

    Example
    -------
    >>> users_per_date(events).orderBy("event_date").show()  # doctest: +SKIP
    """
    return events.groupBy(EVENT_DATE).agg(F.countDistinct(C.USER_ID).alias("n_users"),
                                          F.countDistinct(C.SESSION_ID).alias("n_sessions"))


def purchases_per_customer(events: DataFrame) -> DataFrame:
    """Purchase events per user.

    Returns ``user_id, n_purchases, n_products`` (distinct), ``revenue``,
    ``first_purchase_date, last_purchase_date``.  Users without a purchase have no row.

    Example
    -------
    >>> purchases_per_customer(events).orderBy(F.desc("n_purchases")).show(10)  # doctest: +SKIP
    """
    return (_of_type(events, PURCHASE).groupBy(C.USER_ID)
            .agg(_n().alias("n_purchases"), F.countDistinct(C.PRODUCT_ID).alias("n_products"),
                 F.sum("price").alias("revenue"), F.min(EVENT_DATE).alias("first_purchase_date"),
                 F.max(EVENT_DATE).alias("last_purchase_date")))


def purchases_by_category(events: DataFrame) -> DataFrame:
    """Purchase events per ``category, sub_category, brand`` (nulls form their own group).

    Returns ``category, sub_category, brand, n_purchases, n_buyers, revenue``.

    Example
    -------
    >>> purchases_by_category(events).orderBy(F.desc("revenue")).show(10)  # doctest: +SKIP
    """
    return (_of_type(events, PURCHASE).groupBy(C.CATEGORY, C.SUB_CATEGORY, "brand")
            .agg(_n().alias("n_purchases"), F.countDistinct(C.USER_ID).alias("n_buyers"),
                 F.sum("price").alias("revenue")))


def product_views_by_category_day(events: DataFrame) -> DataFrame:
    """Views per day, category and product: ``event_date, category, product_id, n_views``.

    Example
    -------
    >>> product_views_by_category_day(events).where("event_date = '2018-01-05'").show()  # doctest: +SKIP
    """
    return _of_type(events, VIEW).groupBy(EVENT_DATE, C.CATEGORY, C.PRODUCT_ID).agg(_n().alias("n_views"))



# --------------------------------------------------------------------------- review impact

def review_rating_moves(order_features: DataFrame) -> DataFrame:
    """Per product and month with reviews: the month's mean review score and the sales around it.

    A review is an order's ``review_score`` with its ``review_ts`` (the order's
    latest review, counted once per order and product).  For each product and
    calendar month in which it got reviews:

    - ``n_reviews``, ``mean_score``: of the reviews written that month;
    - ``previous_month``, ``score_change``: the product's previous month with
      reviews, and ``mean_score`` minus that month's (null for the first);
    - ``units_month``, ``units_next_month``: sold units in the month and in the
      calendar month after it (0 without sales; null when that month is after
      the last month with any sale in the data, since it is not observed);
    - ``units_change = units_next_month - units_month``.

    A review is written after its own purchase, so the units of the review
    month include the reviewed sales; read :func:`rating_move_impact`'s bands
    against each other (``flat`` is the baseline), not against zero.

    Example
    -------
    >>> review_rating_moves(order_features).where("score_change < -1").show()  # doctest: +SKIP
    """
    reviews = (order_features.where(F.col(C.REVIEW_SCORE).isNotNull() & F.col(C.REVIEW_TS).isNotNull()
                                    & F.col(C.PRODUCT_ID).isNotNull())
               .select(C.ORDER_ID, C.PRODUCT_ID, C.REVIEW_SCORE,
                       F.trunc(F.to_date(C.REVIEW_TS), "month").alias("month"))
               .dropDuplicates([C.ORDER_ID, C.PRODUCT_ID]))
    by_product = Window.partitionBy(C.PRODUCT_ID).orderBy("month")
    scores = (reviews.groupBy(C.PRODUCT_ID, "month")
              .agg(_n().alias("n_reviews"), F.avg(F.col(C.REVIEW_SCORE).cast("double")).alias("mean_score"))
              .withColumn("previous_month", F.lag("month").over(by_product))
              .withColumn("score_change", F.col("mean_score") - F.lag("mean_score").over(by_product)))
    sold = sold_lines(order_features).withColumn("month", F.trunc(C.ORDER_DATE, "month"))
    units = sold.groupBy(C.PRODUCT_ID, "month").agg(F.sum("units").alias("_units"))
    last = sold.agg(F.max("month").alias("_last"))
    nxt = units.select(C.PRODUCT_ID, F.add_months("month", -1).alias("month"), F.col("_units").alias("_next"))

    def observed(month: Column, value: str) -> Column:
        return F.when(month <= F.col("_last"), F.coalesce(F.col(value), F.lit(0)))

    out = (scores.join(units, [C.PRODUCT_ID, "month"], "left").join(nxt, [C.PRODUCT_ID, "month"], "left")
           .crossJoin(F.broadcast(last))
           .withColumn("units_month", observed(F.col("month"), "_units"))
           .withColumn("units_next_month", observed(F.add_months("month", 1), "_next")))
    return out.select(C.PRODUCT_ID, "month", "n_reviews", "mean_score", "previous_month", "score_change", "units_month",
                      "units_next_month", (F.col("units_next_month") - F.col("units_month")).alias("units_change"))


def rating_move_impact(moves: DataFrame, threshold: float = 0.5) -> DataFrame:
    """Mean change in units after a product's monthly review score went down, stayed flat or went up.

    ``moves`` is :func:`review_rating_moves`; rows without a ``score_change``
    (a product's first reviewed month) or without ``units_change`` are left
    out.  Band: ``'down'`` when ``score_change <= -threshold``, ``'up'`` when
    ``>= threshold``, else ``'flat'``.

    Returns ``band, n_product_months, mean_score_change, mean_units_month,
    mean_units_next_month, mean_units_change``.

    Example
    -------
    >>> rating_move_impact(review_rating_moves(order_features), threshold=0.5).show()  # doctest: +SKIP
    """
    if threshold <= 0:
        raise ValueError(f"threshold={threshold}: the flat band needs a positive threshold, e.g. 0.5 stars")
    change = F.col("score_change")
    band = F.when(change <= -threshold, "down").when(change >= threshold, "up").otherwise("flat")
    return (moves.where(change.isNotNull() & F.col("units_change").isNotNull())
            .groupBy(band.alias("band"))
            .agg(_n().alias("n_product_months"), F.avg("score_change").alias("mean_score_change"),
                 F.avg("units_month").alias("mean_units_month"),
                 F.avg("units_next_month").alias("mean_units_next_month"),
                 F.avg("units_change").alias("mean_units_change")))


def rating_band(score: Column) -> Column:
    """The :data:`RATING_BANDS` label of a mean review score; ``'unrated'`` when null.

    Example
    -------
    >>> product_features.select("product_id", rating_band(F.col("mean_review_score")).alias("band"))  # doctest: +SKIP
    """
    out = F.when(score.isNull(), F.lit(UNRATED))
    for i, (low, high, label) in enumerate(RATING_BANDS):
        upper = score <= high if i == len(RATING_BANDS) - 1 else score < high
        out = out.when((score >= low) & upper, F.lit(label))
    return out.otherwise(F.lit(UNRATED))


def conversion_by_rating(events: DataFrame, product_features: DataFrame) -> DataFrame:
    """Views -> purchase conversion of products grouped by their mean review score band.

    Per product, view and purchase events are counted; the product's
    ``mean_review_score`` (``gold/product_features``) gives its band
    (:data:`RATING_BANDS`, or ``'unrated'``).  ``conversion = purchases /
    views`` of the band's products together (null without views).

    Returns ``band, n_products, views, purchases, conversion``.

    Example
    -------
    >>> conversion_by_rating(events, product_features).orderBy("band").show()  # doctest: +SKIP
    """
    per_product = (events.where(F.col(C.PRODUCT_ID).isNotNull()).groupBy(C.PRODUCT_ID)
                   .agg(F.sum(_is(C.EVENT_TYPE, VIEW)).alias("views"),
                        F.sum(_is(C.EVENT_TYPE, PURCHASE)).alias("purchases")))
    scores = product_features.select(C.PRODUCT_ID, "mean_review_score")
    return (per_product.join(scores, C.PRODUCT_ID, "left")
            .groupBy(rating_band(F.col("mean_review_score")).alias("band"))
            .agg(_n().alias("n_products"), F.sum("views").alias("views"), F.sum("purchases").alias("purchases"))
            .withColumn("conversion", F.try_divide(F.col("purchases").cast("double"), F.col("views"))))


# --------------------------------------------------------------------------- review prediction

def prediction_confusion(review_predictions: DataFrame, order_features: DataFrame) -> DataFrame:
    """Confusion of predicted against actual review score, by category, over reviewed order lines.

    Lines join on ``(order_id, line_id)``; ``actual`` is ``order_features.review_score``.
    ``share`` = n / all lines of that (category, actual): the row-normalised
    confusion, whose diagonal is the per-class recall.

    Returns ``category, actual, predicted, n, share``.

    Example
    -------
    >>> prediction_confusion(review_predictions, order_features).where("actual = 1").show()  # doctest: +SKIP
    """
    preds = review_predictions.select(C.ORDER_ID, C.LINE_ID, F.col("predicted_score").cast("int").alias("predicted"))
    actual = (order_features.where(F.col(C.REVIEW_SCORE).isNotNull())
              .select(C.ORDER_ID, C.LINE_ID, F.coalesce(F.col(C.CATEGORY), F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY),
                      F.col(C.REVIEW_SCORE).cast("int").alias("actual")))
    row = Window.partitionBy(C.CATEGORY, "actual")
    return (preds.join(actual, [C.ORDER_ID, C.LINE_ID]).groupBy(C.CATEGORY, "actual", "predicted").agg(_n().alias("n"))
            .withColumn("share", F.try_divide(F.col("n").cast("double"), F.sum("n").over(row))))


# --------------------------------------------------------------------------- recommendations

def top_recommended_products(recommendations: DataFrame, product_features: DataFrame, n: int = 10) -> DataFrame:
    """The ``n`` most recommended products of each category, per model.

    Ranked by the number of customers whose list holds the product, then the
    better mean list position, then product id.  A product missing from
    ``product_features`` falls in ``'unknown'``.

    Returns ``model, category, rank`` (1..n), ``product_id, n_customers, mean_list_rank``.

    Example
    -------
    >>> top_recommended_products(recs, product_features, 10).where("model = 'hybrid'").show()  # doctest: +SKIP
    """
    if n < 1:
        raise ValueError(f"n={n}: top_recommended_products needs n >= 1")
    cats = product_features.select(C.PRODUCT_ID, C.CATEGORY).dropDuplicates([C.PRODUCT_ID])
    per = (recommendations.join(cats, C.PRODUCT_ID, "left")
           .withColumn(C.CATEGORY, F.coalesce(F.col(C.CATEGORY), F.lit(C.UNKNOWN_CATEGORY)))
           .groupBy("model", C.CATEGORY, C.PRODUCT_ID)
           .agg(F.countDistinct(C.CUSTOMER_ID).alias("n_customers"), F.avg("rank").alias("mean_list_rank")))
    w = Window.partitionBy("model", C.CATEGORY).orderBy(F.desc("n_customers"), "mean_list_rank", C.PRODUCT_ID)
    return (per.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= n)
            .select("model", C.CATEGORY, "rank", C.PRODUCT_ID, "n_customers", "mean_list_rank"))


def catalogue_coverage(recommendations: DataFrame, product_features: DataFrame) -> DataFrame:
    """Share of the catalogue each model recommends to anyone.

    ``coverage = n_recommended / catalogue_size``, with ``catalogue_size`` the
    distinct products in ``product_features``.

    Returns ``model, n_customers, n_recommended, catalogue_size, coverage``.

    Example
    -------
    >>> catalogue_coverage(recs, product_features).show()  # doctest: +SKIP
    """
    size = product_features.agg(F.countDistinct(C.PRODUCT_ID).alias("catalogue_size"))
    return (recommendations.groupBy("model")
            .agg(F.countDistinct(C.CUSTOMER_ID).alias("n_customers"),
                 F.countDistinct(C.PRODUCT_ID).alias("n_recommended"))
            .crossJoin(F.broadcast(size))
            .withColumn("coverage", F.try_divide(F.col("n_recommended").cast("double"), F.col("catalogue_size"))))


def fallback_share(recommendations: DataFrame, customers: DataFrame | None = None) -> DataFrame:
    """Per model, the customers whose list is (all or partly) the popularity fallback.

    A row is a fallback row when ``reason`` is ``'popular'`` or
    ``'popular_in_region'``.  ``n_fallback`` counts customers whose every row
    is one (no personal history: a cold-start list), ``n_any_fallback`` those
    with at least one (light users blended with popularity).  The ``popular``
    model is all fallback by construction.  With ``customers``
    (``silver/customers``), ``customer_reach = n_customers / n_known_customers``.

    Returns ``model, n_customers, n_fallback, fallback_share, n_any_fallback,
    any_fallback_share, n_known_customers, customer_reach``.

    Example
    -------
    >>> fallback_share(recs, customers).show()  # doctest: +SKIP
    """
    is_fb = F.coalesce(F.col("reason").isin(*FALLBACK_REASONS), F.lit(False))
    per_customer = (recommendations.groupBy("model", C.CUSTOMER_ID)
                    .agg(F.bool_and(is_fb).alias("_all"), F.bool_or(is_fb).alias("_any")))
    out = (per_customer.groupBy("model")
           .agg(_n().alias("n_customers"), F.sum(F.when(F.col("_all"), 1).otherwise(0)).alias("n_fallback"),
                F.sum(F.when(F.col("_any"), 1).otherwise(0)).alias("n_any_fallback"))
           .withColumn("fallback_share", F.try_divide(F.col("n_fallback").cast("double"), F.col("n_customers")))
           .withColumn("any_fallback_share",
                       F.try_divide(F.col("n_any_fallback").cast("double"), F.col("n_customers"))))
    if customers is None:
        known = F.lit(None).cast("long")
    else:
        out = out.crossJoin(F.broadcast(customers.agg(F.countDistinct(C.CUSTOMER_ID).alias("_known"))))
        known = F.col("_known")
    return out.select("model", "n_customers", "n_fallback", "fallback_share", "n_any_fallback", "any_fallback_share",
                      known.alias("n_known_customers"),
                      F.try_divide(F.col("n_customers").cast("double"), known).alias("customer_reach"))


# --------------------------------------------------------------------------- the job

@dataclass(frozen=True)
class Output:
    """One insights table: the inputs it needs, how to build it, how to partition it."""

    name: str
    needs: tuple[str, ...]
    build: Callable[[Mapping[str, DataFrame]], DataFrame]
    partition_by: tuple[str, ...] = ()


def outputs(top_n: int = 10, score_change_threshold: float = 0.5) -> list[Output]:
    """Every insights table in build order (``rating_move_impact`` reads the written ``review_rating_moves``).

    Example
    -------
    >>> [o.name for o in outputs()][:3]
    ['daily_category_counts', 'views_by_date', 'purchases_by_date']
    """
    ev, of, pf, rp, recs = "events", "order_features", "product_features", "review_predictions", "recommendations"
    moves = TABLE_PREFIX + "review_rating_moves"
    return [
        Output("daily_category_counts", (ev,), lambda d: daily_category_counts(d[ev]), (EVENT_DATE,)),
        Output("views_by_date", (ev,), lambda d: views_by_date(d[ev])),
        Output("purchases_by_date", (ev,), lambda d: purchases_by_date(d[ev])),
        Output("users_per_date", (ev,), lambda d: users_per_date(d[ev])),
        Output("purchases_per_customer", (ev,), lambda d: purchases_per_customer(d[ev])),
        Output("purchases_by_category", (ev,), lambda d: purchases_by_category(d[ev])),
        Output("product_views_by_category_day", (ev,), lambda d: product_views_by_category_day(d[ev]), (EVENT_DATE,)),
        Output("sales_trends", (of,), lambda d: sales_trends(d[of])),
        Output("top_products", (of,), lambda d: top_products(d[of], top_n)),
        Output("demand_by_month", (of,), lambda d: demand_by_month(d[of])),
        Output("demand_by_weekday", (of,), lambda d: demand_by_weekday(d[of])),
        Output("holiday_lift", (of,), lambda d: holiday_lift(d[of])),
        Output("season_correlation", (of,), lambda d: season_correlation(d[of])),
        Output("review_rating_moves", (of,), lambda d: review_rating_moves(d[of])),
        Output("rating_move_impact", (moves,), lambda d: rating_move_impact(d[moves], score_change_threshold)),
        Output("conversion_by_rating", (ev, pf), lambda d: conversion_by_rating(d[ev], d[pf])),
        Output("prediction_confusion", (rp, of), lambda d: prediction_confusion(d[rp], d[of])),
        Output("top_recommended_products", (recs, pf), lambda d: top_recommended_products(d[recs], d[pf], top_n)),
        Output("catalogue_coverage", (recs, pf), lambda d: catalogue_coverage(d[recs], d[pf])),
        Output("fallback_share", (recs,), lambda d: fallback_share(d[recs], d.get("customers"))),
    ]


def load_inputs(spark: SparkSession, lake: str) -> dict[str, DataFrame]:
    """The insights inputs that exist in the lake, by name (a missing table is simply absent).

    Example
    -------
    >>> sorted(load_inputs(spark, "/data/lake"))  # doctest: +SKIP
    ['customers', 'order_features', 'product_features']
    """
    sources = {"events": ("silver", "events"), "customers": ("silver", "customers"),
               "order_features": ("gold", "order_features"), "product_features": ("gold", "product_features"),
               "review_predictions": ("gold", "review_predictions"), "recommendations": ("gold", "recommendations")}
    found: dict[str, DataFrame] = {}
    for name, (layer, table) in sources.items():
        df = lk.read_optional(spark, lake, layer, table)
        if df is None:
            log.info("insights: no %s/%s in %s", layer, table, lake)
        else:
            found[name] = df
    return found


def build_insights(spark: SparkSession, settings: Settings, only: Iterable[str] | None = None) -> dict[str, int]:
    """Write every insights table whose inputs exist as ``gold/insights_<name>``; return row counts.

    A table whose inputs are missing (no events for generic transactions, no
    review predictions before ``score-reviews``, no recommendations before
    ``build-recommendations``) is skipped with a log line.  Each table is one
    Delta commit, a full rebuild.  ``daily_category_counts`` and
    ``product_views_by_category_day`` are partitioned by ``event_date`` (one
    file per date); the rest are small and unpartitioned.  Settings:
    ``settings.insights.top_n`` (10) and ``settings.insights.score_change_threshold`` (0.5).

    Parameters
    ----------
    spark : the session (with Delta).
    settings : the run's settings (:func:`ecomrec_spark.config.load_settings`); reads ``paths.lake`` and
        ``insights``.
    only : table names without the ``insights_`` prefix (e.g. ``["sales_trends"]``) to
        rebuild just those; default every table.  ``rating_move_impact`` reads the
        ``insights_review_rating_moves`` table, written now or by an earlier run.

    Returns
    -------
    dict mapping ``'gold/insights_<name>'`` to the written table's row count.

    Raises
    ------
    ValueError : when ``only`` names an unknown table (checked before Spark reads anything).
    FileNotFoundError : when neither ``silver/events`` nor any gold input exists.

    Example
    -------
    >>> build_insights(spark, load_settings("conf/local.yaml"))  # doctest: +SKIP
    {'gold/insights_daily_category_counts': 1830, 'gold/insights_views_by_date': 610, ...}
    """
    root = settings.paths.lake
    plan = outputs(settings.insights.top_n, float(settings.insights.score_change_threshold))
    if only is not None:
        wanted = {only} if isinstance(only, str) else set(only)
        unknown = sorted(wanted - {o.name for o in plan})
        if unknown:
            raise ValueError(f"only={unknown}: unknown insights table(s); choose from {[o.name for o in plan]}")
        plan = [o for o in plan if o.name in wanted]
    inputs = load_inputs(spark, root)
    moves = TABLE_PREFIX + "review_rating_moves"
    if any(moves in o.needs for o in plan) and all(o.name != "review_rating_moves" for o in plan):
        previous = lk.read_optional(spark, root, "gold", moves)
        if previous is not None:
            inputs[moves] = previous
    if not inputs.keys() - {"customers"}:
        raise FileNotFoundError(f"no silver/events and no gold input under {root}; run `ecomrec transform` first")
    counts: dict[str, int] = {}
    for out in plan:
        missing = [n for n in out.needs if n not in inputs]
        if missing:
            log.info("skipping insights_%s: no %s", out.name, ", ".join(missing))
            continue
        table = TABLE_PREFIX + out.name
        df = out.build(inputs)
        if out.partition_by:
            df = df.repartition(*out.partition_by)  # one file per partition value
        lk.overwrite(df, root, "gold", table, partition_by=out.partition_by)
        written = lk.read(spark, root, "gold", table)
        inputs[table] = written
        counts[f"gold/{table}"] = written.count()
    log.info("insights tables: %s", counts)
    return counts
