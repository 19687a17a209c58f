"""Behaviour events: canonical columns, category split, and sessions.

Two sources land in ``silver/events``: REES46-format logs (``events``) and the
feedback the API took back (``events_api``, :func:`api_events`).  Both use one
event-type vocabulary, so view, cart and purchase mean the same to every later
stage whichever source logged them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.columns import INGEST_RUN, SOURCE_FILE

# interest strength for the recommender; an API click opens the product like a view, an impression shows no interest
EVENT_RANK = {"view": 1, "click": 1, "cart": 2, "remove_from_cart": 2, "purchase": 3}
IMPRESSION = "impression"
API_COLUMNS = ("variant", "version")  # kept for the A/B report; null for every other source
API_DEDUPE_KEYS = ["event_time", "event_type", "product_id", "customer_id", "variant", "version"]


def event_features(events: DataFrame, gap_minutes: int = 30, keep: Sequence[str] = (),
                   in_session: Column | None = None) -> DataFrame:
    """Canonical events with category / sub-category, date, hour, weekday and a session id.

    ``category_code`` like ``electronics.smartphone`` splits into category
    ``electronics`` and sub-category ``smartphone`` (deeper levels stay in
    ``category_code``).  Rows without ``user_session`` get a session from a
    ``gap_minutes`` inactivity gap per user.  ``keep`` names extra columns carried
    through unchanged; rows where ``in_session`` is false get no session and do
    not count as activity for the gaps (API impressions: shown, not done).
    """
    parts = F.split(F.col("category_code"), r"\.")
    df = events.select(
        F.col("event_time").alias(C.EVENT_TS), C.EVENT_TYPE, F.col("product_id").alias(C.PRODUCT_ID), "category_id",
        F.when(F.trim(F.col("category_code")) != "", F.col("category_code")).alias("category_code"),
        F.lower(F.trim(F.col("brand"))).alias("brand"), "price", F.col("user_id").alias(C.USER_ID), "user_session",
        SOURCE_FILE, INGEST_RUN, *keep, (F.lit(True) if in_session is None else in_session).alias("_active"),
    ).withColumn(C.CATEGORY, F.coalesce(F.get(parts, 0), F.lit(C.UNKNOWN_CATEGORY))) \
     .withColumn(C.SUB_CATEGORY, F.get(parts, 1)) \
     .withColumn("event_date", F.to_date(C.EVENT_TS)) \
     .withColumn("event_hour", F.hour(C.EVENT_TS)) \
     .withColumn("event_weekday", F.dayofweek(C.EVENT_TS)) \
     .withColumn("event_strength", F.coalesce(*[F.when(F.col(C.EVENT_TYPE) == k, F.lit(v)) for k, v in EVENT_RANK.items()]))
    # Gap-based sessions for rows that carry no session id.
    by_user = Window.partitionBy(C.USER_ID, "_active").orderBy(C.EVENT_TS)
    gap = F.unix_timestamp(C.EVENT_TS) - F.unix_timestamp(F.lag(C.EVENT_TS).over(by_user))
    starts = F.when(gap.isNull() | (gap > gap_minutes * 60), 1).otherwise(0)
    df = df.withColumn("_new", starts).withColumn("_sess_no", F.sum("_new").over(by_user.rowsBetween(Window.unboundedPreceding, 0)))
    session = F.coalesce(F.when(F.trim(F.col("user_session")) != "", F.col("user_session")),
                         F.concat_ws("-", F.col(C.USER_ID), F.col("_sess_no").cast("string")))
    return (df.withColumn(C.SESSION_ID, F.when(F.col("_active"), session))
            .drop("_new", "_sess_no", "user_session", "_active"))


def api_events(api: DataFrame, gap_minutes: int = 30, rees46: DataFrame | None = None,
               categories: DataFrame | None = None) -> DataFrame:
    """The API's feedback events (``bronze/events_api``, deduplicated) as silver event rows.

    Mapping: ``customer_id`` -> ``user_id``, ``timestamp`` (bronze ``event_time``)
    -> ``event_ts``; ``event_type`` keeps the API's name, so view, cart and
    purchase are the REES46 types the recommender already weighs (a purchase
    becomes an order line in lakes without orders), while click and impression
    are types of their own that never count as purchases.  Impressions get no
    session (the shop showed them; the customer did nothing), so session baskets
    and session counts see only what customers did.  ``variant`` and
    ``version`` are kept for the A/B report; ``source`` is ``events_api``.

    The API sends no product attributes: ``category_id``, ``category_code``,
    ``brand`` and ``price`` come from the product's latest REES46 event when
    ``rees46`` (bronze REES46 events) is given, and ``category`` from
    ``categories`` (``product_id, category``, e.g. silver products) when the
    events do not name one; otherwise the category is ``unknown``.

    Example
    -------
    >>> api_events(spark.read.format("delta").load(f"{lake}/bronze/events_api")).select(  # doctest: +SKIP
    ...     "user_id", "event_type", "variant").show()
    """
    shaped = api.select(
        F.col("event_time"), F.col(C.EVENT_TYPE), F.col(C.PRODUCT_ID), F.col(C.CUSTOMER_ID).alias(C.USER_ID),
        F.lit(None).cast("string").alias("user_session"), SOURCE_FILE, INGEST_RUN, *API_COLUMNS)
    attrs = ("category_id", "category_code", "brand", "price")
    if rees46 is not None:
        def latest(name: str) -> Column:
            value = F.col(name) if name == "price" else F.when(F.trim(F.col(name)) != "", F.col(name))
            return F.max_by(value, F.when(value.isNotNull(), F.col("event_time"))).alias(name)
        known = rees46.groupBy(C.PRODUCT_ID).agg(*[latest(a) for a in attrs])
        shaped = shaped.join(known, C.PRODUCT_ID, "left")
    else:
        shaped = shaped.select("*", *[F.lit(None).cast("double" if a == "price" else "string").alias(a) for a in attrs])
    out = event_features(shaped, gap_minutes, keep=API_COLUMNS, in_session=F.col(C.EVENT_TYPE) != IMPRESSION)
    if categories is not None:
        cats = categories.select(C.PRODUCT_ID, F.col(C.CATEGORY).alias("_cat")).dropDuplicates([C.PRODUCT_ID])
        named = F.when(F.col(C.CATEGORY) != C.UNKNOWN_CATEGORY, F.col(C.CATEGORY))
        out = (out.join(cats, C.PRODUCT_ID, "left")
               .withColumn(C.CATEGORY, F.coalesce(named, F.col("_cat"), F.lit(C.UNKNOWN_CATEGORY))).drop("_cat"))
    return out.withColumn(C.SOURCE, F.lit("events_api"))


def sessions(events: DataFrame) -> DataFrame:
    """One row per session: span, counts per event type and whether it converted (sessionless rows left out)."""
    cnt = lambda t: F.sum(F.when(F.col(C.EVENT_TYPE) == t, 1).otherwise(0))  # noqa: E731
    return (events.where(F.col(C.SESSION_ID).isNotNull()).groupBy(C.SESSION_ID, C.USER_ID)
            .agg(F.min(C.EVENT_TS).alias("session_start"), F.max(C.EVENT_TS).alias("session_end"),
                 F.count(F.lit(1)).alias("n_events"), cnt("view").alias("n_views"), cnt("cart").alias("n_carts"),
                 cnt("remove_from_cart").alias("n_removes"), cnt("purchase").alias("n_purchases"),
                 F.countDistinct(C.PRODUCT_ID).alias("n_products"))
            .withColumn("duration_s", F.unix_timestamp("session_end") - F.unix_timestamp("session_start"))
            .withColumn("converted", F.col("n_purchases") > 0)
            .withColumn("session_date", F.to_date("session_start")))
