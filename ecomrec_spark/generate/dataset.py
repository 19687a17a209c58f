"""Generate a synthetic Olist + REES46 dataset with known structure and planted defects.

Entry point: :func:`generate_dataset` ``(spark, out_dir, settings) -> summary``.

All row-level data is computed by Spark from ``spark.range`` and built-in
functions; every random number is a hash of ``(seed, salt, row key)`` (see
:mod:`~ecomrec_spark.generate.hashing`), so the same seed gives byte-identical
CSV files whatever the number of partitions, and the files are written in
generation order without a global sort (only the product, seller and complement
files are sorted by id).  Whole-stage code generation is switched off for the
duration of the run (and restored after): the generator's wide projections are
compiled per operator instead.

Planted structure
-----------------
Calendar
    Orders fall between ``start_date`` and ``end_date``.  Day weights combine a
    linear growth trend (x0.7 -> x1.3), a weekly cycle (Monday/Tuesday x1.10,
    Saturday x0.80, Sunday x0.85), Black-Friday week (Monday before it to Cyber
    Monday x1.9, Black Friday itself x4), December x1.35 (x0.8 on 23-25 Dec,
    x0.95 after Christmas) and +-8% hashed daily noise.  Days get contiguous
    blocks of order numbers by the inverse CDF of these weights at the
    stratified points ``(o + 0.5)/N``; within a day the time of day is monotone
    in the order number, quiet around 04:00 and busiest around 16:00.  Order
    numbers are therefore in time order.
Customers
    ``n_customers`` distinct ``customer_unique_id`` (default ``round(orders *
    (1 - repeat_rate))``).  An affine permutation ``q = (a*o + b) mod N`` makes
    order ``o`` the first order of customer ``q`` when ``q < n_customers``;
    all other orders (exactly a share ``repeat_rate`` by default) are repeat
    orders of a customer whose first order is an earlier order (hashed tries,
    rare fallback: any customer).  Every order has its own ``customer_id`` row
    in the customers file, as in Olist.  Each customer has 1 or 2 (50%)
    preferred categories, a price level low/mid/high (35/45/20%), a
    "grumpiness" ~ N(0,1) and a city (all 27 states; SP ~45%, RJ ~15%, MG ~9%)
    with a zip prefix.  Categorical draws use a quantized inverse-CDF table
    (8,192 buckets) built on the driver.
    Truth: ``_truth/customer_prefs`` (parquet).
Products
    ``n_products`` (default ``max(50, orders // 6)``, at least 3 per category)
    in 20 real Olist categories, split by category share.  Within a category
    slot ``j`` has price tier ``j mod 3`` (log-price offset -0.6/0/+0.6 from the
    category median, x lognormal(0.3)) and popularity rank ``j div 3``.  A line
    picks its category from the buyer's preferred ones with p=0.8 (else by
    category share), the buyer's price tier with p=0.6, then a Zipf rank
    (``P(r) ~ 1/(r+1)``) inside (category, tier): a power-law popularity.
    Each product has one seller (``n_sellers``, default ``max(10, products //
    10)``; sellers specialise by category, a few sell a lot) and a weight.
Complements
    35% of the catalogue has a complement: a popular product of a fixed related
    category in the same price tier.  Each order line whose product has one
    adds the complement as the next line with probability ``complement_rate``.
    Truth: ``_truth/complements.csv``.
Order lines
    1-4 base lines (92/6/1.5/0.5%), a later line repeating the first product
    with p=0.35 (a quantity), plus complements: mean about 1.165 lines.
    Price = product base price x (1 + 0.05 N(0,1)); freight grows with weight
    and customer-seller distance and is 0 for 0.5% of lines.
Delivery
    Estimated date = purchase day + 10..30 days (longer for far sellers);
    approved = purchase + minutes (boleto: 0.4-2.9 days); carrier = approved +
    0.8-4.3 days (+ more for bad sellers); delivered = purchase + estimated days
    x exp(-0.5 - 0.18 quality + 0.35 (distance - 0.3) + 0.2 peak + 0.32 N(0,1)),
    so about 8% arrive late, more from bad or distant sellers and in peak
    season.  Status: delivered 97%, shipped 1.1%, canceled 0.7%, invoiced and
    processing 0.6% each (no delivered date; canceled half without approval).
Reviews
    An ordered-logit score model driven mainly by lateness (see
    :mod:`~ecomrec_spark.generate.reviews`); about 77% of scores are 4 or 5 and
    late orders average far lower.  97% of delivered (80% of other) orders have
    a review, created at midnight 1-3 days after delivery and answered hours
    later; 40% have a message (12% a title) with commas, doubled quotes and
    CRLF inside.  3% of returning customers' reviewed orders reuse the
    review_id of the customer's first order (a real Olist quirk).  Truth:
    ``_truth/review_probs`` with ``p1..p5`` per order; ``bayes_accuracy`` in the
    summary is the mean of ``max_k p_k`` over reviewed orders.
Payments
    1-3 rows (95.5/3.5/1%), first type credit_card/boleto/voucher/debit_card
    (74/19.5/4.5/2%), later rows voucher; values in cents sum to the order total.
Geolocation
    1-5 points (lat/lng around the city centre) per zip prefix of the zip universe.
Events
    See :mod:`~ecomrec_spark.generate.events`.
Defects
    See :mod:`~ecomrec_spark.generate.messy`; lines of orders whose order row is
    defective carry no defect and are counted as ``order_items_of_bad_orders``.

Output (under ``out_dir``): ``olist/*.csv`` (9 files in the real Olist
formats), ``events/events.csv``, ``_truth/summary.json``,
``_truth/review_probs/``, ``_truth/customer_prefs/`` (parquet) and
``_truth/complements.csv``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark.generate import entities as E
from ecomrec_spark.generate import messy as M
from ecomrec_spark.generate.events import events_lines, n_events
from ecomrec_spark.generate.orders import (
    customers_lines,
    item_rows,
    items_lines,
    n_payments,
    order_core,
    orders_lines,
    payments_lines,
)
from ecomrec_spark.generate.plan import Plan, build_plan
from ecomrec_spark.generate.reviews import review_truth, reviews_lines
from ecomrec_spark.generate.settings import Generate
from ecomrec_spark.generate.tables import N_CATEGORIES
from ecomrec_spark.generate.writer import write_lines, write_parquet_dir, write_small_text

log = logging.getLogger(__name__)

Q = '"'
HEADERS = {
    "olist_customers_dataset.csv": ["customer_id", "customer_unique_id", "customer_zip_code_prefix", "customer_city",
                                    "customer_state"],
    "olist_geolocation_dataset.csv": ["geolocation_zip_code_prefix", "geolocation_lat", "geolocation_lng",
                                      "geolocation_city", "geolocation_state"],
    "olist_order_items_dataset.csv": ["order_id", "order_item_id", "product_id", "seller_id", "shipping_limit_date",
                                      "price", "freight_value"],
    "olist_order_payments_dataset.csv": ["order_id", "payment_sequential", "payment_type", "payment_installments",
                                         "payment_value"],
    "olist_order_reviews_dataset.csv": ["review_id", "order_id", "review_score", "review_comment_title",
                                        "review_comment_message", "review_creation_date", "review_answer_timestamp"],
    "olist_orders_dataset.csv": ["order_id", "customer_id", "order_status", "order_purchase_timestamp",
                                 "order_approved_at", "order_delivered_carrier_date", "order_delivered_customer_date",
                                 "order_estimated_delivery_date"],
    "olist_products_dataset.csv": ["product_id", "product_category_name", "product_name_lenght",
                                   "product_description_lenght", "product_photos_qty", "product_weight_g",
                                   "product_length_cm", "product_height_cm", "product_width_cm"],
    "olist_sellers_dataset.csv": ["seller_id", "seller_zip_code_prefix", "seller_city", "seller_state"],
    "product_category_name_translation.csv": ["product_category_name", "product_category_name_english"],
    "events.csv": ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                   "user_id", "user_session"],
}
UNQUOTED_HEADER = {"olist_order_payments_dataset.csv", "product_category_name_translation.csv", "events.csv"}
CRLF_FILES = {"olist_order_reviews_dataset.csv"}
# The generator's projections are wide; whole-stage code generation would fuse them into
# one Java method beyond the JVM's 64 KB limit (Spark then falls back after logging an
# error).  Per-operator generated projections are split into small methods instead.
GENERATE_CONF = {"spark.sql.codegen.wholeStage": "false"}
_SCALE = 1_000_000_000  # max_k p_k is summed as an integer number of 1e-9 for an order-independent total


def header_line(name: str) -> str:
    """The exact header line of a generated file, with its line end."""
    cols = HEADERS[name]
    text = ",".join(cols) if name in UNQUOTED_HEADER else ",".join(f"{Q}{c}{Q}" for c in cols)
    return text + ("\r\n" if name in CRLF_FILES else "\n")


def _local_dir(out_dir: str) -> Path:
    uri = str(out_dir)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    elif "://" in uri:
        raise ValueError(
            f"generate writes local files, but out_dir={out_dir!r} is a URI; pass a local folder "
            "(e.g. ./data/generated) and copy it afterwards (aws s3 sync ./data/generated s3://bucket/raw/)")
    return Path(uri).expanduser().resolve()


def _check_local_master(spark: SparkSession) -> None:
    try:
        master = spark.conf.get("spark.master", None)
    except Exception:  # noqa: BLE001 - Spark Connect may not expose it
        master = None
    if master and not str(master).startswith("local"):
        raise ValueError(f"generate concatenates Spark's part files on the driver, so it needs a local master "
                         f"(got spark.master={master}); run it with --set spark.master=local[*]")


def _count_if(cond: F.Column) -> F.Column:
    return F.sum(F.when(cond, F.lit(1)).otherwise(F.lit(0))).cast("long")


def _summary_counts(plan: Plan, core: DataFrame) -> dict[str, int]:
    """Every count of the summary: three Spark aggregations (orders, order lines, events),
    each collected as one row."""
    o = F.col("o")
    reviewed = F.col("has_review")
    maxp = F.greatest(*[F.col(f"p{k}") for k in range(1, 6)])
    maxp_int = F.round(maxp * F.lit(float(_SCALE))).cast("long")
    good = F.col("order_code") == F.lit(0)
    aggs = {
        "orders": F.count(F.lit(1)),
        "orders_bad_timestamp": _count_if(F.col("order_code") == F.lit(M.ORDER["bad_timestamp"])),
        "orders_malformed": _count_if(F.col("order_code") == F.lit(M.ORDER["malformed"])),
        "lines": F.sum("n_lines").cast("long"),
        "lines_of_bad_orders": F.sum(F.when(good, F.lit(0)).otherwise(F.col("n_lines"))).cast("long"),
        "payments": F.sum(n_payments(plan, o)).cast("long"),
        "reviews": _count_if(reviewed),
        **{f"score_{k}": _count_if(reviewed & (F.col("score") == F.lit(k))) for k in range(1, 6)},
        "maxp_reviewed": F.sum(F.when(reviewed, maxp_int).otherwise(F.lit(0))).cast("long"),
        "maxp_all": F.sum(maxp_int).cast("long"),
        "events": F.sum(n_events(plan, o, F.col("n_lines"))).cast("long"),
        "repeat_orders": _count_if(~F.col("is_first")),
        "late_orders": _count_if(F.col("is_late")),
        "delivered_orders": _count_if(F.col("delivered_sec").isNotNull()),
        "duplicate_review_ids": _count_if(F.col("review_dup")),
    }
    out = _collect(core.agg(*[expr.alias(name) for name, expr in aggs.items()]))
    code, var = F.col("code"), F.col("var")
    orphan = code == F.lit(M.ITEM["orphan_fk"])
    item_aggs = {f"item_{name}": _count_if(code == F.lit(M.ITEM[name]))
                 for name in M.ITEM_DEFECTS if name != "orphan_fk"}
    item_aggs["item_orphan_product"] = _count_if(orphan & (var < F.lit(0.5)))
    item_aggs["item_orphan_order"] = _count_if(orphan & (var >= F.lit(0.5)))
    out.update(_collect(item_rows(plan, core).agg(*[expr.alias(name) for name, expr in item_aggs.items()])))
    ev = core.select(o, F.explode(F.sequence(F.lit(0), n_events(plan, o, F.col("n_lines")) - F.lit(1))).alias("e"))
    ecode = M.event_defect(plan, o, F.col("e"))
    out.update(_collect(ev.agg(*[_count_if(ecode == F.lit(M.EVENT[name])).alias(f"event_{name}")
                                 for name in M.EVENT_DEFECTS])))
    return out


def _collect(df: DataFrame) -> dict[str, int]:
    row = df.collect()[0]
    return {k: int(row[k] or 0) for k in df.columns}


def _planted(**counts: int) -> dict[str, int]:
    out = {k: 0 for k in M.PLANTED_KEYS}
    out.update(counts)
    return out


def generate_dataset(spark: SparkSession, out_dir: str, settings: Generate | Mapping[str, Any] | None
                     ) -> dict[str, Any]:
    """Generate the synthetic dataset under ``out_dir`` and return its summary.

    Parameters
    ----------
    spark : an active SparkSession with a local master (ANSI mode is fine).
    out_dir : a local folder (``file://`` allowed); existing generated files are replaced.
    settings : the config's ``generate`` section (:class:`ecomrec_spark.generate.settings.Generate`, or a mapping it
        validates: missing keys take its defaults), ``None`` counts are derived from ``orders``.

    Returns
    -------
    dict
        The summary also written to ``<out_dir>/_truth/summary.json``: exact record,
        physical-line and planted-defect counts per file, entity counts, the review
        score shares and the Bayes-optimal review-score accuracy.  The returned dict
        also holds ``out_dir`` (left out of the file, which must not depend on the path).

    Raises
    ------
    ValueError
        If ``out_dir`` is not local, the master is not local, or a setting is invalid.
    """
    root = _local_dir(out_dir)
    plan = build_plan(settings)
    _check_local_master(spark)
    t0 = time.perf_counter()
    olist, events_dir, truth = root / "olist", root / "events", root / "_truth"
    work = root / ".generate-tmp"
    for folder in (olist, events_dir, truth):
        folder.mkdir(parents=True, exist_ok=True)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log.info("generating %d orders (seed %d, %d customers, %d products, %d sellers, %d partitions) into %s",
             plan.n_orders, plan.seed, plan.n_customers, plan.n_products, plan.n_sellers, plan.partitions, root)
    physical: dict[str, int] = {}
    with _conf(spark, GENERATE_CONF):
        # computed once, then projected by every writer; the cache keeps partitions and row order
        core = order_core(spark, plan).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts, n_geo = _write_all(spark, plan, core, olist, events_dir, truth, work, physical)
        finally:
            core.unpersist()
            shutil.rmtree(work, ignore_errors=True)

    summary = _build_summary(plan, counts, physical, n_geo)
    tmp = truth / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, truth / "summary.json")
    log.info("generated %d orders, %d order lines, %d events in %.1fs", plan.n_orders, counts["lines"],
             counts["events"], time.perf_counter() - t0)
    return {**summary, "out_dir": str(root)}


def _write_all(spark: SparkSession, plan: Plan, core: DataFrame, olist: Path, events_dir: Path, truth: Path,
               work: Path, physical: dict[str, int]) -> tuple[dict[str, int], int]:
    """Write every file (physical line counts go into ``physical``); return the summary counts."""
    def write(name: str, df: DataFrame, folder: Path = olist) -> None:
        t = time.perf_counter()
        physical[name] = write_lines(df, folder / name, header_line(name), work)
        log.info("%s: %.1fs", name, time.perf_counter() - t)

    write("olist_orders_dataset.csv", orders_lines(plan, core))
    write("olist_customers_dataset.csv", customers_lines(plan, core))
    write("olist_order_items_dataset.csv", items_lines(plan, core))
    write("olist_order_payments_dataset.csv", payments_lines(plan, core))
    write("olist_order_reviews_dataset.csv", reviews_lines(plan, core))
    write("events.csv", events_lines(plan, core), events_dir)
    write("olist_products_dataset.csv", E.products_lines(spark, plan))
    write("olist_sellers_dataset.csv", E.sellers_lines(spark, plan))
    write("olist_geolocation_dataset.csv", E.geolocation_lines(spark, plan))
    name = "product_category_name_translation.csv"
    physical[name] = write_small_text(olist / name, E.translation_text(), bom=True)
    physical["complements.csv"] = write_lines(E.complements_lines(spark, plan), truth / "complements.csv",
                                              "product_id,complement_product_id\n", work)
    write_parquet_dir(review_truth(plan, core), truth / "review_probs", work, plan.n_orders)
    write_parquet_dir(E.customer_prefs(spark, plan), truth / "customer_prefs", work, plan.n_customers)
    counts = _summary_counts(plan, core)
    # one record per line in this file (no embedded line breaks), so the copy's line count is exact
    n_geo = physical["olist_geolocation_dataset.csv"] - 1
    return counts, n_geo


@contextmanager
def _conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Set session settings for the duration of the block, then restore them."""
    old = {k: spark.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for key, was in old.items():
            if was is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, was)


