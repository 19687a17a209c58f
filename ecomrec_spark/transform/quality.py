"""Mean imputation and per-category IQR outlier filtering.

Both are pure transforms.  Outliers are judged before imputing, so the means
come from plausible values, and filled-in values are never judged outliers.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def iqr_bounds(df: DataFrame, column: str, group: str, k: float = 1.5, accuracy: int = 10000) -> DataFrame:
    """Per-group ``q1, q3, lower, upper`` of ``column`` (one row per group), for reports and tests."""
    q = F.percentile_approx(column, [0.25, 0.75], accuracy)
    return (df.where(F.col(column).isNotNull()).groupBy(group).agg(q.alias("_q"))
            .select(group, F.col("_q")[0].alias("q1"), F.col("_q")[1].alias("q3"))
            .withColumn("lower", F.col("q1") - k * (F.col("q3") - F.col("q1")))
            .withColumn("upper", F.col("q3") + k * (F.col("q3") - F.col("q1"))))


def _outside(c: str, lo: Column, hi: Column, group: str) -> Column:
    """The reason text when ``c`` lies outside ``[lo, hi]``; null inside or when ``c`` is null."""
    return F.when(F.col(c).isNotNull() & ((F.col(c) < lo) | (F.col(c) > hi)),
                  F.format_string(f"IQR outlier: {c}=%s outside [%s, %s] for %s", F.col(c),
                                  F.round(lo, 4), F.round(hi, 4), F.col(group)))


def _with_reason(df: DataFrame, reasons: list[Column]) -> DataFrame:
    reason = F.concat_ws("; ", *reasons)
    return df.withColumn("_outlier_reason", F.when(reason != "", reason))


def flag_iqr_outliers(df: DataFrame, columns: Sequence[str], group: str, k: float = 1.5,
                      accuracy: int = 10000) -> DataFrame:
    """Add ``_outlier_reason`` (null when the row is kept) using per-group quartiles over a window.

    The quartiles come from ``percentile_approx`` over a window partitioned by
    ``group``, so each row is judged against its own category.  A null value is
    never an outlier (it is imputed later).

    >>> # price 100 in a category whose prices are 10, 11, 12, 13 is flagged
    """
    w = Window.partitionBy(group)
    out = df
    reasons = []
    for c in columns:
        q = F.percentile_approx(c, [0.25, 0.75], accuracy).over(w)
        out = out.withColumn(f"_q_{c}", q)
        q1, q3 = F.col(f"_q_{c}")[0], F.col(f"_q_{c}")[1]
        reasons.append(_outside(c, q1 - k * (q3 - q1), q3 + k * (q3 - q1), group))
    return _with_reason(out, reasons).drop(*[f"_q_{c}" for c in columns])


def flag_iqr_outliers_by_aggregate(df: DataFrame, columns: Sequence[str], group: str, k: float = 1.5,
                                   accuracy: int = 10000) -> DataFrame:
    """Same result as :func:`flag_iqr_outliers`, with the quartiles from a grouped aggregate.

    The per-group bounds are one small row per category broadcast back, so
    the rows are never sorted by category: cheaper than the window when a
    table is large, and the choice is ``transform.iqr_method``.
    """
    out = df
    reasons = []
    for c in columns:
        b = iqr_bounds(df, c, group, k, accuracy).select(
            F.col(group), F.col("lower").alias(f"_lo_{c}"), F.col("upper").alias(f"_hi_{c}"))
        out = out.join(F.broadcast(b), group, "left")
        reasons.append(_outside(c, F.col(f"_lo_{c}"), F.col(f"_hi_{c}"), group))
    return _with_reason(out, reasons).drop(*[f"_lo_{c}" for c in columns], *[f"_hi_{c}" for c in columns])


IQR_METHODS = {"window": flag_iqr_outliers, "aggregate": flag_iqr_outliers_by_aggregate}


def split_outliers(df: DataFrame, columns: Sequence[str], group: str, k: float = 1.5,
                   accuracy: int = 10000, method: str = "window") -> tuple[DataFrame, DataFrame]:
    """``(kept, outliers)``; outliers keep every column plus ``outlier_reason``.

    ``method`` is ``window`` (quartiles over a window partitioned by ``group``)
    or ``aggregate`` (a grouped aggregate joined back by broadcast).
    """
    if method not in IQR_METHODS:
        raise ValueError(f"unknown IQR method '{method}'; use one of {sorted(IQR_METHODS)}")
    flagged = IQR_METHODS[method](df, columns, group, k, accuracy)
    kept = flagged.where(F.col("_outlier_reason").isNull()).drop("_outlier_reason")
    outliers = flagged.where(F.col("_outlier_reason").isNotNull()).withColumnRenamed("_outlier_reason", "outlier_reason")
    return kept, outliers


def impute_mean(df: DataFrame, columns: Sequence[str], group: str) -> DataFrame:
    """Fill nulls with the group mean, else the global mean; add ``<col>_imputed`` flags.

    Means come from a small aggregate joined back by broadcast, so no global
    window pulls every row into one partition.  A column with no value at all
    (a source without freight) stays null and is not flagged.
    """
    means = df.groupBy(group).agg(*[F.avg(c).alias(f"_gmean_{c}") for c in columns])
    overall = df.agg(*[F.avg(c).alias(f"_all_{c}") for c in columns])
    out = df.join(F.broadcast(means), group, "left").crossJoin(F.broadcast(overall))
    for c in columns:
        fill = F.coalesce(F.col(f"_gmean_{c}"), F.col(f"_all_{c}"))
        out = (out.withColumn(f"{c}_imputed", F.col(c).isNull() & fill.isNotNull())
                  .withColumn(c, F.coalesce(F.col(c), fill)))
    return out.drop(*[f"_gmean_{c}" for c in columns], *[f"_all_{c}" for c in columns])
