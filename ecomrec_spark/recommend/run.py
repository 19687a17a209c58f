"""The ``recommend`` job: fit every recommender on the lake and write the gold tables.

Gold tables (each one Delta commit, a full rebuild, so a re-run gives the same
rows and a failed run leaves the previous version):

- ``recommendations``: customer_id, rank, product_id, score, model, reason,
  generated_at, model_version -- every configured model's top k per known
  customer, and the popularity fallback (``reason`` popular / popular_in_region)
  for customers in ``silver/customers`` with no history;
- ``similar_items``: product_id, rank, similar_product_id, similarity, model (knn, content);
- ``association_rules``: FPGrowth rules on order baskets (product and category
  level) and on event sessions when the source has events;
- ``popular_items``: overall, per category, per region and trending;
- ``recommendation_runs``: one row per run with the fitted parameters (LSH
  settings, tuned hybrid weights) as JSON.

The hybrid weights are tuned first on a validation split: the models are fitted
on interactions before ``hybrid.validation_days`` from the end, and the weight
grid is scored against the purchases after it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.recommend import models as M
from ecomrec_spark.recommend import rules
from ecomrec_spark.recommend.interactions import TS, purchases

log = logging.getLogger(__name__)

REC_TABLE_COLUMNS = [C.CUSTOMER_ID, "rank", C.PRODUCT_ID, "score", "model", "reason", "generated_at", "model_version"]


def load_inputs(spark: SparkSession, lake: str) -> M.Inputs:
    """The recommenders' inputs from the lake; only order lines and products are required."""
    lines = lk.read_optional(spark, lake, "gold", "order_features") or lk.read(spark, lake, "silver", "order_lines")
    return M.Inputs(
        lines=lines,
        catalogue=lk.read(spark, lake, "silver", "products"),
        events=lk.read_optional(spark, lake, "silver", "events"),
        reviews=lk.read_optional(spark, lake, "silver", "reviews"),
        review_scores=lk.read_optional(spark, lake, "gold", "product_review_scores"),
        customers=lk.read_optional(spark, lake, "silver", "customers"),
    )


def before(inputs: M.Inputs, cutoff: dt.datetime) -> M.Inputs:
    """The inputs as they were at ``cutoff``: lines, events and reviews strictly before it."""
    return M.Inputs(
        lines=inputs.lines.where(F.col(C.ORDER_TS) < F.lit(cutoff)),
        catalogue=inputs.catalogue,
        events=None if inputs.events is None else inputs.events.where(F.col(C.EVENT_TS) < F.lit(cutoff)),
        reviews=None if inputs.reviews is None else inputs.reviews.where(F.col(C.REVIEW_TS) < F.lit(cutoff)),
        review_scores=inputs.review_scores,
        customers=inputs.customers,
    )


def data_end(inputs: M.Inputs) -> dt.datetime:
    """The last purchase time (one aggregate row)."""
    end = purchases(inputs.lines).agg(F.max(TS)).first()[0]
    if end is None:
        raise ValueError("no purchases with a customer id in the order lines: nothing to recommend from")
    return end


def purchases_between(inputs: M.Inputs, start: dt.datetime, end: dt.datetime | None = None) -> DataFrame:
    """``customer_id, product_id`` bought in ``[start, end)``: the truth of a time split."""
    p = purchases(inputs.lines).where(F.col(TS) >= F.lit(start))
    if end is not None:
        p = p.where(F.col(TS) < F.lit(end))
    return p.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct()


def tune_hybrid(spark: SparkSession, inputs: M.Inputs, rc: Mapping[str, Any], end: dt.datetime) -> dict[str, Any]:
    """Hybrid weights from the validation split (the last ``validation_days`` before ``end``)."""
    cutoff = end - dt.timedelta(days=rc["hybrid"]["validation_days"])
    train = before(inputs, cutoff)
    truth = purchases_between(inputs, cutoff)
    if rc["filters"]["exclude_purchased"]:
        truth = truth.join(purchases(train.lines).select(C.CUSTOMER_ID, C.PRODUCT_ID), [C.CUSTOMER_ID, C.PRODUCT_ID],
                           "left_anti")
    fitted = M.fit_models(spark, train, rc, ("hybrid",), as_of=cutoff, tune_truth=truth)
    return {"weights": fitted.info["hybrid_weights"], "grid": fitted.info.get("hybrid_grid", []),
            "validation_from": cutoff.isoformat()}


