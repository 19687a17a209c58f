"""ETL benchmark: the product's Spark cleaning steps against the same steps in pandas.

What it measures
----------------
One order-line table (``order_id, line_id, product_id, category, price,
freight_value, order_ts``; ~70 categories of very different sizes, lognormal
prices with ~1 % nulls and ~0.3 % extreme outliers) goes through the silver
cleaning of ``ecomrec_spark``:

1. read the Parquet input;
2. per-category IQR outlier filter on ``price`` (k from the config, 1.5);
3. per-category mean imputation of ``price`` and ``freight_value`` with a
   global fallback, computed after the outlier removal, with ``<col>_imputed``
   flags;
4. ``price_freight_ratio = price / max(freight_value, min_freight)``;
5. write the cleaned lines and the outliers.

The Spark side calls the library itself (:func:`ecomrec_spark.transform.run.clean_order_lines`,
:func:`ecomrec_spark.transform.features.price_freight_ratio` and the Delta
helper :func:`ecomrec_spark.lake.overwrite`), so the product code is what is
timed.  The pandas side does the same work vectorised in memory and writes
Parquet with pyarrow.  Quartiles in pandas are the exact ``inverted_cdf``
quantiles (the smallest value with at least ``q`` of its group at or below
it), which is what Spark's ``percentile_approx`` returns when its sketch holds
every value, i.e. when a group has fewer than ``accuracy / 2`` values.

Run order
---------
* the input is generated once per size with Spark (``spark.range`` + ``xxhash64``,
  deterministic, no UDFs) under ``bench/out/input_<rows>.parquet`` and reused;
* an agreement check at ``--check-rows`` compares both engines (kept and
  outlier counts, per-category q1/q3, the imputed means, column sums) exactly
  or to 1e-9 relative, and aborts the run on any difference;
* each size then runs pandas and Spark, each in a fresh subprocess so peak
  memory is clean: wall time, peak RSS (pandas: ``ru_maxrss``; Spark: the
  python driver plus its JVM, sampled with psutil every 0.2 s), rows/s and
  seconds per million rows;
* pandas' bytes per row give the largest size it could hold in 80 % of the
  available memory; Spark alone then runs beyond that size;
* the results are written between ``<!-- etl:start -->`` and
  ``<!-- etl:end -->`` in ``BENCHMARKS.md``.

Usage::

    .venv/bin/python bench/etl.py [--sizes 1000000,5000000,20000000] [--beyond ROWS]
                                  [--check-rows 200000] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/etl.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

log = logging.getLogger("bench.etl")

OUT_DIR = REPO_ROOT / "bench" / "out"
DEFAULT_MD = REPO_ROOT / "BENCHMARKS.md"
START_MARK, END_MARK = "<!-- etl:start -->", "<!-- etl:end -->"

# --- the generated input -----------------------------------------------------------------------
SEED = 20240917
GENERATOR_VERSION = 1  # bump when the generator changes, so cached inputs are rebuilt
N_CATEGORIES = 70
CATEGORY_SKEW = 2.0  # category = floor(70 * u**2): cat_00 ~12 % of rows, cat_69 ~0.7 %
NO_FREIGHT_CATEGORY = f"cat_{N_CATEGORIES - 1:02d}"  # no freight at all: exercises the global-mean fallback
NULL_PRICE_RATE = 0.01
OUTLIER_RATE = 0.003
NULL_FREIGHT_RATE = 0.01
ZERO_FREIGHT_RATE = 0.05
ROWS_PER_FILE = 1_000_000
TS_START = 1_483_228_800  # 2017-01-01 UTC
TS_SPAN = 52_000_000  # ~600 days
TWO52 = 1 << 52

# --- column names (the canonical ones of ecomrec_spark.columns) --------------------------------
CATEGORY, PRICE, FREIGHT, RATIO = "category", "price", "freight_value", "price_freight_ratio"
INPUT_COLUMNS = ["order_id", "line_id", "product_id", CATEGORY, PRICE, FREIGHT, "order_ts"]
LINES_TABLE, OUTLIERS_TABLE = "bench_order_lines", "bench_order_line_outliers"

# --- measurement -------------------------------------------------------------------------------
RSS_INTERVAL_S = 0.2
MEMORY_FRACTION = 0.8  # pandas may use this share of the available memory
BEYOND_FACTOR = 1.5
BEYOND_BUDGET_S = 15 * 60  # the Spark-only run must finish within this
BEYOND_SAFETY = 1.5  # projected time = rows x Spark's s/row at its largest timed size x this
DISK_FACTOR = 4.0  # input + outputs + shuffle spill, in multiples of the input size
REL_TOL = 1e-9


class AgreementError(RuntimeError):
    """Spark and pandas disagree on the agreement check."""


# ================================================================================================
# Input generation (Spark, hash-based, deterministic)
# ================================================================================================

def input_path(rows: int) -> Path:
    """The cached input folder for ``rows`` rows."""
    return OUT_DIR / f"input_{rows}.parquet"


def _meta(rows: int, seed: int) -> dict[str, int]:
    return {"rows": rows, "seed": seed, "generator_version": GENERATOR_VERSION}


def input_ready(path: Path, rows: int, seed: int = SEED) -> bool:
    """True when ``path`` holds a complete input written by this generator for ``rows`` rows."""
    meta = path / "_bench_meta.json"
    if not (path / "_SUCCESS").is_file() or not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()) == _meta(rows, seed)
    except ValueError:
        return False


def input_frame(spark, rows: int, seed: int = SEED, partitions: int | None = None):
    """The synthetic order-line table as a lazy Spark DataFrame.

    Every value is a pure function of the row id and ``seed`` (``xxhash64``
    folded into a uniform on (0, 1)), so any size is reproducible and the
    first ``n`` rows of a larger input equal the smaller input.

    Parameters
    ----------
    spark : SparkSession
    rows : int
        Number of order lines.
    seed : int
        Hash seed.
    partitions : int, optional
        Partitions of ``spark.range``; default one per million rows (at least 2).

    Returns
    -------
    DataFrame
        ``order_id string, line_id int, product_id string, category string,
        price double, freight_value double, order_ts timestamp``.
    """
    from pyspark.sql import functions as F

    parts = partitions or max(2, math.ceil(rows / ROWS_PER_FILE))

    def u(salt: int):
        h = F.xxhash64(F.col("id"), F.lit(seed), F.lit(salt))
        return (F.pmod(h, F.lit(TWO52)) + F.lit(0.5)) / F.lit(float(TWO52))

    def normal(a: int, b: int):  # Box-Muller
        return F.sqrt(F.lit(-2.0) * F.log(u(a))) * F.cos(F.lit(2 * math.pi) * u(b))

    def frac(c):
        return c - F.floor(c)

    cat = F.col("_cat")
    mu = F.lit(2.2) + F.lit(3.0) * frac(cat * F.lit(0.6180339887498949))
    sigma = F.lit(0.3) + F.lit(0.5) * frac(cat * F.lit(0.7548776662466927))
    base = F.exp(mu + sigma * normal(2, 3))
    price = F.when(u(4) < OUTLIER_RATE, F.round(base * (F.lit(20.0) + F.lit(80.0) * u(5)), 2)) \
             .otherwise(F.greatest(F.round(base, 2), F.lit(0.01)))
    freight = F.greatest(F.round(F.exp(F.lit(2.0) + F.lit(0.5) * normal(8, 10)), 2), F.lit(0.01))
    category = F.format_string("cat_%02d", cat)
    return (spark.range(0, rows, 1, parts)
            .withColumn("_cat", F.floor(F.pow(u(1), F.lit(CATEGORY_SKEW)) * N_CATEGORIES).cast("int"))
            .select(
                F.format_string("o%011d", F.expr("id div 3")).alias("order_id"),
                (F.pmod(F.col("id"), F.lit(3)) + 1).cast("int").alias("line_id"),
                F.format_string("p%02d%05d", cat, F.pmod(F.xxhash64(F.col("id"), F.lit(seed), F.lit(9)), F.lit(3000)))
                 .alias("product_id"),
                category.alias(CATEGORY),
                F.when(u(6) >= NULL_PRICE_RATE, price).alias(PRICE),
                F.when((category == NO_FREIGHT_CATEGORY) | (u(7) < NULL_FREIGHT_RATE), F.lit(None).cast("double"))
                 .when(u(7) < NULL_FREIGHT_RATE + ZERO_FREIGHT_RATE, F.lit(0.0))
                 .otherwise(freight).alias(FREIGHT),
                F.timestamp_seconds((F.lit(TS_START) + F.floor(u(11) * TS_SPAN)).cast("long")).alias("order_ts"),
            ))


def generate_input(spark, rows: int, path: str | os.PathLike[str], seed: int = SEED, force: bool = False) -> bool:
    """Write the input as Parquet under ``path`` unless a matching one is already there.

    Returns
    -------
    bool
        True when the input was written, False when the cached one was reused.
    """
    path = Path(path)
    if not force and input_ready(path, rows, seed):
        log.info("reusing input %s (%s rows)", path, f"{rows:,}")
        return False
    t0 = time.perf_counter()
    input_frame(spark, rows, seed).write.mode("overwrite").parquet(str(path))
    (path / "_bench_meta.json").write_text(json.dumps(_meta(rows, seed)))
    log.info("generated %s rows into %s in %.1f s", f"{rows:,}", path, time.perf_counter() - t0)
    return True


# ================================================================================================
# The pandas pipeline
# ================================================================================================

def grouped_quantiles(codes, values, n_groups: int, qs: Sequence[float]):
    """Exact per-group ``inverted_cdf`` quantiles, vectorised (one sort, no loop over rows).

    For a group of ``n`` non-null values the ``q`` quantile is its
    ``ceil(q * n)``-th smallest value (1-based): the smallest ``v`` with at
    least ``q`` of the group at or below it, as numpy's
    ``method="inverted_cdf"``.  NaNs are ignored; a group without values gets NaN.

    Parameters
    ----------
    codes : ndarray of int
        Group code per row, in ``[0, n_groups)``.
    values : ndarray of float
        Values, NaN for null.
    n_groups : int
    qs : sequence of float

    Returns
    -------
    quantiles : list of ndarray
        One array of length ``n_groups`` per ``q``.
    sorted_groups : tuple
        ``(sorted_values, starts, counts)``: the non-null values sorted by
        (group, value) and each group's slice, for rank diagnostics.
    """
    import numpy as np

    valid = ~np.isnan(values)
    c, v = codes[valid], values[valid]
    order = np.lexsort((v, c))
    v_sorted = v[order]
    counts = np.bincount(c, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    has = counts > 0
    out = []
    for q in qs:
        rank = np.maximum(np.ceil(q * counts).astype(np.int64), 1)
        res = np.full(n_groups, np.nan)
        res[has] = v_sorted[(starts + rank - 1)[has]]
        out.append(res)
    return out, (v_sorted, starts, counts)


def pandas_etl(src: str | os.PathLike[str], out_dir: str | os.PathLike[str], k: float, min_freight: float,
               details: bool = False) -> dict[str, Any]:
    """Run the ETL in pandas: read, IQR split, mean imputation, ratio, write Parquet.

    Parameters
    ----------
    src : path
        The Parquet input folder.
    out_dir : path
        Receives ``order_lines.parquet`` and ``order_line_outliers.parquet``.
    k : float
        IQR multiplier.
    min_freight : float
        Floor of the ratio's denominator.
    details : bool
        Also return per-category quartiles and means and column sums of the
        result (for the agreement check; costs a little extra work).

    Returns
    -------
    dict
        ``rows, kept, outliers`` and, with ``details``, ``quartiles``,
        ``group_means``, ``fill``, ``overall``, ``sums`` and ``_sorted`` (arrays).
    """
    import numpy as np
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = pd.read_parquet(src, engine="pyarrow")
    rows = len(df)
    codes, cats = pd.factorize(df[CATEGORY], sort=True, use_na_sentinel=False)
    n_groups = len(cats)

    # per-category IQR fences on price; a null price is never an outlier
    price = df[PRICE].to_numpy(dtype="float64", na_value=np.nan)
    (q1, q3), sorted_groups = grouped_quantiles(codes, price, n_groups, (0.25, 0.75))
    lower, upper = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    lo_row, hi_row = lower[codes], upper[codes]
    is_out = ~np.isnan(price) & ((price < lo_row) | (price > hi_row))
    keep = ~is_out
    if not details:
        del sorted_groups  # the sorted copy is only kept for the agreement check's diagnostics
    # outliers keep their raw values (taken before any imputation) plus the reason
    outliers = df.loc[is_out, INPUT_COLUMNS].copy()
    outliers["outlier_reason"] = ("IQR outlier: price=" + outliers[PRICE].astype(str)
                                  + " outside [" + pd.Series(np.round(lo_row[is_out], 4), index=outliers.index).astype(str)
                                  + ", " + pd.Series(np.round(hi_row[is_out], 4), index=outliers.index).astype(str)
                                  + "] for " + outliers[CATEGORY].astype(str))

    # means over the kept rows, per category with the global mean as fallback
    cols = [PRICE, FREIGHT]
    kept_vals = df.loc[keep, cols]
    means = kept_vals.groupby(codes[keep]).mean().reindex(range(n_groups))
    overall = kept_vals.mean()
    del kept_vals
    fills = {}
    for c in cols:
        fill = means[c].fillna(overall[c]).to_numpy()
        fills[c] = fill
        row_fill = fill[codes]
        missing = df[c].isna().to_numpy()
        df[f"{c}_imputed"] = missing & ~np.isnan(row_fill)
        # nulls are never outliers, so filling them on the whole frame fills exactly the kept nulls
        df[c] = np.where(missing, row_fill, df[c].to_numpy())
    df[RATIO] = df[PRICE] / np.maximum(df[FREIGHT], min_freight)  # NaN freight gives NaN

    outliers.to_parquet(out_dir / "order_line_outliers.parquet", engine="pyarrow", index=False)
    result = df.loc[keep]
    del df
    result.to_parquet(out_dir / "order_lines.parquet", engine="pyarrow", index=False)

    report: dict[str, Any] = {"rows": rows, "kept": int(keep.sum()), "outliers": int(is_out.sum())}
    if details:
        names = [_cat_key(c) for c in cats]
        counts = sorted_groups[2]
        report["quartiles"] = {names[g]: [float(q1[g]), float(q3[g])] for g in range(n_groups) if counts[g] > 0}
        report["group_means"] = {names[g]: {c: _num(means[c].iloc[g]) for c in cols} for g in range(n_groups)}
        report["fill"] = {names[g]: {c: _num(fills[c][g]) for c in cols} for g in range(n_groups)}
        report["overall"] = {c: _num(overall[c]) for c in cols}
        report["sums"] = {
            "sum_price": _num(result[PRICE].sum()), "sum_freight": _num(result[FREIGHT].sum()),
            "sum_ratio": _num(result[RATIO].sum()), "null_ratio": int(result[RATIO].isna().sum()),
            "price_imputed": int(result[f"{PRICE}_imputed"].sum()),
            "freight_imputed": int(result[f"{FREIGHT}_imputed"].sum()),
        }
        report["_sorted"] = (names, *sorted_groups)
    return report


def _cat_key(value: Any) -> str:
    return "<null>" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


# ================================================================================================
# The Spark pipeline (the library code)
# ================================================================================================

def spark_etl(spark, src: str | os.PathLike[str], lake_root: str | os.PathLike[str], tcfg: Mapping[str, Any]) -> None:
    """Run the product's cleaning on the Parquet input and write both Delta tables.

    The same calls as ``ecomrec_spark.transform.run.transform``:
    ``clean_order_lines`` (IQR split + mean imputation), then
    ``price_freight_ratio``; outliers are written first, then the lines, each
    with :func:`ecomrec_spark.lake.overwrite` (one Delta commit each).
    Nothing is collected.
    """
    from ecomrec_spark import lake
    from ecomrec_spark.settings import Transform
    from ecomrec_spark.transform.features import price_freight_ratio
    from ecomrec_spark.transform.run import clean_order_lines

    lines = spark.read.parquet(str(src))
    clean, outliers = clean_order_lines(lines, Transform.model_validate(dict(tcfg)))
    result = price_freight_ratio(clean, tcfg["min_freight"])
    lake.overwrite(outliers, str(lake_root), "silver", OUTLIERS_TABLE)
    lake.overwrite(result, str(lake_root), "silver", LINES_TABLE)


def _check_tcfg(tcfg: Mapping[str, Any]) -> None:
    if list(tcfg["outlier_columns"]) != [PRICE]:
        raise SystemExit(f"bench/etl.py mirrors transform.outlier_columns == ['price'] in pandas; "
                         f"the config has {tcfg['outlier_columns']}")


# ================================================================================================
# Agreement check
# ================================================================================================

def exact_accuracy(max_group: int, accuracy: int) -> int:
    """An accuracy at which ``percentile_approx`` is exact for groups of up to ``max_group`` values.

    Spark's sketch keeps every value with rank uncertainty 0 while each
    inserted rank ``i`` has ``floor(2 * i / accuracy) == 0``, i.e. for
    ``accuracy > 2 * (n - 1)``; then it returns the ``ceil(q * n)``-th value,
    the ``inverted_cdf`` quantile.  Returns ``accuracy`` itself when it
    already qualifies, else the next power of ten that does.
    """
    need = 2 * max_group + 1
    return accuracy if accuracy >= need else 10 ** math.ceil(math.log10(need))


def _close(a: float | None, b: float | None, tol: float = REL_TOL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b or abs(a - b) <= tol * max(abs(a), abs(b))


def _spark_results(spark, src: str, lake_root: str, k: float, accuracy: int) -> dict[str, Any]:
    """Aggregates of Spark's written tables (never row-level data)."""
    from pyspark.sql import functions as F

    from ecomrec_spark import lake
    from ecomrec_spark.transform.quality import iqr_bounds

    res = lake.read(spark, lake_root, "silver", LINES_TABLE)
    outl = lake.read(spark, lake_root, "silver", OUTLIERS_TABLE)
    pi, fi = F.col(f"{PRICE}_imputed"), F.col(f"{FREIGHT}_imputed")
    tot = res.agg(
        F.count(F.lit(1)).alias("kept"), F.sum(PRICE).alias("sum_price"), F.sum(FREIGHT).alias("sum_freight"),
        F.sum(RATIO).alias("sum_ratio"), F.count_if(F.col(RATIO).isNull()).alias("null_ratio"),
        F.count_if(pi).alias("price_imputed"), F.count_if(fi).alias("freight_imputed"),
        F.avg(F.when(~pi, F.col(PRICE))).alias("overall_price"), F.avg(F.when(~fi, F.col(FREIGHT))).alias("overall_freight"),
    ).first().asDict()
    per_cat = res.groupBy(CATEGORY).agg(
        F.avg(F.when(~pi, F.col(PRICE))).alias("mean_price"), F.avg(F.when(~fi, F.col(FREIGHT))).alias("mean_freight"),
        F.min(F.when(pi, F.col(PRICE))).alias("fill_price_min"), F.max(F.when(pi, F.col(PRICE))).alias("fill_price"),
        F.min(F.when(fi, F.col(FREIGHT))).alias("fill_freight_min"), F.max(F.when(fi, F.col(FREIGHT))).alias("fill_freight"),
    ).collect()
    bounds = iqr_bounds(spark.read.parquet(src), PRICE, CATEGORY, k, accuracy).collect()
    return {
        "kept": tot["kept"], "outliers": outl.count(), "totals": tot,
        "per_cat": {_cat_key(r[CATEGORY]): r.asDict() for r in per_cat},
        "quartiles": {_cat_key(r[CATEGORY]): [r["q1"], r["q3"]] for r in bounds},
    }


