"""The order-level core table and the order, customer, item and payment files.

:func:`order_core` builds one row per order from ``spark.range`` over the
day chunks of the :class:`~ecomrec_spark.generate.calendar.Layout`: the
customer, the purchase time, the order lines (eight scalar line slots packed
into an array of structs), delivery times, status, payment type, the true
review-score probabilities and the planted-defect code.  Every other file is a narrow
projection or ``explode`` of this table, so rows come out in order-number
(= time) order without any sort.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark.generate import entities as E
from ecomrec_spark.generate import messy as M
from ecomrec_spark.generate.calendar import DAY, EPOCH, fmt_midnight, fmt_ts, idiv, time_of_day
from ecomrec_spark.generate.hashing import at, bits_uniform, choice, hash64, hex_id, lit_array, normal, randint, uniform
from ecomrec_spark.generate.plan import Plan
from ecomrec_spark.generate.tables import ORDER_STATUS_SHARES, ORDER_STATUSES, PAYMENT_SHARES, PAYMENT_TYPES
from ecomrec_spark.generate.writer import ZIP_QUOTE_SHARE, csv_line, maybe_quoted, money, money_short

STATUS = {name: i for i, name in enumerate(ORDER_STATUSES)}
PAY = {name: i for i, name in enumerate(PAYMENT_TYPES)}
LINE_COUNT_EDGES = (0.92, 0.98, 0.995)  # P(1 base line) = .92, 2: .06, 3: .015, 4: .005
SAME_PRODUCT_SHARE = 0.35  # a 2nd..4th base line repeats the first product (a quantity)
REPEAT_TRIES = 8
MAX_BASE_LINES = len(LINE_COUNT_EDGES) + 1
# what the writers and the summary read from the (cached) order core
CORE_COLUMNS = ("o", "c", "o_first", "is_first", "cust_city", "pref1", "pref2", "level", "purchase_sec", "status",
                "pay_type", "order_code", "lines", "n_lines", "total_price", "total_freight", "approved_sec",
                "carrier_sec", "delivered_sec", "est_day", "ship_limit_sec", "delay_days", "is_late", "p1", "p2", "p3",
                "p4", "p5", "score", "has_review", "review_dup", "review_day", "answer_sec")
PAYMENT_COUNT_EDGES = (0.955, 0.99)


def order_id(plan: Plan, o: Column) -> Column:
    """The 32-hex order_id of order number ``o``."""
    return hex_id(plan.seed, "order", o)


def customer_id(plan: Plan, o: Column) -> Column:
    """Olist's per-order customer_id."""
    return hex_id(plan.seed, "customer", o)


def status_of(plan: Plan, o: Column) -> Column:
    """Order status index (see ``ORDER_STATUSES``) of order ``o``."""
    return choice(ORDER_STATUS_SHARES, uniform(plan.seed, "o:status", o))


def has_review_of(plan: Plan, o: Column, status: Column) -> Column:
    """~97% of delivered orders and ~80% of the others get a review."""
    share = F.when(status == F.lit(STATUS["delivered"]), F.lit(0.97)).otherwise(F.lit(0.80))
    return uniform(plan.seed, "r:has", o) < share


def n_payments(plan: Plan, o: Column) -> Column:
    """Number of payment rows (1-3) of order ``o``."""
    u = uniform(plan.seed, "pay:n", o)
    first, second = PAYMENT_COUNT_EDGES
    return F.lit(1) + (u >= F.lit(first)).cast("int") + (u >= F.lit(second)).cast("int")


def _perm(plan: Plan, o: Column) -> Column:
    """``(a*o + b) mod N``: a bijection of the order numbers."""
    return F.pmod(o * F.lit(plan.perm_a) + F.lit(plan.perm_b), F.lit(plan.n_orders))


