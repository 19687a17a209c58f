"""The sales and seasonality insights tables, over ``gold/order_features`` (see :mod:`.analytics` for the list).

A *sold* line is an order line whose ``order_status`` is not canceled or
unavailable (as the recommender's purchases); ``units = quantity`` (a missing
quantity counts one unit); ``revenue = price x quantity`` (freight excluded);
``n_orders`` counts distinct orders.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.window import WindowSpec

from ecomrec_spark import columns as C
from ecomrec_spark.insights.stats import pearson

NOT_SOLD_STATUSES = ("canceled", "unavailable")


def sold_lines(order_features: DataFrame) -> DataFrame:
    """The sold lines with ``units`` and ``amount``; the input of every sales table.

    Drops canceled and unavailable orders (when ``order_status`` is there);
    ``units`` = quantity (1 when missing), ``amount`` = price x units.  A
    missing category or region becomes ``'unknown'``.

    Example
    -------
    >>> sold_lines(order_features).select("order_date", "units", "amount").show(3)  # doctest: +SKIP
    """
    df = order_features
    if C.ORDER_STATUS in df.columns:
        df = df.where(~F.lower(F.coalesce(F.col(C.ORDER_STATUS), F.lit(""))).isin(*NOT_SOLD_STATUSES))
    units = F.coalesce(F.col(C.QUANTITY), F.lit(1))
    out = df.withColumn("units", units).withColumn("amount", F.col(C.PRICE) * units)
    for column in (C.CATEGORY, C.REGION):
        if column in out.columns:
            out = out.withColumn(column, F.coalesce(F.col(column), F.lit(C.UNKNOWN_CATEGORY)))
    return out


def _sales_aggs() -> list[Column]:
    return [F.countDistinct(C.ORDER_ID).alias("n_orders"), F.sum("units").alias("units"),
            F.sum("amount").alias("revenue")]


GRAINS = ("day", "week", "month")


def _period(grain: str, day: Column) -> Column:
    """The first day of ``day``'s period: the date itself, the Monday of its ISO week, the first of its month."""
    if grain == "day":
        return day
    if grain == "week":
        return F.date_trunc("week", day).cast("date")
    return F.trunc(day, "month")


def _first_in_period(order_within: WindowSpec, grain: str) -> Column:
    """1 on the first cell of a run of an order's cells (sorted by day) that share ``grain``'s period, else 0.

    A period is a contiguous range of days, so once the cells are sorted by
    day the cells of one period are adjacent: the first of each run is where
    the period changes from the previous cell's.  ``<=>`` treats a null day
    (null period) as one period, as ``countDistinct`` groups it.
    """
    day = F.col(C.ORDER_DATE)
    changed = ~F.lag(_period(grain, day)).over(order_within).eqNullSafe(_period(grain, day))
    first = F.row_number().over(order_within) == 1
    return F.when(first | changed, 1).otherwise(0)


