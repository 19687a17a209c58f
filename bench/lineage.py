"""Benchmark: a build-recommendations run with its reused frames checkpointed (``ecomrec_spark.lineage``) or cached.

A build fits every model three times (the ranker's training cut, the validation cut, all data), builds the
ranker's candidate features on three cuts and scores about twenty lists. The fitted candidate lists and the
cuts' candidates and features are reused by many later queries. Cached, they keep their whole plan, and every
later query is analysed, optimized and matched against the cache with it; checkpointed (local mode), later
queries start from a scan of the stored rows.

1. **Lake**: ``--orders`` generated orders (1,500 by default, the tests' planted lake size) through generate ->
   ingest -> transform, shared with ``bench/codegen_cache.py`` (``bench/out/codegen_cache/``, built once).
2. **Timed**: one ``recommend`` per process (a fresh JVM, as the job runs), on a copy of the lake, with the tests'
   build settings (``tests/conftest.py``'s ``recommend_run``: every model and the ranker, one grid point) and the
   tests' session (``local[2]``, 2 shuffle partitions). The variants alternate for ``--repeats`` rounds; medians.
   *cached* is what a cluster does (``lineage.materialize`` persists there), forced here in local mode.
3. Both variants must write the same ``gold/recommendations`` rows (``exceptAll`` both ways; the run fails
   otherwise).
4. The result goes to ``BENCHMARKS.md`` between ``<!-- lineage:start -->`` and ``<!-- lineage:end -->``
   (``--no-section`` to skip).

Usage::

    .venv/bin/python bench/lineage.py               # 1,500 orders, 1 round (about 8 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/lineage.py` from anywhere
    sys.path.insert(0, str(REPO))
from bench.codegen_cache import OUT as LAKES  # noqa: E402  (after the sys.path line above)
from bench.codegen_cache import TEST_CONF, ensure_lake  # noqa: E402
from bench.sections import RESULT  # noqa: E402

OUT = REPO / "bench" / "out" / "lineage"
CHECKPOINTED, CACHED = "checkpointed (local mode now)", "cached (as before; a cluster)"
VARIANTS = (CACHED, CHECKPOINTED)
# tests/conftest.py's recommend_run: the build the suite pays for twice
BUILD_SETS = [
    "recommend.als.max_iter=5", "recommend.als.rank=8", "recommend.hybrid.grid.review=[0.0]",
    "recommend.hybrid.grid.price=[0.0]", "recommend.hybrid.grid.popularity=[0.0,1.0]",
    "recommend.rules.min_support=0.0015", "recommend.als.tune=false", "recommend.item_item.tune=false",
    "recommend.rank.candidates=50", "recommend.rank.grid.max_depth=[4]", "recommend.rank.grid.n_estimators=[60]",
    "recommend.rank.min_customers=5",
]


def child(lake_root: Path, variant: str, work: Path) -> None:
    """One build in this process on a copy of the lake; prints one RESULT line with its seconds and row counts."""
    from ecomrec_spark import lineage
    from ecomrec_spark.config import load_config
    from ecomrec_spark.recommend.run import recommend
    from ecomrec_spark.session import build_session
    from ecomrec_spark.settings import Settings

    if variant == CACHED:
        lineage.runs_locally = lambda spark: False  # what materialize does on a cluster: persist, keep the plan
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(lake_root / "lake", work / "lake")
    cfg = load_config(None, [f"paths.raw={lake_root / 'raw'}", f"paths.lake={work / 'lake'}", *BUILD_SETS])
    spark = build_session(cfg, app_name="bench-lineage", extra_conf=TEST_CONF)
    t = time.perf_counter()
    out = recommend(spark, Settings.from_config(cfg))
    seconds = time.perf_counter() - t
    from ecomrec_spark import lake as lk

    (lk.read(spark, str(work / "lake"), "gold", "recommendations").drop("generated_at", "model_version")
     .write.mode("overwrite").parquet(str(work / "recommendations.parquet")))
    print(RESULT + json.dumps({"seconds": seconds, "tables": out["tables"], "default": out["default_model"]}),
          flush=True)
    spark.stop()


def same_rows(a: Path, b: Path) -> bool:
    """Whether two written recommendation tables hold the same rows (a small session of its own)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    x, y = spark.read.parquet(str(a)), spark.read.parquet(str(b))
    same = x.exceptAll(y).limit(1).count() == 0 and y.exceptAll(x).limit(1).count() == 0
    spark.stop()
    return same


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=1500, help="orders of the generated data")
    p.add_argument("--repeats", type=int, default=1, help="rounds of the two variants' processes")
    p.add_argument("--no-section", action="store_true", help="do not write the BENCHMARKS.md section")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.orders < 100 or a.repeats < 1:
        p.error("--orders must be >= 100 and --repeats >= 1")
    lake_root = LAKES / f"orders_{a.orders}"
    work = {v: OUT / f"orders_{a.orders}" / ("checkpointed" if v == CHECKPOINTED else "cached") for v in VARIANTS}
    if a.child is not None:
        child(lake_root, a.child, work[a.child])
        return 0

    from bench.sections import child_result, machine_line, write_section

    ensure_lake(lake_root, a.orders)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    results = {}
    for _ in range(a.repeats):
        for v in VARIANTS:
            results[v] = child_result(__file__, ["--child", v, "--orders", str(a.orders)], v)
            times[v].append(results[v]["seconds"])
            if not same_rows(work[CACHED] / "recommendations.parquet", work[v] / "recommendations.parquet"):
                raise SystemExit(f"{v} wrote other gold/recommendations rows than {CACHED}")
    med = {v: statistics.median(x) for v, x in times.items()}
    rows = results[CHECKPOINTED]["tables"]["gold/recommendations"]
    lines = [
        "## A build's reused frames: checkpointed or cached (`bench/lineage.py`)", "",
        machine_line(),
        "",
        f"Data: {a.orders:,} generated orders (generate -> ingest -> transform). Timed: one build-recommendations "
        f"per process (a fresh JVM), with the tests' build settings (every model and the ranker, one grid point) and "
        f"session (`local[2]`, 2 shuffle partitions); {a.repeats} round(s), the variants alternating; medians.",
        "",
        "| the fitted lists and the ranker's cuts | build | runs (s) |",
        "|---|---|---|",
        *[f"| {v} | {med[v]:.0f} s | {', '.join(f'{x:.0f}' for x in times[v])} |" for v in VARIANTS],
        "",
        f"Cached / checkpointed: **{med[CACHED] / med[CHECKPOINTED]:.2f}x**. Both wrote the same {rows:,} "
        f"`gold/recommendations` rows (checked by the run) and served the same default "
        f"(`{results[CHECKPOINTED]['default']}`). The data is small, so most of a build's time is the driver "
        "planning its hundreds of queries; a cached frame keeps its plan, so every later query plans the fits "
        "again. On a cluster `lineage.materialize` still caches: a lost executor recomputes a cached frame, but "
        "cannot recompute a local checkpoint.",
    ]
    if not a.no_section:
        write_section("lineage", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