def order_core(spark: SparkSession, plan: Plan) -> DataFrame:
    """One row per order with every value the writers need (:data:`CORE_COLUMNS`).

    Money is in cents, times in epoch seconds, days in epoch days; ``lines`` is
    ``array<struct<item, k, j, s, scity, price, freight>>`` ordered by ``item``;
    ``p1..p5`` are the true review-score probabilities and ``score`` the drawn score.

    Every step is a plain column expression over the previous step's columns (no
    interpreted lambdas), so Spark compiles each projection to small Java methods.
    """
    from ecomrec_spark.generate import reviews as R

    seed, L = plan.seed, plan.layout
    n_chunks = len(L.chunk_first)
    ch = F.col("id")
    first = at(lit_array(L.chunk_first, "long"), ch)
    cnt = at(lit_array(L.chunk_count, "long"), ch)
    df = spark.range(0, n_chunks, 1, max(1, min(plan.partitions, n_chunks))).select(
        at(lit_array(L.chunk_day, "int"), ch).alias("d"),
        F.explode(F.sequence(first, first + cnt - F.lit(1))).alias("o"))
    o, d = F.col("o"), F.col("d")

    # --- time and customer
    pos = ((o - at(lit_array(L.day_first, "long"), d)).cast("double") + uniform(seed, "o:tod", o)) / at(
        lit_array(L.day_count, "long"), d).cast("double")
    df = df.select(o, d, at(lit_array(L.peak, "int"), d).alias("peak"), pos.alias("pos"), _perm(plan, o).alias("q"))
    q = F.col("q")
    returning = randint(seed, "o:repfb", plan.n_customers, o)
    for t in reversed(range(REPEAT_TRIES)):
        qt = _perm(plan, F.floor(uniform(seed, f"o:rep{t}", o) * o.cast("double")).cast("long"))
        returning = F.when(qt < F.lit(plan.n_customers), qt).otherwise(returning)
    df = df.select(
        o, d, "peak",
        ((F.lit(L.day0) + d.cast("long")) * F.lit(DAY) + time_of_day(F.col("pos"))).alias("purchase_sec"),
        (q < F.lit(plan.n_customers)).alias("is_first"),
        F.when(q < F.lit(plan.n_customers), q).otherwise(returning).alias("c"),
    )
    c = F.col("c")
    ul = uniform(seed, "o:nlines", o)
    n_base = F.lit(1)
    for edge in LINE_COUNT_EDGES:
        n_base = n_base + (ul >= F.lit(edge)).cast("int")
    df = df.withColumns({
        "o_first": F.pmod(F.lit(plan.perm_a_inv) * (c - F.lit(plan.perm_b)), F.lit(plan.n_orders)),
        "cust_city": E.customer_city(plan, c),
        "pref1": E.customer_pref1(plan, c),
        "level": E.customer_level(plan, c),
        "grump": E.customer_grumpiness(plan, c),
        "n_base": n_base,
        "status": status_of(plan, o),
        "pay_type": choice(PAYMENT_SHARES, uniform(seed, "pay:type", o)),
        "order_code": M.order_defect(plan, o),
    })
    df = df.withColumn("pref2", E.customer_pref2(plan, c, F.col("pref1")))

    # --- order lines: up to MAX_BASE_LINES base lines, each maybe followed by its complement
    pref1, pref2, level, cust_city = F.col("pref1"), F.col("pref2"), F.col("level"), F.col("cust_city")
    bases = range(1, MAX_BASE_LINES + 1)

    def present(m: int) -> Column:
        return F.col("n_base") >= F.lit(m)

    # pick index: a later base line repeats the first product (same pick index 1) with p=SAME_PRODUCT_SHARE
    def pick_index(m: int) -> Column:
        if m == 1:
            return F.lit(1)
        return F.when(uniform(seed, "o:same", o, F.lit(m)) < F.lit(SAME_PRODUCT_SHARE), F.lit(1)).otherwise(F.lit(m))

    df = df.withColumns({f"ie{m}": F.when(present(m), pick_index(m)) for m in bases})
    df = df.withColumns({name: expr for m in bases for name, expr in (
        (f"k{m}", F.when(present(m), E.pick_category(plan, "line", o, F.col(f"ie{m}"), pref1, pref2))),
        (f"t{m}", F.when(present(m), E.pick_tier(plan, "line", o, F.col(f"ie{m}"), level))))})
    df = df.withColumns({f"j{m}": F.when(present(m), E.pick_slot(plan, "line", o, F.col(f"ie{m}"), F.col(f"k{m}"),
                                                                  F.col(f"t{m}"))) for m in bases})
    # only a present base line brings a complement: an absent line's (k, j) are null, and xxhash64 skips
    # nulls, so has_complement(null, null) is a hash of the seed alone (true for about a third of the seeds)
    df = df.withColumns({f"inc{m}": F.coalesce(
        present(m) & E.has_complement(plan, F.col(f"k{m}"), F.col(f"j{m}"))
        & (uniform(seed, "o:compinc", o, F.lit(m)) < F.lit(plan.complement_rate)), F.lit(False))
        for m in bases})
    df = df.withColumns({f"ck{m}": F.when(F.col(f"inc{m}"), E.complement_category(F.col(f"k{m}"))) for m in bases})
    item_no = [F.lit(1)]
    for m in bases[:-1]:
        item_no.append(item_no[-1] + F.lit(1) + F.col(f"inc{m}").cast("int"))
    df = df.withColumns({
        **{f"cj{m}": F.when(F.col(f"inc{m}"), E.complement_slot(plan, F.col(f"k{m}"), F.col(f"j{m}"), F.col(f"ck{m}")))
           for m in bases},
        **{f"pos{m}": item_no[m - 1].cast("int") for m in bases},
    })
    # eight line slots x: base line m is slot 2m-1, its complement slot 2m
    slot = {}
    for m in bases:
        slot[2 * m - 1] = (F.col(f"pos{m}"), F.col(f"k{m}"), F.col(f"j{m}"), present(m))
        slot[2 * m] = ((F.col(f"pos{m}") + F.lit(1)).cast("int"), F.col(f"ck{m}"), F.col(f"cj{m}"), F.col(f"inc{m}"))
    df = df.withColumns({f"s_{x}": F.when(p, E.product_seller(plan, k, j)) for x, (_, k, j, p) in slot.items()})
    price = {}
    for x, (item, k, j, p) in slot.items():
        noise = F.lit(1.0) + F.lit(0.05) * normal(seed, "l:price", o, item)
        price[f"price_{x}"] = F.when(p, F.greatest(F.round(E.product_base_cents(plan, k, j).cast("double") * noise),
                                                   F.lit(85.0)).cast("long"))
        price[f"w_{x}"] = F.when(p, E.product_weight_g(plan, k, j).cast("double"))
        price[f"scity_{x}"] = F.when(p, E.seller_city(plan, F.col(f"s_{x}")))
    df = df.withColumns(price)
    df = df.withColumns({f"dist_{x}": F.when(p, E.distance_norm(cust_city, F.col(f"scity_{x}")))
                         for x, (_, _, _, p) in slot.items()})
    freight = {}
    for x, (item, _, _, p) in slot.items():
        dist, w = F.col(f"dist_{x}"), F.col(f"w_{x}")
        fr = F.round(F.lit(100.0) * (F.lit(7.5) + F.lit(0.0035) * w * (F.lit(0.6) + dist) + F.lit(9.0) * dist)
                     * F.exp(F.lit(0.1) * normal(seed, "l:freight", o, item)))
        freight[f"freight_{x}"] = F.when(p, F.when(uniform(seed, "l:free", o, item) < F.lit(0.005), F.lit(0.0))
                                         .otherwise(fr).cast("long"))
    df = df.withColumns(freight)
    structs = [F.when(p, F.struct(item.alias("item"), k.cast("int").alias("k"), j.cast("long").alias("j"),
                                  F.col(f"s_{x}").alias("s"), F.col(f"scity_{x}").alias("scity"),
                                  F.col(f"price_{x}").alias("price"), F.col(f"freight_{x}").alias("freight")))
               for x, (item, k, j, p) in slot.items()]
    xs = list(slot)
    df = df.withColumns({
        "lines": F.array_compact(F.array(*structs)),
        "total_price": sum((F.coalesce(F.col(f"price_{x}"), F.lit(0)) for x in xs[1:]), F.col("price_1")),
        "total_freight": sum((F.coalesce(F.col(f"freight_{x}"), F.lit(0)) for x in xs[1:]), F.col("freight_1")),
        "n_lines": sum((F.col(f"inc{m}").cast("int") for m in bases), F.col("n_base")),
        "q_seller": E.seller_quality(plan, F.col("s_1")),
        "dist0": F.col("dist_1"),
        "main_k": F.col("k1"),
    })
    df = df.drop(*[f"{p}{m}" for p in ("ie", "k", "t", "j", "inc", "ck", "cj", "pos") for m in bases],
                 *[f"{p}_{x}" for p in ("s", "price", "w", "scity", "freight", "dist") for x in xs],
                 "n_base")

    # --- delivery
    purchase, status, qs, dist0 = F.col("purchase_sec"), F.col("status"), F.col("q_seller"), F.col("dist0")
    approve_delay = F.when(F.col("pay_type") == F.lit(PAY["boleto"]),
                           F.lit(float(DAY)) * (F.lit(0.4) + F.lit(2.5) * uniform(seed, "o:appr", o))).otherwise(
        F.lit(60.0) + F.lit(1800.0) * -F.log(F.lit(1.0) - uniform(seed, "o:appr", o)))
    approved = F.when((status == F.lit(STATUS["canceled"])) & (uniform(seed, "o:noappr", o) < F.lit(0.5)),
                      F.lit(None).cast("long")).otherwise(purchase + F.floor(approve_delay).cast("long"))
    est_days = F.least(F.greatest(F.round(F.lit(10.0) + F.lit(12.0) * dist0 + F.lit(8.0) * uniform(seed, "o:est", o)),
                                  F.lit(10.0)), F.lit(30.0)).cast("long")
    df = df.withColumns({"approved_sec": approved, "est_days": est_days})
    df = df.withColumn("est_day", idiv(purchase, DAY) + F.col("est_days"))
    approved = F.col("approved_sec")
    shipped = status.isin(STATUS["delivered"], STATUS["shipped"])
    handling = F.lit(0.8) + F.lit(3.5) * uniform(seed, "o:carrier", o) + F.lit(0.6) * F.greatest(-qs, F.lit(0.0))
    carrier = F.when(shipped, approved + F.floor(F.lit(float(DAY)) * handling).cast("long"))
    log_ratio = (F.lit(-0.6) - F.lit(0.18) * qs + F.lit(0.35) * (dist0 - F.lit(0.3)) + F.lit(0.2) * F.col("peak")
                 + F.lit(0.32) * normal(seed, "o:transit", o))
    transit = F.floor(F.exp(log_ratio) * F.col("est_days").cast("double") * F.lit(float(DAY))).cast("long")
    df = df.withColumns({
        "carrier_sec": carrier,
        "transit": transit,
        "ship_limit_sec": F.coalesce(approved, purchase) + F.floor(
            F.lit(float(DAY)) * (F.lit(2.0) + F.lit(5.0) * uniform(seed, "o:shiplimit", o))).cast("long"),
    })
    delivered = F.when(status == F.lit(STATUS["delivered"]), F.greatest(
        purchase + F.col("transit"),
        F.col("carrier_sec") + F.lit(3600) + F.floor(F.lit(43200.0) * uniform(seed, "o:dlv", o)).cast("long")))
    df = df.withColumn("delivered_sec", delivered).drop("transit", "est_days")
    est_sec = F.col("est_day") * F.lit(DAY)
    df = df.withColumns({
        "delay_days": (F.col("delivered_sec") - est_sec).cast("double") / F.lit(float(DAY)),
        "is_late": F.col("delivered_sec") > est_sec,
        "fr_ratio": F.col("total_freight").cast("double") / F.greatest(F.col("total_price"), F.lit(1)).cast("double"),
    })
    return R.with_review_model(plan, df).select(*CORE_COLUMNS)