def sales_trends(order_features: DataFrame) -> DataFrame:
    """Revenue, orders and units by day, week and month; in total, by category and by region.

    One long table: ``grain`` (``'day'|'week'|'month'``), ``period`` (the
    period's first day: the date, the Monday of the ISO week, the first of the
    month), ``dimension`` (``'total'|'category'|'region'``), ``value`` (the
    category or region; null for total), ``n_orders, units, revenue``.

    How it is computed: every output column is made a sum, so the lines are
    aggregated once, to one row per (day, category, region), and the weeks and
    months are sums of those days.  ``units`` and ``revenue`` are sums
    already.  ``n_orders`` (distinct orders) is not: an order with lines in two
    categories, or on two days of one week, counts once in the total of that
    week, so summing per-category or per-day counts would count it twice.  It
    is made a sum exactly by giving each order's lines, grouped into cells
    (order, day, category, region), a 0/1 flag per grain and dimension that is
    1 on exactly one cell of each (order, period, value) the order has lines
    in: the first such cell by day (see :func:`_first_in_period`).  The
    distinct orders of a (period, value) are then the sum of its cells'
    flags, and that sum can be taken at the day grain first and rolled up.
    The flags need the lines of an order together: one shuffle of the sold
    lines by ``order_id``; everything after the per-day aggregate works on
    (days x categories x regions) rows, not on lines.  A null ``order_id``
    gets no flag (``countDistinct`` ignores nulls); a null day is its own
    period in every grain, as before.

    Example
    -------
    >>> sales_trends(order_features).where("grain = 'month' AND dimension = 'total'").show()  # doctest: +SKIP
    """
    order, day = F.col(C.ORDER_ID), F.col(C.ORDER_DATE)
    # the hash partitioning on order_id also serves the cell aggregate and the three windows below
    # (each clusters by order_id plus more), so the lines are shuffled once
    cells = (sold_lines(order_features).select(C.ORDER_ID, C.ORDER_DATE, C.CATEGORY, C.REGION, "units", "amount")
             .repartition(C.ORDER_ID)
             .groupBy(C.ORDER_ID, C.ORDER_DATE, C.CATEGORY, C.REGION)
             .agg(F.sum("units").alias("units"), F.sum("amount").alias("amount")))
    # one window per dimension: the order's cells (total), or its cells of one category / region; sorted by
    # day, the other key only to make the flagged cell deterministic
    within = {"total": Window.partitionBy(order).orderBy(day, C.CATEGORY, C.REGION),
              "category": Window.partitionBy(order, C.CATEGORY).orderBy(day, C.REGION),
              "region": Window.partitionBy(order, C.REGION).orderBy(day, C.CATEGORY)}
    flags = [F.when(order.isNull(), 0).otherwise(_first_in_period(w, grain)).alias(f"_o_{grain}_{dim}")
             for grain in GRAINS for dim, w in within.items()]
    per_day = (cells.select(C.ORDER_DATE, C.CATEGORY, C.REGION, "units", "amount", *flags)
               .groupBy(C.ORDER_DATE, C.CATEGORY, C.REGION)
               .agg(F.sum("units").alias("units"), F.sum("amount").alias("amount"),
                    *[F.sum(f"_o_{g}_{d}").alias(f"_o_{g}_{d}") for g in GRAINS for d in within]))
    # roll the days up: each per-day row once per grain, carrying that grain's flag sums, then summed with
    # grouping sets (sums only, so no distinct aggregate and no per-line work here)
    periods = F.array(*[F.struct(F.lit(g).alias("grain"), _period(g, day).alias("period"),
                                 *[F.col(f"_o_{g}_{d}").alias(f"_o_{d}") for d in within]) for g in GRAINS])
    expanded = per_day.select(C.CATEGORY, C.REGION, "units", "amount", F.inline(periods))
    keys = ["grain", "period"]
    agg = (expanded.groupingSets([keys, [*keys, C.CATEGORY], [*keys, C.REGION]], *keys, C.CATEGORY, C.REGION)
           .agg(*[F.sum(f"_o_{d}").alias(f"_o_{d}") for d in within], F.sum("units").alias("units"),
                F.sum("amount").alias("revenue"), F.grouping(C.CATEGORY).alias("_gc"),
                F.grouping(C.REGION).alias("_gr")))
    by_category, by_region = F.col("_gc") == 0, F.col("_gr") == 0
    dimension = F.when(by_category, F.lit("category")).when(by_region, F.lit("region")).otherwise(F.lit("total"))
    value = F.when(by_category, F.col(C.CATEGORY)).when(by_region, F.col(C.REGION))
    # a sum over a group is never null here (the flags are 0/1); the coalesce keeps the column non-nullable, as
    # countDistinct's was, so the written table's schema does not change
    n_orders = F.coalesce(F.when(by_category, F.col("_o_category")).when(by_region, F.col("_o_region"))
                          .otherwise(F.col("_o_total")), F.lit(0).cast("bigint"))
    return agg.select("grain", "period", dimension.alias("dimension"), value.alias("value"),
                      n_orders.alias("n_orders"), "units", "revenue")


def top_products(order_features: DataFrame, n: int = 10) -> DataFrame:
    """The ``n`` products that sell most (by units, then revenue, then id) in each month.

    Returns ``month`` (first day), ``rank`` (1..n), ``product_id, category, n_orders, units, revenue``.

    Example
    -------
    >>> top_products(order_features, 5).where("month = '2018-05-01'").show()  # doctest: +SKIP
    """
    if n < 1:
        raise ValueError(f"n={n}: top_products needs n >= 1")
    per = (sold_lines(order_features).withColumn("month", F.trunc(C.ORDER_DATE, "month"))
           .groupBy("month", C.PRODUCT_ID).agg(F.max(C.CATEGORY).alias(C.CATEGORY), *_sales_aggs()))
    w = Window.partitionBy("month").orderBy(F.desc("units"), F.desc_nulls_last("revenue"), C.PRODUCT_ID)
    return (per.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= n)
            .select("month", "rank", C.PRODUCT_ID, C.CATEGORY, "n_orders", "units", "revenue"))


# --------------------------------------------------------------------------- seasonality

def _demand_by(order_features: DataFrame, keys: list[Column]) -> DataFrame:
    return (sold_lines(order_features).groupBy(*keys)
            .agg(*_sales_aggs(), F.countDistinct(C.ORDER_DATE).alias("n_days"))
            .withColumn("units_per_day", F.try_divide(F.col("units").cast("double"), F.col("n_days"))))


def demand_by_month(order_features: DataFrame) -> DataFrame:
    """Demand per month of the year, all years together.

    Returns ``month`` (1..12), ``n_orders, units, revenue``, ``n_days`` (dates
    with a sale) and ``units_per_day`` (= units / n_days, comparable across
    months the data covers unevenly).

    Example
    -------
    >>> demand_by_month(order_features).orderBy("month").show()  # doctest: +SKIP
    """
    return _demand_by(order_features, [F.month(C.ORDER_DATE).alias("month")])


