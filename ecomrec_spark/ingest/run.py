"""Raw CSV and JSON Lines files -> bronze and quarantine Delta tables, with a reconciliation per file.

For each table spec:

1. list the files matching its pattern and skip those already ingested with the
   same size and modification time (re-runs change nothing; new files are added);
2. check each new CSV file's header: a missing required column fails with a clear
   error; a missing optional column is filled with null and an extra column is
   ignored (the schema-evolution rule), both recorded in the reconciliation;
3. parse with an explicit all-string schema and classify every record (JSON
   Lines: each non-blank line is one record, parsed with ``from_json``; a line
   that is not a JSON object is a malformed record, a missing key a null);
4. write bronze, then quarantine, then the reconciliation, each one Delta commit
   replacing exactly the slice of the files being ingested.  The reconciliation
   is written last, so a killed run leaves those files "not ingested" and the
   next run replaces their partial slices instead of duplicating them.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from ecomrec_spark import lake
from ecomrec_spark.ingest.files import RawFile, folder_exists, list_files, read_header
from ecomrec_spark.ingest.parse import CORRUPT, INGEST_RUN, RAW_LINE, RAW_TEXT, REASON, SOURCE_FILE, classify
from ecomrec_spark.sources import specs_for
from ecomrec_spark.sources.spec import TableSpec

log = logging.getLogger(__name__)

RECONCILIATION = "ingest_reconciliation"


class IngestError(RuntimeError):
    """Input that cannot be ingested: a missing file or a missing required column."""


@dataclass(frozen=True)
class HeaderCheck:
    file: RawFile
    header: list[str]
    missing_optional: list[str]
    extra: list[str]


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def check_header(spec: TableSpec, file: RawFile, header: list[str]) -> HeaderCheck:
    missing = [c for c in spec.columns if c.name not in header]
    hard = [c.name for c in missing if not c.optional]
    if hard:
        raise IngestError(
            f"{file.path}: missing column(s) {', '.join(hard)} for table {spec.table}; "
            f"expected header: {','.join(spec.names)}; found: {','.join(header)}"
        )
    if len(set(header)) != len(header):
        raise IngestError(f"{file.path}: duplicate column names in header {header}")
    extra = [h for h in header if h not in spec.names]
    return HeaderCheck(file, header, [c.name for c in missing], extra)


def _read_raw(spark: SparkSession, spec: TableSpec, checks: list[HeaderCheck]) -> DataFrame:
    """All-string frame of the files, one column per spec column, grouped by header layout."""
    frames = []
    by_header: dict[tuple[str, ...], list[str]] = {}
    for chk in checks:
        by_header.setdefault(tuple(chk.header), []).append(chk.file.path)
    for header, paths in by_header.items():
        # field names equal the header, so Spark's header check stays quiet; values bind by position
        schema = StructType([StructField(h, StringType()) for h in header] + [StructField(CORRUPT, StringType())])
        df = (spark.read.schema(schema)
              .option("header", True).option("multiLine", spec.multiline)
              .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
              .option("quote", '"').option("escape", '"').option("encoding", "UTF-8")
              .option("ignoreLeadingWhiteSpace", False).option("ignoreTrailingWhiteSpace", False)
              .csv(paths))
        cols = [(F.col(f"`{c.name}`") if c.name in header else F.lit(None).cast("string")).alias(c.name)
                for c in spec.columns]
        frames.append(df.select(*cols, CORRUPT, F.col("_metadata.file_path").alias(SOURCE_FILE)))
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def _lines(spark: SparkSession, paths: list[str]) -> DataFrame:
    """The non-blank lines of JSON Lines files (gzip handled) with their file: one record each."""
    text = spark.read.text(paths).select(F.col("value").alias(RAW_LINE),
                                         F.col("_metadata.file_path").alias(SOURCE_FILE))
    return text.where(F.trim(F.col(RAW_LINE)) != "")


def _read_jsonl(spark: SparkSession, spec: TableSpec, paths: list[str]) -> DataFrame:
    """All-string frame of JSON Lines files: one column per spec key, ``_corrupt_record`` and ``_raw_line``.

    A value of another JSON type (a number, an object) arrives as its JSON text;
    a key that is absent is null; a line that is not a JSON object fills
    ``_corrupt_record``.
    """
    schema = StructType([StructField(c.name, StringType()) for c in spec.columns]
                        + [StructField(CORRUPT, StringType())])
    parsed = F.from_json(F.col(RAW_LINE), schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    return (_lines(spark, paths).withColumn("_json", parsed)
            .select(*[F.col("_json").getField(c.name).alias(c.name) for c in spec.columns],
                    F.col("_json").getField(CORRUPT).alias(CORRUPT), SOURCE_FILE, RAW_LINE))


def _count_records(spark: SparkSession, spec: TableSpec, paths: list[str]) -> DataFrame:
    """Records per file as the file's parser sees them (CSV) or its non-blank lines (JSON Lines), read anew."""
    if spec.file_format == "jsonl":
        df = _lines(spark, paths)
    else:
        df = (spark.read.option("header", True).option("multiLine", spec.multiline)
              .option("quote", '"').option("escape", '"').option("mode", "PERMISSIVE").csv(paths)
              .select(F.col("_metadata.file_path").alias(SOURCE_FILE)))
    return df.groupBy(SOURCE_FILE).agg(F.count(F.lit(1)).alias("raw_records"))


