"""Recommender inputs for lakes without order lines: purchase-like lines and a catalogue from events or reviews.

Every recommender reads *order lines* (:func:`~.interactions.purchases`) and a
*catalogue* (``silver/products``).  Two sources the ingest accepts have no
order lines:

- **Amazon-format reviews** (``ingest.sources=[amazon]``): ``silver/reviews``
  with ``customer_id, product_id, review_score, review_ts`` and no ``order_id``.
  A review is evidence of a purchase: :func:`lines_from_reviews` turns each one
  into one line (``order_id`` = the review id, quantity 1, at ``review_ts``,
  no price).  The score enters the interaction weight separately, through the
  ``reviews`` input of :func:`~.interactions.build_interactions`, which joins
  reviews carrying ``customer_id + product_id`` directly: a review adds
  ``purchase_weight`` (from its line) plus ``review_weight x (score - 3)``
  (from the review), so a 5-star review weighs more than a 1-star one and
  nothing is counted twice.
- **REES46 behaviour events only** (``ingest.sources=[events]``): ``silver/events``
  and no products.  :func:`lines_from_events` turns purchase events into lines
  (``order_id`` = the session id, price from the event, category from
  ``category_code`` or else ``category_id``); :func:`catalogue_from_events`
  builds the product table.  Those purchase events must then be left out of
  the ``events`` given to ``build_interactions`` (:func:`events_without`), or
  each purchase would count twice (once as a line, once as an event).

Everything here is a pure ``DataFrame -> DataFrame`` function; choosing which
to apply for a lake is :func:`ecomrec_spark.recommend.run.load_inputs`.

Example
-------
>>> lines = lines_from_events(events).unionByName(lines_from_reviews(reviews, products))  # doctest: +SKIP
>>> events = events_without(events)          # the purchase events now live in ``lines``  # doctest: +SKIP
>>> catalogue = catalogue_from_events(events)                                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecomrec_spark import columns as C

log = logging.getLogger(__name__)

# The order-line columns the recommenders read (interactions.purchases, popularity, rules, content), in order.
LINE_COLUMNS = [C.CUSTOMER_ID, C.PRODUCT_ID, C.ORDER_ID, C.ORDER_TS, C.QUANTITY, C.PRICE, C.CATEGORY, C.REGION,
                C.ORDER_STATUS]
CATALOGUE_COLUMNS = [C.PRODUCT_ID, C.CATEGORY, "brand", "title", "description"]
PURCHASE_EVENTS = ("purchase",)
REVIEWED = "reviewed"  # order_status of a line derived from a review


def _str(name: str, df: DataFrame) -> Column:
    """``df[name]`` as a string, or a null string when the column is missing."""
    return F.col(name).cast("string") if name in df.columns else F.lit(None).cast("string")


def event_category(events: DataFrame) -> Column:
    """A product's category from an event: the top level of ``category_code``, else ``category_id``, else unknown.

    Silver events already carry ``category`` (the first ``category_code`` level
    or ``'unknown'``); REES46 leaves ``category_code`` empty for many products,
    and their numeric ``category_id`` is a better category than ``'unknown'``.
    """
    cat = _str(C.CATEGORY, events)
    named = F.when(cat.isNotNull() & (cat != F.lit(C.UNKNOWN_CATEGORY)) & (F.trim(cat) != ""), cat)
    code = F.get(F.split(_str("category_code", events), r"\."), 0)
    return F.coalesce(named, F.when(F.trim(code) != "", code), _str("category_id", events), F.lit(C.UNKNOWN_CATEGORY))


def lines_from_events(events: DataFrame, event_types: Sequence[str] = PURCHASE_EVENTS) -> DataFrame:
    """One purchase-like order line per event of ``event_types`` (default: purchase events).

    Parameters
    ----------
    events : DataFrame
        Silver events: ``user_id, product_id, event_type, event_ts, price, session_id``
        and optionally ``category, category_code, category_id``.
    event_types : sequence of str
        The event types that count as purchases (case-insensitive).  ``["cart"]``
        is the fallback for a shop whose log has no purchase events.

    Returns
    -------
    DataFrame
        :data:`LINE_COLUMNS`: ``customer_id`` = ``user_id``, ``order_id`` = the
        session id (a session's purchases are one basket), ``order_ts`` =
        ``event_ts``, quantity 1 (REES46 logs one event per unit), the event's
        price, :func:`event_category`, ``region`` null and ``order_status`` the
        event type.  Events without a user or product are dropped.

    Example
    -------
    >>> lines_from_events(events).select("customer_id", "order_id", "price").show()  # doctest: +SKIP
    +-----------+--------+------+
    |customer_id|order_id| price|
    |         u1|      s1|130.76|
    """
    kinds = [k.lower() for k in event_types]
    if not kinds:
        raise ValueError("event_types must name at least one event type, e.g. ['purchase']")
    session = _str(C.SESSION_ID, events) if C.SESSION_ID in events.columns else _str("user_session", events)
    return (events.where(F.lower(F.col(C.EVENT_TYPE)).isin(kinds) & F.col(C.USER_ID).isNotNull()
                         & F.col(C.PRODUCT_ID).isNotNull())
            .select(F.col(C.USER_ID).cast("string").alias(C.CUSTOMER_ID),
                    F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID),
                    session.alias(C.ORDER_ID), F.col(C.EVENT_TS).cast("timestamp").alias(C.ORDER_TS),
                    F.lit(1).alias(C.QUANTITY), F.col(C.PRICE).cast("double").alias(C.PRICE),
                    event_category(events).alias(C.CATEGORY), F.lit(None).cast("string").alias(C.REGION),
                    F.lower(F.col(C.EVENT_TYPE)).alias(C.ORDER_STATUS)))


def events_without(events: DataFrame, event_types: Sequence[str] = PURCHASE_EVENTS) -> DataFrame:
    """The events minus those of ``event_types``: what is left once :func:`lines_from_events` made them lines.

    ``build_interactions`` adds ``purchase_weight`` per line *and*
    ``event_weights[type]`` per event, so an event that became a line must not
    also stay an event.

    Example
    -------
    >>> events_without(events).select("event_type").distinct().show()  # doctest: +SKIP
    """
    return events.where(~F.lower(F.col(C.EVENT_TYPE)).isin([k.lower() for k in event_types]))


def lines_from_reviews(reviews: DataFrame, products: DataFrame | None = None) -> DataFrame:
    """One purchase-like order line per review that names its customer and product.

    A review is taken as evidence that the reviewer bought the product at
    ``review_ts``; its score is *not* used here (it weights the interaction via
    ``build_interactions(reviews=...)``, see the module docstring).

    Parameters
    ----------
    reviews : DataFrame
        Silver reviews: ``review_id, customer_id, product_id, review_ts`` and
        ``order_id`` (null for Amazon).  Rows without customer or product are dropped.
    products : DataFrame, optional
        ``product_id, category``: the line's category (``'unknown'`` without it).

    Returns
    -------
    DataFrame
        :data:`LINE_COLUMNS`: ``order_id`` = the review's ``order_id`` or else
        its ``review_id``, ``order_ts`` = ``review_ts``, quantity 1, price null
        (reviews carry none), ``order_status`` ``'reviewed'``.

    Example
    -------
    >>> lines_from_reviews(reviews, products).select("order_id", "order_ts").show()  # doctest: +SKIP
    """
    out = (reviews.where(F.col(C.CUSTOMER_ID).isNotNull() & F.col(C.PRODUCT_ID).isNotNull())
           .select(F.col(C.CUSTOMER_ID).cast("string").alias(C.CUSTOMER_ID),
                   F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID),
                   F.coalesce(_str(C.ORDER_ID, reviews), _str(C.REVIEW_ID, reviews)).alias(C.ORDER_ID),
                   F.col(C.REVIEW_TS).cast("timestamp").alias(C.ORDER_TS), F.lit(1).alias(C.QUANTITY),
                   F.lit(None).cast("double").alias(C.PRICE)))
    if products is not None and C.CATEGORY in products.columns:
        cats = products.select(C.PRODUCT_ID, F.col(C.CATEGORY).alias("_cat")).dropDuplicates([C.PRODUCT_ID])
        out = out.join(cats, C.PRODUCT_ID, "left")
    else:
        out = out.withColumn("_cat", F.lit(None).cast("string"))
    return out.select(C.CUSTOMER_ID, C.PRODUCT_ID, C.ORDER_ID, C.ORDER_TS, C.QUANTITY, C.PRICE,
                      F.coalesce(F.col("_cat"), F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY),
                      F.lit(None).cast("string").alias(C.REGION), F.lit(REVIEWED).alias(C.ORDER_STATUS))


def catalogue_from_events(events: DataFrame) -> DataFrame:
    """One catalogue row per product seen in the events (any event type).

    Each attribute is the product's most recent non-empty value: category
    (:func:`event_category`), ``brand``, and ``title`` = ``category_code`` with
    the dots as spaces (``electronics.audio.headphone`` -> ``electronics audio
    headphone``: the only product text REES46 has, which the ``content`` model
    reads).  ``description`` is null.

    Returns
    -------
    DataFrame
        :data:`CATALOGUE_COLUMNS`, one row per ``product_id``.

    Example
    -------
    >>> catalogue_from_events(events).where("product_id = '1004856'").show()  # doctest: +SKIP
    +----------+-----------+-------+---------------------+-----------+
    |product_id|   category|  brand|                title|description|
    |   1004856|electronics|samsung|electronics smartphone|       null|
    """
    def latest(value: Column) -> Column:
        v = F.when(F.trim(value) != "", value)
        return F.max_by(v, F.when(v.isNotNull(), F.col(C.EVENT_TS)))

    return (events.where(F.col(C.PRODUCT_ID).isNotNull())
            .select(F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID), F.col(C.EVENT_TS),
                    event_category(events).alias("_cat"), _str("brand", events).alias("_brand"),
                    F.regexp_replace(_str("category_code", events), r"\.", " ").alias("_title"))
            .groupBy(C.PRODUCT_ID)
            .agg(F.coalesce(latest(F.col("_cat")), F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY),
                 F.lower(latest(F.col("_brand"))).alias("brand"), latest(F.col("_title")).alias("title"))
            .withColumn("description", F.lit(None).cast("string"))
            .select(*CATALOGUE_COLUMNS))


def catalogue_from_lines(lines: DataFrame) -> DataFrame:
    """The minimal catalogue when a lake has neither ``silver/products`` nor events: id and category only.

    The category is the most frequent one on the product's lines (ties: the
    smallest name), ``'unknown'`` when none.

    Example
    -------
    >>> catalogue_from_lines(lines_from_reviews(reviews)).show()  # doctest: +SKIP
    """
    counts = (lines.where(F.col(C.PRODUCT_ID).isNotNull())
              .groupBy(F.col(C.PRODUCT_ID).cast("string").alias(C.PRODUCT_ID), F.col(C.CATEGORY))
              .agg(F.count(F.lit(1)).alias("_n")))
    best = F.min_by(F.col(C.CATEGORY), F.struct(-F.col("_n"), F.col(C.CATEGORY)))
    return (counts.groupBy(C.PRODUCT_ID).agg(F.coalesce(best, F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY))
            .select(C.PRODUCT_ID, C.CATEGORY, *[F.lit(None).cast("string").alias(c) for c in CATALOGUE_COLUMNS[2:]]))


def nothing_to_recommend(lake: str, has_events: bool, has_reviews: bool) -> ValueError:
    """The error for a lake with no order lines, no purchase/cart events and no usable reviews.

    It names each missing (or unusable) table and the ``ingest.sources`` entry
    that writes it.
    """
    why = ["no silver/order_lines or gold/order_features (written for ingest.sources olist or transactions)",
           "silver/events has no purchase or cart events with a user" if has_events
           else "no silver/events (ingest.sources events)",
           "silver/reviews has no review with both customer_id and product_id" if has_reviews
           else "no silver/reviews with customer and product ids (ingest.sources amazon)"]
    return ValueError(f"nothing to recommend from in {lake}: " + "; ".join(why)
                      + ". Add one of those sources to ingest.sources (and its files under paths.raw), "
                        "then run ingest and transform.")