def _window_quartiles(spark, src: str, accuracy: int) -> dict[str, list[float]]:
    """q1/q3 per category from the same windowed ``percentile_approx`` expression as ``flag_iqr_outliers``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    q = F.percentile_approx(PRICE, [0.25, 0.75], accuracy).over(Window.partitionBy(CATEGORY))
    rows = (spark.read.parquet(src).select(CATEGORY, q.alias("_q"))
            .groupBy(CATEGORY).agg(F.first("_q", ignorenulls=True).alias("_q")).collect())
    return {_cat_key(r[CATEGORY]): list(r["_q"]) for r in rows if r["_q"] is not None}


def _compare(pd_rep: Mapping[str, Any], sp: Mapping[str, Any]) -> list[str]:
    """Every difference between the pandas report and Spark's aggregates, as readable lines."""
    bad: list[str] = []
    for key in ("kept", "outliers"):
        if pd_rep[key] != sp[key]:
            bad.append(f"{key}: pandas {pd_rep[key]} != spark {sp[key]}")
    if set(pd_rep["quartiles"]) != set(sp["quartiles"]):
        bad.append(f"categories with quartiles differ: {sorted(set(pd_rep['quartiles']) ^ set(sp['quartiles']))}")
    for cat, (q1, q3) in sorted(pd_rep["quartiles"].items()):
        s = sp["quartiles"].get(cat)
        if s is not None and (s[0] != q1 or s[1] != q3):
            bad.append(f"{cat}: quartiles pandas ({q1!r}, {q3!r}) != spark ({s[0]!r}, {s[1]!r})")
    tot = sp["totals"]
    for key in ("null_ratio", "price_imputed", "freight_imputed"):
        if pd_rep["sums"][key] != tot[key]:
            bad.append(f"{key}: pandas {pd_rep['sums'][key]} != spark {tot[key]}")
    for key in ("sum_price", "sum_freight", "sum_ratio"):
        if not _close(pd_rep["sums"][key], tot[key]):
            bad.append(f"{key}: pandas {pd_rep['sums'][key]!r} != spark {tot[key]!r}")
    for c, key in ((PRICE, "overall_price"), (FREIGHT, "overall_freight")):
        if not _close(pd_rep["overall"][c], tot[key]):
            bad.append(f"overall mean of {c}: pandas {pd_rep['overall'][c]!r} != spark {tot[key]!r}")
    for cat, r in sorted(sp["per_cat"].items()):
        for c, short in ((PRICE, "price"), (FREIGHT, "freight")):
            pm, pf = pd_rep["group_means"].get(cat, {}).get(c), pd_rep["fill"].get(cat, {}).get(c)
            if not _close(pm, r[f"mean_{short}"]):
                bad.append(f"{cat}: mean {c} pandas {pm!r} != spark {r[f'mean_{short}']!r}")
            if r[f"fill_{short}"] is not None:  # the category had imputed rows: the value Spark filled in
                if r[f"fill_{short}_min"] != r[f"fill_{short}"]:
                    bad.append(f"{cat}: spark filled {c} with more than one value")
                if not _close(pf, r[f"fill_{short}"]):
                    bad.append(f"{cat}: imputed {c} pandas {pf!r} != spark {r[f'fill_{short}']!r}")
    return bad


