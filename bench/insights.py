"""Insights benchmark: the product's Spark sales aggregates against the same aggregates in pandas.

What it measures
----------------
One synthetic ``gold/order_features``-like table (``order_id, line_id,
product_id, category, region, order_status, order_date, quantity, price``;
72 categories of very different sizes, 27 regions, two years of dates with a
growth trend and a November/December season, ~1 % canceled or unavailable
orders, nulls in status, category, region, quantity and price) goes through
two of the ``insights_*`` tables of ``ecomrec_spark.insights.analytics``:

* :func:`~ecomrec_spark.insights.analytics.sales_trends`: sold lines (status
  not canceled/unavailable, case-insensitive; a null status is sold),
  ``units = coalesce(quantity, 1)``, ``amount = price x units``, missing
  category/region -> ``'unknown'``; ``n_orders`` (distinct ``order_id``),
  ``units`` and ``revenue`` per (grain day|week|month, period, dimension
  total|category|region, value), weeks starting on Monday;
* :func:`~ecomrec_spark.insights.analytics.season_correlation`: per category,
  the Pearson correlation of its monthly units with the shop's (a category's
  month without a sale counts 0) and of its month-of-year profile with the
  shop's; null for a constant series.

Each run is read of the Parquet input + both aggregates + writing both results:

* Spark calls the library functions themselves and writes each result with
  :func:`ecomrec_spark.lake.overwrite` (Delta), as ``build_insights`` does;
  each table is its own job and re-reads the input (nothing cached), as in
  the product;
* pandas reads the columns it needs with pyarrow (low-cardinality strings as
  dictionaries -> ``Categorical``, dates as ``datetime64``), prepares the sold
  lines once, computes both tables vectorised (integer group keys, distinct
  orders as unique (group, order) pairs) and writes each as Parquet.

Run order
---------
* the input is generated once per size with Spark (``spark.range`` +
  ``xxhash64``, deterministic, no UDFs) under
  ``bench/out/insights_input_<rows>.parquet`` and reused;
* an agreement check at ``--check-rows`` runs both engines, reads both written
  results back and compares them: the same keys, ``n_orders``/``units``/
  ``n_months`` exactly, ``revenue`` to 1e-9 relative, correlations to 1e-9
  absolute, nulls in the same places; any difference aborts the run;
* each size then runs pandas and Spark, each in a fresh subprocess (cold JVM,
  clean peak memory): wall time from read to written results (Spark session
  start listed apart), peak RSS (pandas: ``ru_maxrss``; Spark: python driver
  plus JVM, psutil every 0.2 s), and the ratio pandas time / Spark time
  (above 1: Spark is faster);
* the results are written between ``<!-- insights:start -->`` and
  ``<!-- insights:end -->`` in ``BENCHMARKS.md`` (:func:`bench.sections.write_section`).

``--compare`` instead times ``sales_trends`` alone: the previous version
(:func:`reference_sales_trends`, grouping sets with ``countDistinct``) against
the library's additive one, each in a fresh process on the same input at each
size; the additive run then reads both written tables back and compares them
(any difference aborts), and the ratios go to the ``insights-trends`` section.

Usage::

    .venv/bin/python bench/insights.py [--sizes 1000000,5000000,20000000]
                                       [--check-rows 200000] [--out BENCHMARKS.md]
    .venv/bin/python bench/insights.py --compare [--sizes 1000000,5000000] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/insights.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from bench.etl import TreeRssSampler, _gib, _rows, machine_info, versions  # noqa: E402  (reuse the etl helpers)
from bench.sections import write_section  # noqa: E402

log = logging.getLogger("bench.insights")

OUT_DIR = REPO_ROOT / "bench" / "out"
DEFAULT_MD = REPO_ROOT / "BENCHMARKS.md"
SECTION = "insights"
DEFAULT_SIZES = "1000000,5000000,20000000"
MIN_ROWS = 1000  # the fixed orders below need the first 75 rows

# --- column names (the canonical ones of ecomrec_spark.columns) --------------------------------
ORDER_ID, LINE_ID, PRODUCT_ID = "order_id", "line_id", "product_id"
CATEGORY, REGION, ORDER_STATUS = "category", "region", "order_status"
ORDER_DATE, QUANTITY, PRICE = "order_date", "quantity", "price"
INPUT_COLUMNS = [ORDER_ID, LINE_ID, PRODUCT_ID, CATEGORY, REGION, ORDER_STATUS, ORDER_DATE, QUANTITY, PRICE]
USED_COLUMNS = [ORDER_ID, CATEGORY, REGION, ORDER_STATUS, ORDER_DATE, QUANTITY, PRICE]  # what pandas reads
DICT_COLUMNS = [CATEGORY, REGION, ORDER_STATUS]  # read as dictionaries -> pandas Categorical
NOT_SOLD = ("canceled", "unavailable")  # as ecomrec_spark.insights.analytics.NOT_SOLD_STATUSES
UNKNOWN = "unknown"  # as ecomrec_spark.columns.UNKNOWN_CATEGORY
TABLES = ("sales_trends", "season_correlation")
COMPARE_SECTION = "insights-trends"
COMPARE_VERSIONS = ("trends-reference", "trends-additive")  # run in this order; the second checks both outputs
DEFAULT_COMPARE_SIZES = "1000000,5000000"

# --- the generated input -----------------------------------------------------------------------
SEED = 20250301
GENERATOR_VERSION = 1  # bump when the generator changes, so cached inputs are rebuilt
LINES_PER_ORDER = 3
N_CATEGORIES = 70
CATEGORY_SKEW = 2.0  # category = floor(70 * u**2): cat_00 ~12 % of lines, cat_69 ~0.7 %
HOLIDAY_FIRST, HOLIDAY_N, HOLIDAY_SHARE = 40, 10, 0.3  # Nov/Dec: 30 % of lines go to cat_40..cat_49
REGIONS = ("SP", "RJ", "MG", "RS", "PR", "SC", "BA", "DF", "ES", "GO", "PE", "CE", "PA", "MT", "MA", "MS", "PB",
           "PI", "RN", "AL", "SE", "TO", "RO", "AM", "AC", "AP", "RR")  # 27, skewed: floor(27 * u**1.5)
REGION_SKEW = 1.5
DATE_START = dt.date(2017, 1, 1)
N_DAYS = 730  # 2017-01-01 .. 2018-12-31; day = floor(730 * sqrt(u)): demand grows over time
N_MONTHS = 24
FLAT_CATEGORY = "cat_flat"  # one unit in each month: a constant series, so both correlations are null
RARE_CATEGORY, RARE_ORDER, RARE_DATE = "cat_rare", N_MONTHS, dt.date(2018, 6, 15)  # sold in one month only
# order-level status draw: cumulative bounds of a uniform
STATUS_BOUNDS = ((0.009, "canceled"), (0.010, "CANCELED"), (0.013, "unavailable"), (0.018, None),
                 (0.050, "shipped"))  # the rest: delivered
NULL_CATEGORY_RATE, NULL_REGION_RATE, NULL_QUANTITY_RATE, NULL_PRICE_RATE = 0.01, 0.005, 0.02, 0.002
ROWS_PER_FILE = 1_000_000
TWO52 = 1 << 52

# --- agreement ----------------------------------------------------------------------------------
REL_TOL = 1e-9  # revenue
ABS_TOL = 1e-9  # correlations


# ================================================================================================
# Input generation (Spark, hash-based, deterministic)
# ================================================================================================

def input_path(rows: int) -> Path:
    """The cached input folder for ``rows`` rows."""
    return OUT_DIR / f"insights_input_{rows}.parquet"


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
    """The synthetic order-feature lines as a lazy Spark DataFrame.

    Every value is a pure function of the row id and ``seed`` (``xxhash64``
    folded into a uniform on (0, 1)).  Row ``id`` is line ``id % 3 + 1`` of
    order ``id div 3``; date, region and status are drawn per order, the rest
    per line.  Orders 0..23 are fixed: delivered, dated the first of each month
    of 2017-2018, their first line a ``cat_flat`` unit; order 24 (2018-06-15)
    holds the only ``cat_rare`` line.

    Returns
    -------
    DataFrame
        ``order_id string, line_id int, product_id string, category string,
        region string, order_status string, order_date date, quantity int,
        price double``.
    """
    from pyspark.sql import functions as F

    if rows < MIN_ROWS:
        raise ValueError(f"rows={rows}: the generator needs at least {MIN_ROWS} rows")
    parts = partitions or max(2, math.ceil(rows / ROWS_PER_FILE))
    line, order = F.col("id"), F.col("_order")

    def u(col, salt: int):
        h = F.xxhash64(col, F.lit(seed), F.lit(salt))
        return (F.pmod(h, F.lit(TWO52)) + F.lit(0.5)) / F.lit(float(TWO52))

    def normal(a: int, b: int):  # Box-Muller, per line
        return F.sqrt(F.lit(-2.0) * F.log(u(line, a))) * F.cos(F.lit(2 * math.pi) * u(line, b))

    def frac(c):
        return c - F.floor(c)

    start = F.lit(DATE_START)
    date = (F.when(order < N_MONTHS, F.add_months(start, order.cast("int")))
            .when(order == RARE_ORDER, F.lit(RARE_DATE))
            .otherwise(F.date_add(start, F.floor(F.sqrt(u(order, 1)) * F.lit(N_DAYS)).cast("int"))))
    fixed_order = order <= RARE_ORDER
    flat = (order < N_MONTHS) & (F.col("_line") == 1)
    rare = (order == RARE_ORDER) & (F.col("_line") == 1)
    special = flat | rare

    holiday = F.month(ORDER_DATE) >= 11
    cat = (F.when(holiday & (u(line, 2) < HOLIDAY_SHARE),
                  F.lit(HOLIDAY_FIRST) + F.floor(u(line, 3) * F.lit(HOLIDAY_N)))
           .otherwise(F.floor(F.pow(u(line, 4), F.lit(CATEGORY_SKEW)) * F.lit(N_CATEGORIES)))).cast("int")
    c = F.col("_cat")
    category = (F.when(flat, F.lit(FLAT_CATEGORY)).when(rare, F.lit(RARE_CATEGORY))
                .when(u(line, 5) < NULL_CATEGORY_RATE, F.lit(None).cast("string"))
                .otherwise(F.format_string("cat_%02d", c)))

    region_idx = F.floor(F.pow(u(order, 11), F.lit(REGION_SKEW)) * F.lit(len(REGIONS))).cast("int")
    region = F.when(u(order, 12) >= NULL_REGION_RATE,
                    F.element_at(F.array(*[F.lit(r) for r in REGIONS]), region_idx + F.lit(1)))

    s = u(order, 10)
    status = F.when(fixed_order, F.lit("delivered"))
    for bound, value in STATUS_BOUNDS:
        status = status.when(s < bound, F.lit(value).cast("string"))
    status = status.otherwise(F.lit("delivered"))

    quantity = (F.when(special, F.lit(1))
                .when(u(line, 6) < NULL_QUANTITY_RATE, F.lit(None).cast("int"))
                .otherwise((F.lit(1) + F.floor(F.lit(5.0) * F.pow(u(line, 7), F.lit(3.0)))).cast("int")))

    mu = F.lit(2.2) + F.lit(3.0) * frac(c * F.lit(0.6180339887498949))
    sigma = F.lit(0.3) + F.lit(0.5) * frac(c * F.lit(0.7548776662466927))
    base = F.greatest(F.round(F.exp(mu + sigma * normal(8, 9)), 2), F.lit(0.01))
    price = F.when(special | (u(line, 13) >= NULL_PRICE_RATE), base)

    return (spark.range(0, rows, 1, parts)
            .withColumn("_order", F.expr(f"id div {LINES_PER_ORDER}"))
            .withColumn("_line", (F.pmod(line, F.lit(LINES_PER_ORDER)) + 1).cast("int"))
            .withColumn(ORDER_DATE, date)
            .withColumn("_cat", cat)
            .select(
                F.format_string("o%011d", order).alias(ORDER_ID),
                F.col("_line").alias(LINE_ID),
                F.format_string("p%02d%05d", c, F.pmod(F.xxhash64(line, F.lit(seed), F.lit(14)), F.lit(3000)))
                 .alias(PRODUCT_ID),
                category.alias(CATEGORY),
                region.alias(REGION),
                status.alias(ORDER_STATUS),
                F.col(ORDER_DATE),
                quantity.alias(QUANTITY),
                price.alias(PRICE),
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
# The pandas side
# ================================================================================================

def pandas_read(src: str | os.PathLike[str]):
    """The columns the two tables use, as a pandas DataFrame.

    pyarrow reads ``category``, ``region`` and ``order_status`` as
    dictionaries (pandas ``Categorical``) and ``order_date`` as ``datetime64``
    (not Python ``date`` objects).
    """
    import pyarrow.parquet as pq

    table = pq.read_table(str(src), columns=USED_COLUMNS, read_dictionary=DICT_COLUMNS)
    return table.to_pandas(date_as_object=False)


def _not_sold(status) -> Any:
    """Boolean array: ``lower(status)`` is canceled or unavailable (a null status is sold)."""
    import numpy as np
    import pandas as pd

    if isinstance(status.dtype, pd.CategoricalDtype):
        bad = np.asarray(status.cat.categories.str.lower().isin(NOT_SOLD), dtype=bool)
        codes = status.cat.codes.to_numpy()
        return np.where(codes >= 0, bad[np.maximum(codes, 0)], False)
    return status.str.lower().isin(NOT_SOLD).to_numpy(dtype=bool)


def _codes_with_unknown(values) -> tuple[Any, list[str]]:
    """Integer codes and labels of a string column, a missing value taking the label ``'unknown'``."""
    import numpy as np
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        labels = [str(x) for x in values.cat.categories]
        codes = values.cat.codes.to_numpy().astype(np.int64)
    else:
        raw, uniques = pd.factorize(values)
        labels, codes = [str(x) for x in uniques], raw.astype(np.int64)
    if (codes < 0).any():
        if UNKNOWN not in labels:
            labels.append(UNKNOWN)
        codes = np.where(codes < 0, labels.index(UNKNOWN), codes)
    return codes, labels


def pandas_sold(df) -> dict[str, Any]:
    """The sold lines as numpy arrays: what ``analytics.sold_lines`` produces, for both tables.

    Returns ``order`` (int codes, -1 for a null ``order_id``), ``day`` (days
    since 1970-01-01), ``cat``/``region`` codes with their ``cat_labels``/
    ``region_labels``, ``units`` (int64) and ``amount`` (float64, NaN for a
    null price).
    """
    import numpy as np
    import pandas as pd

    keep = ~_not_sold(df[ORDER_STATUS])
    df = df.loc[keep]
    if df[ORDER_DATE].isna().any():
        raise ValueError("null order_date in the input; the generator never writes one")
    units = df[QUANTITY].fillna(1).to_numpy().astype(np.int64)
    order, _ = pd.factorize(df[ORDER_ID])
    cat, cat_labels = _codes_with_unknown(df[CATEGORY])
    region, region_labels = _codes_with_unknown(df[REGION])
    return {
        "order": order.astype(np.int64),
        "day": df[ORDER_DATE].to_numpy().astype("datetime64[D]").astype(np.int64),
        "cat": cat, "cat_labels": cat_labels, "region": region, "region_labels": region_labels,
        "units": units, "amount": df[PRICE].to_numpy(dtype=np.float64, na_value=np.nan) * units,
    }


def _month_start(day):
    """First day of the month of ``day`` (days since epoch), as days since epoch."""
    import numpy as np

    return day.astype("datetime64[D]").astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def pandas_sales_trends(s: Mapping[str, Any]):
    """``sales_trends`` in pandas: 3 grains x (total, category, region), one group-by each.

    Each group is one int64 key (``period * n_labels + code``).  ``revenue``
    is null for a group without a priced line (as Spark's ``sum``);
    ``n_orders`` counts the distinct non-null orders, from the unique
    ``(key, order)`` pairs.
    """
    import numpy as np
    import pandas as pd

    day, order, units, amount = s["day"], s["order"], s["units"], s["amount"]
    week = day - (day + 3) % 7  # 1970-01-01 was a Thursday: Monday-start weeks, as date_trunc('week')
    month = _month_start(day)
    has_order = order >= 0
    n_ord = int(order.max()) + 1 if has_order.any() else 1
    frames = []
    for grain, period in (("day", day), ("week", week), ("month", month)):
        for dim, codes, labels in (("total", None, None), ("category", s["cat"], s["cat_labels"]),
                                   ("region", s["region"], s["region_labels"])):
            width = 1 if codes is None else len(labels)
            key = period if codes is None else period * width + codes
            agg = (pd.DataFrame({"k": key, "u": units, "a": amount}).groupby("k", sort=False)
                   .agg(units=("u", "sum"), revenue=("a", "sum"), n_amount=("a", "count")))
            pairs = pd.unique(key[has_order] * n_ord + order[has_order])
            n_orders = pd.Series(pairs // n_ord).value_counts()
            keys = agg.index.to_numpy()
            out = pd.DataFrame({
                "grain": grain,
                "period": pd.to_datetime(keys // width, unit="D"),
                "dimension": dim,
                "value": None if codes is None else np.asarray(labels, dtype=object)[keys % width],
                "n_orders": n_orders.reindex(agg.index, fill_value=0).to_numpy().astype(np.int64),
                "units": agg["units"].to_numpy().astype(np.int64),
                "revenue": agg["revenue"].where(agg["n_amount"] > 0).to_numpy(),
            })
            frames.append(out)
    return pd.concat(frames, ignore_index=True)


def _pearson_rows(x, y):
    """Pearson correlation of each row of ``x`` with ``y`` (population moments); NaN when either is constant."""
    import numpy as np

    dx = x - x.mean(axis=1, keepdims=True)
    dy = y - y.mean()
    cov = (dx * dy).mean(axis=1)
    den = np.sqrt((dx * dx).mean(axis=1)) * np.sqrt((dy * dy).mean())
    constant = (x == x[:, :1]).all(axis=1) | bool((y == y[0]).all())
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / den
    return np.where(constant | (den == 0), np.nan, r)


def pandas_season_correlation(s: Mapping[str, Any]):
    """``season_correlation`` in pandas: a category x month units matrix (0 where no sale), two correlations."""
    import numpy as np
    import pandas as pd

    month = s["day"].astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    units = pd.Series(s["units"], dtype=np.float64)
    total = units.groupby(month).sum()  # every month with a sale, sorted
    per = (units.groupby([s["cat"], month]).sum().unstack(fill_value=0.0)
           .reindex(columns=total.index, fill_value=0.0))
    x, y = per.to_numpy(dtype=np.float64), total.to_numpy(dtype=np.float64)
    moy = total.index.to_numpy() % 12 + 1  # month of year 1..12
    x_moy = pd.DataFrame(x.T).groupby(moy).mean().to_numpy().T  # mean over the years of each month of the year
    y_moy = pd.Series(y).groupby(moy).mean().to_numpy()
    labels = np.asarray(s["cat_labels"], dtype=object)
    return pd.DataFrame({
        CATEGORY: labels[per.index.to_numpy()],
        "n_months": np.full(len(per), len(total), dtype=np.int64),
        "corr_monthly": _pearson_rows(x, y),
        "n_months_of_year": np.full(len(per), len(y_moy), dtype=np.int64),
        "corr_month_of_year": _pearson_rows(x_moy, y_moy),
    })


def _write_parquet(df, path: Path, date_columns: Sequence[str] = ()) -> None:
    """Write ``df`` with pyarrow, ``date_columns`` as Parquet dates (as Spark's ``date``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    for name in date_columns:
        table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(pa.date32()))
    pq.write_table(table, str(path))


def pandas_insights(src: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read, prepare the sold lines, compute and write both tables; seconds per step and output rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    df = pandas_read(src)
    rows = len(df)
    sold = pandas_sold(df)
    del df
    t1 = time.perf_counter()
    trends = pandas_sales_trends(sold)
    _write_parquet(trends, out_dir / "insights_sales_trends.parquet", ["period"])
    t2 = time.perf_counter()
    season = pandas_season_correlation(sold)
    _write_parquet(season, out_dir / "insights_season_correlation.parquet")
    t3 = time.perf_counter()
    return {"rows": rows, "sold_lines": int(len(sold["units"])), "seconds": t3 - t0,
            "steps": {"read": t1 - t0, "sales_trends": t2 - t1, "season_correlation": t3 - t2},
            "output_rows": {"sales_trends": len(trends), "season_correlation": len(season)}}


def pandas_outputs(out_dir: Path) -> dict[str, Any]:
    """The written pandas results, read back."""
    import pandas as pd

    return {t: pd.read_parquet(out_dir / f"insights_{t}.parquet") for t in TABLES}


# ================================================================================================
# The Spark side (the library code)
# ================================================================================================

def spark_insights(spark, src: str | os.PathLike[str], lake_root: str | os.PathLike[str]) -> dict[str, float]:
    """Run the product's ``sales_trends`` and ``season_correlation`` on the input; write each to Delta.

    As ``build_insights``: one lazy read of the input, each table written
    with :func:`ecomrec_spark.lake.overwrite` as ``gold/insights_<name>``
    (one Delta commit each, so each re-reads the input).  Returns seconds per table.
    """
    from ecomrec_spark import lake
    from ecomrec_spark.insights import analytics as A

    order_features = spark.read.parquet(str(src))
    seconds = {}
    for name, fn in (("sales_trends", A.sales_trends), ("season_correlation", A.season_correlation)):
        t0 = time.perf_counter()
        lake.overwrite(fn(order_features), str(lake_root), "gold", A.TABLE_PREFIX + name)
        seconds[name] = time.perf_counter() - t0
    return seconds


def reference_sales_trends(order_features):
    """The previous ``sales_trends`` (before issue 14), kept here only as the reference of ``--compare`` and the tests.

    Each sold line is expanded once per grain and aggregated with grouping sets
    and ``countDistinct(order_id)``: exact by construction, but the distinct
    aggregate makes Spark expand every line 3 (grains) x 3 (grouping sets) x 2
    (distinct rewrite) times and shuffle the expanded rows by order id, which
    is why it was replaced by the additive version in the library.
    """
    from pyspark.sql import functions as F

    from ecomrec_spark import columns as C
    from ecomrec_spark.insights import analytics as A

    day = F.col(C.ORDER_DATE)
    periods = F.array(
        F.struct(F.lit("day").alias("grain"), day.alias("period")),
        F.struct(F.lit("week").alias("grain"), F.date_trunc("week", day).cast("date").alias("period")),
        F.struct(F.lit("month").alias("grain"), F.trunc(day, "month").alias("period")))
    expanded = A.sold_lines(order_features).select(C.ORDER_ID, C.CATEGORY, C.REGION, "units", "amount",
                                                   F.inline(periods))
    keys = ["grain", "period"]
    agg = (expanded.groupingSets([keys, [*keys, C.CATEGORY], [*keys, C.REGION]], *keys, C.CATEGORY, C.REGION)
           .agg(F.countDistinct(C.ORDER_ID).alias("n_orders"), F.sum("units").alias("units"),
                F.sum("amount").alias("revenue"), F.grouping(C.CATEGORY).alias("_gc"),
                F.grouping(C.REGION).alias("_gr")))
    dimension = (F.when(F.col("_gc") == 0, F.lit("category")).when(F.col("_gr") == 0, F.lit("region"))
                 .otherwise(F.lit("total")))
    value = F.when(F.col("_gc") == 0, F.col(C.CATEGORY)).when(F.col("_gr") == 0, F.col(C.REGION))
    return agg.select("grain", "period", dimension.alias("dimension"), value.alias("value"),
                      "n_orders", "units", "revenue")


def spark_outputs(spark, lake_root: Path) -> dict[str, Any]:
    """The written Delta results, read back into pandas (small tables)."""
    from ecomrec_spark import lake
    from ecomrec_spark.insights import analytics as A

    return {t: lake.read(spark, str(lake_root), "gold", A.TABLE_PREFIX + t).toPandas() for t in TABLES}


# ================================================================================================
# Agreement check
# ================================================================================================

def _null(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _day(x: Any) -> str:
    import pandas as pd

    return pd.Timestamp(x).strftime("%Y-%m-%d")


def _keyed(df, keys: Sequence[str], table: str, engine: str, bad: list[str]) -> dict[tuple, dict[str, Any]]:
    """Rows by key (``period`` as text, a null ``value`` as None); duplicate keys are reported."""
    out: dict[tuple, dict[str, Any]] = {}
    for rec in df.to_dict("records"):
        key = tuple(_day(rec[k]) if k == "period" else (None if _null(rec[k]) else rec[k]) for k in keys)
        if key in out:
            bad.append(f"{table}: {engine} has the key {key} twice")
        out[key] = rec
    return out


def compare(pd_out: Mapping[str, Any], sp_out: Mapping[str, Any], tables: Sequence[str] = TABLES,
            names: tuple[str, str] = ("pandas", "spark")) -> tuple[list[str], dict[str, Any]]:
    """Every difference between two results (by default pandas' and Spark's), and figures for the report.

    Keys must be the same sets; integer columns equal; ``revenue`` within
    1e-9 relative and correlations within 1e-9 absolute, nulls in the same places.
    ``names`` label the two sides in the messages (``--compare`` compares two Spark versions).
    """
    bad: list[str] = []
    stats: dict[str, Any] = {}
    specs = {"sales_trends": (["grain", "period", "dimension", "value"], ["n_orders", "units"], ["revenue"], []),
             "season_correlation": ([CATEGORY], ["n_months", "n_months_of_year"], [],
                                    ["corr_monthly", "corr_month_of_year"])}
    a_name, b_name = names
    for table in tables:
        keys, exact, rel, absolute = specs[table]
        p = _keyed(pd_out[table], keys, table, a_name, bad)
        s = _keyed(sp_out[table], keys, table, b_name, bad)
        only_p, only_s = sorted(set(p) - set(s), key=str), sorted(set(s) - set(p), key=str)
        if only_p or only_s:
            bad.append(f"{table}: {len(only_p)} keys only in {a_name} (e.g. {only_p[:3]}), "
                       f"{len(only_s)} only in {b_name} (e.g. {only_s[:3]})")
        worst_rel, worst_abs, nulls = 0.0, 0.0, {c: 0 for c in rel + absolute}
        for key in sorted(set(p) & set(s), key=str):
            a, b = p[key], s[key]
            for col in exact:
                if _null(a[col]) or _null(b[col]) or int(a[col]) != int(b[col]):
                    bad.append(f"{table} {key}: {col} {a_name} {a[col]!r} != {b_name} {b[col]!r}")
            for col in rel + absolute:
                x, y = a[col], b[col]
                if _null(x) or _null(y):
                    if not (_null(x) and _null(y)):
                        bad.append(f"{table} {key}: {col} {a_name} {x!r} != {b_name} {y!r} (null in one only)")
                    else:
                        nulls[col] += 1
                    continue
                x, y = float(x), float(y)
                if col in rel:
                    d = abs(x - y) / max(abs(x), abs(y)) if x != y else 0.0
                    worst_rel = max(worst_rel, d)
                    ok = d <= REL_TOL
                else:
                    d = abs(x - y)
                    worst_abs = max(worst_abs, d)
                    ok = d <= ABS_TOL
                if not ok:
                    bad.append(f"{table} {key}: {col} {a_name} {x!r} != {b_name} {y!r}")
        stats[table] = {"rows": len(s), "nulls": nulls, "max_rel_diff": worst_rel, "max_abs_diff": worst_abs}
    if "sales_trends" in tables:
        trends = pd_out["sales_trends"]
        stats["sales_trends"]["by_grain"] = {
            f"{g}/{d}": int(n) for (g, d), n in trends.groupby(["grain", "dimension"]).size().items()}
    if "season_correlation" in tables:
        season = sp_out["season_correlation"]
        stats["season_correlation"]["null_categories"] = sorted(
            str(r[CATEGORY]) for r in season.to_dict("records")
            if _null(r["corr_monthly"]) or _null(r["corr_month_of_year"]))
    if len(bad) > 50:
        bad = bad[:50] + [f"... and {len(bad) - 50} more"]
    return bad, stats


def run_agreement(spark, src: Path, workdir: Path) -> dict[str, Any]:
    """Run both engines on ``src``, read both written results back and compare them."""
    from pyspark.sql import functions as F

    if workdir.exists():
        shutil.rmtree(workdir)
    pd_run = pandas_insights(src, workdir / "pandas")
    spark_insights(spark, src, workdir / "lake")
    mismatches, stats = compare(pandas_outputs(workdir / "pandas"), spark_outputs(spark, workdir / "lake"))
    inp = spark.read.parquet(str(src))
    counts = inp.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.lower(F.col(ORDER_STATUS)).isin(*NOT_SOLD)).alias("not_sold"),
        F.count_if(F.col(ORDER_STATUS).isNull()).alias("null_status"),
        F.count_if(F.col(CATEGORY).isNull()).alias("null_category"),
        F.count_if(F.col(REGION).isNull()).alias("null_region"),
        F.count_if(F.col(QUANTITY).isNull()).alias("null_quantity"),
        F.count_if(F.col(PRICE).isNull()).alias("null_price"),
        F.countDistinct(ORDER_ID).alias("orders"),
    ).first().asDict()
    return {"ok": not mismatches, "mismatches": mismatches, "rows": pd_run["rows"], "sold_lines": pd_run["sold_lines"],
            "input": counts, **stats}


# ================================================================================================
# Workers (each in its own process)
# ================================================================================================

def bench_session(driver_memory: str, app: str):
    """The project's session (``build_session`` on ``conf/local.yaml``) with the benchmark's overrides."""
    from ecomrec_spark.config import load_config
    from ecomrec_spark.session import build_session

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, [f"spark.conf.spark.driver.memory={driver_memory}",
                             "spark.conf.spark.ui.showConsoleProgress=false",
                             f"spark.conf.spark.local.dir={OUT_DIR / 'spark-local'}"])
    return build_session(cfg, app_name=app)


