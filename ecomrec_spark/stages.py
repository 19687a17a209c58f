"""The pipeline stages behind both the ``ecomrec`` CLI and ``jobs/*.py``.

Each stage takes a SparkSession and the validated config and returns a small
summary dict.  ``PIPELINE`` is the order ``run-all`` follows; later stages
(review model, recommendations) are appended here.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

Stage = Callable[[SparkSession, Mapping[str, Any]], dict[str, Any]]


def ingest_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    from ecomrec_spark.ingest.run import ingest

    rows = ingest(spark, cfg)
    return {
        "files_ingested": len(rows),
        "raw_records": sum(r["raw_records"] for r in rows),
        "bronze_rows": sum(r["bronze_rows"] for r in rows),
        "quarantine_rows": sum(r["quarantine_rows"] for r in rows),
        "per_file": [{k: r[k] for k in ("table", "file", "raw_records", "bronze_rows", "quarantine_rows")} for r in rows],
    }


def transform_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    from ecomrec_spark.transform.run import transform

    return {"tables": transform(spark, cfg)}


def _missing_review_inputs(spark: SparkSession, cfg: Mapping[str, Any]) -> str | None:
    """Why the review stages cannot run on this lake (a source without orders or reviews), or None."""
    from ecomrec_spark import lake

    root = cfg["paths"]["lake"]
    has = {t: lake.exists(spark, lake.table_path(root, *t.split("/"))) for t in ("gold/order_features", "silver/reviews")}
    if has["gold/order_features"] and has["silver/reviews"]:
        return None
    if has["silver/reviews"]:  # Amazon-format reviews: scores and text, but no orders to learn features from
        return ("no gold/order_features table: the review model learns from order features (delivery, freight, "
                "price), and the configured sources have reviews without orders")
    missing = next(t for t, ok in has.items() if not ok)
    return f"no {missing} table (the configured sources have no orders with reviews)"


def _if_reviews(name: str, run: Stage) -> Stage:
    """Wrap a review stage so a lake without orders or reviews skips it with the reason."""
    def stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
        why = _missing_review_inputs(spark, cfg)
        if why:
            log.warning("%s skipped: %s", name, why)
            return {"skipped": why}
        return run(spark, cfg)
    return stage


def train_review_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    from ecomrec_spark.review.train import train_review

    return train_review(spark, cfg)


def score_reviews_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    from ecomrec_spark.review.score import score_reviews

    return score_reviews(spark, cfg)


def build_recommendations_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    from ecomrec_spark.recommend.run import recommend, sample_lists

    out = recommend(spark, cfg)
    out["samples"] = sample_lists(spark, cfg)
    return out


def evaluate_recommendations_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    from ecomrec_spark.recommend.evaluate import evaluate

    return evaluate(spark, cfg)


def insights_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The gold insights_* analytics tables, then review-text sentiment."""
    from ecomrec_spark.insights.analytics import build_insights
    from ecomrec_spark.insights.sentiment import run_sentiment

    return {"tables": build_insights(spark, cfg), "sentiment": run_sentiment(spark, cfg)}


def report_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    from ecomrec_spark.report.build import build_report

    return build_report(spark, cfg)


def ab_report_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A/B variants compared on the events the API took back (``gold/insights_ab_test``)."""
    from ecomrec_spark.insights.ab_test import ab_report

    return ab_report(spark, cfg)


def publish_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The latest gold tables -> a new version of the serving store, live if it passes the quality gate."""
    from ecomrec_spark.serving.publish import publish

    return publish(spark, cfg, force=False)


def register_tables_stage(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Every silver and gold table in the session catalog (on EMR with the Glue metastore: in Glue)."""
    from ecomrec_spark.catalog import register_local

    return {"database": cfg["catalog"]["database"],
            "tables": register_local(spark, cfg["paths"]["lake"], cfg["catalog"]["database"])}


PIPELINE: list[tuple[str, Stage]] = [
    ("ingest", ingest_stage),
    ("transform", transform_stage),
    ("train-review", _if_reviews("train-review", train_review_stage)),
    ("score-reviews", _if_reviews("score-reviews", score_reviews_stage)),
    ("build-recommendations", build_recommendations_stage),
    ("evaluate-recommendations", evaluate_recommendations_stage),
    ("insights", insights_stage),
    ("ab-report", ab_report_stage),
    ("register-tables", register_tables_stage),
    ("report", report_stage),
    ("publish", publish_stage),
]


def run_all(spark: SparkSession, cfg: Mapping[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Every stage in order under one run id; each stage's manifest row is committed as that stage ends."""
    from ecomrec_spark import runs

    run_id = run_id or runs.new_run_id()
    out: dict[str, Any] = {}
    seconds: dict[str, float] = {}  # wall time per stage, printed in the summary so slow stages are visible
    for name, stage in PIPELINE:
        log.info("stage %s (run %s)", name, run_id)
        start = time.perf_counter()
        with runs.stage(spark, cfg["paths"]["lake"], name, run_id):
            out[name] = stage(spark, cfg)
        seconds[name] = round(time.perf_counter() - start, 1)
    out[runs.TIMINGS] = seconds
    return out
