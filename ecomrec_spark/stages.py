"""The pipeline stages behind both the ``ecomrec`` CLI and ``jobs/*.py``.

Each stage takes a SparkSession and the validated config and returns a small
summary dict.  ``PIPELINE`` is the order ``run-all`` follows; later stages
(review model, recommendations) are appended here.
"""

from __future__ import annotations

import logging
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


PIPELINE: list[tuple[str, Stage]] = [
    ("ingest", ingest_stage),
    ("transform", transform_stage),
]


def run_all(spark: SparkSession, cfg: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, stage in PIPELINE:
        log.info("stage %s", name)
        out[name] = stage(spark, cfg)
    return out
