"""Olist (Kaggle ``olistbr/brazilian-ecommerce``): the nine CSVs, exact names and columns.

Real-file quirks handled here or in ingest: CRLF and quoted multi-line review
text (``multiline``), the UTF-8 BOM on the translation file, ids quoted on some
rows only, the misspelled ``*_lenght`` product columns (renamed in bronze),
empty fields for missing values.
"""

from __future__ import annotations

from ecomrec_spark.sources.spec import Col, TableSpec

TS = "timestamp"

CUSTOMERS = TableSpec(
    "olist", "olist_customers", "olist_customers_dataset*.csv*",
    (Col("customer_id", required=True), Col("customer_unique_id", required=True),
     Col("customer_zip_code_prefix"), Col("customer_city"), Col("customer_state")),
)
GEOLOCATION = TableSpec(
    "olist", "olist_geolocation", "olist_geolocation_dataset*.csv*",
    (Col("geolocation_zip_code_prefix", required=True), Col("geolocation_lat", "double"),
     Col("geolocation_lng", "double"), Col("geolocation_city"), Col("geolocation_state")),
)
ORDER_ITEMS = TableSpec(
    "olist", "olist_order_items", "olist_order_items_dataset*.csv*",
    (Col("order_id", required=True), Col("order_item_id", "int", required=True),
     Col("product_id", required=True), Col("seller_id"), Col("shipping_limit_date", TS),
     Col("price", "double"), Col("freight_value", "double")),
    rules=(("price IS NULL OR price >= 0", "negative price"),
           ("freight_value IS NULL OR freight_value >= 0", "negative freight_value")),
)
ORDER_PAYMENTS = TableSpec(
    "olist", "olist_order_payments", "olist_order_payments_dataset*.csv*",
    (Col("order_id", required=True), Col("payment_sequential", "int"), Col("payment_type"),
     Col("payment_installments", "int"), Col("payment_value", "double")),
)
ORDER_REVIEWS = TableSpec(
    "olist", "olist_order_reviews", "olist_order_reviews_dataset*.csv*",
    (Col("review_id", required=True), Col("order_id", required=True), Col("review_score", "int", required=True),
     Col("review_comment_title"), Col("review_comment_message"),
     Col("review_creation_date", TS), Col("review_answer_timestamp", TS)),
    multiline=True,
    rules=(("review_score BETWEEN 1 AND 5", "review_score outside 1..5"),),
)
ORDERS = TableSpec(
    "olist", "olist_orders", "olist_orders_dataset*.csv*",
    (Col("order_id", required=True), Col("customer_id", required=True), Col("order_status"),
     Col("order_purchase_timestamp", TS, required=True), Col("order_approved_at", TS),
     Col("order_delivered_carrier_date", TS), Col("order_delivered_customer_date", TS),
     Col("order_estimated_delivery_date", TS)),
)
PRODUCTS = TableSpec(
    "olist", "olist_products", "olist_products_dataset*.csv*",
    (Col("product_id", required=True), Col("product_category_name"),
     Col("product_name_lenght", "int", rename="product_name_length"),
     Col("product_description_lenght", "int", rename="product_description_length"),
     Col("product_photos_qty", "int"), Col("product_weight_g", "double"), Col("product_length_cm", "double"),
     Col("product_height_cm", "double"), Col("product_width_cm", "double")),
)
SELLERS = TableSpec(
    "olist", "olist_sellers", "olist_sellers_dataset*.csv*",
    (Col("seller_id", required=True), Col("seller_zip_code_prefix"), Col("seller_city"), Col("seller_state")),
)
CATEGORY_TRANSLATION = TableSpec(
    "olist", "olist_category_translation", "product_category_name_translation*.csv*",
    (Col("product_category_name", required=True), Col("product_category_name_english")),
)

TABLES = (ORDERS, ORDER_ITEMS, ORDER_REVIEWS, ORDER_PAYMENTS, CUSTOMERS, PRODUCTS, SELLERS,
          CATEGORY_TRANSLATION, GEOLOCATION)
