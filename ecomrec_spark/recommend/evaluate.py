"""The recommendation evaluation job: a time split, every model and two baselines, two settings.

- **Split:** train on everything before ``T``, test on the purchases from ``T``
  on (``recommend.evaluate.cutoff``, or ``test_days`` before the last purchase).
  Models, hybrid tuning (on the last ``hybrid.validation_days`` before ``T``),
  popularity and the product attributes all see only data before ``T``.
- **Who is scored:** customers with at least one test purchase *and* history
  before ``T`` (personal models need history; customers new at ``T`` get the
  popularity fallback, and their number is reported as ``n_cold_customers``).
- **Settings:**
  ``all``  -- every test purchase is relevant and lists may repeat earlier
  purchases (``exclude_purchased`` off: the consumables shop);
  ``new``  -- only items new to the customer are relevant, and lists exclude
  earlier purchases (the default shop).
- **Baselines:** ``popular`` (overall top k) and ``random`` (k products drawn
  per customer by a seeded hash).
- **Metrics** (:mod:`.metrics`): precision@k, recall@k, NDCG@k, MAP@k, MRR, hit
  rate and catalogue coverage.

Results go to ``gold/recommendation_metrics`` (one slice per run id, replaced
on a re-run with the same data and config) and ``<reports>/recommendations.md``/``.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.recommend import ltr
from ecomrec_spark.recommend import models as M
from ecomrec_spark.recommend.ids import index_ids
from ecomrec_spark.recommend.interactions import purchases
from ecomrec_spark.recommend.metrics import new_items_only, ranking_metrics
from ecomrec_spark.recommend.run import (
    before,
    data_end,
    load_inputs,
    purchases_between,
    tune_hybrid,
    with_hybrid_weights,
)
from ecomrec_spark.settings import Evaluate, Settings

log = logging.getLogger(__name__)

METRIC_KEYS = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "mrr", "hit_rate", "coverage")


def random_recs(customers: DataFrame, products: DataFrame, k: int, seed: int) -> DataFrame:
    """``k`` distinct products per customer drawn by a seeded hash (the random baseline)."""
    ids = index_ids(products.select(C.PRODUCT_ID), C.PRODUCT_ID, "_i").cache()
    n = ids.count()
    draws = (customers.select(C.CUSTOMER_ID).distinct()
             .withColumn("_j", F.explode(F.sequence(F.lit(0), F.lit(3 * k - 1))))
             .withColumn("_i", F.pmod(F.xxhash64(F.lit(seed), F.col(C.CUSTOMER_ID), F.col("_j")), F.lit(n)).cast("int"))
             .join(ids, "_i"))
    first = draws.groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(F.min("_j").alias("_j"))
    from pyspark.sql import Window

    w = Window.partitionBy(C.CUSTOMER_ID).orderBy("_j")
    return (first.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k)
            .select(C.CUSTOMER_ID, C.PRODUCT_ID, (F.lit(1.0) / F.col("rank")).alias("score"), "rank",
                    F.lit("random").alias("reason")))


def cutoff_of(ev: Evaluate, end: dt.datetime) -> dt.datetime:
    if ev.cutoff:
        return dt.datetime.fromisoformat(ev.cutoff)
    return end - dt.timedelta(days=ev.test_days)


def evaluate(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """Run the evaluation; returns the metric rows (also written to the lake and the report)."""
    rc, lake = settings.recommend, settings.paths.lake
    inputs = load_inputs(spark, lake)
    end = data_end(inputs)
    cutoff = cutoff_of(rc.evaluate, end)
    train = before(inputs, cutoff)
    if purchases(train.lines).limit(1).count() == 0:  # one row at most; e.g. a short event log
        raise ValueError(f"no purchases before the evaluation cutoff {cutoff} (the data ends {end}): lower "
                         "recommend.evaluate.test_days or set recommend.evaluate.cutoff inside the data")
    models = tuple(m for m in rc.evaluate.models if m != "random")
    info: dict[str, Any] = {"cutoff": cutoff.isoformat(), "data_end": end.isoformat()}
    if "hybrid" in models and rc.hybrid.tune:
        info["hybrid_tuning"] = tune_hybrid(spark, train, rc, cutoff)
        rc = with_hybrid_weights(rc, info["hybrid_tuning"]["weights"])
    fitted = M.fit_models(spark, train, rc, models, as_of=cutoff)
    info.update({k: v for k, v in fitted.info.items() if k != "hybrid_grid"})
    history = fitted.interactions.select(C.CUSTOMER_ID).distinct()
    test = purchases_between(inputs, cutoff).cache()
    warm = test.join(history, C.CUSTOMER_ID, "left_semi").cache()
    info["n_test_customers"] = test.select(C.CUSTOMER_ID).distinct().count()
    info["n_cold_customers"] = info["n_test_customers"] - warm.select(C.CUSTOMER_ID).distinct().count()
    catalogue = fitted.attributes.select(C.PRODUCT_ID).distinct()
    n_catalogue = catalogue.count()
    truths = {"all": warm, "new": new_items_only(warm, fitted.bought)}
    k, rows = rc.k, []
    for setting in ltr.SETTINGS:
        src = ltr.in_setting(rc, setting)
        for model in rc.evaluate.models:
            if model == "random":
                recs = random_recs(history, catalogue, k + rc.candidates, rc.seed)
                fitted.candidates["random"] = recs
                recs = M.finalize(spark, fitted, "random", src)
            else:
                recs = M.finalize(spark, fitted, model, src)
            m = ranking_metrics(recs, truths[setting], k, catalogue_size=n_catalogue)
            rows.append({"model": model, "setting": setting, "k": k, **{key: m[key] for key in METRIC_KEYS},
                         "n_users": m["n_users"]})
            log.info("%s/%s: ndcg@%d %.4f precision %.4f", model, setting, k, m["ndcg_at_k"] or 0.0,
                     m["precision_at_k"] or 0.0)
    run_id = f"{cutoff:%Y%m%dT%H%M%S}-k{k}"
    lk.replace_where(metrics_frame(spark, run_id, rows, k, cutoff), lake, "gold", "recommendation_metrics", "run_id",
                     [run_id])
    fitted.unpersist()
    for df in (test, warm):
        df.unpersist()
    report = write_report(spark, settings, rows, info)
    return {"run_id": run_id, "results": rows, "info": info, "report": report,
            "table": lk.table_path(lake, "gold", "recommendation_metrics")}


def metrics_frame(spark: SparkSession, run_id: str, rows: list[dict[str, Any]], k: int, cutoff: dt.datetime) -> DataFrame:
    """``gold/recommendation_metrics`` rows (one per model and setting) of one evaluation or validation run."""
    evaluated = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    return spark.createDataFrame(
        [(run_id, evaluated, r["model"], r["setting"], k, *[None if r[x] is None else float(r[x]) for x in METRIC_KEYS],
          int(r["n_users"]), cutoff) for r in rows],
        "run_id string, evaluated_at timestamp, model string, setting string, k int, "
        + ", ".join(f"{x} double" for x in METRIC_KEYS) + ", n_users long, cutoff timestamp")


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.4f}"

    head = ["model", "setting", "precision@k", "recall@k", "NDCG@k", "MAP@k", "MRR", "hit rate", "coverage", "users"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append(f"| {r['model']} | {r['setting']} | " + " | ".join(f(r[x]) for x in METRIC_KEYS)
                   + f" | {r['n_users']} |")
    return out


def write_report(spark: SparkSession, settings: Settings, rows: list[dict[str, Any]], info: Mapping[str, Any]) -> str:
    from ecomrec_spark.storage import write_text

    reports = settings.paths.folder("reports")
    md = [f"# Recommendation evaluation (k = {settings.recommend.k})", "",
          f"Train before {info['cutoff']}, test from it to {info['data_end']}; "
          f"{info['n_test_customers']} test customers, {info['n_cold_customers']} of them without history "
          "(served by the popularity fallback, not scored here).", "",
          "Setting `all`: every test purchase counts and lists may repeat purchases; "
          "`new`: only items new to the customer count and lists exclude purchases.", "",
          *markdown_table(rows), "", "Fitted parameters:", "", "```", json.dumps(info, indent=1, default=str), "```"]
    path = f"{reports}/recommendations.md"
    write_text(spark, path, "\n".join(md) + "\n")
    write_text(spark, f"{reports}/recommendations.json", json.dumps({"results": rows, "info": info}, indent=1, default=str))
    return path
