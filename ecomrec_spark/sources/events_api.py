"""Feedback events the API took back (``POST /v1/events``), read as one more ingest source.

Why a source of its own: the API writes each accepted batch as one JSON Lines
file, ``<paths.raw>/events_api/events-<YYYYMMDDTHHMMSSZ>-<batch_id>.jsonl`` (an
S3 object under the raw prefix on AWS), one event per line::

    {"customer_id": "c1", "product_id": "p9", "event_type": "click",
     "timestamp": "2026-12-05T03:20:00Z", "variant": "control", "version": "v3",
     "batch_id": "9f2c...", "received_at": "2026-12-05T03:20:01Z"}

Going through ingest gives these files what every other raw file gets: a line
that fails a check (broken JSON, an id the CLI would refuse, an unknown event
type, a timestamp that is not ISO-8601) goes to ``quarantine/events_api`` with
its reason, each file is reconciled (raw lines = bronze + quarantine), and a
re-run skips files already ingested.  The API checked every row before writing,
so a quarantined line means the file was written or edited by something else.

Until the API has taken a batch there is no folder: ``may_be_empty`` makes
that "nothing to ingest" rather than an error, so ``events_api`` can sit in
the default ``ingest.sources``.  Transform maps the bronze rows into
``silver/events`` (:func:`ecomrec_spark.transform.events.api_events`).
"""

from __future__ import annotations

import re

from ecomrec_spark.identifiers import CUSTOMER_ID_PATTERN, PRODUCT_ID_PATTERN
from ecomrec_spark.sources.spec import Col, TableSpec

SOURCE = "events_api"
# what POST /v1/events accepts; view, cart and purchase are the REES46 names, so the recommender weighs them alike
EVENT_TYPES = ("impression", "click", "view", "cart", "purchase")


def _sql_regex(pattern: re.Pattern[str]) -> str:
    """``pattern`` as a whole-value Java regex inside a Spark SQL string literal.

    The CLI's rules are used with ``fullmatch``; Spark's ``RLIKE`` searches, and
    Java's ``$`` also matches before a final newline, so the body is anchored
    with ``^`` and ``\\z``.  Backslashes are doubled for the SQL literal.
    """
    body = pattern.pattern.removeprefix("^").removesuffix("$")
    return ("^(?:" + body + ")\\z").replace("\\", "\\\\").replace("'", "\\'")


def _id_rule(column: str, pattern: re.Pattern[str]) -> tuple[str, str]:
    # a missing id already has its own reason ("missing ..."); the rule judges only present values
    return (f"{column} IS NULL OR {column} RLIKE '{_sql_regex(pattern)}'",
            f"bad {column}: not {pattern.pattern.removeprefix('^').removesuffix('$')}")


EVENTS_API = TableSpec(
    SOURCE, "events_api", "events-*.jsonl*",
    (Col("customer_id", required=True), Col("product_id", required=True), Col("event_type", required=True),
     Col("timestamp", "iso8601", required=True, rename="event_time"),
     Col("variant"), Col("version"), Col("batch_id"), Col("received_at", "iso8601")),
    rules=(("event_type IS NULL OR event_type IN (" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + ")",
            "unknown event_type (expected " + ", ".join(EVENT_TYPES) + ")"),
           _id_rule("customer_id", CUSTOMER_ID_PATTERN),
           _id_rule("product_id", PRODUCT_ID_PATTERN)),
    file_format="jsonl",
    may_be_empty=True,
)

TABLES = (EVENTS_API,)
