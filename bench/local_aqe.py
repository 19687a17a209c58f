"""Benchmark: adaptive query execution on or off for a build's small queries on local Spark.

``conf/local.yaml`` turns ``spark.sql.adaptive.enabled`` off.  This measures why, side by side in
one SparkSession (the setting is a runtime SQL conf, so both variants share the JVM, the caches and
the machine's load at the time):

1. **Lake**: the demo data (``generate`` -> ``ingest`` -> ``transform``, ``--orders`` orders) under
   ``bench/out/local_aqe/`` (gitignored), built once per size.
2. **Lists**: the single models of ``recommend.models`` fitted on the data before the validation cut
   ``T2 = end - recommend.hybrid.validation_days``, as ``recommend()`` fits them for scoring, then each
   model's finished list (``models.finalize``: filters, light-user blend, re-rank) in both settings.
3. **Timed**, alternating on/off for ``--repeats`` rounds, medians reported:

   - *scoring*: ``ltr.score_lists``, the build's validation scoring: ``metrics.ranking_metrics`` of
     every list against its setting's truth, one list after the other;
   - *write*: all lists stacked and written to Spark's ``noop`` sink, as the build writes
     ``gold/recommendations`` (one query over every list).

   The metrics of both variants must agree (to 1e-9 relative; the run fails otherwise).
4. The result goes to ``BENCHMARKS.md`` between ``<!-- local-aqe:start -->`` and ``<!-- local-aqe:end -->``
   (``--no-section`` to skip).

Usage::

    .venv/bin/python bench/local_aqe.py                  # 1,500 orders (the tests' planted lake size)
    .venv/bin/python bench/local_aqe.py --orders 20000   # the demo's size
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import time
from functools import reduce
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/local_aqe.py` from anywhere
    sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out" / "local_aqe"
AQE = "spark.sql.adaptive.enabled"


def _agree(on: dict, off: dict) -> bool:
    """The same lists with the same metrics, to 1e-9 (sums may run in another order when partitions differ)."""
    def same(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return a == b

    return on.keys() == off.keys() and all(same(x[m], off[key].get(m)) for key, x in on.items() for m in x)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=1500, help="orders of the generated demo data")
    p.add_argument("--repeats", type=int, default=3, help="rounds of on/off (medians are reported)")
    p.add_argument("--no-section", action="store_true", help="do not write the BENCHMARKS.md section")
    a = p.parse_args()
    if a.orders < 100 or a.repeats < 1:
        p.error("--orders must be >= 100 and --repeats >= 1")

    from pyspark.sql import DataFrame

    from bench.sections import machine_line, write_section
    from ecomrec_spark.config import load_config
    from ecomrec_spark.recommend import ltr
    from ecomrec_spark.recommend import models as M
    from ecomrec_spark.recommend import run as R
    from ecomrec_spark.recommend.interactions import purchases
    from ecomrec_spark.session import build_session

    root = OUT / f"orders_{a.orders}"
    cfg = load_config(None, [f"paths.raw={root / 'raw'}", f"paths.lake={root / 'lake'}", f"generate.orders={a.orders}"])
    spark = build_session(cfg, app_name="bench-local-aqe")
    t0 = time.perf_counter()
    if not (root / "lake" / "gold").is_dir():
        from bench.demo_lake import build_demo_lake

        build_demo_lake(spark, cfg)
    lake_s = time.perf_counter() - t0

    from ecomrec_spark.settings import Settings

    rc = Settings.from_config(cfg).recommend
    inputs = R.load_inputs(spark, cfg["paths"]["lake"])
    end = R.data_end(inputs)
    t2 = end - dt.timedelta(days=rc.hybrid.validation_days)
    truths = ltr.validation_truths(purchases(inputs.lines).cache(), t2)
    models = tuple(m for m in R.served_models(rc) if m not in ltr.LTR_MODELS.values())
    fitted = M.fit_models(spark, R.before(inputs, t2), rc, models, as_of=t2)

    def scoring() -> dict[tuple[str, str], dict]:
        return {(r["model"], r["setting"]): r for r in ltr.score_lists(spark, fitted, rc, models, truths)}

    def write() -> None:
        lists = [M.finalize(spark, fitted, m, ltr.in_setting(rc, s)) for s in ltr.SETTINGS for m in models]
        reduce(DataFrame.unionByName, lists).write.format("noop").mode("overwrite").save()

    scoring()  # materialises the fitted models' caches before anything is timed
    times: dict[tuple[str, bool], list[float]] = {}
    results: dict[bool, dict] = {}
    for _ in range(a.repeats):
        for on in (True, False):
            spark.conf.set(AQE, str(on).lower())
            t = time.perf_counter()
            results[on] = scoring()
            times.setdefault(("scoring", on), []).append(time.perf_counter() - t)
            t = time.perf_counter()
            write()
            times.setdefault(("write", on), []).append(time.perf_counter() - t)
    if not _agree(results[True], results[False]):
        raise SystemExit(f"the metrics differ with AQE on and off: {results[True]} vs {results[False]}")
    med = {key: statistics.median(v) for key, v in times.items()}
    n_lists = len(results[True])
    lines = [
        "## Adaptive query execution on local Spark (`bench/local_aqe.py`)", "",
        machine_line(),
        "",
        f"Data: {a.orders:,} generated orders through generate -> ingest -> transform ({lake_s:.0f} s, 0 when reused); "
        f"the single models ({', '.join(models)}) fitted before the validation cut {t2:%Y-%m-%d}, as "
        f"build-recommendations fits them for scoring; {n_lists} finished lists (both settings). One SparkSession, "
        f"`{AQE}` switched between rounds, {a.repeats} rounds, medians; `local[*]`, "
        f"`spark.sql.shuffle.partitions` {cfg['spark']['shuffle_partitions']} (conf/local.yaml).",
        "",
        "| work | AQE on | AQE off | on / off |",
        "|---|---|---|---|",
    ]
    for work, what in (("scoring", f"ranking_metrics of {n_lists} lists, one after the other"),
                       ("write", f"{n_lists} lists stacked, written to the noop sink")):
        on, off = med[(work, True)], med[(work, False)]
        lines.append(f"| {what} | {on:.1f} s | {off:.1f} s | {on / off:.2f}x |")
    lines += ["", "The metrics of every list are the same in both variants (checked by the run, to 1e-9). With little data per "
              "query, adaptive execution's per-stage jobs and re-planning cost more than its partition coalescing "
              "saves; `conf/local.yaml` turns it off, `conf/emr.yaml` keeps Spark's default (on)."]
    if not a.no_section:
        write_section("local-aqe", lines)
    print("\n".join(lines))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