def _rank_offsets(pd_rep: Mapping[str, Any], spark_q: Mapping[str, list[float]]) -> tuple[int, int, int]:
    """(max |rank offset|, categories with any offset, its largest group size) of Spark's quartiles vs exact."""
    import numpy as np

    names, v_sorted, starts, counts = pd_rep["_sorted"]
    worst, n_off, n_at_worst = 0, 0, 0
    for g, name in enumerate(names):
        n = int(counts[g])
        if n == 0 or name not in spark_q:
            continue
        vals = v_sorted[starts[g]:starts[g] + n]
        off_any = False
        for q, v in zip((0.25, 0.75), spark_q[name], strict=True):
            target = max(math.ceil(q * n), 1)
            lo = int(np.searchsorted(vals, v, "left")) + 1
            hi = int(np.searchsorted(vals, v, "right"))
            off = 0 if lo <= target <= hi else (hi - target if hi < target else lo - target)
            if off:
                off_any = True
                if abs(off) > worst:
                    worst, n_at_worst = abs(off), n
        n_off += off_any
    return worst, n_off, n_at_worst


def run_agreement(spark, src: str | os.PathLike[str], workdir: str | os.PathLike[str],
                  tcfg: Mapping[str, Any]) -> dict[str, Any]:
    """Run both engines on ``src`` and compare their results.

    Spark runs the library at an accuracy where ``percentile_approx`` is exact
    for the largest category (:func:`exact_accuracy`; the configured one when
    it already is), and everything must match: kept and outlier counts and
    per-category q1/q3 exactly, means and column sums to 1e-9 relative.  When
    the configured accuracy is not exact at this size, Spark also runs with
    it and the differences it makes are reported (never an abort).

    Returns
    -------
    dict
        ``ok`` (bool), ``mismatches`` (list of str) and the compared figures.
    """
    from pyspark.sql import functions as F

    _check_tcfg(tcfg)
    src, workdir = str(src), Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    k, acc = float(tcfg["iqr_k"]), int(tcfg["iqr_accuracy"])
    pd_rep = pandas_etl(src, workdir / "pandas", k, float(tcfg["min_freight"]), details=True)

    max_group = spark.read.parquet(src).where(F.col(PRICE).isNotNull()).groupBy(CATEGORY).count() \
        .agg(F.max("count")).first()[0] or 0
    exact_acc = exact_accuracy(max_group, acc)
    lake_root = str(workdir / "lake_exact")
    spark_etl(spark, src, lake_root, {**tcfg, "iqr_accuracy": exact_acc})
    sp = _spark_results(spark, src, lake_root, k, exact_acc)
    mismatches = _compare(pd_rep, sp)
    fallback = sorted(cat for cat, m in pd_rep["group_means"].items() if any(v is None for v in m.values()))
    report: dict[str, Any] = {
        "ok": not mismatches, "mismatches": mismatches, "rows": pd_rep["rows"], "kept": pd_rep["kept"],
        "outliers": pd_rep["outliers"], "categories": len(pd_rep["quartiles"]), "max_group": max_group,
        "config_accuracy": acc, "check_accuracy": exact_acc,
        "price_imputed": pd_rep["sums"]["price_imputed"], "freight_imputed": pd_rep["sums"]["freight_imputed"],
        "global_fallback_categories": fallback,
    }
    if exact_acc != acc:
        lake_cfg = str(workdir / "lake_config")
        spark_etl(spark, src, lake_cfg, tcfg)
        sp_cfg = _spark_results(spark, src, lake_cfg, k, acc)
        worst, n_off, n_at = _rank_offsets(pd_rep, _window_quartiles(spark, src, acc))
        mean_diff = max((abs(a - b) / max(abs(a), abs(b)) for cat, r in sp_cfg["per_cat"].items()
                         for c, short in ((PRICE, "price"), (FREIGHT, "freight"))
                         if (a := pd_rep["group_means"].get(cat, {}).get(c)) is not None
                         and (b := r[f"mean_{short}"]) is not None and (a or b)), default=0.0)
        report["at_config_accuracy"] = {
            "kept_spark": sp_cfg["kept"], "outliers_spark": sp_cfg["outliers"],
            "max_rank_offset": worst, "categories_off": n_off, "group_size_at_max_offset": n_at,
            "max_rel_mean_diff": mean_diff,
        }
    return report


