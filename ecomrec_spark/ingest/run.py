"""Raw CSV and JSON Lines files -> bronze and quarantine Delta tables, with a reconciliation per file.

For each table spec:

1. list the files matching its pattern and skip those already ingested, and
   balanced, with the same size, modification time and content hash (re-runs
   change nothing; new or rewritten files are added);
2. check each new CSV file's header: a missing required column fails with a clear
   error; a missing optional column is filled with null and an extra column is
   ignored (the schema-evolution rule), both recorded in the reconciliation;
3. parse with an explicit all-string schema and classify every record (JSON
   Lines: each non-blank line is one record, parsed with ``from_json``; a line
   that is not a JSON object is a malformed record, a missing key a null);
4. write bronze, then quarantine, then the reconciliation, each one Delta commit
   replacing exactly the slice of the files being ingested.  The reconciliation
   is written last, so a killed run leaves those files "not ingested" and the
   next run replaces their partial slices instead of duplicating them;
5. reconcile each file: raw records, counted apart from the parser
   (:mod:`ecomrec_spark.ingest.count`), must equal bronze + quarantine rows.
   Only balanced files are recorded; an unbalanced one fails the ingest
   (:class:`UnbalancedError`, naming the file and its counts) and, unrecorded,
   is retried by the next run like a killed one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from py4j.protocol import Py4JError, Py4JJavaError
from pyspark import StorageLevel
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from ecomrec_spark import lake, runs
from ecomrec_spark.ingest.count import FILE as COUNTED_FILE
from ecomrec_spark.ingest.count import jsonl_blank, raw_counts
from ecomrec_spark.ingest.files import RawFile, folder_exists, list_files, read_header
from ecomrec_spark.ingest.parse import CORRUPT, INGEST_RUN, RAW_LINE, RAW_TEXT, REASON, SOURCE_FILE, classify
from ecomrec_spark.settings import Settings, Sources
from ecomrec_spark.sources import specs_for
from ecomrec_spark.sources.spec import TableSpec

log = logging.getLogger(__name__)

RECONCILIATION = "ingest_reconciliation"


class IngestError(RuntimeError):
    """Input that cannot be ingested: a missing file, a missing required column, a file that does not balance."""


class UnbalancedError(IngestError):
    """Files whose raw records are not all in bronze or quarantine; they are not recorded as ingested."""

    def __init__(self, table: str, rows: list[dict[str, Any]]):
        self.table, self.rows = table, rows
        files = "; ".join(
            f"{r['file']}: raw {r['raw_records']} != bronze {r['bronze_rows']} + quarantine {r['quarantine_rows']}"
            for r in rows)
        super().__init__(
            f"table {table}: reconciliation failed (raw records != bronze + quarantine) for {files}. "
            f"The file(s) are not recorded as ingested, so the next run retries them and replaces this attempt's "
            f"rows. Fewer parsed records than raw ones usually means an unclosed or stray quote merged records: "
            f"this attempt's rows of the file in bronze/{table} and quarantine/{table} (a long text field) show "
            f"where; fix the file and re-run")


@dataclass(frozen=True)
class HeaderCheck:
    file: RawFile
    header: list[str]
    missing_optional: list[str]
    extra: list[str]


def check_header(spec: TableSpec, file: RawFile, header: list[str]) -> HeaderCheck:
    if file.size == 0:  # a 0-byte file holds no record and no header: nothing to check, nothing to read
        return HeaderCheck(file, [], [], [])
    # read_header decodes UTF-8 with replacement: U+FFFD or NUL in a name means the line was not UTF-8 text, and
    # "missing column(s) ..." followed by mojibake would hide that
    if any("\ufffd" in h or "\x00" in h for h in header):
        raise IngestError(
            f"{file.path}: header line is not UTF-8 text (invalid UTF-8 or NUL bytes: a binary file, UTF-16 or "
            f"Latin-1?) for table {spec.table}; ingest reads UTF-8 CSV whose first line is "
            f"{','.join(spec.names)}")
    missing = [c for c in spec.columns if c.name not in header]
    hard = [c.name for c in missing if not c.optional]
    if hard:
        raise IngestError(
            f"{file.path}: missing column(s) {', '.join(hard)} for table {spec.table}; "
            f"expected header: {','.join(spec.names)}; found: {','.join(header)}"
        )
    # a column the table reads, named twice, is ambiguous; an ignored column named twice (or "" after a trailing
    # comma) is read under a neutral name and harms nothing
    dups = [c.name for c in spec.columns if header.count(c.name) > 1]
    if dups:
        raise IngestError(f"{file.path}: duplicate column(s) {', '.join(dups)} in the header for table {spec.table}; "
                          f"each of its columns must appear once")
    extra = [h for h in header if h not in spec.names]
    return HeaderCheck(file, header, [c.name for c in missing], extra)


def _read_raw(spark: SparkSession, spec: TableSpec, checks: list[HeaderCheck]) -> DataFrame:
    """All-string frame of the files, one column per spec column, grouped by header layout."""
    frames = []
    by_header: dict[tuple[str, ...], list[str]] = {}
    for chk in checks:
        if chk.file.size > 0:  # a 0-byte file (even one named .gz) holds nothing to read
            by_header.setdefault(tuple(chk.header), []).append(chk.file.path)
    for header, paths in by_header.items():
        # values bind by position.  The table's columns keep their names (so Spark's header check stays quiet for
        # a clean file); an ignored column gets a neutral name: a header name may repeat, differ only in case
        # (Spark's names are case-insensitive), be empty or equal _corrupt_record, all of which Spark refuses
        names = set(spec.names)
        schema = StructType([StructField(h if h in names else f"_ignored_{i}", StringType())
                             for i, h in enumerate(header)] + [StructField(CORRUPT, StringType())])
        df = (spark.read.schema(schema)
              .option("header", True).option("multiLine", spec.multiline)
              .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
              .option("quote", '"').option("escape", '"').option("encoding", "UTF-8")
              .option("ignoreLeadingWhiteSpace", False).option("ignoreTrailingWhiteSpace", False)
              .csv(paths))
        cols = [(F.col(f"`{c.name}`") if c.name in header else F.lit(None).cast("string")).alias(c.name)
                for c in spec.columns]
        frames.append(df.select(*cols, CORRUPT, F.col("_metadata.file_path").alias(SOURCE_FILE)))
    if not frames:  # only 0-byte files: no record to read
        return spark.createDataFrame([], StructType([StructField(c.name, StringType()) for c in spec.columns]
                                                    + [StructField(CORRUPT, StringType()),
                                                       StructField(SOURCE_FILE, StringType())]))
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def _lines(spark: SparkSession, paths: list[str]) -> DataFrame:
    """The non-blank lines of JSON Lines files (gzip handled) with their file: one record each."""
    text = spark.read.text(paths).select(F.col("value").alias(RAW_LINE),
                                         F.col("_metadata.file_path").alias(SOURCE_FILE))
    return text.where(~jsonl_blank(F.col(RAW_LINE)))  # the same blank rule as the independent count


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


def source_folder(sources: Sources, raw_root: str, source: str) -> str:
    """``<raw>/<source>``; generic transactions may sit elsewhere (``sources.transactions.folder``, ``.`` = raw itself)."""
    sub = sources.transactions.folder if source == "transactions" else source
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
    todo = [f for f in files if (f.path, f.size, f.mtime, f.content_hash) not in done]
    if not todo:
        log.info("%s: %d file(s) already ingested, nothing new", spec.table, len(files))
        return []
    paths = [f.path for f in todo]
    if spec.file_format == "jsonl":  # no header: every line names its own keys
        checks = [HeaderCheck(f, [], [], []) for f in todo]
    else:
        checks = [check_header(spec, f, _header(spark, f)) for f in todo]
        for chk in checks:
            if chk.extra or chk.missing_optional:
                log.warning("%s: extra column(s) %s ignored, missing optional column(s) %s filled with null",
                            chk.file.path, chk.extra, chk.missing_optional)
    try:
        _write_slices(spark, spec, lake_root, run_id, checks)
        counts = _reconcile(spark, spec, lake_root, paths, [f.path for f in todo if f.size > 0])
    except (Py4JJavaError, PySparkException) as exc:  # a file Spark cannot read (a cut gzip): name it, not a trace
        message = _read_failure(spec, paths, exc)
        if message is None:  # names none of the files: not a read problem (e.g. a write conflict), keep it as it is
            raise
        raise IngestError(message) from exc
    rows = reconciliation_rows(spec, checks, counts, run_id)
    balanced = [r for r in rows if r["balanced"]]
    for r in rows:
        level, sign = (logging.INFO, "=") if r["balanced"] else (logging.ERROR, "!=")
        log.log(level, "reconcile %s: raw %d %s bronze %d + quarantine %d", r["file"], r["raw_records"], sign,
                r["bronze_rows"], r["quarantine_rows"])
    # Only balanced files are recorded, so an unbalanced one stays "not ingested": the next run retries it and
    # replaces this attempt's bronze and quarantine slices.  The slice of every file of this attempt is replaced,
    # which also drops the row of an earlier version of a file that no longer balances.
    recon = spark.createDataFrame(balanced, schema=RECON_SCHEMA)
    lake.replace_where(recon, lake_root, "bronze", RECONCILIATION, "file", paths)
    if len(balanced) < len(rows):
        raise UnbalancedError(spec.table, [r for r in rows if not r["balanced"]])
    return rows


def _write_slices(spark: SparkSession, spec: TableSpec, lake_root: str, run_id: str,
                  checks: list[HeaderCheck]) -> None:
    """Parse and classify the files, then replace their bronze and quarantine slices (one Delta commit each)."""
    paths = [chk.file.path for chk in checks]
    nonempty = [chk.file.path for chk in checks if chk.file.size > 0]  # a 0-byte file (even .gz) holds nothing
    if spec.file_format == "jsonl" and nonempty:
        raw = _read_jsonl(spark, spec, nonempty)
    elif spec.file_format == "jsonl":
        raw = spark.createDataFrame([], ", ".join([f"`{c.name}` string" for c in spec.columns]
                                                  + [f"{CORRUPT} string", f"{SOURCE_FILE} string",
                                                     f"{RAW_LINE} string"]))
    else:
        raw = _read_raw(spark, spec, checks)
    # both writes below read the same parse: keep it rather than parse every file twice (spills to disk if large)
    classified = classify(raw, spec).withColumn(INGEST_RUN, F.lit(run_id)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bronze = classified.where(F.col(REASON).isNull()).drop(REASON, RAW_TEXT)
        quarantine = classified.where(F.col(REASON).isNotNull()).select(
            F.col(RAW_TEXT).alias("raw_text"), F.col(SOURCE_FILE).alias("source_file"),
            F.col(REASON).alias("reason"), F.col(INGEST_RUN).alias("ingest_run"), F.lit(spec.table).alias("table"))
        lake.replace_where(bronze, lake_root, "bronze", spec.table, SOURCE_FILE, paths)
        lake.replace_where(quarantine, lake_root, "quarantine", spec.table, "source_file", paths)
    finally:
        classified.unpersist()


def _header(spark: SparkSession, file: RawFile) -> list[str]:
    """The file's header names; a file that cannot be opened or decompressed is an IngestError naming it."""
    if file.size == 0:
        return []
    try:
        return read_header(spark, file.path)
    except Py4JJavaError as exc:  # e.g. "java.io.IOException: not a gzip file"
        raise IngestError(f"{file.path}: cannot read the file ({_root_cause(exc)}); nothing of its table is "
                          f"ingested in this run: fix or remove the file") from exc