def compare_root(rows: int) -> Path:
    """Where ``--compare`` writes both versions' ``sales_trends`` for ``rows`` rows (removed after the size)."""
    return OUT_DIR / f"trends_compare_{rows}"


def _trends_worker(spark, kind: str, n: int, sampler, session_s: float, keep: bool) -> dict[str, Any]:
    """Time one ``sales_trends`` version on the ``n``-row input (read to committed Delta write).

    The additive worker runs second and then reads both written tables back
    (aggregates, ~85,000 rows) and compares them, so every timed size is also checked.
    """
    from ecomrec_spark import lake
    from ecomrec_spark.insights import analytics as A

    fn = reference_sales_trends if kind == "trends-reference" else A.sales_trends
    root = compare_root(n)
    shutil.rmtree(root / kind, ignore_errors=True)
    load = os.getloadavg()[0]
    sampler.reset()
    t0 = time.perf_counter()
    lake.overwrite(fn(spark.read.parquet(str(input_path(n)))), str(root / kind), "gold", "insights_sales_trends")
    secs = time.perf_counter() - t0
    peak = sampler.stop()
    out = {"engine": kind, "rows": n, "seconds": secs, "session_seconds": session_s, "peak_rss": peak,
           "load_at_start": load,
           "conf": {key: spark.conf.get(key) for key in ("spark.master", "spark.driver.memory",
                                                         "spark.sql.shuffle.partitions", "spark.sql.ansi.enabled")}}
    if kind == "trends-additive":
        read = {v: {"sales_trends": lake.read(spark, str(root / v), "gold", "insights_sales_trends").toPandas()}
                for v in COMPARE_VERSIONS}
        mismatches, stats = compare(read["trends-reference"], read["trends-additive"], tables=("sales_trends",),
                                    names=("reference", "additive"))
        out.update(ok=not mismatches, mismatches=mismatches, check=stats["sales_trends"])
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return out