# ================================================================================================
# Measurement helpers
# ================================================================================================

class TreeRssSampler(threading.Thread):
    """Peak RSS of this process plus all its descendants (the Spark JVM), sampled every ``interval`` s."""

    def __init__(self, interval: float = RSS_INTERVAL_S) -> None:
        super().__init__(daemon=True)
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.peak = 0

    def sample(self) -> int:
        import psutil

        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        with self._lock:
            self.peak = max(self.peak, total)
        return total

    def reset(self) -> None:
        """Forget the peak so far (call after session start)."""
        with self._lock:
            self.peak = 0
        self.sample()

    def run(self) -> None:
        while not self._halt.wait(self._interval):
            self.sample()

    def stop(self) -> int:
        self.sample()
        self._halt.set()
        self.join()
        return self.peak


def bench_session(cfg: Mapping[str, Any], driver_memory: str, app: str):
    """The configured session (``build_session``) with the benchmark's driver memory."""
    from ecomrec_spark.session import build_session

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    return build_session(cfg, app_name=app, extra_conf={
        "spark.driver.memory": driver_memory,
        "spark.ui.showConsoleProgress": "false",
        "spark.local.dir": str(OUT_DIR / "spark-local"),
    })


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ================================================================================================
# Workers (each in its own process)
# ================================================================================================

