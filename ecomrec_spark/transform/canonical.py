"""Bronze tables of each source -> the canonical silver model.

One function per source and entity.  Each returns canonical columns (see
:mod:`ecomrec_spark.columns`) plus the lineage columns, so the union of all
sources is what later stages read.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.columns import INGEST_RUN, SOURCE_FILE
from ecomrec_spark.transform.clean import as_rejects, dedupe, require_parent

LINEAGE = [SOURCE_FILE, INGEST_RUN]


def _category(raw: str, english: str | None = None) -> Column:
    cat = F.lower(F.trim(F.col(raw)))
    if english:
        cat = F.coalesce(F.lower(F.trim(F.col(english))), cat)
    return F.coalesce(F.when(cat != "", cat), F.lit(C.UNKNOWN_CATEGORY))


# ---------------------------------------------------------------- Olist

def olist_products(products: DataFrame, translation: DataFrame) -> DataFrame:
    """Products with the English category name where the translation has one."""
    tr = translation.select("product_category_name", "product_category_name_english").dropDuplicates(["product_category_name"])
    return (products.join(F.broadcast(tr), "product_category_name", "left")
            .select(F.lit("olist").alias(C.SOURCE), C.PRODUCT_ID,
                    _category("product_category_name", "product_category_name_english").alias(C.CATEGORY),
                    F.col("product_category_name").alias("category_original"),
                    F.lit(None).cast("string").alias("brand"), F.lit(None).cast("string").alias("title"),
                    F.lit(None).cast("string").alias("description"),
                    "product_name_length", "product_description_length", "product_photos_qty", "product_weight_g",
                    "product_length_cm", "product_height_cm", "product_width_cm"))


def olist_customers(customers: DataFrame) -> DataFrame:
    """One row per person (customer_unique_id); Olist lists a person once per order."""
    person = customers.withColumnRenamed("customer_id", "order_customer_id")
    first = Window.partitionBy("customer_unique_id").orderBy(F.col(INGEST_RUN).desc(), "order_customer_id")
    kept = person.withColumn("_r", F.row_number().over(first)).where("_r = 1")
    return kept.select(F.lit("olist").alias(C.SOURCE), F.col("customer_unique_id").alias(C.CUSTOMER_ID),
                       F.col("customer_state").alias(C.REGION), F.col("customer_city").alias("city"),
                       F.col("customer_zip_code_prefix").alias("zip_code_prefix"))


def olist_order_lines(items: DataFrame, orders: DataFrame, customers: DataFrame,
                      products: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Join order_items, orders, customers and products into the order-line fact.

    ``orders`` must already be unique per order_id.  Returns ``(lines, rejects)``:
    duplicate lines and lines whose order or product does not exist are
    rejected with the reason.
    """
    items, dup_items = dedupe(items, ["order_id", "order_item_id"], "order_lines")
    items, orphan_orders = require_parent(items, orders, "order_id", "order_lines")
    items, orphan_products = require_parent(items, products, "product_id", "order_lines")
    person = customers.select("customer_id", "customer_unique_id", "customer_state").dropDuplicates(["customer_id"])
    o = orders.drop(*LINEAGE).join(person, "customer_id", "left")
    lines = items.join(o, "order_id", "inner").join(products.select(C.PRODUCT_ID, C.CATEGORY), C.PRODUCT_ID, "left")
    lines = lines.select(
        F.lit("olist").alias(C.SOURCE), C.ORDER_ID, F.col("order_item_id").alias(C.LINE_ID),
        F.col("customer_unique_id").alias(C.CUSTOMER_ID), C.PRODUCT_ID, C.SELLER_ID, C.CATEGORY,
        F.col("order_status").alias(C.ORDER_STATUS), F.col("order_purchase_timestamp").alias(C.ORDER_TS),
        F.col("order_approved_at").alias(C.APPROVED_TS), F.col("order_delivered_carrier_date").alias(C.CARRIER_TS),
        F.col("order_delivered_customer_date").alias(C.DELIVERED_TS),
        F.col("order_estimated_delivery_date").alias(C.ESTIMATED_TS), F.lit(1).alias(C.QUANTITY), C.PRICE, C.FREIGHT,
        F.col("customer_state").alias(C.REGION), *LINEAGE)
    return lines, dup_items.unionByName(orphan_orders).unionByName(orphan_products)


def olist_reviews(reviews: DataFrame, lines: DataFrame) -> DataFrame:
    """Reviews keyed by (review_id, order_id), deduplicated by the caller; Olist repeats a review_id across orders."""
    order_keys = lines.select(C.ORDER_ID, C.CUSTOMER_ID).dropDuplicates([C.ORDER_ID])
    return (reviews.join(order_keys, C.ORDER_ID, "left")
            .select(F.lit("olist").alias(C.SOURCE), C.REVIEW_ID, C.ORDER_ID, C.CUSTOMER_ID,
                    F.lit(None).cast("string").alias(C.PRODUCT_ID), C.REVIEW_SCORE,
                    F.col("review_comment_title").alias("title"), F.col("review_comment_message").alias("text"),
                    F.col("review_creation_date").alias(C.REVIEW_TS), F.col("review_answer_timestamp").alias("answer_ts")))


