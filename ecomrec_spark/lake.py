"""Delta lake layout and the few write patterns every job uses.

Layout: ``<lake>/<layer>/<table>`` with the layers bronze, silver, gold and
quarantine.  Every write is one Delta commit, so a job killed mid-write leaves
each table readable at its previous version.  While a stage runs, reads and
writes go through :mod:`ecomrec_spark.runs`: a write records the version it made
for the stage's manifest, and a read of a table the stage has not written yet
gets the version of the last complete stage that wrote it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pyspark.sql import DataFrame, SparkSession

from ecomrec_spark import runs

log = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold", "quarantine")


def table_path(lake: str, layer: str, table: str) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown lake layer '{layer}'; use one of {LAYERS}")
    return f"{lake.rstrip('/')}/{layer}/{table}"


def exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def read(spark: SparkSession, lake: str, layer: str, table: str) -> DataFrame:
    """Read a Delta table; a missing table names the job that writes it."""
    path = table_path(lake, layer, table)
    if not exists(spark, path):
        hint = "ecomrec ingest" if layer in ("bronze", "quarantine") else "ecomrec transform"
        raise FileNotFoundError(f"Delta table {path} does not exist yet; run `{hint}` first")
    return _load(spark, lake, layer, table, path)


def read_optional(spark: SparkSession, lake: str, layer: str, table: str) -> DataFrame | None:
    path = table_path(lake, layer, table)
    return _load(spark, lake, layer, table, path) if exists(spark, path) else None


def _load(spark: SparkSession, lake: str, layer: str, table: str, path: str) -> DataFrame:
    """The table as the last complete stage left it (:func:`runs.version_to_read`), else its latest version."""
    reader = spark.read.format("delta")
    version = runs.version_to_read(lake, layer, table)
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def overwrite(df: DataFrame, lake: str, layer: str, table: str, partition_by: Iterable[str] = ()) -> str:
    """Replace a whole table in one commit (silver and gold are rebuilt each run)."""
    path = table_path(lake, layer, table)
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    parts = list(partition_by)
    if parts:
        writer = writer.partitionBy(*parts)
    writer.save(path)
    runs.wrote(df.sparkSession, lake, layer, table, path)
    log.info("wrote %s", path)
    return path


def append(df: DataFrame, lake: str, layer: str, table: str) -> str:
    """Add rows in one commit (logs such as model metrics; new columns are added to the table)."""
    path = table_path(lake, layer, table)
    df.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
    runs.wrote(df.sparkSession, lake, layer, table, path)
    log.info("appended to %s", path)
    return path


def replace_where(df: DataFrame, lake: str, layer: str, table: str, column: str, values: Iterable[str]) -> str:
    """Replace exactly the rows whose ``column`` is in ``values``, in one commit.

    Re-running with the same values swaps the same slice, so a retried or
    killed ingest never duplicates rows.
    """
    path = table_path(lake, layer, table)
    vals = sorted(set(values))
    quoted = ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in vals)
    (df.write.format("delta").mode("overwrite")
       .option("replaceWhere", f"{column} IN ({quoted})")
       .option("mergeSchema", "true")
       .save(path))
    runs.wrote(df.sparkSession, lake, layer, table, path)
    log.info("replaced %d %s slice(s) of %s", len(vals), column, path)
    return path
