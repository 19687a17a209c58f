"""Raw text -> typed rows plus the reason each bad record is rejected.

:func:`classify` is a pure ``DataFrame -> DataFrame`` transform over the
all-string frame the CSV reader (or ``from_json`` over JSON Lines) gives; ingest
splits its output into bronze (``_reject_reason`` null) and quarantine.
Conversions use ``try_*`` functions, so ANSI mode never throws on bad text: the
value becomes a reason instead.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecomrec_spark.columns import INGEST_RUN, SOURCE_FILE  # noqa: F401  (ingest/run.py and tests import them from here)
from ecomrec_spark.sources.spec import Col, TableSpec

CORRUPT = "_corrupt_record"
REASON = "_reject_reason"
RAW_TEXT = "_raw_text"
RAW_LINE = "_raw_line"  # JSON Lines: the line as written, kept as the quarantined text

# ISO-8601 date and time, optional fraction (up to microseconds, Spark's precision) and zone; no zone means UTC
ISO_8601 = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$"
_ZONE = r"(Z|[+-]\d{2}:\d{2})$"
MALFORMED = {"csv": "malformed record: wrong column count or broken quote",
             "jsonl": "malformed record: not a JSON object"}

_CASTS = {"int": "int", "long": "bigint", "double": "double"}


def convert(raw: Column, col: Col) -> Column:
    """Typed value of one raw string column, or null when it does not parse."""
    text = F.trim(raw)
    if col.kind == "string":
        return raw
    if col.kind == "timestamp":
        return F.try_to_timestamp(text, F.lit(col.fmt))
    if col.kind == "iso8601":
        shaped = F.when(text.rlike(ISO_8601), text)
        return F.try_to_timestamp(F.when(shaped.rlike(_ZONE), shaped).otherwise(F.concat(shaped, F.lit("Z"))))
    if col.kind == "unix_seconds":
        return F.timestamp_seconds(text.try_cast("bigint"))
    if col.kind in _CASTS:
        return text.try_cast(_CASTS[col.kind])
    raise ValueError(f"column {col.name}: unknown kind '{col.kind}'")


def classify(raw: DataFrame, spec: TableSpec) -> DataFrame:
    """Add typed columns and ``_reject_reason`` (all reasons, '; '-joined) to raw rows.

    ``raw`` has one string column per ``spec`` column (null where a file lacks an
    optional column), ``_corrupt_record`` and ``_source_file``, and for JSON Lines
    ``_raw_line`` (the quarantined text).  The output has the bronze columns,
    ``_reject_reason``, ``_raw_text`` and ``_source_file``.

    >>> classify(spark.createDataFrame([("1", None, "f")], "price string, _corrupt_record string, _source_file string"),
    ...          TableSpec("s", "t", "*", (Col("price", "double"),)))  # doctest: +SKIP
    """
    typed = [convert(F.col(c.name), c).alias(c.bronze_name) for c in spec.columns]
    line = [RAW_LINE] if RAW_LINE in raw.columns else []
    df = raw.select(*[F.col(c.name).alias(f"_raw_{i}") for i, c in enumerate(spec.columns)], CORRUPT, SOURCE_FILE,
                    *line, *typed)
    reasons: list[Column] = [F.when(F.col(CORRUPT).isNotNull(), F.lit(MALFORMED[spec.file_format]))]
    for i, c in enumerate(spec.columns):
        raw_c = F.col(f"_raw_{i}")
        empty = raw_c.isNull() | (F.trim(raw_c) == "")
        if c.required:
            reasons.append(F.when(empty, F.lit(f"missing {c.name}")))
        if c.kind != "string":
            bad = ~empty & F.col(c.bronze_name).isNull()
            reasons.append(F.when(bad, F.concat(F.lit(f"bad {c.kind} in {c.name}: '"), F.substring(raw_c, 1, 60), F.lit("'"))))
    # Domain rules only judge rows that parsed; a null result counts as a breach.
    for condition, reason in spec.rules:
        reasons.append(F.when(~F.coalesce(F.expr(condition), F.lit(False)), F.lit(reason)))
    joined = F.concat_ws("; ", F.array_compact(F.array(*reasons)))
    if spec.file_format == "jsonl":  # a line that is not an object has no fields to judge: one reason, not one per key
        joined = F.when(F.col(CORRUPT).isNotNull(), F.lit(MALFORMED["jsonl"])).otherwise(joined)
    raw_text = F.col(RAW_LINE) if line else F.coalesce(
        F.col(CORRUPT),
        F.to_csv(F.struct(*[F.col(f"_raw_{i}").alias(c.name) for i, c in enumerate(spec.columns)])),
    )
    return df.select(
        *[c.bronze_name for c in spec.columns],
        F.when(joined != "", joined).alias(REASON),
        raw_text.alias(RAW_TEXT),
        SOURCE_FILE,
    )
