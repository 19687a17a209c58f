"""Order-line features: price/freight ratio, delivery timing, calendar, popularity.

All are pure transforms on the canonical order-line fact.  Durations are in
days (hours for approval) as doubles; a missing timestamp gives null, never an
error, under ANSI mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C


def _days(later: str, earlier: str) -> Column:
    return (F.unix_timestamp(F.col(later)) - F.unix_timestamp(F.col(earlier))) / 86400.0


def price_freight_ratio(df: DataFrame, min_freight: float = 1.0) -> DataFrame:
    """``price / max(freight_value, min_freight)``: defined for free shipping; null without freight."""
    # greatest() skips nulls, so a missing freight must be caught first
    ratio = F.col(C.PRICE) / F.greatest(F.col(C.FREIGHT), F.lit(float(min_freight)))
    return df.withColumn("price_freight_ratio", F.when(F.col(C.FREIGHT).isNotNull(), ratio))


def delivery_features(df: DataFrame) -> DataFrame:
    """Delay against the estimated date, a late flag, and the approval/carrier/delivery durations."""
    return (df
            .withColumn("delivery_delay_days", _days(C.DELIVERED_TS, C.ESTIMATED_TS))
            .withColumn("is_late", F.col(C.DELIVERED_TS) > F.col(C.ESTIMATED_TS))
            .withColumn("approval_hours", _days(C.APPROVED_TS, C.ORDER_TS) * 24.0)
            .withColumn("carrier_days", _days(C.CARRIER_TS, C.APPROVED_TS))
            .withColumn("delivery_days", _days(C.DELIVERED_TS, C.ORDER_TS))
            .withColumn("estimated_days", _days(C.ESTIMATED_TS, C.ORDER_TS)))


def holiday_flag(ts: Column, season: Sequence[Sequence[int]]) -> Column:
    """True when ``ts`` falls in one of the ``[month, first_day, last_day]`` ranges."""
    cond = F.lit(False)
    for month, first, last in season:
        cond = cond | ((F.month(ts) == month) & F.dayofmonth(ts).between(first, last))
    return cond


def calendar_features(df: DataFrame, season: Sequence[Sequence[int]]) -> DataFrame:
    """Purchase date, year, month, weekday (1 = Sunday), hour and holiday-season flag."""
    ts = F.col(C.ORDER_TS)
    return (df.withColumn(C.ORDER_DATE, F.to_date(ts))
              .withColumn("purchase_year", F.year(ts))
              .withColumn("purchase_month", F.month(ts))
              .withColumn("purchase_weekday", F.dayofweek(ts))
              .withColumn("purchase_hour", F.hour(ts))
              .withColumn("is_holiday_season", holiday_flag(ts, season)))


def product_popularity(lines: DataFrame, window_days: int) -> DataFrame:
    """Per (product_id, order_date): the product's share of units sold in the trailing window.

    The window is the ``window_days`` days before the order date, excluding
    that day, so the index never looks ahead.  Returns ``product_id,
    order_date, popularity_index`` (0 for a product with no earlier sales).
    """
    day = F.datediff(F.col(C.ORDER_DATE), F.lit("1970-01-01").cast("date"))
    daily = lines.groupBy(C.PRODUCT_ID, C.ORDER_DATE).agg(F.sum(C.QUANTITY).alias("_units")).withColumn("_day", day)
    per_product = Window.partitionBy(C.PRODUCT_ID).orderBy("_day").rangeBetween(-window_days, -1)
    prod = daily.withColumn("_prod_units", F.coalesce(F.sum("_units").over(per_product), F.lit(0)))
    # the market total over the same window; one row per day, so a single-partition window is small
    totals = daily.groupBy("_day").agg(F.sum("_units").alias("_day_units"))
    market = Window.orderBy("_day").rangeBetween(-window_days, -1)
    totals = totals.withColumn("_market_units", F.coalesce(F.sum("_day_units").over(market), F.lit(0)))
    # every (product, day) row needs the market total of its own day, which may have no sales of its own
    return (prod.join(F.broadcast(totals.select("_day", "_market_units")), "_day", "left")
            .select(C.PRODUCT_ID, C.ORDER_DATE,
                    F.coalesce(F.try_divide(F.col("_prod_units").cast("double"), F.col("_market_units")), F.lit(0.0))
                    .alias("popularity_index")))


def with_popularity(lines: DataFrame, window_days: int) -> DataFrame:
    """Join :func:`product_popularity` onto each line by product and order date."""
    return lines.join(product_popularity(lines, window_days), [C.PRODUCT_ID, C.ORDER_DATE], "left")


def order_features(lines: DataFrame, reviews: DataFrame, min_freight: float, season: Sequence[Sequence[int]],
                   window_days: int) -> DataFrame:
    """The gold order-line feature table; ``review_score`` is the order's latest review (null if none)."""
    latest = Window.partitionBy(C.ORDER_ID).orderBy(F.col("answer_ts").desc_nulls_last(), F.col(C.REVIEW_TS).desc_nulls_last(),
                                                    C.REVIEW_ID)
    label = (reviews.where(F.col(C.ORDER_ID).isNotNull())
             .withColumn("_r", F.row_number().over(latest)).where("_r = 1")
             .select(C.ORDER_ID, C.REVIEW_SCORE, F.col(C.REVIEW_TS)))
    per_order = Window.partitionBy(C.ORDER_ID)
    out = (lines.transform(lambda d: price_freight_ratio(d, min_freight))
                .transform(delivery_features)
                .transform(lambda d: calendar_features(d, season))
                .withColumn("order_items", F.count(F.lit(1)).over(per_order))
                .withColumn("order_value", F.sum(F.col(C.PRICE) * F.col(C.QUANTITY) + F.coalesce(F.col(C.FREIGHT), F.lit(0.0))).over(per_order))
                .transform(lambda d: with_popularity(d, window_days))
                .join(label, C.ORDER_ID, "left"))
    return out