def _worker(args: argparse.Namespace) -> dict[str, Any]:
    from ecomrec_spark.config import load_config

    cfg = load_config(None)
    tcfg = cfg["transform"]
    if args.iqr_method:
        tcfg["iqr_method"] = args.iqr_method
    _check_tcfg(tcfg)
    kind = args.worker
    if kind == "pandas":
        import numpy  # noqa: F401  (imports before the baseline)
        import pandas  # noqa: F401
        import psutil
        import pyarrow.parquet  # noqa: F401

        n = int(args.rows)
        out = OUT_DIR / f"run_{n}" / "pandas"
        shutil.rmtree(out, ignore_errors=True)
        baseline = psutil.Process().memory_info().rss
        t0 = time.perf_counter()
        rep = pandas_etl(input_path(n), out, float(tcfg["iqr_k"]), float(tcfg["min_freight"]))
        secs = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if not args.keep_outputs:
            shutil.rmtree(out.parent, ignore_errors=True)
        return {"engine": "pandas", "rows": n, "seconds": secs, "peak_rss": peak, "baseline_rss": baseline,
                "kept": rep["kept"], "outliers": rep["outliers"]}

    sampler = TreeRssSampler()
    sampler.start()
    t0 = time.perf_counter()
    spark = bench_session(cfg, args.driver_memory, f"ecomrec-bench-{kind}")
    session_s = time.perf_counter() - t0
    try:
        if kind == "generate":
            made = {}
            for n in [int(x) for x in args.rows.split(",")]:
                t = time.perf_counter()
                wrote = generate_input(spark, n, input_path(n))
                made[str(n)] = {"seconds": time.perf_counter() - t if wrote else None,
                                "bytes": _dir_bytes(input_path(n))}
            return {"engine": "generate", "inputs": made}
        n = int(args.rows)
        if kind == "check":
            rep = run_agreement(spark, input_path(n), OUT_DIR / f"check_{n}", tcfg)
            if not args.keep_outputs:
                shutil.rmtree(OUT_DIR / f"check_{n}", ignore_errors=True)
            return {"engine": "check", **rep}
        if kind == "spark":
            from ecomrec_spark import lake

            root = OUT_DIR / f"run_{n}" / "lake"
            shutil.rmtree(root, ignore_errors=True)
            sampler.reset()
            t1 = time.perf_counter()
            spark_etl(spark, input_path(n), root, tcfg)
            secs = time.perf_counter() - t1
            peak = sampler.stop()
            kept = lake.read(spark, str(root), "silver", LINES_TABLE).count()
            outl = lake.read(spark, str(root), "silver", OUTLIERS_TABLE).count()
            if not args.keep_outputs:
                shutil.rmtree(root.parent, ignore_errors=True)
            return {"engine": "spark", "rows": n, "seconds": secs, "session_seconds": session_s, "peak_rss": peak,
                    "kept": kept, "outliers": outl, "iqr_method": tcfg.get("iqr_method", "window"), "conf": {
                        key: spark.conf.get(key) for key in ("spark.master", "spark.driver.memory",
                                                             "spark.sql.shuffle.partitions", "spark.sql.ansi.enabled")}}
        raise SystemExit(f"unknown worker {kind}")
    finally:
        spark.stop()
        if sampler.is_alive():
            sampler.stop()


def _spawn(kind: str, rows: int | str, args: argparse.Namespace, may_fail: bool = False,
           iqr_method: str | None = None) -> dict[str, Any] | None:
    """Run one worker in a fresh interpreter and return its JSON result.

    A failed worker aborts the benchmark, unless ``may_fail`` (pandas, which
    may be killed for lack of memory): then the failure is logged and None returned.
    """
    with tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".json", delete=False) as fh:
        result = Path(fh.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--rows", str(rows),
           "--result", str(result), "--driver-memory", args.driver_memory]
    if args.keep_outputs:
        cmd.append("--keep-outputs")
    if iqr_method:
        cmd += ["--iqr-method", iqr_method]
    log.info("running %s worker (rows=%s)", kind, rows)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            if may_fail:
                log.error("%s worker for rows=%s failed with exit code %s", kind, rows, proc.returncode)
                return None
            raise SystemExit(f"{kind} worker for rows={rows} failed with exit code {proc.returncode}")
        out = json.loads(result.read_text())
    finally:
        result.unlink(missing_ok=True)
    out["process_seconds"] = time.perf_counter() - t0
    return out


# ================================================================================================
# Report
# ================================================================================================

def machine_info() -> dict[str, Any]:
    """CPU model, cores and RAM from /proc (falls back to platform/psutil elsewhere)."""
    import psutil

    cpu, total = platform.processor() or "unknown", psutil.virtual_memory().total
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": total, "available": psutil.virtual_memory().available,
            "os": platform.platform()}


