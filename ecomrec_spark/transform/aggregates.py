"""Customer (RFM, category affinity, price level) and product aggregates."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C


def _quantile_score(df: DataFrame, column: str, n: int, higher_is_better: bool = True) -> DataFrame:
    """Add ``<column>_score`` in 1..n from approximate quantile cut points.

    The cut points are one small aggregate row broadcast back, so no global
    window gathers every customer into one partition.
    """
    probs = [i / n for i in range(1, n)]
    cuts = df.agg(F.percentile_approx(column, probs, 10000).alias("_cuts"))
    score = F.lit(1)
    for i in range(n - 1):
        score = score + F.when(F.col(column) > F.col("_cuts")[i], 1).otherwise(0)
    if not higher_is_better:
        score = F.lit(n + 1) - score
    return df.crossJoin(F.broadcast(cuts)).withColumn(f"{column}_score", score.cast("int")).drop("_cuts")


def line_amount() -> Column:
    return F.col(C.PRICE) * F.col(C.QUANTITY)


def customer_features(lines: DataFrame, n_levels: int = 5) -> DataFrame:
    """RFM, category affinity and price level per customer, as of the last order in the data.

    - ``recency_days``: days from the customer's last order to the data's last order;
    - ``frequency``: distinct orders; ``monetary``: spend including freight;
    - ``rfm_score``: ``r``/``f``/``m`` quantile scores 1..n_levels, concatenated;
    - ``category_affinity``: map category -> share of the customer's units;
    - ``relative_price``: mean of price / the category's mean price; ``price_level`` 1..n_levels.
    """
    known = lines.where(F.col(C.CUSTOMER_ID).isNotNull())
    ref = known.agg(F.max(C.ORDER_TS).alias("_ref"))
    cat_mean = known.groupBy(C.CATEGORY).agg(F.avg(C.PRICE).alias("_cat_mean"))
    enriched = known.join(F.broadcast(cat_mean), C.CATEGORY, "left").withColumn(
        "_rel", F.try_divide(F.col(C.PRICE), F.col("_cat_mean")))
    base = (enriched.groupBy(C.CUSTOMER_ID)
            .agg(F.max(C.ORDER_TS).alias("last_order_ts"), F.min(C.ORDER_TS).alias("first_order_ts"),
                 F.countDistinct(C.ORDER_ID).alias("frequency"),
                 F.sum(line_amount() + F.coalesce(F.col(C.FREIGHT), F.lit(0.0))).alias("monetary"),
                 F.sum(C.QUANTITY).alias("units"), F.avg("_rel").alias("relative_price"),
                 F.max(C.REGION).alias(C.REGION))
            .crossJoin(F.broadcast(ref))
            .withColumn("recency_days", F.datediff(F.to_date("_ref"), F.to_date("last_order_ts")))
            .drop("_ref"))
    by_cat = known.groupBy(C.CUSTOMER_ID, C.CATEGORY).agg(F.sum(C.QUANTITY).alias("_u"))
    w = Window.partitionBy(C.CUSTOMER_ID)
    by_cat = by_cat.withColumn("_share", F.col("_u") / F.sum("_u").over(w)).withColumn(
        "_rank", F.row_number().over(w.orderBy(F.col("_u").desc(), C.CATEGORY)))
    affinity = by_cat.groupBy(C.CUSTOMER_ID).agg(
        F.map_from_entries(F.collect_list(F.struct(C.CATEGORY, F.round("_share", 4)))).alias("category_affinity"),
        F.max(F.when(F.col("_rank") == 1, F.col(C.CATEGORY))).alias("top_category"),
        F.max(F.when(F.col("_rank") == 1, F.col("_share"))).alias("top_category_share"))
    out = base.join(affinity, C.CUSTOMER_ID, "left")
    out = _quantile_score(out, "recency_days", n_levels, higher_is_better=False)
    out = _quantile_score(out, "frequency", n_levels)
    out = _quantile_score(out, "monetary", n_levels)
    out = _quantile_score(out, "relative_price", n_levels).withColumnRenamed("relative_price_score", "price_level")
    return out.withColumn("rfm_score", F.concat(F.col("recency_days_score").cast("string"), F.col("frequency_score").cast("string"),
                                                F.col("monetary_score").cast("string")))


def product_features(lines: DataFrame, reviews: DataFrame, products: DataFrame, window_days: int) -> DataFrame:
    """Sales, revenue, review-score mean so far, and recent popularity per product.

    ``popularity_recent`` is the product's share of units in the last
    ``window_days`` days of the data; ``mean_review_score`` uses every review
    known at the end of the data (an order's review joins through its order).
    """
    end = lines.agg(F.max(C.ORDER_TS).alias("_end"))
    sales = (lines.crossJoin(F.broadcast(end))
             .withColumn("_recent", F.col(C.ORDER_TS) > F.col("_end") - F.expr(f"INTERVAL {int(window_days)} DAYS"))
             .groupBy(C.PRODUCT_ID)
             .agg(F.countDistinct(C.ORDER_ID).alias("n_orders"), F.sum(C.QUANTITY).alias("units_sold"),
                  F.sum(line_amount()).alias("revenue"), F.avg(C.PRICE).alias("avg_price"),
                  F.min(C.ORDER_TS).alias("first_sold_ts"), F.max(C.ORDER_TS).alias("last_sold_ts"),
                  F.sum(F.when(F.col("_recent"), F.col(C.QUANTITY)).otherwise(0)).alias("_recent_units")))
    total_recent = sales.agg(F.sum("_recent_units").alias("_all_recent"))
    sales = sales.crossJoin(F.broadcast(total_recent)).withColumn(
        "popularity_recent", F.coalesce(F.try_divide(F.col("_recent_units").cast("double"), F.col("_all_recent")), F.lit(0.0))
    ).drop("_recent_units", "_all_recent")
    order_product = lines.select(C.ORDER_ID, F.col(C.PRODUCT_ID).alias("_pid")).distinct()
    via_order = reviews.where(F.col(C.ORDER_ID).isNotNull()).join(order_product, C.ORDER_ID).select(F.col("_pid").alias(C.PRODUCT_ID), C.REVIEW_SCORE)
    direct = reviews.where(F.col(C.ORDER_ID).isNull() & F.col(C.PRODUCT_ID).isNotNull()).select(C.PRODUCT_ID, C.REVIEW_SCORE)
    scores = via_order.unionByName(direct).groupBy(C.PRODUCT_ID).agg(
        F.count(F.lit(1)).alias("n_reviews"), F.avg(C.REVIEW_SCORE).alias("mean_review_score"))
    cat = products.select(C.PRODUCT_ID, C.CATEGORY, "brand", "title")
    return (cat.join(sales, C.PRODUCT_ID, "full").join(scores, C.PRODUCT_ID, "left")
            .withColumn(C.CATEGORY, F.coalesce(F.col(C.CATEGORY), F.lit(C.UNKNOWN_CATEGORY)))
            .fillna({"n_orders": 0, "units_sold": 0, "revenue": 0.0, "n_reviews": 0, "popularity_recent": 0.0}))