# ------------------------------------------------------------------ renderers
def orders_lines(plan: Plan, core: DataFrame) -> DataFrame:
    """olist_orders_dataset.csv lines, in order (= time) order."""
    o = F.col("o")
    code, var = F.col("order_code"), M.order_variant(plan, o)
    qh = hash64(plan.seed, "q:order", o)
    purchase = F.col("purchase_sec")
    year = F.year(F.date_add(F.lit(EPOCH), idiv(purchase, DAY).cast("int")))
    purchase_f = F.when(code == F.lit(M.ORDER["bad_timestamp"]), M.bad_timestamp_text(year, var)).otherwise(
        fmt_ts(purchase))
    fields = [maybe_quoted(order_id(plan, o), bits_uniform(qh, 0)),
              maybe_quoted(customer_id(plan, o), bits_uniform(qh, 10)),
              at(lit_array(ORDER_STATUSES), F.col("status")), purchase_f, fmt_ts(F.col("approved_sec")),
              fmt_ts(F.col("carrier_sec")), fmt_ts(F.col("delivered_sec")), fmt_midnight(F.col("est_day"))]
    full = csv_line(*fields)
    malformed = code == F.lit(M.ORDER["malformed"])
    value = (F.when(malformed & (var < F.lit(0.5)), csv_line(*(fields[:4] + fields[5:])))
             .when(malformed, F.concat(full, F.lit(",x"))).otherwise(full))
    return core.select(value.alias("value"))