def _root_cause(exc: BaseException) -> str:
    """The innermost JVM exception as ``class: message`` (one line), else the first line of ``exc``."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    try:
        while java is not None and java.getCause() is not None:
            java = java.getCause()
        if java is not None:
            return " ".join(str(java.toString()).split())[:300]
    except Py4JError:  # not a JVM object after all
        pass
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _read_failure(spec: TableSpec, paths: list[str], exc: BaseException) -> str | None:
    """The message of a failed read naming the file(s) Spark's error names; None when it names none of them."""
    text = str(exc)
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if java is not None:
        try:
            text += str(java.toString()) + str(java.getCause())
        except Py4JError:
            pass
    named = [p for p in paths if urlparse(p).path in text]
    if not named:
        return None
    return (f"table {spec.table}: cannot read the file(s) {', '.join(named)} ({_root_cause(exc)}). "
            "Nothing of them is recorded as ingested, so the next run retries them; fix or remove the file(s)")


RECON_SCHEMA = ("table string, source string, file string, size long, mtime long, content_hash string, "
                "raw_records long, bronze_rows long, quarantine_rows long, balanced boolean, extra_columns string, "
                "missing_columns string, ingest_run string")
_COUNTS = ("raw_records", "bronze_rows", "quarantine_rows")


def reconciliation_rows(spec: TableSpec, checks: list[HeaderCheck], counts: Mapping[str, Mapping[str, int]],
                        run_id: str) -> list[dict[str, Any]]:
    """One reconciliation row per file from the per-file counts of :func:`_reconcile`.

    Every file must have its raw count: a file without one (or counts under a
    name that is no file of this attempt) means the count and the files disagree
    on what was read, and reading it as 0 = 0 + 0 would pass a file whose records
    went nowhere.  A 0-byte file holds no record and needs no count.

    >>> reconciliation_rows(spec, checks, {}, "r")  # doctest: +SKIP
    Traceback (most recent call last):
    IngestError: table olist_orders: no raw record count for file(s) file:/raw/olist_orders_dataset.csv ...
    """
    paths = {chk.file.path for chk in checks}
    missing = [chk.file.path for chk in checks
               if chk.file.size > 0 and counts.get(chk.file.path, {}).get("raw_records") is None]
    stray = sorted(set(counts) - paths)
    if missing or stray:
        raise IngestError(
            f"table {spec.table}: no raw record count for file(s) {', '.join(missing) or '-'}"
            f"; counts under name(s) that are no file being ingested: {', '.join(stray) or '-'}. "
            "Nothing is recorded as ingested. Either the count read no line from the file (a compressed file that "
            "holds nothing: remove it) or the count and the file listing spell its path differently (rename it to "
            "plain letters, digits, '_', '-' and '.')")
    rows = []
    for chk in checks:
        c = counts.get(chk.file.path, {})
        raw_n, bronze_n, quar_n = (int(c.get(k) or 0) for k in _COUNTS)
        rows.append({
            "table": spec.table, "source": spec.source, "file": chk.file.path, "size": chk.file.size,
            "mtime": chk.file.mtime, "content_hash": chk.file.content_hash, "raw_records": raw_n,
            "bronze_rows": bronze_n, "quarantine_rows": quar_n, "balanced": raw_n == bronze_n + quar_n,
            "extra_columns": ",".join(chk.extra), "missing_columns": ",".join(chk.missing_optional),
            "ingest_run": run_id,
        })
    return rows


