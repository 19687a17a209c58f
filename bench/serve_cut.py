"""Benchmark: the ranker's served lists, ranked once and kept, against ranked once per list that reads them.

``build-recommendations`` ranks the serving cut (every candidate of every warm customer) with the saved
rankers and writes ``ltr`` and ``ltr_new`` among the other lists in one query. When the shop excludes past
purchases (``recommend.filters.exclude_purchased``, the default) ``ltr`` *is* the ``new`` ranker's list, so the
write reads that one list twice. ``ltr.serve_lists`` now persists each ranked list; before, each read ranked
the whole cut again. This measures the two side by side in one SparkSession:

1. **Lake**: ``--lake`` after a complete ``build-recommendations`` (default: ``./lake``, what ``make demo``
   leaves), whose saved ranker (``models/ranker/latest``) is loaded through the model store's checks.
2. **Serving cut**: every model of ``recommend.models`` fitted on all data and the cut's features, as the build
   makes them (``models.fit_models``, ``ltr.build_cut``); the features are materialised once, before timing.
3. **Timed**, alternating for ``--repeats`` rounds, medians reported: ``ltr`` and ``ltr_new`` finalised
   (``models.finalize``) and written together to Parquet under ``bench/out/serve_cut/``, with

   - *per read*: the lists as ``serve_lists`` built them before (one lazy ranked frame, read twice);
   - *kept*: ``ltr.serve_lists`` as it is (ranked once, persisted, released after the round).

   Both must give the same rows (count and an order-free hash of every row; the run fails otherwise).
4. The result goes to ``BENCHMARKS.md`` between ``<!-- serve-cut:start -->`` and ``<!-- serve-cut:end -->``
   (``--no-section`` to skip).

Usage::

    make demo && .venv/bin/python bench/serve_cut.py
    .venv/bin/python bench/serve_cut.py --lake bench/out/some_lake --set recommend.rank.candidates=50
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/serve_cut.py` from anywhere
    sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out" / "serve_cut"  # gitignored: each variant's written lists, read back to compare


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lake", default=str(REPO / "lake"), help="a lake after build-recommendations (default ./lake)")
    p.add_argument("--set", dest="sets", action="append", default=[], help="config override, as the CLI takes it")
    p.add_argument("--repeats", type=int, default=2, help="rounds of each variant (medians are reported)")
    p.add_argument("--no-section", action="store_true", help="do not write the BENCHMARKS.md section")
    a = p.parse_args()
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    if not (Path(a.lake) / "models" / "ranker" / "latest").is_file():
        p.error(f"{a.lake} has no saved ranker (models/ranker/latest): run `make demo` (or build-recommendations "
                "with ltr in recommend.models) first, or pass --lake")

    from functools import reduce

    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from bench.sections import machine_line, write_section
    from ecomrec_spark import model_store
    from ecomrec_spark.config import load_config
    from ecomrec_spark.recommend import ltr
    from ecomrec_spark.recommend import models as M
    from ecomrec_spark.recommend import run as R
    from ecomrec_spark.recommend.interactions import purchases
    from ecomrec_spark.session import build_session

    cfg = load_config(None, [f"paths.lake={Path(a.lake).resolve()}", *a.sets])
    spark = build_session(cfg, app_name="bench-serve-cut")
    lake = cfg["paths"]["lake"]
    rc = dict(cfg["recommend"])
    rc["candidates"] = max(rc["candidates"], rc["rank"]["candidates"] - rc["k"])  # as recommend() sets it
    models, meta = model_store.load_models(spark, lake, ltr.RF.feature_names(ltr.generators(rc)),
                                           model_dir=ltr.R.MODEL_DIR)
    trained = ltr.Trained(models=models)
    inputs = R.load_inputs(spark, lake)
    end = R.data_end(inputs)
    bought_all = purchases(inputs.lines).persist()
    fit_set = tuple(dict.fromkeys([m for m in R.served_models(rc) if m not in ltr.LTR_MODELS.values()]
                                  + list(ltr.generator_models(rc))))
    t0 = time.perf_counter()
    fitted = M.fit_models(spark, inputs, rc, fit_set)
    cut = ltr.build_cut(spark, inputs, fitted, rc, end + dt.timedelta(seconds=1), bought_all, R.review_inputs(spark, lake))
    n_rows = cut.features.count()  # materialises the cut's cached features before anything is timed
    n_customers = cut.features.select("customer_id").distinct().count()
    setup_s = time.perf_counter() - t0

    def per_read() -> dict[str, DataFrame]:
        """``serve_lists`` before: lazy ranked frames, ``ltr`` the same frame as ``ltr_new`` when shared."""
        gens, n = ltr.generators(rc), rc["k"] + rc["candidates"]
        lists = {ltr.LTR_MODELS[s]: ltr.as_recs(ltr.R.rank_candidates(m, cut.frame(s), n), gens)
                 for s, m in trained.models.items()}
        if rc["filters"]["exclude_purchased"] and "ltr_new" in lists:
            lists["ltr"] = lists["ltr_new"]
        return lists

    served = sorted(per_read())  # the ranker lists the build writes: ltr, and ltr_new with a `new` ranker
    times: dict[str, list[float]] = {"per read": [], "kept": []}
    results = {}
    for _ in range(a.repeats):
        for variant in ("per read", "kept"):
            t = time.perf_counter()
            lists = per_read() if variant == "per read" else ltr.serve_lists(cut, trained, rc)
            fitted.candidates.update(lists)
            finished = [M.finalize(spark, fitted, m, rc if m != "ltr_new" else ltr.in_setting(rc, "new"))
                        .withColumn("model", F.lit(m)) for m in served]
            out = str(OUT / variant.replace(" ", "_"))
            reduce(DataFrame.unionByName, finished).write.mode("overwrite").parquet(out)
            times[variant].append(time.perf_counter() - t)
            written = spark.read.parquet(out)
            row = written.agg(F.count(F.lit(1)).alias("n"), F.sum(F.hash(*written.columns).cast("decimal(38,0)"))
                              .alias("h")).first()  # one aggregate row: the same rows in any order, the same sum
            results[variant] = (int(row["n"]), int(row["h"]))
            for df in {id(d): d for d in lists.values()}.values():
                df.unpersist()
    if results["per read"] != results["kept"]:
        raise SystemExit(f"the two variants wrote different rows: {results}")
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        "## The ranker's served lists: ranked once per read vs kept (`bench/serve_cut.py`)", "",
        machine_line(),
        "",
        f"Lake: `{a.lake}` with its saved ranker {meta['version']} (targets {', '.join(meta['targets'])}); data to "
        f"{end:%Y-%m-%d}. Serving cut: {n_rows:,} candidate rows for {n_customers:,} warm customers from "
        f"{', '.join(fit_set)} fitted on all data ({setup_s:.0f} s with the features, not timed). Timed: "
        f"{' and '.join(served)} finalised and written together to Parquet (the build writes them to Delta with the "
        f"other lists); {a.repeats} rounds alternating, medians; exclude_purchased "
        f"{rc['filters']['exclude_purchased']}.",
        "",
        "| variant | time | rows |",
        "|---|---|---|",
        f"| ranked per read (before) | {med['per read']:.1f} s | {results['per read'][0]:,} |",
        f"| ranked once, kept (`ltr.serve_lists` now) | {med['kept']:.1f} s | {results['kept'][0]:,} |",
        "",
        f"Kept / per read: {med['kept'] / med['per read']:.2f}x the time, the same rows (count and hash checked).",
    ]
    if not a.no_section:
        write_section("serve-cut", lines)
    print("\n".join(lines))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
