"""Cleaning steps that remove rows: deduplication and foreign-key checks.

Nothing is dropped silently: every removed row comes back as a reject frame in
the quarantine layout (raw_text, source_file, reason, ingest_run, table).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark.columns import INGEST_RUN, SOURCE_FILE

REJECT_COLUMNS = ["raw_text", "source_file", "reason", "ingest_run", "table"]


def as_rejects(df: DataFrame, reason: Column | str, table: str) -> DataFrame:
    """Rows in the quarantine layout; the row itself is kept as JSON."""
    payload = [c for c in df.columns if c not in (SOURCE_FILE, INGEST_RUN, "_reason")]
    lineage = lambda c: F.col(c) if c in df.columns else F.lit(None).cast("string")  # noqa: E731
    return df.select(
        F.to_json(F.struct(*payload)).alias("raw_text"),
        lineage(SOURCE_FILE).alias("source_file"),
        (F.lit(reason) if isinstance(reason, str) else reason).alias("reason"),
        lineage(INGEST_RUN).alias("ingest_run"),
        F.lit(table).alias("table"),
    )


def dedupe(df: DataFrame, keys: Sequence[str], table: str) -> tuple[DataFrame, DataFrame]:
    """Keep one row per key: the one from the newest ingest run, then the latest file.

    Returns ``(kept, rejects)``; the rejects are the extra copies.
    """
    order = [F.col(c).desc_nulls_last() for c in (INGEST_RUN, SOURCE_FILE) if c in df.columns]
    order += [F.col(c).asc_nulls_last() for c in df.columns if c not in keys and c not in (INGEST_RUN, SOURCE_FILE)]
    ranked = df.withColumn("_rank", F.row_number().over(Window.partitionBy(*keys).orderBy(*order)))
    kept = ranked.where("_rank = 1").drop("_rank")
    extra = ranked.where("_rank > 1").drop("_rank")
    key_text = ", ".join(keys)
    return kept, as_rejects(extra, f"duplicate of an earlier row with the same ({key_text})", table)


def require_parent(df: DataFrame, parent: DataFrame, key: str, table: str, parent_key: str | None = None) -> tuple[DataFrame, DataFrame]:
    """Split rows whose ``key`` has a match in ``parent`` from orphans.

    A null key is not an orphan (an optional reference left empty).
    """
    pk = parent_key or key
    keys = parent.select(F.col(pk).alias("_pk")).distinct().withColumn("_has_parent", F.lit(True))
    joined = df.join(keys, df[key] == keys["_pk"], "left").drop("_pk")
    ok = F.col(key).isNull() | F.col("_has_parent").isNotNull()
    kept = joined.where(ok).drop("_has_parent")
    orphans = joined.where(~ok).drop("_has_parent")
    return kept, as_rejects(orphans, f"orphan {key}: no such {pk} in the parent table", table)
