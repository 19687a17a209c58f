"""Amazon reviews, as in the ``Reviews.csv`` of the Amazon Fine Food set (``Time`` in unix seconds)."""

from __future__ import annotations

from ecomrec_spark.sources.spec import Col, TableSpec

REVIEWS = TableSpec(
    "amazon", "amazon_reviews", "*.csv*",
    (Col("Id", "long", required=True), Col("ProductId", required=True), Col("UserId", required=True),
     Col("ProfileName"), Col("HelpfulnessNumerator", "int"), Col("HelpfulnessDenominator", "int"),
     Col("Score", "int", required=True), Col("Time", "unix_seconds", required=True), Col("Summary"), Col("Text")),
    multiline=True,
    rules=(("Score BETWEEN 1 AND 5", "Score outside 1..5"),),
)

TABLES = (REVIEWS,)
