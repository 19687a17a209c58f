"""Behaviour events: canonical columns, category split, and sessions."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.ingest.parse import INGEST_RUN, SOURCE_FILE

EVENT_RANK = {"view": 1, "cart": 2, "remove_from_cart": 2, "purchase": 3}  # interest strength for the recommender


def event_features(events: DataFrame, gap_minutes: int = 30) -> DataFrame:
    """Canonical events with category / sub-category, date, hour, weekday and a session id.

    ``category_code`` like ``electronics.smartphone`` splits into category
    ``electronics`` and sub-category ``smartphone`` (deeper levels stay in
    ``category_code``).  Rows without ``user_session`` get a session from a
    ``gap_minutes`` inactivity gap per user.
    """
    parts = F.split(F.col("category_code"), r"\.")
    df = events.select(
        F.col("event_time").alias(C.EVENT_TS), C.EVENT_TYPE, F.col("product_id").alias(C.PRODUCT_ID), "category_id",
        F.when(F.trim(F.col("category_code")) != "", F.col("category_code")).alias("category_code"),
        F.lower(F.trim(F.col("brand"))).alias("brand"), "price", F.col("user_id").alias(C.USER_ID), "user_session",
        SOURCE_FILE, INGEST_RUN,
    ).withColumn(C.CATEGORY, F.coalesce(F.get(parts, 0), F.lit(C.UNKNOWN_CATEGORY))) \
     .withColumn(C.SUB_CATEGORY, F.get(parts, 1)) \
     .withColumn("event_date", F.to_date(C.EVENT_TS)) \
     .withColumn("event_hour", F.hour(C.EVENT_TS)) \
     .withColumn("event_weekday", F.dayofweek(C.EVENT_TS)) \
     .withColumn("event_strength", F.coalesce(*[F.when(F.col(C.EVENT_TYPE) == k, F.lit(v)) for k, v in EVENT_RANK.items()]))
    # Gap-based sessions for rows that carry no session id.
    by_user = Window.partitionBy(C.USER_ID).orderBy(C.EVENT_TS)
    gap = F.unix_timestamp(C.EVENT_TS) - F.unix_timestamp(F.lag(C.EVENT_TS).over(by_user))
    starts = F.when(gap.isNull() | (gap > gap_minutes * 60), 1).otherwise(0)
    df = df.withColumn("_new", starts).withColumn("_sess_no", F.sum("_new").over(by_user.rowsBetween(Window.unboundedPreceding, 0)))
    session = F.coalesce(F.when(F.trim(F.col("user_session")) != "", F.col("user_session")),
                         F.concat_ws("-", F.col(C.USER_ID), F.col("_sess_no").cast("string")))
    return df.withColumn(C.SESSION_ID, session).drop("_new", "_sess_no", "user_session")


def sessions(events: DataFrame) -> DataFrame:
    """One row per session: span, counts per event type and whether it converted."""
    cnt = lambda t: F.sum(F.when(F.col(C.EVENT_TYPE) == t, 1).otherwise(0))  # noqa: E731
    return (events.groupBy(C.SESSION_ID, C.USER_ID)
            .agg(F.min(C.EVENT_TS).alias("session_start"), F.max(C.EVENT_TS).alias("session_end"),
                 F.count(F.lit(1)).alias("n_events"), cnt("view").alias("n_views"), cnt("cart").alias("n_carts"),
                 cnt("remove_from_cart").alias("n_removes"), cnt("purchase").alias("n_purchases"),
                 F.countDistinct(C.PRODUCT_ID).alias("n_products"))
            .withColumn("duration_s", F.unix_timestamp("session_end") - F.unix_timestamp("session_start"))
            .withColumn("converted", F.col("n_purchases") > 0)
            .withColumn("session_date", F.to_date("session_start")))