def _build_summary(plan: Plan, c: dict[str, int], physical: dict[str, int], n_geo: int) -> dict[str, Any]:
    items_planted = _planted(**{k: c[f"item_{k}"] for k in M.ITEM_DEFECTS if k != "orphan_fk"},
                             orphan_product=c["item_orphan_product"], orphan_order=c["item_orphan_order"])
    records = {
        "olist_customers_dataset.csv": c["orders"],
        "olist_geolocation_dataset.csv": n_geo,
        "olist_order_items_dataset.csv": c["lines"] + c["item_duplicates"],
        "olist_order_payments_dataset.csv": c["payments"],
        "olist_order_reviews_dataset.csv": c["reviews"],
        "olist_orders_dataset.csv": c["orders"],
        "olist_products_dataset.csv": plan.n_products,
        "olist_sellers_dataset.csv": plan.n_sellers,
        "product_category_name_translation.csv": N_CATEGORIES,
        "events.csv": c["events"],
    }
    planted = {name: _planted() for name in records}
    planted["olist_order_items_dataset.csv"] = items_planted
    planted["olist_orders_dataset.csv"] = _planted(malformed=c["orders_malformed"],
                                                   bad_timestamp=c["orders_bad_timestamp"])
    planted["events.csv"] = _planted(malformed=c["event_malformed"], bad_timestamp=c["event_bad_timestamp"])
    files = {}
    for name, n in records.items():
        files[name] = {"records": n, "physical_lines": physical[name], "planted": planted[name]}
        if name not in CRLF_FILES and physical[name] != n + 1:
            raise RuntimeError(f"{name}: wrote {physical[name]} lines for {n} records + header (generator bug)")
    # distinct lines of good orders that parse, have a numeric non-negative (or missing) price and
    # existing parents; missing prices/freights and outliers stay in (imputed / flagged downstream)
    clean = (c["lines"] - c["lines_of_bad_orders"] - c["item_malformed"] - c["item_bad_number"]
             - c["item_negative_price"] - c["item_orphan_product"] - c["item_orphan_order"])
    value_defects = sum(c[f"item_{k}"] for k in ("missing_price", "missing_freight", "outliers"))
    reviews = max(1, c["reviews"])
    settings = {k: v for k, v in plan.settings.items() if k != "partitions"}
    return {
        "seed": plan.seed,
        "orders": plan.n_orders,
        "settings": settings,
        "files": files,
        "order_lines": c["lines"],
        "order_lines_clean": clean,
        "order_lines_clean_values": clean - value_defects,
        "order_items_of_bad_orders": c["lines_of_bad_orders"],
        "customers": c["orders"],
        "customer_unique": plan.n_customers,
        "repeat_orders": c["repeat_orders"],
        "products": plan.n_products,
        "sellers": plan.n_sellers,
        "orders_delivered": c["delivered_orders"],
        "orders_late": c["late_orders"],
        "payments": c["payments"],
        "geolocation": n_geo,
        "reviews": c["reviews"],
        "duplicate_review_ids": c["duplicate_review_ids"],
        "events": c["events"],
        "review_score_share": {str(k): round(c[f"score_{k}"] / reviews, 6) for k in range(1, 6)},
        "bayes_accuracy": round(c["maxp_reviewed"] / _SCALE / reviews, 6),
        "bayes_accuracy_all_orders": round(c["maxp_all"] / _SCALE / max(1, c["orders"]), 6),
    }


__all__ = ["generate_dataset", "header_line", "HEADERS"]
