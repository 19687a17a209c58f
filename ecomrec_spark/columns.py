"""Canonical column names shared by every source adapter and every stage.

Silver and gold tables use these names whatever the source was, so later
stages (review model, recommender) never look at a source's own headers.
"""

ORDER_ID = "order_id"
LINE_ID = "line_id"
CUSTOMER_ID = "customer_id"  # the person (Olist: customer_unique_id), not Olist's per-order id
PRODUCT_ID = "product_id"
SELLER_ID = "seller_id"
CATEGORY = "category"
SUB_CATEGORY = "sub_category"
PRICE = "price"  # unit price
FREIGHT = "freight_value"
QUANTITY = "quantity"
ORDER_TS = "order_ts"
APPROVED_TS = "approved_ts"
CARRIER_TS = "carrier_ts"
DELIVERED_TS = "delivered_ts"
ESTIMATED_TS = "estimated_ts"
ORDER_STATUS = "order_status"
ORDER_DATE = "order_date"
REGION = "region"  # state (Olist) or country (transactions)
SOURCE = "source"
REVIEW_ID = "review_id"
REVIEW_SCORE = "review_score"
REVIEW_TS = "review_ts"
USER_ID = "user_id"
SESSION_ID = "session_id"
EVENT_TS = "event_ts"
EVENT_TYPE = "event_type"

UNKNOWN_CATEGORY = "unknown"

# Lineage columns ingest adds to every bronze row; transform carries them into silver
SOURCE_FILE = "_source_file"
INGEST_RUN = "_ingest_run"

# The canonical order-line fact, in column order.
ORDER_LINE_COLUMNS = [
    SOURCE, ORDER_ID, LINE_ID, CUSTOMER_ID, PRODUCT_ID, SELLER_ID, CATEGORY, ORDER_STATUS, ORDER_TS, APPROVED_TS,
    CARRIER_TS, DELIVERED_TS, ESTIMATED_TS, QUANTITY, PRICE, FREIGHT, REGION,
]