def _worker(args: argparse.Namespace) -> dict[str, Any]:
    kind = args.worker
    if kind == "pandas":
        import numpy  # noqa: F401  (imports before the baseline)
        import pandas  # noqa: F401
        import psutil
        import pyarrow.parquet  # noqa: F401

        n = int(args.rows)
        out = OUT_DIR / f"insights_run_{n}" / "pandas"
        shutil.rmtree(out, ignore_errors=True)
        baseline = psutil.Process().memory_info().rss
        rep = pandas_insights(input_path(n), out)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if not args.keep_outputs:
            shutil.rmtree(out.parent, ignore_errors=True)
        return {"engine": "pandas", **rep, "peak_rss": peak, "baseline_rss": baseline}

    sampler = TreeRssSampler()
    sampler.start()
    t0 = time.perf_counter()
    spark = bench_session(args.driver_memory, f"ecomrec-bench-insights-{kind}")
    session_s = time.perf_counter() - t0
    try:
        if kind == "generate":
            made = {}
            for n in [int(x) for x in args.rows.split(",")]:
                t = time.perf_counter()
                wrote = generate_input(spark, n, input_path(n))
                made[str(n)] = {"seconds": time.perf_counter() - t if wrote else None}
            return {"engine": "generate", "inputs": made}
        n = int(args.rows)
        if kind == "check":
            workdir = OUT_DIR / f"insights_check_{n}"
            rep = run_agreement(spark, input_path(n), workdir)
            if not args.keep_outputs:
                shutil.rmtree(workdir, ignore_errors=True)
            return {"engine": "check", **rep}
        if kind in COMPARE_VERSIONS:
            return _trends_worker(spark, kind, n, sampler, session_s, args.keep_outputs)
        if kind == "spark":
            from ecomrec_spark import lake
            from ecomrec_spark.insights import analytics as A

            root = OUT_DIR / f"insights_run_{n}" / "lake"
            shutil.rmtree(root, ignore_errors=True)
            sampler.reset()
            t1 = time.perf_counter()
            steps = spark_insights(spark, input_path(n), root)
            secs = time.perf_counter() - t1
            peak = sampler.stop()
            out_rows = {t: lake.read(spark, str(root), "gold", A.TABLE_PREFIX + t).count() for t in TABLES}
            if not args.keep_outputs:
                shutil.rmtree(root.parent, ignore_errors=True)
            return {"engine": "spark", "rows": n, "seconds": secs, "steps": steps, "session_seconds": session_s,
                    "peak_rss": peak, "output_rows": out_rows, "conf": {
                        key: spark.conf.get(key) for key in ("spark.master", "spark.driver.memory",
                                                             "spark.sql.shuffle.partitions", "spark.sql.ansi.enabled",
                                                             "spark.sql.session.timeZone")}}
        raise SystemExit(f"unknown worker {kind}")
    finally:
        spark.stop()
        if sampler.is_alive():
            sampler.stop()