def versions() -> dict[str, str]:
    """Versions of Python, the engines and Java."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("pyspark", "delta-spark", "pandas", "pyarrow", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else "java"
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
        m = re.search(r'version "([^"]+)"', text)
        out["java"] = (m.group(1) + " (" + text.splitlines()[1].strip() + ")") if m and len(text.splitlines()) > 1 \
            else (m.group(1) if m else text.strip()[:80])
    except OSError:
        out["java"] = "not found"
    return out


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def _rows(n: int) -> str:
    return f"{n:,}"


def _spm(run: Mapping[str, Any]) -> float:
    return run["seconds"] / run["rows"] * 1e6


def choose_beyond(pandas_runs: Sequence[Mapping[str, Any]], spark_runs: Sequence[Mapping[str, Any]],
                  available: int, input_bpr: float, free_disk: int, requested: int | None) -> dict[str, Any]:
    """pandas' estimated limit and the Spark-only size beyond it.

    The limit is ``MEMORY_FRACTION * available / bytes_per_row`` with the
    bytes per row (peak RSS / rows) of the largest pandas run.  Unless
    ``requested``, the Spark size is ``BEYOND_FACTOR`` x the limit, capped so
    the projected Spark time (s/row of the largest Spark run x ``BEYOND_SAFETY``) stays
    within ``BEYOND_BUDGET_S`` and the files fit on disk, rounded down to a
    million rows.
    """
    largest = max(pandas_runs, key=lambda r: r["rows"])
    bpr = largest["peak_rss"] / largest["rows"]
    limit = int(MEMORY_FRACTION * available / bpr)
    out: dict[str, Any] = {"bytes_per_row": bpr, "bpr_rows": largest["rows"], "available": available, "limit": limit}
    spm = _spm(max(spark_runs, key=lambda r: r["rows"]))
    time_cap = int(BEYOND_BUDGET_S / (BEYOND_SAFETY * spm) * 1e6) // 1_000_000 * 1_000_000
    disk_cap = int(0.8 * free_disk / (DISK_FACTOR * input_bpr)) // 1_000_000 * 1_000_000
    out.update(spark_spm=spm, time_cap=time_cap, disk_cap=disk_cap)
    if requested is not None:
        out["rows"], out["why"] = requested, f"given with --beyond ({requested / limit:.2f}x the estimated limit)"
        if requested > time_cap:
            log.warning("--beyond %s exceeds the %d-min projection cap of %s rows", requested, BEYOND_BUDGET_S // 60,
                        time_cap)
        return out
    target = math.ceil(BEYOND_FACTOR * limit / 1_000_000) * 1_000_000
    rows = min(target, time_cap, disk_cap)
    why = f"{BEYOND_FACTOR}x the estimated limit, rounded up to a million ({_rows(target)})"
    if rows < target:
        which = "time" if rows == time_cap else "disk"
        why += (f", capped by the {which} budget to {_rows(rows)}" + (
            f" ({BEYOND_SAFETY:g} x the {spm:.2f} s/Mrow of Spark's largest timed run must stay under "
            f"{BEYOND_BUDGET_S // 60} min)"
            if which == "time" else f" ({DISK_FACTOR:g}x the input size must fit in 80% of free disk)"))
    out["rows"], out["why"] = rows, why
    return out


def reading(pandas_runs, spark_runs, beyond_run, beyond) -> list[str]:
    """3-5 sentences reading the measured numbers against the targets."""
    sents = []
    p_by = {r["rows"]: r for r in pandas_runs}
    both = [r for r in spark_runs if r["rows"] in p_by]
    if both:
        s = max(both, key=lambda r: r["rows"])
        p = p_by[s["rows"]]
        ratio = s["seconds"] / p["seconds"]
        sents.append(
            f"At {_rows(s['rows'])} rows, the largest size both engines ran, Spark took {s['seconds']:.1f} s against "
            f"pandas' {p['seconds']:.1f} s ({ratio:.2f}x), so the target of Spark within 2x of pandas is "
            f"{'met' if ratio <= 2 else 'not met'} there; pandas' estimated limit is {_rows(beyond['limit'])} rows, "
            f"so this is {s['rows'] / beyond['limit']:.0%} of the largest size it could hold.")
    timed = sorted(spark_runs + ([beyond_run] if beyond_run else []), key=lambda r: r["rows"])
    if len(timed) >= 2:
        first, last = timed[0], timed[-1]
        lowest = min(_spm(r) for r in timed)
        growth = _spm(last) / lowest - 1
        p_sorted = sorted(pandas_runs, key=lambda r: r["rows"])
        p_txt = (f"; pandas went from {_spm(p_sorted[0]):.2f} to {_spm(p_sorted[-1]):.2f} s/Mrow over "
                 f"{_rows(p_sorted[0]['rows'])}-{_rows(p_sorted[-1]['rows'])} rows") if len(p_sorted) >= 2 else ""
        verdict = ("does not grow with size (the largest run is within 20% of the lowest)" if growth <= 0.2
                   else f"grows by {growth:.0%} from its lowest point to the largest size")
        sents.append(
            f"Spark's time per million rows went from {_spm(first):.2f} s at {_rows(first['rows'])} rows to "
            f"{_spm(last):.2f} s at {_rows(last['rows'])}, so it {verdict}{p_txt}.")
    if beyond_run:
        over = beyond_run["rows"] / beyond["limit"]
        if beyond_run["rows"] > beyond["limit"]:
            sents.append(
                f"Spark completed {_rows(beyond_run['rows'])} rows ({over:.2f}x pandas' estimated limit) in "
                f"{beyond_run['seconds']:.1f} s with a peak RSS of {_gib(beyond_run['peak_rss'])}; pandas was not run "
                "at that size, since by its measured bytes per row it would not fit in memory.")
        else:
            sents.append(
                f"The Spark-only run at {_rows(beyond_run['rows'])} rows is below pandas' estimated limit of "
                f"{_rows(beyond['limit'])} ({beyond['why']}), so completion beyond pandas' reach was not shown "
                f"in this run (it took {beyond_run['seconds']:.1f} s).")
    if both:
        s = max(both, key=lambda r: r["rows"])
        p = p_by[s["rows"]]
        dk = s["kept"] - p["kept"]
        sents.append(
            f"Peak RSS at {_rows(s['rows'])} rows was {_gib(p['peak_rss'])} for pandas "
            f"({p['peak_rss'] / p['rows']:.0f} B/row) and {_gib(s['peak_rss'])} for Spark's driver process tree; "
            + ("both kept the same number of rows." if dk == 0 else
               f"Spark kept {abs(dk):,} {'more' if dk > 0 else 'fewer'} rows than pandas ({abs(dk) / p['rows']:.4%} "
               "of the input), as expected from percentile_approx at the configured accuracy, which is not exact "
               "for categories of more than accuracy/2 values, against pandas' exact quartiles."))
    return sents[:5]


def render(meta: Mapping[str, Any], check: Mapping[str, Any], pandas_runs, spark_runs, beyond_run,
           beyond: Mapping[str, Any] | None, gen: Mapping[str, Any], pandas_failed: Sequence[int] = ()) -> str:
    """The Markdown section between the etl markers."""
    m, v = meta["machine"], meta["versions"]
    conf = (spark_runs or [beyond_run])[0]["conf"]
    lines = [START_MARK, "## ETL: Spark vs pandas (`bench/etl.py`)", "",
             f"- Date: {meta['date']}",
             f"- Command: `{meta['command']}`",
             f"- Machine: {m['cpu']}, {m['cores']} cores, {_gib(m['ram'])} RAM (/proc/meminfo MemTotal), "
             f"{_gib(m['available'])} available at start; {m['os']}",
             "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
             f"- Spark: master `{conf['spark.master']}`, spark.driver.memory {conf['spark.driver.memory']}, "
             f"shuffle partitions {conf['spark.sql.shuffle.partitions']}, ANSI {conf['spark.sql.ansi.enabled']}; "
             "library code `clean_order_lines` + `price_freight_ratio`, Delta writes via `lake.overwrite` "
             "(outliers, then lines). Every run is a fresh process (cold JVM); Spark time is read to committed "
             "write, session start listed apart.",
             "- pandas: `pd.read_parquet` (pyarrow, default numpy dtypes, object strings), exact inverted_cdf "
             "quartiles (one lexsort), groupby means, `to_parquet` (pyarrow); time is read to written files.",
             "- Peak RSS: pandas `ru_maxrss` of its process; Spark the python driver plus JVM, psutil every "
             f"{RSS_INTERVAL_S} s over the process tree during the ETL.",
             "- Input: generated once per size with `spark.range` + `xxhash64` (seed "
             f"{SEED}): {N_CATEGORIES} categories (largest ~12 %, smallest ~0.7 % of rows), lognormal prices, "
             f"{NULL_PRICE_RATE:.0%} null, {OUTLIER_RATE:.1%} outliers x20-100, freight {NULL_FREIGHT_RATE:.0%} null "
             f"+ {ZERO_FREIGHT_RATE:.0%} zero, `{NO_FREIGHT_CATEGORY}` without freight (global-mean fallback).",
             ""]
    lines += [f"### Agreement check ({_rows(check['rows'])} rows)", ""]
    status = "**passed**" if check["ok"] else "**FAILED**"
    lines.append(
        f"{status}: kept {_rows(check['kept'])}, outliers {_rows(check['outliers'])}, q1/q3 of "
        f"{check['categories']} categories equal exactly, imputed means and column sums within 1e-9 relative "
        f"({_rows(check['price_imputed'])} prices and {_rows(check['freight_imputed'])} freights imputed; "
        f"global fallback for {', '.join(check['global_fallback_categories']) or 'no category'}). "
        f"Largest category: {_rows(check['max_group'])} priced rows; Spark ran at percentile accuracy "
        f"{check['check_accuracy']:,}" + (" (the configured one)." if check["check_accuracy"] == check["config_accuracy"]
                                         else f", which is exact at this size, instead of the configured "
                                              f"{check['config_accuracy']:,}."))
    cfg_acc = check.get("at_config_accuracy")
    if cfg_acc:
        lines.append("")
        lines.append(
            f"At the configured accuracy {check['config_accuracy']:,} (what the timed runs use) Spark's quartiles "
            f"are off the exact ones by up to {cfg_acc['max_rank_offset']} rank(s) in {cfg_acc['categories_off']} "
            f"categories (largest offset in a category of {_rows(cfg_acc['group_size_at_max_offset'])} values); "
            f"Spark kept {_rows(cfg_acc['kept_spark'])} rows ({cfg_acc['kept_spark'] - check['kept']:+,}) and "
            f"flagged {_rows(cfg_acc['outliers_spark'])} outliers; per-category means differ by at most "
            f"{cfg_acc['max_rel_mean_diff']:.1e} relative.")
    lines += ["", "### Timings", "",
              "| rows | pandas s | Spark s | Spark/pandas | pandas s/Mrow | Spark s/Mrow | pandas rows/s | "
              "Spark rows/s | pandas peak RSS | Spark peak RSS | Spark session start s | kept pandas / Spark |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    p_by = {r["rows"]: r for r in pandas_runs}
    for s in sorted(spark_runs + ([beyond_run] if beyond_run else []), key=lambda r: r["rows"]):
        p = p_by.get(s["rows"])
        na = "not run"
        lines.append("| " + " | ".join([
            _rows(s["rows"]),
            f"{p['seconds']:.1f}" if p else na, f"{s['seconds']:.1f}",
            f"{s['seconds'] / p['seconds']:.2f}x" if p else "-",
            f"{_spm(p):.2f}" if p else "-", f"{_spm(s):.2f}",
            f"{p['rows'] / p['seconds']:,.0f}" if p else "-", f"{s['rows'] / s['seconds']:,.0f}",
            _gib(p["peak_rss"]) if p else "-", _gib(s["peak_rss"]),
            f"{s['session_seconds']:.1f}",
            f"{_rows(p['kept'])} / {_rows(s['kept'])}" if p else f"- / {_rows(s['kept'])}",
        ]) + " |")
    gen_txt = ", ".join(f"{_rows(int(n))}: {g['seconds']:.1f} s" for n, g in sorted(gen.items(), key=lambda x: int(x[0]))
                        if g.get("seconds") is not None)
    lines += ["", f"Input generation (Spark, not part of the timings): {gen_txt or 'all inputs reused from bench/out'}."]
    if beyond:
        lines += ["", "### pandas' memory limit", "",
                  "Bytes per row (peak RSS / rows): " + ", ".join(
                      f"{_rows(r['rows'])}: {r['peak_rss'] / r['rows']:.0f}" for r in sorted(pandas_runs, key=lambda r: r["rows"]))
                  + " (pandas' process after imports: " + ", ".join(
                      f"{r['baseline_rss'] / 2**20:.0f} MiB" for r in sorted(pandas_runs, key=lambda r: r["rows"]))
                  + f"). Estimated limit: {MEMORY_FRACTION:g} x {_gib(beyond['available'])} available / "
                    f"{beyond['bytes_per_row']:.0f} B/row (at {_rows(beyond['bpr_rows'])} rows) = "
                    f"**{_rows(beyond['limit'])} rows**.",
                  f"Spark-only size: {_rows(beyond['rows'])} rows, {beyond['why']}."]
        skipped = [r["rows"] for r in spark_runs if r["rows"] not in p_by and r["rows"] not in pandas_failed]
        if skipped:
            lines.append("pandas was skipped at " + ", ".join(_rows(n) for n in skipped)
                         + " rows, above its limit estimated from the smaller sizes.")
    if pandas_failed:
        lines.append("The pandas process failed (see the log; likely out of memory) at "
                     + ", ".join(_rows(n) for n in pandas_failed) + " rows.")
    lines += ["", "### Reading", "", " ".join(reading(pandas_runs, spark_runs, beyond_run, beyond or {"limit": 1})),
              "", END_MARK]
    return "\n".join(lines)


def render_methods(method_runs: Sequence[Mapping[str, Any]], pandas_runs) -> str:
    """A small table: the same Spark ETL with each ``transform.iqr_method`` at one size."""
    p_by = {r["rows"]: r for r in pandas_runs}
    rows = method_runs[0]["rows"]
    lines = ["", f"### IQR method (`transform.iqr_method`) at {_rows(rows)} rows", "",
             "| iqr_method | Spark s | Spark/pandas | kept | outliers |", "|---|---:|---:|---:|---:|"]
    for r in method_runs:
        lines.append(f"| {r['iqr_method']} | {r['seconds']:.1f} | {r['seconds'] / p_by[rows]['seconds']:.2f}x | "
                     f"{_rows(r['kept'])} | {_rows(r['outliers'])} |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, section: str) -> None:
    """Replace the etl section of ``path`` (create the file with a header if missing)."""
    text = path.read_text() if path.is_file() else (
        "# Benchmarks\n\nMeasured results of the scripts under `bench/`; each section is rewritten by its script.\n")
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        text = head + section + rest.split(END_MARK, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def summary_table(pandas_runs, spark_runs, beyond_run) -> str:
    """A plain-text table for the terminal."""
    p_by = {r["rows"]: r for r in pandas_runs}
    out = [f"{'rows':>12} {'pandas s':>9} {'spark s':>9} {'ratio':>7} {'pandas GiB':>11} {'spark GiB':>10}"]
    for s in sorted(spark_runs + ([beyond_run] if beyond_run else []), key=lambda r: r["rows"]):
        p = p_by.get(s["rows"])
        out.append(f"{s['rows']:>12,} {p['seconds'] if p else float('nan'):>9.1f} {s['seconds']:>9.1f} "
                   f"{(s['seconds'] / p['seconds']) if p else float('nan'):>7.2f} "
                   f"{(p['peak_rss'] / 2**30) if p else float('nan'):>11.2f} {s['peak_rss'] / 2**30:>10.2f}")
    return "\n".join(out)


# ================================================================================================
# Orchestration
# ================================================================================================

def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"--sizes expects comma-separated integers, got {text!r}") from None
    if not sizes or sizes[0] <= 0:
        raise SystemExit("--sizes needs at least one positive size")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,5000000,20000000", help="row counts timed in both engines")
    ap.add_argument("--beyond", type=int, default=None,
                    help="Spark-only size; default 1.5x pandas' estimated limit, capped to ~15 min; 0 skips it")
    ap.add_argument("--check-rows", type=int, default=200_000, help="size of the agreement check")
    ap.add_argument("--out", default=str(DEFAULT_MD), help="Markdown file receiving the results")
    ap.add_argument("--driver-memory", default="8g", help="spark.driver.memory of the Spark runs")
    ap.add_argument("--keep-outputs", action="store_true", help="keep the written tables under bench/out")
    ap.add_argument("--compare-iqr-method", default="auto",
                    help="also time Spark with this transform.iqr_method at the largest pandas size "
                         "(auto: the one the config does not use; none: skip)")
    ap.add_argument("--iqr-method", help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{args.worker or 'bench'}] %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if args.worker:
        res = _worker(args)
        Path(args.result).write_text(json.dumps(res))
        return 0

    import psutil

    sizes, t_start = _sizes(args.sizes), time.perf_counter()
    exe = os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(REPO_ROOT)) else sys.executable
    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": shlex.join([exe, *sys.argv]), "machine": machine_info(), "versions": versions()}
    log.info("machine: %s", meta["machine"])
    log.info("versions: %s", meta["versions"])

    gen = _spawn("generate", ",".join(str(n) for n in [args.check_rows, *sizes]), args)["inputs"]

    check = _spawn("check", args.check_rows, args)
    check.pop("process_seconds", None)
    if not check["ok"]:
        for line in check["mismatches"]:
            log.error("agreement: %s", line)
        log.error("agreement check failed at %s rows; no timings taken", _rows(args.check_rows))
        return 1
    log.info("agreement check passed at %s rows (accuracy %s): %s", _rows(args.check_rows), check["check_accuracy"],
             {k: v for k, v in check.items() if k not in ("mismatches",)})

    pandas_runs, spark_runs, pandas_failed = [], [], []
    for n in sizes:
        limit = None
        if pandas_runs:
            last = pandas_runs[-1]
            limit = MEMORY_FRACTION * psutil.virtual_memory().available / (last["peak_rss"] / last["rows"])
        if limit is not None and n > limit:
            log.warning("skipping pandas at %s rows: above its estimated limit of %s", _rows(n), _rows(int(limit)))
        else:
            run = _spawn("pandas", n, args, may_fail=True)
            if run is None:
                pandas_failed.append(n)
            else:
                pandas_runs.append(run)
                log.info("pandas %s rows: %.1f s, peak RSS %s", _rows(n), run["seconds"], _gib(run["peak_rss"]))
        spark_runs.append(_spawn("spark", n, args))
        log.info("spark  %s rows: %.1f s (+%.1f s session start), peak RSS %s", _rows(n), spark_runs[-1]["seconds"],
                 spark_runs[-1]["session_seconds"], _gib(spark_runs[-1]["peak_rss"]))

    beyond, beyond_run = None, None
    if pandas_runs:
        largest_input = input_path(max(sizes))
        input_bpr = _dir_bytes(largest_input) / max(sizes)
        beyond = choose_beyond(pandas_runs, spark_runs, psutil.virtual_memory().available, input_bpr,
                               shutil.disk_usage(OUT_DIR).free, args.beyond)
        log.info("pandas: %.0f B/row, estimated limit %s rows; Spark-only size %s (%s)", beyond["bytes_per_row"],
                 _rows(beyond["limit"]), _rows(beyond["rows"]), beyond["why"])
        if beyond["rows"] > 0 and beyond["rows"] not in sizes:
            g = _spawn("generate", beyond["rows"], args)["inputs"]
            gen.update(g)
            beyond_run = _spawn("spark", beyond["rows"], args)
            log.info("spark  %s rows (Spark only): %.1f s, peak RSS %s", _rows(beyond["rows"]), beyond_run["seconds"],
                     _gib(beyond_run["peak_rss"]))
    else:
        log.warning("pandas ran at no size; no limit estimate and no Spark-only run")

    method_runs = []
    if args.compare_iqr_method != "none" and pandas_runs:
        configured = spark_runs[0]["iqr_method"]
        other = args.compare_iqr_method if args.compare_iqr_method != "auto" else (
            "aggregate" if configured == "window" else "window")
        at = max(r["rows"] for r in pandas_runs)
        alt = _spawn("spark", at, args, iqr_method=other)
        method_runs = [next(r for r in spark_runs if r["rows"] == at), alt]
        log.info("spark  %s rows with iqr_method=%s: %.1f s", _rows(at), other, alt["seconds"])

    out = Path(args.out)
    section = render(meta, check, pandas_runs, spark_runs, beyond_run, beyond, gen, pandas_failed)
    if method_runs:
        section = section.replace("\n### Reading", render_methods(method_runs, pandas_runs) + "\n### Reading", 1)
    write_markdown(out, section)
    log.info("wrote %s", out)
    print(summary_table(pandas_runs, spark_runs, beyond_run))
    for sentence in reading(pandas_runs, spark_runs, beyond_run, beyond or {"limit": 1}):
        print(sentence)
    print(f"total wall time {time.perf_counter() - t_start:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
