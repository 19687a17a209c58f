"""Benchmark: every recommender on UCI Online Retail (real, messy transactions), time split.

Runs the product end to end on the real file with ``conf/online_retail.yaml``:
ingest (generic transactions) -> transform -> evaluate-recommendations, where the
evaluation trains on Dec 2010 - Jun 2011 and tests on the last 60 days, in both
settings (all test purchases; only items new to the customer), against the
popularity, random and cosine item-kNN baselines.  The table goes to BENCHMARKS.md
between ``<!-- online-retail:start -->`` and ``<!-- online-retail:end -->``.

Usage::

    .venv/bin/python bench/online_retail.py              # about 10 minutes on 2 cores
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/online_retail.py` from anywhere
    sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "online-retail"
OUT = REPO / "bench" / "out" / "online_retail"


def main() -> int:
    from bench.sections import machine_line, write_section
    from ecomrec_spark.config import load_config
    from ecomrec_spark.ingest.run import ingest
    from ecomrec_spark.recommend.evaluate import evaluate, markdown_table
    from ecomrec_spark.session import build_session
    from ecomrec_spark.settings import Settings
    from ecomrec_spark.transform.run import transform

    raw, lake = OUT / "raw", OUT / "lake"
    shutil.rmtree(OUT, ignore_errors=True)
    raw.mkdir(parents=True)
    for f in DATA.glob("*.csv*"):
        shutil.copy(f, raw / f.name)
    cfg = load_config(REPO / "conf" / "online_retail.yaml", [
        f"paths.raw={raw}", f"paths.lake={lake}", f"paths.reports={OUT / 'reports'}",
        "recommend.evaluate.models=[knn,hybrid,als,content,item_knn,ease,popular,random]"])
    spark = build_session(cfg, "bench-online-retail")
    t0 = time.time()
    settings = Settings.from_config(cfg)
    recon = ingest(spark, settings)
    counts = transform(spark, settings)
    t1 = time.time()
    result = evaluate(spark, settings)
    t2 = time.time()
    info = result["info"]
    lines = [
        "## Recommendations on UCI Online Retail (`bench/online_retail.py`)", "",
        machine_line(), "",
        f"The real file ({sum(r['raw_records'] for r in recon):,} records, Dec 2010 - Aug 2011) through "
        f"`conf/online_retail.yaml`: {counts.get('silver/order_lines', 0):,} clean order lines. "
        f"Train before {info['cutoff'][:10]}, test to {info['data_end'][:10]}: {info['n_test_customers']:,} test "
        f"customers, {info['n_cold_customers']:,} of them new (served by the popularity fallback, not scored). "
        f"k = {cfg['recommend']['k']}; ingest + transform {t1 - t0:.0f} s, evaluation (every model fitted on the "
        f"train period, hybrid weights tuned on its last {cfg['recommend']['hybrid']['validation_days']} days) "
        f"{t2 - t1:.0f} s.", "",
        "`all`: every test purchase is relevant and lists may repeat earlier purchases; "
        "`new`: only items new to the customer are relevant and lists exclude earlier purchases.", "",
        *markdown_table(result["results"]), "",
        f"Hybrid weights chosen on validation: {info.get('hybrid_weights')}; KNN: {info.get('knn')}.",
    ]
    write_section("online-retail", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