def _spawn(kind: str, rows: int | str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one worker in a fresh interpreter and return its JSON result; a failed worker aborts the run."""
    with tempfile.NamedTemporaryFile(prefix=f"bench-insights-{kind}-", suffix=".json", delete=False) as fh:
        result = Path(fh.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--rows", str(rows),
           "--result", str(result), "--driver-memory", args.driver_memory]
    if args.keep_outputs:
        cmd.append("--keep-outputs")
    log.info("running %s worker (rows=%s)", kind, rows)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} worker for rows={rows} failed with exit code {proc.returncode}")
        out = json.loads(result.read_text())
    finally:
        result.unlink(missing_ok=True)
    out["process_seconds"] = time.perf_counter() - t0
    return out


# ================================================================================================
# Report
# ================================================================================================

def _s(x: float) -> str:
    return f"{x:.2f}"


def _ratio(r: float) -> str:
    return f"{r:.2f}" if r >= 0.1 else f"{r:.3f}"


def reading(pandas_runs: Sequence[Mapping[str, Any]], spark_runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """A few plain sentences on the ratios."""
    pairs = [(p, s) for p, s in zip(pandas_runs, spark_runs, strict=False)]
    if not pairs:
        return []
    out = []
    p, s = pairs[-1]
    ratio = p["seconds"] / s["seconds"]
    out.append(f"At {_rows(p['rows'])} rows, the largest size, pandas took {_s(p['seconds'])} s and Spark "
               f"{_s(s['seconds'])} s: pandas/Spark = {_ratio(ratio)}, so "
               + ("Spark was faster." if ratio > 1 else "pandas was faster."))
    ratios = [(pp["rows"], pp["seconds"] / ss["seconds"]) for pp, ss in pairs]
    if len(ratios) > 1:
        out.append("The ratio went " + " -> ".join(_ratio(r) for _, r in ratios)
                   + f" over {_rows(ratios[0][0])}-{_rows(ratios[-1][0])} rows.")
        faster = [n for n, r in ratios if r > 1]
        if faster and len(faster) < len(ratios):
            out.append(f"Spark was faster from {_rows(min(faster))} rows on in this run.")
    p_spm = [pp["seconds"] / pp["rows"] * 1e6 for pp, _ in pairs]
    s_spm = [ss["seconds"] / ss["rows"] * 1e6 for _, ss in pairs]
    if len(pairs) > 1:
        out.append(f"Seconds per million rows: pandas {p_spm[0]:.2f} -> {p_spm[-1]:.2f}, Spark {s_spm[0]:.2f} -> "
                   f"{s_spm[-1]:.2f} (Spark's fixed cost per job weighs most at the small sizes).")
    else:
        out.append(f"Seconds per million rows: pandas {p_spm[0]:.2f}, Spark {s_spm[0]:.2f}.")
    return out


def render(meta: Mapping[str, Any], check: Mapping[str, Any], pandas_runs: Sequence[Mapping[str, Any]],
           spark_runs: Sequence[Mapping[str, Any]], gen: Mapping[str, Any]) -> list[str]:
    """The lines of the BENCHMARKS.md section (between its markers)."""
    m, v = meta["machine"], meta["versions"]
    conf = spark_runs[0]["conf"] if spark_runs else {}
    inp = check["input"]
    lines = ["## Insights aggregates: Spark vs pandas (`bench/insights.py`)", "",
             f"- Date: {meta['date']}",
             f"- Command: `{meta['command']}`",
             f"- Machine: {m['cpu']}, {m['cores']} cores, {_gib(m['ram'])} RAM (/proc/meminfo MemTotal), "
             f"{_gib(m['available'])} available at start; {m['os']}",
             "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
             f"- Spark: master `{conf.get('spark.master', '?')}`, spark.driver.memory "
             f"{conf.get('spark.driver.memory', '?')}, "
             f"shuffle partitions {conf.get('spark.sql.shuffle.partitions', '?')}, "
             f"ANSI {conf.get('spark.sql.ansi.enabled', '?')}, "
             f"time zone {conf.get('spark.sql.session.timeZone', '?')}; "
             "library code `insights.analytics.sales_trends` and `season_correlation` on one lazy Parquet read, "
             "each written with `lake.overwrite` (Delta), as `build_insights`. Every run is a fresh process (cold "
             "JVM); time is read to both committed writes, session start listed apart.",
             "- pandas: `pyarrow.parquet.read_table` of the 7 used columns (category, region, status as "
             "dictionaries -> Categorical; dates as datetime64) + `to_pandas`, sold lines prepared once, "
             "9 group-bys on int64 keys for sales_trends (distinct orders from unique (group, order) pairs), a "
             "category x month matrix for season_correlation, each written with `pyarrow.parquet.write_table`; "
             "time is read to both written files.",
             "- Peak RSS: pandas `ru_maxrss` of its process; Spark the python driver plus JVM, psutil every 0.2 s "
             "over the process tree during the run.",
             f"- Input: generated once per size with `spark.range` + `xxhash64` (seed {SEED}): {LINES_PER_ORDER} "
             f"lines per order; {N_CATEGORIES} skewed categories (+ `{FLAT_CATEGORY}`, one unit a month, and "
             f"`{RARE_CATEGORY}`, one month), {len(REGIONS)} regions, dates 2017-01-01..2018-12-31 with growth and a "
             f"Nov/Dec season; in the check input {inp['not_sold'] / inp['rows']:.1%} lines canceled/unavailable "
             f"(any case), nulls: status {inp['null_status'] / inp['rows']:.1%}, category "
             f"{inp['null_category'] / inp['rows']:.1%}, region {inp['null_region'] / inp['rows']:.1%}, quantity "
             f"{inp['null_quantity'] / inp['rows']:.1%}, price {inp['null_price'] / inp['rows']:.1%}.",
             ""]
    st, sc = check["sales_trends"], check["season_correlation"]
    status = "**passed**" if check["ok"] else "**FAILED**"
    lines += [f"### Agreement check ({_rows(check['rows'])} rows, {_rows(check['sold_lines'])} sold lines, "
              f"{_rows(inp['orders'])} orders)", "",
              f"{status}: both written results read back and compared. `sales_trends`: the same "
              f"{_rows(st['rows'])} keys ("
              + ", ".join(f"{k} {n:,}" for k, n in st["by_grain"].items())
              + f"), n_orders and units equal, revenue within {st['max_rel_diff']:.1e} relative "
              f"({st['nulls']['revenue']} groups without a priced line are null in both). `season_correlation`: "
              f"the same {sc['rows']} categories, n_months equal, correlations within {sc['max_abs_diff']:.1e} "
              f"absolute; null in both for " + (", ".join(f"`{c}`" for c in sc["null_categories"]) or "no category")
              + " (constant series).", ""]
    lines += ["### Timings", "",
              "| rows | pandas s | Spark s | pandas/Spark | pandas peak RSS | Spark peak RSS | Spark session start s |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for p, s in zip(pandas_runs, spark_runs, strict=False):
        lines.append(f"| {_rows(s['rows'])} | {_s(p['seconds'])} | {_s(s['seconds'])} | "
                     f"{_ratio(p['seconds'] / s['seconds'])} | {_gib(p['peak_rss'])} | {_gib(s['peak_rss'])} | "
                     f"{s['session_seconds']:.1f} |")
    lines += ["", "pandas/Spark above 1: Spark was faster. Per step (Spark's steps each include their own read of "
              "the input; pandas reads once):", "",
              "| rows | pandas read + sold lines s | pandas sales_trends s | pandas season_correlation s | "
              "Spark sales_trends s | Spark season_correlation s | sales_trends rows | season_correlation rows |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p, s in zip(pandas_runs, spark_runs, strict=False):
        ps, ss = p["steps"], s["steps"]
        agree = all(p["output_rows"][t] == s["output_rows"][t] for t in TABLES)
        rows_txt = [f"{_rows(s['output_rows'][t])}" + ("" if agree else f" (pandas {_rows(p['output_rows'][t])})")
                    for t in TABLES]
        lines.append(f"| {_rows(s['rows'])} | {_s(ps['read'])} | {_s(ps['sales_trends'])} | "
                     f"{_s(ps['season_correlation'])} | {_s(ss['sales_trends'])} | {_s(ss['season_correlation'])} | "
                     f"{rows_txt[0]} | {rows_txt[1]} |")
    gen_txt = ", ".join(f"{_rows(int(n))}: {g['seconds']:.1f} s"
                        for n, g in sorted(gen.items(), key=lambda x: int(x[0])) if g.get("seconds") is not None)
    lines += ["", "Input generation (Spark, not part of the timings): "
              f"{gen_txt or 'all inputs reused from bench/out'}.",
              "", "### Reading", "", " ".join(reading(pandas_runs, spark_runs))]
    return lines


def summary_table(pandas_runs, spark_runs) -> str:
    """A plain-text table for the terminal."""
    out = [f"{'rows':>12} {'pandas s':>9} {'spark s':>9} {'pandas/spark':>13} {'pandas GiB':>11} {'spark GiB':>10}"]
    for p, s in zip(pandas_runs, spark_runs, strict=False):
        out.append(f"{s['rows']:>12,} {p['seconds']:>9.2f} {s['seconds']:>9.2f} {p['seconds'] / s['seconds']:>13.3f} "
                   f"{p['peak_rss'] / 2**30:>11.2f} {s['peak_rss'] / 2**30:>10.2f}")
    return "\n".join(out)


# ================================================================================================
# Orchestration
# ================================================================================================

def render_compare(meta: Mapping[str, Any], runs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
                   gen: Mapping[str, Any]) -> list[str]:
    """The lines of the ``insights-trends`` section: reference vs additive ``sales_trends``, size by size."""
    from bench.sections import machine_line

    conf = runs[0][1]["conf"]
    lines = ["## sales_trends: previous (countDistinct) vs additive (`bench/insights.py --compare`)", "",
             f"- Date: {meta['date']}",
             f"- Command: `{meta['command']}`",
             f"- {machine_line()}",
             f"- Spark: master `{conf['spark.master']}`, spark.driver.memory {conf['spark.driver.memory']}, "
             f"shuffle partitions {conf['spark.sql.shuffle.partitions']}, ANSI {conf['spark.sql.ansi.enabled']}. "
             "Each version runs in its own fresh process on the same generated Parquet input (the `insights` "
             "section's generator, seed " + str(SEED) + "): read to committed Delta write of "
             "`insights_sales_trends`, session start not included. Reference = the previous implementation "
             "(`bench/insights.py::reference_sales_trends`: lines expanded per grain, grouping sets with "
             "`countDistinct(order_id)`); additive = `insights.analytics.sales_trends` (one shuffle of the lines by "
             "order, per-cell first-in-period order flags, one (day, category, region) aggregate, weeks and months "
             "summed from days).",
             ("- Check: after both runs of a size, both written tables are read back and compared: the same keys, "
              "`n_orders` and `units` equal, `revenue` within 1e-9 relative, nulls in the same places."),
             ("- Load: the machine is shared; the 1-minute load average when each timed run started is listed "
              "(2 cores: above 2 means other work was competing for the CPU)."), "",
             ("| rows | reference s | additive s | reference / additive | reference peak RSS | additive peak RSS | "
              "load at start (ref, add) | output rows | agreement |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for ref, add in runs:
        ck = add["check"]
        agree = ("equal" if add["ok"] else f"**{len(add['mismatches'])} differences**")
        if add["ok"]:
            agree += f" (revenue within {ck['max_rel_diff']:.1e} rel.)"
        lines.append(f"| {_rows(ref['rows'])} | {_s(ref['seconds'])} | {_s(add['seconds'])} | "
                     f"{ref['seconds'] / add['seconds']:.2f}x | {_gib(ref['peak_rss'])} | {_gib(add['peak_rss'])} | "
                     f"{ref['load_at_start']:.1f}, {add['load_at_start']:.1f} | {_rows(ck['rows'])} | {agree} |")
    gen_txt = ", ".join(f"{_rows(int(n))}: {g['seconds']:.1f} s"
                        for n, g in sorted(gen.items(), key=lambda x: int(x[0])) if g.get("seconds") is not None)
    ratios = " -> ".join(f"{r['seconds'] / a['seconds']:.2f}x" for r, a in runs)
    lines += ["", f"Input generation (not timed above): {gen_txt or 'all inputs reused from bench/out'}.", "",
              f"reference / additive above 1: the additive version is faster. Ratio by size: {ratios}."]
    return lines


def compare_main(args: argparse.Namespace, sizes: Sequence[int]) -> int:
    """``--compare``: both ``sales_trends`` versions at each size, checked equal, written as a section."""
    t_start = time.perf_counter()
    exe = os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(REPO_ROOT)) else sys.executable
    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": shlex.join([exe, *sys.argv])}
    gen = _spawn("generate", ",".join(str(n) for n in sizes), args)["inputs"]
    runs = []
    for n in sizes:
        ref, add = (_spawn(kind, n, args) for kind in COMPARE_VERSIONS)
        if not add["ok"]:
            for line in add["mismatches"]:
                log.error("reference vs additive: %s", line)
            log.error("sales_trends versions differ at %s rows; no section written", _rows(n))
            return 1
        log.info("%s rows: reference %.1f s, additive %.1f s (%.2fx)", _rows(n), ref["seconds"], add["seconds"],
                 ref["seconds"] / add["seconds"])
        runs.append((ref, add))
    out, lines = Path(args.out), render_compare(meta, runs, gen)
    write_section(COMPARE_SECTION, lines, out)
    print("\n".join(lines))
    print(f"total wall time {time.perf_counter() - t_start:.0f} s; results in {out}")
    return 0


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"--sizes expects comma-separated integers, got {text!r}") from None
    if not sizes or sizes[0] < MIN_ROWS:
        raise SystemExit(f"--sizes needs at least one size, each >= {MIN_ROWS}")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=None,
                    help=f"row counts timed (default {DEFAULT_SIZES}; with --compare {DEFAULT_COMPARE_SIZES})")
    ap.add_argument("--compare", action="store_true",
                    help="time the previous sales_trends (reference) against the library's additive one instead, "
                         f"and write the {COMPARE_SECTION} section")
    ap.add_argument("--check-rows", type=int, default=200_000, help="size of the agreement check")
    ap.add_argument("--out", default=str(DEFAULT_MD), help="Markdown file receiving the results")
    ap.add_argument("--driver-memory", default="8g", help="spark.driver.memory of the Spark runs")
    ap.add_argument("--keep-outputs", action="store_true", help="keep the written tables under bench/out")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{args.worker or 'bench'}] %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if args.worker:
        Path(args.result).write_text(json.dumps(_worker(args)))
        return 0

    if args.compare:
        return compare_main(args, _sizes(args.sizes or DEFAULT_COMPARE_SIZES))
    sizes, t_start = _sizes(args.sizes or DEFAULT_SIZES), time.perf_counter()
    if args.check_rows < MIN_ROWS:
        raise SystemExit(f"--check-rows must be >= {MIN_ROWS}")
    exe = os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(REPO_ROOT)) else sys.executable
    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": shlex.join([exe, *sys.argv]), "machine": machine_info(), "versions": versions()}
    log.info("machine: %s", meta["machine"])
    log.info("versions: %s", meta["versions"])

    gen = _spawn("generate", ",".join(str(n) for n in sorted({args.check_rows, *sizes})), args)["inputs"]

    check = _spawn("check", args.check_rows, args)
    if not check["ok"]:
        for line in check["mismatches"]:
            log.error("agreement: %s", line)
        log.error("agreement check failed at %s rows; no timings taken", _rows(args.check_rows))
        return 1
    log.info("agreement check passed at %s rows: sales_trends %s, season_correlation %s", _rows(args.check_rows),
             check["sales_trends"], check["season_correlation"])

    pandas_runs, spark_runs = [], []
    for n in sizes:
        pandas_runs.append(_spawn("pandas", n, args))
        log.info("pandas %s rows: %.1f s, peak RSS %s", _rows(n), pandas_runs[-1]["seconds"],
                 _gib(pandas_runs[-1]["peak_rss"]))
        spark_runs.append(_spawn("spark", n, args))
        log.info("spark  %s rows: %.1f s (+%.1f s session start), peak RSS %s", _rows(n), spark_runs[-1]["seconds"],
                 spark_runs[-1]["session_seconds"], _gib(spark_runs[-1]["peak_rss"]))

    out = Path(args.out)
    lines = render(meta, check, pandas_runs, spark_runs, gen)
    write_section(SECTION, lines, out)
    log.info("wrote the %s section of %s", SECTION, out)
    print(summary_table(pandas_runs, spark_runs))
    for sentence in reading(pandas_runs, spark_runs):
        print(sentence)
    print(f"total wall time {time.perf_counter() - t_start:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
