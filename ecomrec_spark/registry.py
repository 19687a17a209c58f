"""Every pipeline stage, declared once.

One :class:`StageDef` per stage, in ``run-all`` order.  Everything else that
names the stages is derived from :data:`PIPELINE`:

- the CLI sub-commands and their help (:mod:`ecomrec_spark.cli`);
- ``run-all`` (:func:`ecomrec_spark.stages.run_all`);
- the EMR steps and serverless job runs, and the script each runs
  (:mod:`ecomrec_spark.aws.layout`);
- the spark-submit entry points ``jobs/<script>`` (each is the same three lines,
  checked against this list by ``tests/test_registry.py``);
- the summary the CLI prints (:mod:`ecomrec_spark.summary`).

So adding a stage is one entry here plus its package (and its ``jobs/`` file).
This module imports no pyspark: the CLI builds its parser, and the EMR launcher
its requests, without Spark.  A stage's code is named as ``module:function`` and
imported only when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return fn


@dataclass(frozen=True)
class StageDef:
    name: str            # the CLI command and the EMR step name (``ecomrec <name>``)
    help: str            # the command's help text
    run: str             # ``module:function``, called as ``function(spark, settings) -> dict`` (a small summary)
    script: str          # its spark-submit entry point under jobs/
    writes: str          # what it writes, for the help and docs/architecture.md
    summary: str         # ``module:function``, ``function(result, lake) -> list[str]`` for the terminal

    def load(self) -> Callable[..., dict[str, Any]]:
        """The stage's function (imports its package, and so pyspark)."""
        return _resolve(self.run)

    def summary_lines(self, result: Any, lake: str) -> list[str]:
        lines: list[str] = _resolve(self.summary)(result, lake)
        return lines


_S = "ecomrec_spark.stages:"
_L = "ecomrec_spark.summary:"

PIPELINE: tuple[StageDef, ...] = (
    StageDef("ingest", "raw CSVs under paths.raw -> bronze Delta tables, bad records -> quarantine, reconciliation "
             "per file", _S + "ingest_stage", "ingest.py",
             "bronze/<table>, quarantine/<table>, bronze/ingest_reconciliation", _L + "ingest_lines"),
    StageDef("transform", "bronze -> silver (clean, deduplicated, imputed, outliers removed) -> gold feature tables",
             _S + "transform_stage", "transform.py", "silver/*, gold/*_features", _L + "transform_lines"),
    StageDef("train-review", "train, tune and compare the review-score models on the gold tables; save the tuned "
             "model", _S + "train_review_stage", "train_review_model.py",
             "models/review_score/<version>, gold/review_model_metrics", _L + "train_review_lines"),
    StageDef("score-reviews", "score every order line with the latest review model -> gold review_predictions, "
             "product_review_scores", _S + "score_reviews_stage", "score_reviews.py",
             "gold/review_predictions, gold/product_review_scores", _L + "score_reviews_lines"),
    StageDef("build-recommendations", "fit knn, hybrid, ALS, content and popularity recommenders -> gold "
             "recommendations, similar_items, association_rules, popular_items", _S + "build_recommendations_stage",
             "build_recommendations.py", "gold/recommendations, similar_items, association_rules, popular_items, "
             "recommendation_runs, models/ranker/<version>", _L + "build_recommendations_lines"),
    StageDef("evaluate-recommendations", "time-split offline evaluation of every recommender and baseline -> gold "
             "recommendation_metrics and reports/recommendations.md", _S + "evaluate_recommendations_stage",
             "evaluate_recommendations.py", "gold/recommendation_metrics, <reports>/recommendations.md",
             _L + "evaluate_lines"),
    StageDef("insights", "analytics tables for Athena (behaviour, sales trends, seasonality, review impact, "
             "prediction confusion, recommendation insights) -> gold insights_<name>; review-text sentiment (MLlib) "
             "-> gold review_sentiment, product_sentiment", _S + "insights_stage", "insights.py",
             "gold/insights_*, gold/review_sentiment, gold/product_sentiment, models/sentiment/<version>",
             _L + "insights_lines"),
    StageDef("ab-report", "A/B variants compared on the events the API took back (impressions, click-through and "
             "conversion with 95%% intervals) -> gold insights_ab_test and a report section", _S + "ab_report_stage",
             "ab_report.py", "gold/insights_ab_test", _L + "ab_lines"),
    StageDef("register-tables", "register every silver and gold Delta table as ecomrec.<table> in the metastore "
             "(the session catalog locally, Glue on EMR)", _S + "register_tables_stage", "register_tables.py",
             "metastore tables (no lake writes)", _L + "register_lines"),
    StageDef("report", "one self-contained HTML page with the dashboards, model comparisons, recommendation metrics "
             "and data-quality figures -> <paths.reports>/index.html", _S + "report_stage", "report.py",
             "<reports>/index.html", _L + "report_lines"),
    StageDef("publish", "copy the latest gold lists, product pages and popular lists into the serving store as a new "
             "version; live only if the quality gate passes (exit 3 otherwise); --list, --rollback, --force",
             _S + "publish_stage", "publish.py", "the serving store (SQLite or DynamoDB)", _L + "publish_lines"),
)

BY_NAME: dict[str, StageDef] = {s.name: s for s in PIPELINE}
NAMES: tuple[str, ...] = tuple(s.name for s in PIPELINE)
