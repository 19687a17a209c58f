"""Benchmark: dense int ids (``recommend.ids.index_ids``) by a window in the JVM against ``RDD.zipWithIndex``.

ALS, EASE, the ranker's query groups and the random baseline number customer or product ids with
``index_ids``.  It used ``distinct`` -> ``orderBy`` -> ``RDD.zipWithIndex`` (a distributed sort, but every
value went through Python workers twice and ``zipWithIndex`` ran a job of its own to size the partitions);
it now uses a running count (``row_number`` as a long) over a window ordered by the value (the distinct values
are sorted in one task).
This times both side by side in one SparkSession, alternating for ``--repeats`` rounds (medians):

- *ids*: the id map alone, written to Spark's ``noop`` sink;
- *join*: the rows joined to their ids and summed, as ALS uses the map.

Sizes: ``--rows`` rows over ``--small`` distinct ids (the tests' planted lake has ~1,400 customers) and over
``--large`` distinct ids (to see what the one-task sort costs at scale).  Both variants must give the same
ids (checked with ``exceptAll``; the run fails otherwise).  The result goes to ``BENCHMARKS.md`` between
``<!-- index-ids:start -->`` and ``<!-- index-ids:end -->`` (``--no-section`` to skip).

Usage::

    .venv/bin/python bench/index_ids.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/index_ids.py` from anywhere
    sys.path.insert(0, str(REPO))


def zip_with_index_ids(df: DataFrame, col: str, out_col: str) -> DataFrame:
    """The replaced ``index_ids``, kept for the comparison: distinct -> orderBy -> ``RDD.zipWithIndex`` in Python."""
    from pyspark.sql.types import LongType, StructField, StructType

    values = df.select(col).where(df[col].isNotNull()).distinct().orderBy(col)
    numbered = values.rdd.zipWithIndex().map(lambda pair: (pair[0][0], pair[1]))
    schema = StructType([StructField(col, df.schema[col].dataType, False), StructField(out_col, LongType(), False)])
    return df.sparkSession.createDataFrame(numbered, schema).selectExpr(col, f"cast({out_col} as int) as {out_col}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000, help="rows of the frame the ids are taken from")
    p.add_argument("--small", type=int, default=2_000, help="distinct ids, small case")
    p.add_argument("--large", type=int, default=200_000, help="distinct ids, large case")
    p.add_argument("--repeats", type=int, default=5, help="rounds of each variant (medians are reported)")
    p.add_argument("--no-section", action="store_true", help="do not write the BENCHMARKS.md section")
    a = p.parse_args()
    if min(a.rows, a.small, a.large, a.repeats) < 1:
        p.error("--rows, --small, --large and --repeats must be >= 1")

    from pyspark.sql import functions as F

    from bench.sections import machine_line, write_section
    from ecomrec_spark.config import load_config
    from ecomrec_spark.recommend.ids import index_ids
    from ecomrec_spark.session import build_session

    cfg = load_config(None)
    spark = build_session(cfg, app_name="bench-index-ids")
    now_name, before_name = "window (now)", "zipWithIndex (before)"
    variants = {now_name: index_ids, before_name: zip_with_index_ids}
    med: dict[tuple[int, str, str], float] = {}
    for n_ids in (a.small, a.large):
        df = (spark.range(a.rows).select(F.format_string("c%09d", F.col("id") % n_ids).alias("customer_id"),
                                         (F.col("id") % 7).cast("double").alias("v")).cache())
        df.count()
        now, before = index_ids(df, "customer_id", "i"), zip_with_index_ids(df, "customer_id", "i")
        if now.exceptAll(before).count() or before.exceptAll(now).count():
            raise SystemExit(f"the two variants give different ids for {n_ids:,} distinct values")
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(a.repeats):
            for name, f in variants.items():
                t = time.perf_counter()
                f(df, "customer_id", "i").write.format("noop").mode("overwrite").save()
                times.setdefault((name, "ids"), []).append(time.perf_counter() - t)
                t = time.perf_counter()
                df.join(f(df, "customer_id", "i"), "customer_id").agg(F.sum("i"), F.sum("v")).collect()  # one row
                times.setdefault((name, "join"), []).append(time.perf_counter() - t)
        med.update({(n_ids, name, work): statistics.median(v) for (name, work), v in times.items()})
        df.unpersist()
    lines = [
        "## Dense ids: a window in the JVM against `RDD.zipWithIndex` (`bench/index_ids.py`)", "",
        machine_line(),
        "",
        f"{a.rows:,} rows of string ids; one SparkSession (`conf/local.yaml`, `local[*]`), both variants alternating "
        f"for {a.repeats} rounds, medians. Both give the same ids (checked by the run).",
        "",
        f"| distinct ids | work | {now_name} | {before_name} | before / now |",
        "|---|---|---|---|---|",
    ]
    for n_ids in (a.small, a.large):
        for work, what in (("ids", "the id map, noop sink"), ("join", "rows joined to their ids, one sum")):
            t_now, t_before = med[(n_ids, now_name, work)], med[(n_ids, before_name, work)]
            lines.append(f"| {n_ids:,} | {what} | {t_now:.2f} s | {t_before:.2f} s | {t_before / t_now:.2f}x |")
    lines += ["", "The window sorts the distinct values in one task; `zipWithIndex` keeps the sort distributed but "
              "sends every value through Python workers and runs an extra job per call. The build calls `index_ids` "
              "16 times on the tests' planted lake (ALS, EASE, the ranker's query groups, the random baseline), "
              "where a cProfile of one build put 60 s of its 475 s in it."]
    if not a.no_section:
        write_section("index-ids", lines)
    print("\n".join(lines))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