def customers_lines(plan: Plan, core: DataFrame) -> DataFrame:
    """olist_customers_dataset.csv lines: one per order (Olist's customer_id is per order)."""
    o, c, city = F.col("o"), F.col("c"), F.col("cust_city")
    qh = hash64(plan.seed, "q:customer", o)
    value = csv_line(maybe_quoted(customer_id(plan, o), bits_uniform(qh, 0)),
                     maybe_quoted(E.customer_unique_id(plan, c), bits_uniform(qh, 10)),
                     maybe_quoted(E.customer_zip(plan, c, city), bits_uniform(qh, 20), ZIP_QUOTE_SHARE),
                     E.city_name(city), E.city_state(city))
    return core.select(value.alias("value"))


def item_rows(plan: Plan, core: DataFrame) -> DataFrame:
    """One row per generated order line with its defect code (0 for lines of bad orders)."""
    x = core.select("o", "order_code", "ship_limit_sec", F.explode("lines").alias("l"))
    o, item = F.col("o"), F.col("l.item")
    return x.withColumns({
        "item": item,
        "code": F.when(F.col("order_code") == F.lit(0), M.item_defect(plan, o, item)).otherwise(F.lit(0)),
        "var": M.item_variant(plan, o, item),
    })


def items_lines(plan: Plan, core: DataFrame) -> DataFrame:
    """olist_order_items_dataset.csv lines with the planted order-line defects."""
    seed = plan.seed
    x = item_rows(plan, core)
    o, item, code, var = F.col("o"), F.col("item"), F.col("code"), F.col("var")
    k, j = F.col("l.k"), F.col("l.j")
    price, freight = F.col("l.price"), F.col("l.freight")
    orphan = code == F.lit(M.ITEM["orphan_fk"])
    malformed = code == F.lit(M.ITEM["malformed"])
    # staged projections keep each generated expression small (and each value computed once)
    x = x.select(o, item, code, var, F.col("ship_limit_sec"), F.col("l.s").alias("s"), price.alias("price"),
                 freight.alias("freight"), hash64(seed, "q:item", o, item).alias("qh"),
                 F.when(orphan & (var >= F.lit(0.5)), hex_id(seed, "orphan_order", o, item)).otherwise(
                     order_id(plan, o)).alias("oid"),
                 F.when(orphan & (var < F.lit(0.5)), hex_id(seed, "orphan_product", o, item)).otherwise(
                     E.product_id(plan, k, j)).alias("pid"))
    price, freight, qh = F.col("price"), F.col("freight"), F.col("qh")
    price_f = (F.when(code == F.lit(M.ITEM["missing_price"]), F.lit(""))
               .when(code == F.lit(M.ITEM["outliers"]),
                     money(price * (F.lit(20) + randint(seed, "m:outlier", 81, o, item))))
               .when(code == F.lit(M.ITEM["bad_number"]), M.bad_number_text(price, var))
               .when(code == F.lit(M.ITEM["negative_price"]), money(-price))
               .otherwise(money(price)))
    x = x.select(
        code, var,
        maybe_quoted(F.col("oid"), bits_uniform(qh, 0)).alias("f1"),
        item.cast("string").alias("f2"),
        F.when(malformed & (var >= F.lit(0.5)), F.concat(F.lit('"'), F.col("pid"))).otherwise(
            maybe_quoted(F.col("pid"), bits_uniform(qh, 10))).alias("f3"),
        # after a broken quote no other quote may follow on the line (it would close it)
        F.when(malformed & (var >= F.lit(0.5)), E.seller_id(plan, F.col("s"))).otherwise(
            maybe_quoted(E.seller_id(plan, F.col("s")), bits_uniform(qh, 20))).alias("f4"),
        fmt_ts(F.col("ship_limit_sec")).alias("f5"),
        price_f.alias("f6"),
        F.when(code == F.lit(M.ITEM["missing_freight"]), F.lit("")).otherwise(money(freight)).alias("f7"),
    )
    fields = [F.col(f"f{i}") for i in range(1, 8)]
    x = x.select(code, var, csv_line(*fields).alias("full"), csv_line(*(fields[:4] + fields[5:])).alias("short"))
    value = (F.when(malformed & (var < F.lit(0.25)), F.col("short"))
             .when(malformed & (var < F.lit(0.5)), F.concat(F.col("full"), F.lit(",x")))
             .otherwise(F.col("full")))
    x = x.select(code, value.alias("value"))
    copies = F.when(code == F.lit(M.ITEM["duplicates"]), F.array(F.col("value"), F.col("value"))).otherwise(
        F.array(F.col("value")))
    return x.select(F.explode(copies).alias("value"))


