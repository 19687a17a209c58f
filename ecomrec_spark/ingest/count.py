"""Raw records per file, counted apart from the parser that splits them.

The reconciliation checks ``raw = bronze + quarantine`` per file.  If ``raw``
came from the same parser that fills bronze and quarantine, a parser that merges
two records into one (an unclosed quote) would agree with itself and a record
would vanish unnoticed.  So the count here reads the raw text again with its own
rules:

- **single-line formats** (CSV without quoted line breaks, JSON Lines): one
  record per physical line (``\\n``, ``\\r\\n`` or ``\\r`` ends a line, so CRLF
  files and a missing final newline count alike), minus the header line for
  CSV.  Blank lines hold no record and are left out with the rule the reader
  uses (:func:`csv_blank`, :func:`jsonl_blank`).
- **multi-line CSV** (Olist and Amazon reviews): one record per line break
  outside a well-formed RFC-4180 quoted field.  A quoted field starts right
  after a comma or a line break, holds anything but a lone ``"`` (``""`` is an
  escaped quote) and ends with ``"`` right before a comma, a line break or the
  end of the file (:data:`QUOTED_FIELD`).  Each such field is replaced by one
  character, then the non-empty lines are counted, minus the header.  A quote
  that never closes properly is not a field by this rule, so the line breaks
  after it still count: the parser, which keeps reading to the next quote, then
  reports fewer records and the file fails its reconciliation instead of losing
  a record inside one quarantined "record".

Everything is Spark built-ins; only one aggregate row per file reaches the
driver.  The multi-line count reads each file as one value
(``wholetext``), as the multi-line CSV reader also reads a file in one task:
fine for files of a few hundred MB (Amazon Fine Food's ``Reviews.csv`` is about
300 MB), not for files near Spark's 2 GB limit on one value.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark.sources.spec import TableSpec

FILE = "file"
RAW_RECORDS = "raw_records"
LINE_BREAK = r"\r\n|\n|\r"
# possessive quantifiers over a character class: linear, no backtracking and no deep regex recursion on long fields
QUOTED_FIELD = r'(?:^|(?<=[,\r\n]))"[^"]*+(?:""[^"]*+)*+"(?=[,\r\n]|\z)'
_ONE_CHAR = "q"  # what a quoted field shrinks to: one character, so a line holding only "" is not blank


def csv_blank(line: Column) -> Column:
    """Spark's line-based CSV reader drops a line that ``String.trim`` empties (only characters <= U+0020)."""
    return ~line.rlike(r"[^\x00-\x20]")


def jsonl_blank(line: Column) -> Column:
    """Ingest reads a JSON Lines line as a record unless ``trim`` (spaces) empties it."""
    return F.trim(line) == ""


def line_records(spark: SparkSession, paths: list[str], *, header: bool,
                 blank: Callable[[Column], Column] = csv_blank) -> DataFrame:
    """``file, raw_records``: the non-blank physical lines of each file, less one for a header.

    >>> line_records(spark, ["/raw/olist_orders_dataset.csv"], header=True)  # doctest: +SKIP
    DataFrame[file: string, raw_records: bigint]
    """
    lines = spark.read.text(paths).select(F.col("value"), F.col("_metadata.file_path").alias(FILE))
    nonblank = F.sum(F.when(blank(F.col("value")), 0).otherwise(1))
    return lines.groupBy(FILE).agg(F.greatest(nonblank - int(header), F.lit(0)).cast("bigint").alias(RAW_RECORDS))


def quoted_records(spark: SparkSession, paths: list[str]) -> DataFrame:
    """``file, raw_records``: the records of headed multi-line CSV files by the RFC-4180 rule above.

    Blank lines are left out as the multi-line reader leaves them: only empty
    ones (a line of spaces is a record there, and a malformed one).

    >>> quoted_records(spark, ["/raw/olist_order_reviews_dataset.csv"])  # doctest: +SKIP
    DataFrame[file: string, raw_records: bigint]
    """
    text = spark.read.text(paths, wholetext=True)
    lines = F.split(F.regexp_replace(F.col("value"), QUOTED_FIELD, _ONE_CHAR), LINE_BREAK)
    records = F.size(F.filter(lines, lambda line: line != "")) - 1  # less the header
    return text.select(F.col("_metadata.file_path").alias(FILE),
                       F.greatest(records, F.lit(0)).cast("bigint").alias(RAW_RECORDS))


def raw_counts(spark: SparkSession, spec: TableSpec, paths: list[str]) -> DataFrame:
    """``file, raw_records`` for the files of one table, by the rule of its format."""
    if spec.file_format == "jsonl":
        return line_records(spark, paths, header=False, blank=jsonl_blank)
    if spec.multiline:
        return quoted_records(spark, paths)
    return line_records(spark, paths, header=True, blank=csv_blank)