def association_rules(inputs: M.Inputs, rc: Mapping[str, Any]) -> DataFrame:
    """Product- and category-level rules on orders, and product rules on event sessions when there are events."""
    rr = rc["rules"]
    bought = purchases(inputs.lines)
    parts = [
        rules.association_rules(rules.baskets(bought), rr["min_support"], rr["min_confidence"], "product",
                                rr["max_items"]).withColumn("baskets", F.lit("orders")),
        rules.association_rules(rules.category_baskets(bought), rr["category_min_support"], rr["min_confidence"],
                                "category", rr["max_items"]).withColumn("baskets", F.lit("orders")),
    ]
    if inputs.events is not None and C.SESSION_ID in inputs.events.columns:
        sessions = rules.baskets(inputs.events.where(F.col(C.SESSION_ID).isNotNull()), basket_col=C.SESSION_ID)
        parts.append(rules.association_rules(sessions, rr["min_support"], rr["min_confidence"], "product",
                                             rr["max_items"]).withColumn("baskets", F.lit("sessions")))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def known_customers(inputs: M.Inputs, fitted: M.Fitted) -> DataFrame:
    """Every customer the shop knows (silver customers and anyone with interactions), with a region when known."""
    regions = purchases(inputs.lines).groupBy(C.CUSTOMER_ID).agg(F.max(C.REGION).alias(C.REGION))
    who = fitted.interactions.select(C.CUSTOMER_ID).distinct().join(regions, C.CUSTOMER_ID, "left")
    if inputs.customers is not None:
        who = who.unionByName(inputs.customers.select(C.CUSTOMER_ID, C.REGION))
    return who.groupBy(C.CUSTOMER_ID).agg(F.max(C.REGION).alias(C.REGION))


def recommend(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Fit, tune and write every gold recommendation table; returns row counts and the run's parameters."""
    from ecomrec_spark.review.persist import new_version

    rc, lake = cfg["recommend"], cfg["paths"]["lake"]
    inputs = load_inputs(spark, lake)
    end = data_end(inputs)
    models = tuple(rc["models"])
    run_info: dict[str, Any] = {"data_end": end.isoformat(), "models": list(models)}
    if "hybrid" in models and rc["hybrid"]["tune"]:
        run_info["hybrid_tuning"] = tune_hybrid(spark, inputs, rc, end)
        rc = {**rc, "hybrid": {**rc["hybrid"], "weights": run_info["hybrid_tuning"]["weights"], "tune": False}}
    fitted = M.fit_models(spark, inputs, rc, models, with_similar=True)
    run_info.update({k: v for k, v in fitted.info.items() if k != "hybrid_grid"})
    version = new_version({"recommend": rc, "data_end": run_info["data_end"]})
    generated = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)
    customers = known_customers(inputs, fitted)
    # the popular list goes to every known customer; for those without history it is the cold-start fallback
    lists = [M.finalize(spark, fitted, m, rc).withColumn("model", F.lit(m)) for m in models if m != "popular"]
    lists.append(M.finalize(spark, fitted, "popular", rc, customers).withColumn("model", F.lit("popular")))
    recs = lists[0]
    for r in lists[1:]:
        recs = recs.unionByName(r)
    recs = recs.withColumn("generated_at", F.lit(generated)).withColumn("model_version", F.lit(version))
    counts: dict[str, int] = {}

    def write(df: DataFrame, table: str) -> None:
        written = lk.overwrite(df, lake, "gold", table)
        counts[f"gold/{table}"] = spark.read.format("delta").load(written).count()

    write(recs.select(*REC_TABLE_COLUMNS), "recommendations")
    similar = [s.withColumn("model", F.lit(name)) for name, s in fitted.similar.items()]
    if similar:
        sim = similar[0]
        for s in similar[1:]:
            sim = sim.unionByName(s)
        write(sim.select(C.PRODUCT_ID, "rank", "similar_product_id", "similarity", "model"), "similar_items")
    write(association_rules(inputs, rc), "association_rules")
    write(fitted.popular, "popular_items")
    run_row = spark.createDataFrame([(version, generated, json.dumps(run_info, default=str))],
                                    "model_version string, generated_at timestamp, info string")
    lk.replace_where(run_row, lake, "gold", "recommendation_runs", "model_version", [version])
    return {"model_version": version, "tables": counts, "info": run_info}


def sample_lists(spark: SparkSession, cfg: Mapping[str, Any], n_warm: int = 2) -> list[dict[str, Any]]:
    """Every model's list for the ``n_warm`` customers with the most purchases and one cold-start customer.

    What ``make demo`` prints; only those customers' rows reach the driver.
    """
    from ecomrec_spark.recommend.serve import recommend_for

    lake = cfg["paths"]["lake"]
    recs = lk.read(spark, lake, "gold", "recommendations")
    lines = purchases(load_inputs(spark, lake).lines)
    personal = recs.where(F.col("model") != "popular").select(C.CUSTOMER_ID).distinct()
    warm = (lines.join(personal, C.CUSTOMER_ID, "left_semi").groupBy(C.CUSTOMER_ID)
            .agg(F.countDistinct(C.ORDER_ID).alias("n")).orderBy(F.col("n").desc(), C.CUSTOMER_ID).limit(n_warm))
    cold = (recs.where(F.col("reason").isin("popular_in_region", "popular") & (F.col("model") == "popular"))
            .join(lines, C.CUSTOMER_ID, "left_anti").select(C.CUSTOMER_ID).distinct().orderBy(C.CUSTOMER_ID).limit(1))
    who = [r[C.CUSTOMER_ID] for r in warm.collect()] + [r[C.CUSTOMER_ID] for r in cold.collect()]
    models = [m for m in cfg["recommend"]["models"] if m != "popular"] + ["popular"]
    return [recommend_for(spark, cfg, c, cfg["recommend"]["k"], m) for c in who for m in models]
