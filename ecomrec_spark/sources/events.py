"""Behaviour events in the REES46 schema (``event_time`` like ``2019-10-01 00:00:00 UTC``)."""

from __future__ import annotations

from ecomrec_spark.sources.spec import Col, TableSpec

EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")

EVENTS = TableSpec(
    "events", "events", "*.csv*",
    (Col("event_time", "timestamp", required=True, fmt="yyyy-MM-dd HH:mm:ss 'UTC'"),
     Col("event_type", required=True), Col("product_id", required=True), Col("category_id"),
     Col("category_code"), Col("brand"), Col("price", "double"), Col("user_id", required=True),
     Col("user_session")),
    rules=(("event_type IN ('view', 'cart', 'remove_from_cart', 'purchase')", "unknown event_type"),
           ("price IS NULL OR price >= 0", "negative price")),
)

TABLES = (EVENTS,)