def source_folder(cfg: Mapping[str, Any], raw_root: str, source: str) -> str:
    """``<raw>/<source>``; generic transactions may sit elsewhere (``sources.transactions.folder``, ``.`` = raw itself)."""
    sub = source
    if source == "transactions":
        sub = (cfg.get("sources", {}).get("transactions", {}) or {}).get("folder", "transactions")
    root = raw_root.rstrip("/")
    return root if sub in ("", ".") else f"{root}/{sub}"


def ingest_table(spark: SparkSession, spec: TableSpec, raw_root: str, lake_root: str, run_id: str,
                 folder: str | None = None) -> list[dict[str, Any]]:
    """Ingest the new files of one table; returns one reconciliation dict per file."""
    folder = folder or f"{raw_root.rstrip('/')}/{spec.source}"
    files = list_files(spark, folder, spec.pattern)
    if not files and spec.may_be_empty:
        log.info("%s: no file matching %s in %s, nothing to ingest", spec.table, spec.pattern, folder)
        return []
    if not files:
        raise IngestError(f"no file matching {spec.pattern} in {folder} for table {spec.table}")
    done = _ingested(spark, lake_root, spec.table)
    todo = [f for f in files if (f.path, f.size, f.mtime) not in done]
    if not todo:
        log.info("%s: %d file(s) already ingested, nothing new", spec.table, len(files))
        return []
    paths = [f.path for f in todo]
    if spec.file_format == "jsonl":  # no header: every line names its own keys
        checks = [HeaderCheck(f, [], [], []) for f in todo]
        raw = _read_jsonl(spark, spec, paths)
    else:
        checks = [check_header(spec, f, read_header(spark, f.path)) for f in todo]
        for chk in checks:
            if chk.extra or chk.missing_optional:
                log.warning("%s: extra column(s) %s ignored, missing optional column(s) %s filled with null",
                            chk.file.path, chk.extra, chk.missing_optional)
        raw = _read_raw(spark, spec, checks)
    classified = classify(raw, spec).withColumn(INGEST_RUN, F.lit(run_id))

    bronze = classified.where(F.col(REASON).isNull()).drop(REASON, RAW_TEXT)
    quarantine = classified.where(F.col(REASON).isNotNull()).select(
        F.col(RAW_TEXT).alias("raw_text"), F.col(SOURCE_FILE).alias("source_file"), F.col(REASON).alias("reason"),
        F.col(INGEST_RUN).alias("ingest_run"), F.lit(spec.table).alias("table"))
    lake.replace_where(bronze, lake_root, "bronze", spec.table, SOURCE_FILE, paths)
    lake.replace_where(quarantine, lake_root, "quarantine", spec.table, "source_file", paths)

    counts = _reconcile(spark, spec, lake_root, paths)
    rows = []
    for chk in checks:
        c = counts.get(chk.file.path, {})
        raw_n, bronze_n, quar_n = c.get("raw_records", 0), c.get("bronze_rows", 0), c.get("quarantine_rows", 0)
        rows.append({
            "table": spec.table, "source": spec.source, "file": chk.file.path, "size": chk.file.size,
            "mtime": chk.file.mtime, "raw_records": raw_n, "bronze_rows": bronze_n, "quarantine_rows": quar_n,
            "balanced": raw_n == bronze_n + quar_n, "extra_columns": ",".join(chk.extra),
            "missing_columns": ",".join(chk.missing_optional), "ingest_run": run_id,
        })
        level = logging.INFO if raw_n == bronze_n + quar_n else logging.ERROR
        log.log(level, "reconcile %s: raw %d = bronze %d + quarantine %d", chk.file.path, raw_n, bronze_n, quar_n)
    recon = spark.createDataFrame(rows, schema=RECON_SCHEMA)
    lake.replace_where(recon, lake_root, "bronze", RECONCILIATION, "file", paths)
    return rows