def _ingested(spark: SparkSession, lake_root: str, table: str) -> set[tuple[str, int, int, str]]:
    """Keys of the files recorded as ingested and balanced (older lakes may hold unbalanced rows: not done)."""
    recon = lake.read_optional(spark, lake_root, "bronze", RECONCILIATION)
    if recon is None:
        return set()
    if "content_hash" not in recon.columns:  # a lake from before content hashes: every file is ingested once more
        return set()
    # one small row per file: file metadata, not row-level data
    rows = (recon.where((F.col("table") == table) & F.col("balanced"))
            .select("file", "size", "mtime", "content_hash").collect())
    return {(r["file"], r["size"], r["mtime"], r["content_hash"]) for r in rows}


def finished_slices(spark: SparkSession, lake_root: str, table: str, required: bool = True) -> DataFrame | None:
    """The bronze rows of ``table`` from files whose reconciliation was recorded and balanced.

    A file's bronze slice is written before its reconciliation row, so a slice
    without a balanced row is an ingest that was killed or failed: not read.
    A missing table raises, naming the job that writes it (None if not ``required``).
    """
    read = lake.read if required else lake.read_optional
    bronze = read(spark, lake_root, "bronze", table)
    if bronze is None:
        return None
    recon = lake.read_optional(spark, lake_root, "bronze", RECONCILIATION)
    done = (recon.where((F.col("table") == table) & F.col("balanced")).select(F.col("file").alias(SOURCE_FILE))
            if recon is not None else spark.createDataFrame([], f"{SOURCE_FILE} string"))
    return bronze.join(F.broadcast(done.distinct()), SOURCE_FILE, "left_semi")  # one small row per file