def demand_by_weekday(order_features: DataFrame) -> DataFrame:
    """Demand per weekday, all weeks together.

    Returns ``weekday`` (1 = Sunday .. 7 = Saturday, as ``dayofweek``),
    ``weekday_name`` (Sun..Sat), then the columns of :func:`demand_by_month`.

    Example
    -------
    >>> demand_by_weekday(order_features).orderBy("weekday").show()  # doctest: +SKIP
    """
    return _demand_by(order_features, [F.dayofweek(C.ORDER_DATE).alias("weekday"),
                                       F.date_format(C.ORDER_DATE, "EEE").alias("weekday_name")])


def holiday_lift(order_features: DataFrame) -> DataFrame:
    """Holiday-season lift of daily units, per category and overall.

    ``lift = mean daily units on holiday-season days / mean daily units on
    other days``.  The days are every date with at least one sale in the data
    (so a closed day is not counted as a zero); a category's date without a
    sale of that category counts 0 units.  A date is a holiday-season date when
    its lines have ``is_holiday_season`` (``transform.holiday_season``).

    Returns ``level`` (``'overall'|'category'``), ``category`` (null for
    overall), ``holiday_days, other_days, holiday_units_per_day,
    other_units_per_day, lift`` (null without days on either side).

    Example
    -------
    >>> holiday_lift(order_features).orderBy(F.desc("lift")).show()  # doctest: +SKIP
    """
    sold = sold_lines(order_features)
    days = sold.groupBy(C.ORDER_DATE).agg(F.max(F.coalesce(F.col("is_holiday_season"), F.lit(False))).alias("_holiday"))
    categories = sold.select(C.CATEGORY).distinct()
    daily = sold.groupBy(C.CATEGORY, C.ORDER_DATE).agg(F.sum("units").alias("_units"))
    grid = (days.crossJoin(categories).join(daily, [C.CATEGORY, C.ORDER_DATE], "left")
            .withColumn("_units", F.coalesce(F.col("_units"), F.lit(0))))
    holiday = F.col("_holiday")
    aggs = [F.sum(F.when(holiday, 1).otherwise(0)).alias("holiday_days"),
            F.sum(F.when(holiday, 0).otherwise(1)).alias("other_days"),
            F.avg(F.when(holiday, F.col("_units"))).alias("holiday_units_per_day"),
            F.avg(F.when(~holiday, F.col("_units"))).alias("other_units_per_day")]
    per_category = grid.groupBy(C.CATEGORY).agg(*aggs).select(F.lit("category").alias("level"), "*")
    overall = (grid.groupBy(C.ORDER_DATE, "_holiday").agg(F.sum("_units").alias("_units"))
               .agg(*aggs).select(F.lit("overall").alias("level"), F.lit(None).cast("string").alias(C.CATEGORY), "*"))
    return (overall.unionByName(per_category)
            .withColumn("lift", F.try_divide(F.col("holiday_units_per_day"), F.col("other_units_per_day"))))


def season_correlation(order_features: DataFrame) -> DataFrame:
    """How each category's demand moves with the whole shop's: two Pearson correlations.

    - ``corr_monthly``: over every calendar month (year, month) with a sale,
      the category's units against all categories' units (the category
      included).  It follows trend as well as season.
    - ``corr_month_of_year``: the seasonal profile, over the months of the year
      1..12 present: the category's mean monthly units in that month of the
      year against the shop's.  Close to 1 means the category peaks when the
      shop peaks; near 0 or negative, it has its own season.

    A category's month without a sale counts 0 units.  A correlation is null
    with fewer than two months or when either series is constant.

    Returns ``category, n_months, corr_monthly, n_months_of_year, corr_month_of_year``.

    Example
    -------
    >>> season_correlation(order_features).orderBy("corr_month_of_year").show()  # doctest: +SKIP
    """
    sold = sold_lines(order_features).withColumn("_month", F.trunc(C.ORDER_DATE, "month"))
    months = sold.groupBy("_month").agg(F.sum("units").alias("_total"))
    per = sold.groupBy(C.CATEGORY, "_month").agg(F.sum("units").alias("_units"))
    grid = (months.crossJoin(sold.select(C.CATEGORY).distinct()).join(per, [C.CATEGORY, "_month"], "left")
            .withColumn("_units", F.coalesce(F.col("_units"), F.lit(0)).cast("double"))
            .withColumn("_total", F.col("_total").cast("double")))
    monthly = grid.groupBy(C.CATEGORY).agg(F.count(F.lit(1)).alias("n_months"),
                                           pearson("_units", "_total").alias("corr_monthly"))
    profile = (grid.groupBy(C.CATEGORY, F.month("_month").alias("_moy"))
               .agg(F.avg("_units").alias("_units"), F.avg("_total").alias("_total"))
               .groupBy(C.CATEGORY).agg(F.count(F.lit(1)).alias("n_months_of_year"),
                                        pearson("_units", "_total").alias("corr_month_of_year")))
    return monthly.join(profile, C.CATEGORY)

