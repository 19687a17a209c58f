"""REES46-style behaviour events around each order.

Every order has one session (``user_session``) that starts 5-60 minutes
before the purchase: ``n_browse`` views of products the customer would pick
(mostly preferred categories), with probability 0.15 a cart +
``remove_from_cart`` of another such product, a view and a cart event for each
order line, and one ``purchase`` event per order line at the purchase time.  ``n_browse``
is drawn so that a session has about ``events_per_order`` events on average
(never fewer than three per order line).  Events are sorted by time inside
their session; sessions come in order (= time) order, so the file is nearly
sorted by time (sessions of neighbouring orders may overlap by minutes).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecomrec_spark.generate import entities as E
from ecomrec_spark.generate import messy as M
from ecomrec_spark.generate.calendar import DAY, EPOCH, fmt_ts, idiv
from ecomrec_spark.generate.hashing import at, lit_array, uniform
from ecomrec_spark.generate.orders import LINE_COUNT_EDGES
from ecomrec_spark.generate.plan import Plan
from ecomrec_spark.generate.writer import csv_line, money

REMOVE_SHARE = 0.15


def _mean_lines(plan: Plan) -> float:
    e = LINE_COUNT_EDGES
    base = e[0] * 1 + (e[1] - e[0]) * 2 + (e[2] - e[1]) * 3 + (1 - e[2]) * 4
    return base * (1 + E.COMPLEMENT_SHARE * plan.complement_rate)


def n_browse(plan: Plan, o: Column) -> Column:
    """Extra product views of the session of order ``o``."""
    m = max(plan.events_per_order - 3 * _mean_lines(plan) - 2 * REMOVE_SHARE, 0.0)
    return F.floor(uniform(plan.seed, "e:nbrowse", o) * F.lit(2 * m) + F.lit(0.5)).cast("int")


def has_remove(plan: Plan, o: Column) -> Column:
    return uniform(plan.seed, "e:remove", o) < F.lit(REMOVE_SHARE)


def n_events(plan: Plan, o: Column, n_lines: Column) -> Column:
    """Number of events of order ``o`` (without building them)."""
    return n_browse(plan, o) + F.lit(3) * n_lines + F.when(has_remove(plan, o), F.lit(2)).otherwise(F.lit(0))


# event kinds by position in the session
BROWSE, RM_CART, RM_REMOVE, ITEM_VIEW, ITEM_CART, PURCHASE = range(6)
KIND_TYPE = ("view", "cart", "remove_from_cart", "view", "cart", "purchase")


def event_rows(plan: Plan, core: DataFrame) -> DataFrame:
    """One row per event, in session order: ``o, user_id, session, e, kind, t, k, j, lprice``.

    Event ``e`` of a session is, in this order: ``n_browse`` browse views, the optional
    cart + remove pair, a view and a cart per order line, then the purchases.  The
    pre-purchase events get stratified times ``start + dur * (e + u) / n_pre`` (so they
    are already sorted) and purchase ``i`` happens at the purchase time + ``i - 1`` s.
    """
    seed = plan.seed
    o = F.col("o")
    x = core.select(
        o, E.customer_unique_id(plan, F.col("c")).alias("user_id"), session_id(plan, o).alias("session"),
        F.col("purchase_sec"), F.col("pref1"), F.col("pref2"), F.col("level"), F.col("lines"),
        F.col("n_lines"), n_browse(plan, o).alias("nb"),
        F.when(has_remove(plan, o), F.lit(2)).otherwise(F.lit(0)).alias("rm"),
        (F.lit(300) + F.floor(F.lit(3300.0) * uniform(seed, "e:dur", o))).cast("long").alias("dur"))
    nb, rm, nl = F.col("nb"), F.col("rm"), F.col("n_lines")
    n_pre = nb + rm + F.lit(2) * nl
    x = x.withColumn("n_pre", n_pre).withColumn("e", F.explode(F.sequence(F.lit(0), F.col("n_pre") + nl - F.lit(1))))
    e = F.col("e")
    idx = e - nb - rm  # position among the item events
    kind = (F.when(e < nb, F.lit(BROWSE))
            .when(e < nb + rm, F.when(e == nb, F.lit(RM_CART)).otherwise(F.lit(RM_REMOVE)))
            .when(idx < F.lit(2) * nl, F.when(F.pmod(idx, F.lit(2)) == 0, F.lit(ITEM_VIEW)).otherwise(F.lit(ITEM_CART)))
            .otherwise(F.lit(PURCHASE)))
    item = F.when(idx < F.lit(2) * nl, F.floor(idx / F.lit(2.0)).cast("int") + F.lit(1)).otherwise(
        (idx - F.lit(2) * nl + F.lit(1)).cast("int"))
    x = x.withColumns({"kind": kind.cast("int"), "item": F.when(e >= nb + rm, item)})
    kind = F.col("kind")
    # browse views pick with index e; the removed product is pick index -1
    pick_i = F.when(kind == F.lit(BROWSE), e).when(kind < F.lit(ITEM_VIEW), F.lit(-1))
    x = x.withColumn("pick_i", pick_i)
    pi, picked = F.col("pick_i"), F.col("pick_i").isNotNull()
    x = x.withColumns({
        "pk": F.when(picked, E.pick_category(plan, "view", o, pi, F.col("pref1"), F.col("pref2"))),
        "pt": F.when(picked, E.pick_tier(plan, "view", o, pi, F.col("level"))),
        "line": F.when(~picked, F.element_at(F.col("lines"), F.col("item"))),
    })
    x = x.withColumn("pj", F.when(picked, E.pick_slot(plan, "view", o, pi, F.col("pk"), F.col("pt"))))
    start = F.greatest(F.col("purchase_sec") - F.col("dur"), F.lit(plan.layout.day0 * DAY))
    span = (F.col("purchase_sec") - start).cast("double")
    slot = (e.cast("double") + uniform(seed, "e:t", o, e)) / F.col("n_pre").cast("double")
    t_pre = start + F.floor(span * slot).cast("long")
    t = F.when(kind == F.lit(PURCHASE), F.col("purchase_sec") + F.col("item").cast("long") - F.lit(1)).otherwise(t_pre)
    k = F.coalesce(F.col("pk"), F.col("line.k"))
    j = F.coalesce(F.col("pj"), F.col("line.j"))
    return x.select(o, F.col("user_id"), F.col("session"), e, kind, t.alias("t"), k.alias("k"), j.alias("j"),
                    F.col("line.price").alias("lprice"))


def session_id(plan: Plan, o: Column) -> Column:
    """A uuid-shaped session id (8-4-4-4-12 hex)."""
    h = F.md5(F.concat_ws(":", F.lit(str(plan.seed)), F.lit("session"), o.cast("string")))
    return F.concat_ws("-", F.substring(h, 1, 8), F.substring(h, 9, 4), F.concat(F.lit("4"), F.substring(h, 14, 3)),
                       F.substring(h, 17, 4), F.substring(h, 21, 12))


def events_lines(plan: Plan, core: DataFrame) -> DataFrame:
    """events/events.csv lines with the planted event defects."""
    x = event_rows(plan, core)
    o, e = F.col("o"), F.col("e")
    k, j = F.col("k"), F.col("j")
    x = x.withColumns({
        "code": M.event_defect(plan, o, e),
        "var": M.event_variant(plan, o, e),
        "price": F.coalesce(F.col("lprice"), E.product_base_cents(plan, k, j)),
    })
    code, var, ts = F.col("code"), F.col("var"), F.col("t")
    year = F.year(F.date_add(F.lit(EPOCH), idiv(ts, DAY).cast("int")))
    x = x.select(
        code, var,
        F.when(code == F.lit(M.EVENT["bad_timestamp"]), M.bad_timestamp_text(year, var, " UTC")).otherwise(
            F.concat(fmt_ts(ts), F.lit(" UTC"))).alias("f1"),
        at(lit_array(KIND_TYPE), F.col("kind")).alias("f2"),
        E.product_id(plan, k, j).alias("f3"),
        E.event_category_id(k).alias("f4"),
        E.event_category_code(plan, k, j).alias("f5"),
        E.event_brand(plan, k, j).alias("f6"),
        money(F.col("price")).alias("f7"),
        F.col("user_id").alias("f8"),
        F.col("session").alias("f9"),
    )
    fields = [F.col(f"f{i}") for i in range(1, 10)]
    malformed = code == F.lit(M.EVENT["malformed"])
    value = (F.when(malformed & (var < F.lit(0.5)), csv_line(*(fields[:5] + fields[6:])))
             .when(malformed, F.concat(csv_line(*fields), F.lit(",x"))).otherwise(csv_line(*fields)))
    return x.select(value.alias("value"))