# ---------------------------------------------------------------- generic transactions

def transaction_lines(tx: DataFrame, cancel_prefix: str, non_product_codes: list[str]) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Generic transaction rows -> ``(lines, returns, rejects)``.

    A row is a cancellation or return when its order id starts with
    ``cancel_prefix`` or its quantity is negative; those go to ``returns``.
    Rows with a non-product code (postage, fees), a zero quantity or a price
    that is not positive are rejected with the reason.
    """
    keys = ["order_id", "product_id", "timestamp", "quantity", "unit_price", "customer_id"]
    keys = [k for k in keys if k in tx.columns]
    tx, dups = dedupe(tx, keys, "order_lines")
    is_return = F.col("quantity") < 0
    if cancel_prefix:
        is_return = is_return | F.col("order_id").startswith(cancel_prefix)
    codes = [c.upper() for c in non_product_codes]
    reason = (F.when(F.upper(F.trim(F.col("product_id"))).isin(codes), F.concat(F.lit("non-product code "), F.col("product_id")))
              .when(F.col("quantity") == 0, F.lit("zero quantity"))
              .when(~is_return & (F.col("unit_price") <= 0), F.lit("price not positive")))
    flagged = tx.withColumn("_reason", reason).withColumn("_is_return", is_return)
    rejects = as_rejects(flagged.where(F.col("_reason").isNotNull()).drop("_is_return"), F.col("_reason"), "order_lines")
    good = flagged.where(F.col("_reason").isNull()).drop("_reason")
    opt = lambda c: F.col(c) if c in tx.columns else F.lit(None).cast("string")  # noqa: E731
    line_no = F.row_number().over(Window.partitionBy("order_id").orderBy("product_id", "timestamp", "quantity", "unit_price"))
    canon = good.select(
        F.lit("transactions").alias(C.SOURCE), C.ORDER_ID, line_no.alias(C.LINE_ID), opt("customer_id").alias(C.CUSTOMER_ID),
        C.PRODUCT_ID, F.lit(None).cast("string").alias(C.SELLER_ID),
        F.coalesce(F.lower(F.trim(opt("category"))), F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY),
        F.when(F.col("_is_return"), "returned").otherwise("completed").alias(C.ORDER_STATUS),
        F.col("timestamp").alias(C.ORDER_TS),
        *[F.lit(None).cast("timestamp").alias(c) for c in (C.APPROVED_TS, C.CARRIER_TS, C.DELIVERED_TS, C.ESTIMATED_TS)],
        F.abs(F.col("quantity")).alias(C.QUANTITY), F.col("unit_price").alias(C.PRICE),
        F.lit(None).cast("double").alias(C.FREIGHT), opt("country").alias(C.REGION),
        F.trim(opt("description")).alias("description"), *LINEAGE, "_is_return")
    lines = canon.where(~F.col("_is_return")).drop("_is_return", "description")
    returns = canon.where(F.col("_is_return")).drop("_is_return")
    return lines, returns, dups.unionByName(rejects)


def transaction_products(tx: DataFrame) -> DataFrame:
    """Products seen in transactions, with their most frequent description as title."""
    opt = lambda c: F.col(c) if c in tx.columns else F.lit(None).cast("string")  # noqa: E731
    d = tx.select("product_id", F.trim(opt("description")).alias("title"),
                  F.coalesce(F.lower(F.trim(opt("category"))), F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY))
    counted = d.where(F.col("title").isNotNull()).groupBy("product_id", "title", C.CATEGORY).count()
    best = counted.withColumn("_r", F.row_number().over(
        Window.partitionBy("product_id").orderBy(F.col("count").desc(), "title"))).where("_r = 1")
    ids = d.select("product_id").distinct()
    return ids.join(best.drop("_r", "count"), "product_id", "left").select(
        F.lit("transactions").alias(C.SOURCE), C.PRODUCT_ID,
        F.coalesce(F.col(C.CATEGORY), F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY),
        F.lit(None).cast("string").alias("brand"), "title", F.lit(None).cast("string").alias("description"))


# ---------------------------------------------------------------- Amazon reviews

def amazon_reviews(reviews: DataFrame) -> DataFrame:
    return reviews.select(
        F.lit("amazon").alias(C.SOURCE), F.col("Id").cast("string").alias(C.REVIEW_ID),
        F.lit(None).cast("string").alias(C.ORDER_ID), F.col("UserId").alias(C.CUSTOMER_ID),
        F.col("ProductId").alias(C.PRODUCT_ID), F.col("Score").alias(C.REVIEW_SCORE), F.col("Summary").alias("title"),
        F.col("Text").alias("text"), F.col("Time").alias(C.REVIEW_TS), F.lit(None).cast("timestamp").alias("answer_ts"))


def amazon_products(reviews: DataFrame) -> DataFrame:
    return reviews.select(F.col("ProductId").alias(C.PRODUCT_ID)).distinct().select(
        F.lit("amazon").alias(C.SOURCE), C.PRODUCT_ID, F.lit(C.UNKNOWN_CATEGORY).alias(C.CATEGORY),
        F.lit(None).cast("string").alias("brand"), F.lit(None).cast("string").alias("title"),
        F.lit(None).cast("string").alias("description"))