RECON_SCHEMA = ("table string, source string, file string, size long, mtime long, raw_records long, bronze_rows long, "
                "quarantine_rows long, balanced boolean, extra_columns string, missing_columns string, ingest_run string")


def _ingested(spark: SparkSession, lake_root: str, table: str) -> set[tuple[str, int, int]]:
    recon = lake.read_optional(spark, lake_root, "bronze", RECONCILIATION)
    if recon is None:
        return set()
    # one small row per file: file metadata, not row-level data
    rows = recon.where(F.col("table") == table).select("file", "size", "mtime").collect()
    return {(r["file"], r["size"], r["mtime"]) for r in rows}


def _reconcile(spark: SparkSession, spec: TableSpec, lake_root: str, paths: list[str]) -> dict[str, dict[str, int]]:
    in_paths = F.col(SOURCE_FILE).isin(paths)
    bronze = lake.read(spark, lake_root, "bronze", spec.table).where(in_paths).groupBy(SOURCE_FILE).agg(
        F.count(F.lit(1)).alias("bronze_rows"))
    quar = (lake.read(spark, lake_root, "quarantine", spec.table).withColumnRenamed("source_file", SOURCE_FILE)
            .where(in_paths).groupBy(SOURCE_FILE).agg(F.count(F.lit(1)).alias("quarantine_rows")))
    joined = _count_records(spark, spec, paths).join(bronze, SOURCE_FILE, "full").join(quar, SOURCE_FILE, "full")
    return {r[SOURCE_FILE]: {k: r[k] or 0 for k in ("raw_records", "bronze_rows", "quarantine_rows")}
            for r in joined.collect()}  # one aggregate row per file


def ingest(spark: SparkSession, cfg: Mapping[str, Any], run_id: str | None = None) -> list[dict[str, Any]]:
    """Ingest every table of every configured source; returns the new reconciliation rows."""
    raw_root, lake_root = cfg["paths"]["raw"], cfg["paths"]["lake"]
    run_id = run_id or new_run_id()
    sources = cfg.get("ingest", {}).get("sources", ["olist"])
    present = []
    for source in sources:
        folder = source_folder(cfg, raw_root, source)
        if folder_exists(spark, folder):
            present.append(source)
        elif all(spec.may_be_empty for spec in specs_for(source, cfg)):  # e.g. no API events taken yet
            log.info("source '%s': no %s/ yet, nothing to ingest", source, folder)
        else:
            raise IngestError(f"source '{source}' is enabled (ingest.sources) but {folder}/ does not exist; "
                              f"put its files there or remove it with --set ingest.sources=[...]")
    rows: list[dict[str, Any]] = []
    for source in present:
        for spec in specs_for(source, cfg):
            rows.extend(ingest_table(spark, spec, raw_root, lake_root, run_id, source_folder(cfg, raw_root, source)))
    unbalanced = [r["file"] for r in rows if not r["balanced"]]
    if unbalanced:
        raise IngestError(f"reconciliation failed (raw != bronze + quarantine) for: {', '.join(unbalanced)}")
    return rows