def payment_rows(plan: Plan, core: DataFrame) -> DataFrame:
    """One row per payment: 1-3 per order, values summing exactly to the order total."""
    seed = plan.seed
    o = F.col("o")
    n = n_payments(plan, o)
    total = F.col("total_price") + F.col("total_freight")
    def share(lo: float, width: float, salt: str) -> Column:
        return F.floor(total.cast("double") * (F.lit(lo) + F.lit(width) * uniform(seed, salt, o))).cast("long")

    v2 = F.when(n >= F.lit(2), share(0.1, 0.4, "pay:v2")).otherwise(F.lit(0).cast("long"))
    v3 = F.when(n >= F.lit(3), share(0.05, 0.2, "pay:v3")).otherwise(F.lit(0).cast("long"))
    pay_type = F.col("pay_type")
    card = F.when(uniform(seed, "pay:inst1", o) < F.lit(0.5), F.lit(1)).otherwise(
        F.lit(2) + randint(seed, "pay:inst2", 9, o))
    inst = F.when(pay_type == F.lit(PAY["credit_card"]), card).otherwise(F.lit(1)).cast("int")
    rows = F.array(
        F.struct(F.lit(1).alias("seq"), at(lit_array(PAYMENT_TYPES), pay_type).alias("type"), inst.alias("inst"),
                 (total - v2 - v3).alias("value")),
        F.struct(F.lit(2).alias("seq"), F.lit("voucher").alias("type"), F.lit(1).alias("inst"), v2.alias("value")),
        F.struct(F.lit(3).alias("seq"), F.lit("voucher").alias("type"), F.lit(1).alias("inst"), v3.alias("value")),
    )
    return core.select(o, F.explode(F.slice(rows, 1, n)).alias("p"))


def payments_lines(plan: Plan, core: DataFrame) -> DataFrame:
    """olist_order_payments_dataset.csv lines (unquoted, like the real file)."""
    p = F.col("p")
    value = csv_line(order_id(plan, F.col("o")), p["seq"].cast("string"), p["type"], p["inst"].cast("string"),
                     money_short(p["value"]))
    return payment_rows(plan, core).select(value.alias("value"))
