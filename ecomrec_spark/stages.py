"""The code of each pipeline stage: ``function(spark, settings) -> dict`` (a small summary of what it wrote).

``settings`` is the typed :class:`~ecomrec_spark.settings.Settings`; every stage reads it as attributes.

:mod:`ecomrec_spark.registry` declares the stages, in order, and names these
functions; the CLI, ``run-all``, the EMR steps and ``jobs/*.py`` all reach them
through it.  Each function reads and writes through :mod:`ecomrec_spark.lake`
inside its package; this module only adapts their results.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pyspark.sql import SparkSession

from ecomrec_spark import registry, runs
from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)

def ingest_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    from ecomrec_spark.ingest.run import ingest

    rows = ingest(spark, settings)
    return {
        "files_ingested": len(rows),
        "raw_records": sum(r["raw_records"] for r in rows),
        "bronze_rows": sum(r["bronze_rows"] for r in rows),
        "quarantine_rows": sum(r["quarantine_rows"] for r in rows),
        "per_file": [{k: r[k] for k in ("table", "file", "raw_records", "bronze_rows", "quarantine_rows")} for r in rows],
    }


def transform_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    from ecomrec_spark.transform.run import transform

    return {"tables": transform(spark, settings)}


def _missing_review_inputs(spark: SparkSession, settings: Settings) -> str | None:
    """Why the review stages cannot run on this lake (a source without orders or reviews), or None."""
    from ecomrec_spark import lake

    root = settings.paths.lake
    has = {t: lake.exists(spark, lake.table_path(root, *t.split("/"))) for t in ("gold/order_features", "silver/reviews")}
    if has["gold/order_features"] and has["silver/reviews"]:
        return None
    if has["silver/reviews"]:  # Amazon-format reviews: scores and text, but no orders to learn features from
        return ("no gold/order_features table: the review model learns from order features (delivery, freight, "
                "price), and the configured sources have reviews without orders")
    missing = next(t for t, ok in has.items() if not ok)
    return f"no {missing} table (the configured sources have no orders with reviews)"


def _skipped(name: str, spark: SparkSession, settings: Settings) -> dict[str, Any] | None:
    """``{"skipped": why}`` when a lake without orders or reviews cannot feed a review stage, else None."""
    why = _missing_review_inputs(spark, settings)
    if why:
        log.warning("%s skipped: %s", name, why)
        return {"skipped": why}
    return None


def train_review_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    from ecomrec_spark.review.train import train_review

    return _skipped("train-review", spark, settings) or train_review(spark, settings)


def score_reviews_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    from ecomrec_spark.review.score import score_reviews

    return _skipped("score-reviews", spark, settings) or score_reviews(spark, settings)


def build_recommendations_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    from ecomrec_spark.recommend.run import recommend, sample_lists

    out = recommend(spark, settings)
    out["samples"] = sample_lists(spark, settings)
    return out


def evaluate_recommendations_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    from ecomrec_spark.recommend.evaluate import evaluate

    return evaluate(spark, settings)


def insights_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """The gold insights_* analytics tables, then review-text sentiment."""
    from ecomrec_spark.insights.analytics import build_insights
    from ecomrec_spark.insights.sentiment import run_sentiment

    return {"tables": build_insights(spark, settings), "sentiment": run_sentiment(spark, settings)}


def report_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    from ecomrec_spark.report.build import build_report

    return build_report(spark, settings)


def ab_report_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """A/B variants compared on the events the API took back (``gold/insights_ab_test``)."""
    from ecomrec_spark.insights.ab_test import ab_report

    return ab_report(spark, settings)


def publish_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """The latest gold tables -> a new version of the serving store, live if it passes the quality gate."""
    from ecomrec_spark.serving.publish import publish

    return publish(spark, settings, force=False)


def register_tables_stage(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """Every silver and gold table in the session catalog (on EMR with the Glue metastore: in Glue)."""
    from ecomrec_spark.catalog import register_tables

    return register_tables(spark, settings)


def run_all(spark: SparkSession, settings: Settings, run_id: str | None = None) -> dict[str, Any]:
    """Every stage in order under one run id; each stage's manifest row is committed as that stage ends."""
    run_id = run_id or runs.new_run_id()
    out: dict[str, Any] = {}
    seconds: dict[str, float] = {}  # wall time per stage, printed in the summary so slow stages are visible
    for stage in registry.PIPELINE:
        log.info("stage %s (run %s)", stage.name, run_id)
        start = time.perf_counter()
        with runs.stage(spark, settings.paths.lake, stage.name, run_id):
            out[stage.name] = stage.load()(spark, settings)
        seconds[stage.name] = round(time.perf_counter() - start, 1)
    out[runs.TIMINGS] = seconds
    return out
