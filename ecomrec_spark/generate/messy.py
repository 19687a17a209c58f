"""Planted defects: which row gets which defect, and how a defect is written.

Each defective row carries exactly one defect.  A row's defect is chosen by
where one hashed uniform falls among disjoint ranges laid end to end
(``[0, r1)`` -> first defect, ``[r1, r1 + r2)`` -> second, ...), so the rows of
each defect are known exactly and counted with the same expressions in the
summary.  A second hashed uniform (the *variant*) picks the flavour of a defect.

Order lines (``olist_order_items_dataset.csv``, rate per line, only lines of
orders whose order row is clean):

=================  ==========================================================
missing_price      price field empty
missing_freight    freight_value field empty
outliers           price multiplied by 20..100 (still a valid number)
duplicates         the exact line written twice, adjacent
malformed          variant < .25: shipping_limit_date dropped (6 fields);
                   < .5: an extra field ``,x`` (8 fields); else a broken quote:
                   ``"<product_id>`` opened and never closed (no other quote
                   follows on that line)
bad_number         price ``"12,34.5x"`` (quoted), ``abc`` or ``12.34.00``
negative_price     price written negative
orphan_fk          variant < .5: product_id of no product (orphan_product);
                   else order_id of no order (orphan_order)
=================  ==========================================================

Orders (``olist_orders_dataset.csv``, rate per order): bad_timestamp (variant
< .5: ``<year>-13-45 25:61:00``, else ``not a date``) and malformed (variant <
.5: order_approved_at dropped, else an extra field ``,x``).

Events (``events/events.csv``, rate per event): malformed (variant < .5: brand
dropped, else an extra field) and bad_timestamp (``<year>-13-45 25:61:00 UTC``
or ``not a date``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from ecomrec_spark.generate.hashing import uniform
from ecomrec_spark.generate.plan import Plan

ITEM_DEFECTS = ("missing_price", "missing_freight", "outliers", "duplicates", "malformed", "bad_number",
                "negative_price", "orphan_fk")
ORDER_DEFECTS = ("bad_timestamp", "malformed")
EVENT_DEFECTS = ("malformed", "bad_timestamp")
ITEM = {name: i + 1 for i, name in enumerate(ITEM_DEFECTS)}
ORDER = {name: i + 1 for i, name in enumerate(ORDER_DEFECTS)}
EVENT = {name: i + 1 for i, name in enumerate(EVENT_DEFECTS)}
# the keys of every file's "planted" block in summary.json
PLANTED_KEYS = ("malformed", "bad_timestamp", "bad_number", "negative_price", "duplicates", "missing_price",
                "missing_freight", "outliers", "orphan_product", "orphan_order")


def _code(u: Column, rates: Sequence[float]) -> Column:
    """1-based index of the range ``u`` falls in, or 0 past the last range."""
    expr = F.lit(0)
    edges, acc = [], 0.0
    for r in rates:
        acc += r
        edges.append(acc)
    for i in reversed(range(len(edges))):
        expr = F.when(u < F.lit(edges[i]), F.lit(i + 1)).otherwise(expr)
    return expr.cast("int")


def item_defect(plan: Plan, o: Column, item: Column) -> Column:
    """Defect code of order line ``(o, item)`` (0 = clean); see :data:`ITEM`."""
    return _code(uniform(plan.seed, "m:item", o, item), [plan.messy[k] for k in ITEM_DEFECTS])


def item_variant(plan: Plan, o: Column, item: Column) -> Column:
    """The uniform that picks the flavour of an order line's defect."""
    return uniform(plan.seed, "m:itemvar", o, item)


def order_defect(plan: Plan, o: Column) -> Column:
    """Defect code of order ``o`` (0 = clean); see :data:`ORDER`."""
    return _code(uniform(plan.seed, "m:order", o), [plan.messy[k] for k in ORDER_DEFECTS])


def order_variant(plan: Plan, o: Column) -> Column:
    """The uniform that picks the flavour of an order row's defect."""
    return uniform(plan.seed, "m:ordervar", o)


def event_defect(plan: Plan, o: Column, e: Column) -> Column:
    """Defect code of event ``e`` of order ``o`` (0 = clean); see :data:`EVENT`."""
    return _code(uniform(plan.seed, "m:event", o, e), [plan.messy[k] for k in EVENT_DEFECTS])


def event_variant(plan: Plan, o: Column, e: Column) -> Column:
    """The uniform that picks the flavour of an event's defect."""
    return uniform(plan.seed, "m:eventvar", o, e)


def bad_timestamp_text(year: Column, variant: Column, suffix: str = "") -> Column:
    """An unparseable timestamp: an impossible date-time or plain text."""
    return F.when(variant < F.lit(0.5), F.concat(year.cast("string"), F.lit("-13-45 25:61:00" + suffix))).otherwise(
        F.lit("not a date"))


def bad_number_text(cents: Column, variant: Column) -> Column:
    """A price that is not a number: ``"12,34.5x"`` (quoted: it holds a comma), ``abc`` or ``12.34.00``."""
    whole = F.floor(cents / F.lit(100.0)).cast("long").cast("string")
    frac = F.lpad(F.pmod(cents, F.lit(100)).cast("string"), 2, "0")
    return (F.when(variant < F.lit(1 / 3), F.concat(F.lit('"'), whole, F.lit(","), frac, F.lit('.5x"')))
            .when(variant < F.lit(2 / 3), F.lit("abc"))
            .otherwise(F.concat(whole, F.lit("."), frac, F.lit(".00"))))
