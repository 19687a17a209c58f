"""Bronze -> silver -> gold for every configured source.

Silver and gold are rebuilt from bronze on each run, each table in one Delta
commit, so a re-run gives the same tables and a killed run leaves the previous
versions readable (and, through the run manifest, read: :mod:`ecomrec_spark.runs`).
Bronze is read as the last complete ingest left it, and only the files whose
reconciliation was recorded and balanced.  Rows removed on the way (duplicates, orphans, non-product
lines, outliers) are written to quarantine or to ``silver/order_line_outliers``.
"""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake
from ecomrec_spark.columns import INGEST_RUN, SOURCE_FILE
from ecomrec_spark.ingest.run import finished_slices
from ecomrec_spark.settings import Settings
from ecomrec_spark.settings import Transform as TransformSettings
from ecomrec_spark.transform import aggregates, canonical, events, features, quality
from ecomrec_spark.transform.clean import dedupe

log = logging.getLogger(__name__)


def _union(frames: list[DataFrame]) -> DataFrame | None:
    frames = [f for f in frames if f is not None]
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames) if frames else None


def build_silver(spark: SparkSession, settings: Settings) -> dict[str, DataFrame]:
    """Canonical silver frames (not yet written) from the bronze tables of every source."""
    root, sources, gap = settings.paths.lake, settings.ingest.sources, settings.transform.session_gap_minutes

    def bronze(t: str) -> DataFrame:  # only files whose ingest finished, balanced
        rows = finished_slices(spark, root, t)
        assert rows is not None, "required=True (the default) raises on a missing table"
        return rows

    lines, products, customers, reviews, rejects, returns, evts, sellers, payments = ([] for _ in range(9))

    if "olist" in sources:
        prods, dup_p = dedupe(bronze("olist_products"), [C.PRODUCT_ID], "products")
        orders, dup_o = dedupe(bronze("olist_orders"), [C.ORDER_ID], "orders")
        cust = bronze("olist_customers")
        p = canonical.olist_products(prods, bronze("olist_category_translation"))
        ln, rj = canonical.olist_order_lines(bronze("olist_order_items"), orders, cust, p)
        revs, dup_r = dedupe(bronze("olist_order_reviews"), [C.REVIEW_ID, C.ORDER_ID], "reviews")
        lines.append(ln)
        products.append(p)
        customers.append(canonical.olist_customers(cust))
        reviews.append(canonical.olist_reviews(revs, ln))
        rejects += [rj, dup_p, dup_o, dup_r]
        s, dup_s = dedupe(bronze("olist_sellers"), [C.SELLER_ID], "sellers")
        sellers.append(s.drop(SOURCE_FILE, INGEST_RUN))
        pay, dup_pay = dedupe(bronze("olist_order_payments"), [C.ORDER_ID, "payment_sequential"], "payments")
        payments.append(pay.drop(SOURCE_FILE, INGEST_RUN))
        rejects += [dup_s, dup_pay]
    if "transactions" in sources:
        tx_conf = settings.sources.transactions
        tx = bronze("transactions")
        ln, ret, rj = canonical.transaction_lines(tx, tx_conf.cancel_prefix, tx_conf.non_product_codes)
        lines.append(ln)
        returns.append(ret)
        rejects.append(rj)
        products.append(canonical.transaction_products(tx))
        customers.append(ln.where(F.col(C.CUSTOMER_ID).isNotNull()).groupBy(C.CUSTOMER_ID)
                         .agg(F.max(C.REGION).alias(C.REGION)).withColumn(C.SOURCE, F.lit("transactions")))
    if "amazon" in sources:
        az, dup_a = dedupe(bronze("amazon_reviews"), ["Id"], "reviews")
        reviews.append(canonical.amazon_reviews(az))
        products.append(canonical.amazon_products(az))
        customers.append(az.select(F.col("UserId").alias(C.CUSTOMER_ID)).distinct().withColumn(C.SOURCE, F.lit("amazon")))
        rejects.append(dup_a)
    rees46 = None
    if "events" in sources:
        keys = ["event_time", "event_type", "product_id", "user_id", "user_session"]
        rees46, dup_e = dedupe(bronze("events"), keys, "events")
        evts.append(events.event_features(rees46, gap)
                    .withColumn(C.SOURCE, F.lit("events")))
        rejects.append(dup_e)
    api = finished_slices(spark, root, "events_api", required=False) if "events_api" in sources else None
    if api is not None:  # no table until the API has taken a batch and ingest has run
        api, dup_api = dedupe(api, events.API_DEDUPE_KEYS, "events_api")  # a client's retried POST repeats its events
        cats = _union(products)
        evts.append(events.api_events(api, gap, rees46,
                                      None if cats is None else cats.select(C.PRODUCT_ID, C.CATEGORY)))
        rejects.append(dup_api)

    out = {"order_lines_raw": _union(lines), "products": _union(products), "customers": _union(customers),
           "reviews": _union(reviews), "rejects": _union(rejects), "returns": _union(returns),
           "events": _union(evts), "sellers": _union(sellers), "payments": _union(payments)}
    return {k: v for k, v in out.items() if v is not None}


def clean_order_lines(lines: DataFrame, tcfg: TransformSettings) -> tuple[DataFrame, DataFrame]:
    """IQR outlier split per category, then mean imputation: ``(clean, outliers)``."""
    kept, outliers = quality.split_outliers(lines, tcfg.outlier_columns, C.CATEGORY, tcfg.iqr_k, tcfg.iqr_accuracy,
                                            tcfg.iqr_method)
    return quality.impute_mean(kept, [C.PRICE, C.FREIGHT], C.CATEGORY), outliers


def transform(spark: SparkSession, settings: Settings) -> dict[str, int]:
    """Write silver and gold; returns row counts per written table."""
    root, tcfg = settings.paths.lake, settings.transform
    silver = build_silver(spark, settings)
    counts: dict[str, int] = {}

    def write(df: DataFrame, layer: str, table: str, partition_by: tuple[str, ...] = ()) -> DataFrame:
        lake.overwrite(df, root, layer, table, partition_by)
        written = lake.read(spark, root, layer, table)
        counts[f"{layer}/{table}"] = written.count()
        return written

    if "rejects" in silver:
        write(silver["rejects"], "quarantine", "transform_rejects")
    for table in ("products", "customers", "reviews", "sellers", "payments", "returns"):
        if table in silver:
            write(silver[table], "silver", table)
    if "order_lines_raw" in silver:
        clean, outliers = clean_order_lines(silver["order_lines_raw"], tcfg)
        write(outliers, "silver", "order_line_outliers")
        lines = write(clean, "silver", "order_lines")
        reviews = lake.read_optional(spark, root, "silver", "reviews")
        if reviews is None:
            reviews = spark.createDataFrame([], "source string, review_id string, order_id string, customer_id string, "
                                                "product_id string, review_score int, title string, text string, "
                                                "review_ts timestamp, answer_ts timestamp")
        of = features.order_features(lines, reviews, tcfg.min_freight, tcfg.holiday_season, tcfg.popularity_window_days)
        write(of.drop(SOURCE_FILE, INGEST_RUN), "gold", "order_features")
        write(aggregates.customer_features(lines, tcfg.price_levels), "gold", "customer_features")
        write(aggregates.product_features(lines, reviews, lake.read(spark, root, "silver", "products"),
                                          tcfg.popularity_window_days), "gold", "product_features")
    if "events" in silver:
        ev = write(silver["events"], "silver", "events", ("event_date",))
        write(events.sessions(ev), "gold", "sessions")
    return counts