def _reconcile(spark: SparkSession, spec: TableSpec, lake_root: str, paths: list[str],
               nonempty: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Per file: raw records (counted apart from the parser, :mod:`ecomrec_spark.ingest.count`), bronze and
    quarantine rows of the slices just written.  Only ``nonempty`` files are counted (default: all): a 0-byte
    file holds no record, and a 0-byte ``.gz`` cannot even be opened."""
    in_paths = F.col(SOURCE_FILE).isin(paths)
    bronze = lake.read(spark, lake_root, "bronze", spec.table).where(in_paths).groupBy(SOURCE_FILE).agg(
        F.count(F.lit(1)).alias("bronze_rows"))
    quar = (lake.read(spark, lake_root, "quarantine", spec.table).withColumnRenamed("source_file", SOURCE_FILE)
            .where(in_paths).groupBy(SOURCE_FILE).agg(F.count(F.lit(1)).alias("quarantine_rows")))
    nonempty = paths if nonempty is None else nonempty
    joined = bronze.join(quar, SOURCE_FILE, "full")
    if nonempty:
        raw = raw_counts(spark, spec, nonempty).withColumnRenamed(COUNTED_FILE, SOURCE_FILE)
        joined = raw.join(joined, SOURCE_FILE, "full")
    else:
        joined = joined.withColumn("raw_records", F.lit(None).cast("bigint"))
    return {r[SOURCE_FILE]: {k: r[k] for k in _COUNTS} for r in joined.collect()}  # one aggregate row per file


def ingest(spark: SparkSession, settings: Settings, run_id: str | None = None) -> list[dict[str, Any]]:
    """Ingest every table of every configured source; returns the new reconciliation rows."""
    raw_root, lake_root = settings.paths.raw, settings.paths.lake
    active = runs.current()
    run_id = run_id or (active.run_id if active else runs.new_run_id())  # the pipeline run's id when there is one
    present = []
    for source in settings.ingest.sources:
        folder = source_folder(settings.sources, raw_root, source)
        if folder_exists(spark, folder):
            present.append(source)
        elif all(spec.may_be_empty for spec in specs_for(source, settings.sources)):  # e.g. no API events taken yet
            log.info("source '%s': no %s/ yet, nothing to ingest", source, folder)
        else:
            raise IngestError(f"source '{source}' is enabled (ingest.sources) but {folder}/ does not exist; "
                              f"put its files there or remove it with --set ingest.sources=[...]")
    rows: list[dict[str, Any]] = []
    failed: list[UnbalancedError] = []
    for source in present:
        for spec in specs_for(source, settings.sources):
            try:
                rows.extend(ingest_table(spark, spec, raw_root, lake_root, run_id,
                                         source_folder(settings.sources, raw_root, source)))
            except UnbalancedError as exc:  # the other tables are reconciled on their own: ingest them, then fail
                failed.append(exc)
    if failed:
        raise IngestError("\n".join(str(e) for e in failed))
    return rows
