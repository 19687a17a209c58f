"""Benchmark: the gold lists the product serves on UCI Online Retail, scored on months it never saw.

The measure of the two-stage recommender (issue "Rank") is what the product writes
to ``gold/recommendations`` after its filters, as it would be served.  So:

1. the real file is cut at ``--cut`` (default 2011-06-01): the product sees Dec 2010 -
   May 2011 through ``conf/online_retail.yaml`` (ingest -> transform ->
   build-recommendations, each stage timed), the months after are held back;
2. run A is the shop's own config (re-buys allowed, ``exclude_purchased: false``):
   its ``ltr`` list and every single model are scored on **all** held-back purchases;
3. run B is the same build with ``exclude_purchased: true`` (``ltr`` then follows the
   ``new`` ranker): its lists are scored on **new items only**; ``ltr_new`` of run A
   is scored there too;
4. baselines computed outside the product on the same training months, with plain
   numpy/pandas: popularity, the customer's own most-bought items ("buy again") and
   EASE (lambda 200, dense, unpruned);
5. every list goes through the project's ``ranking_metrics`` (NDCG@10, averaged over
   the returning customers who bought in the held-back months; a customer without a
   list scores 0).

Usage::

    .venv/bin/python bench/ltr_online_retail.py          # about 40-60 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "online-retail" / "online_retail_2010-12_to_2011-08.csv.gz"
OUT = REPO / "bench" / "out" / "ltr_online_retail"
K = 10
NON_PRODUCT = {"POST", "D", "M", "C2", "DOT", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "S", "B"}


def split_file(cut: str, raw: Path):
    """Write the months before ``cut`` for the product; return the cleaned train and held-back lines (pandas)."""
    import pandas as pd

    df = pd.read_csv(DATA, dtype=str, keep_default_na=False)
    train_rows = df[df["InvoiceDate"] < cut]
    raw.mkdir(parents=True, exist_ok=True)
    with gzip.open(raw / "online_retail_train.csv.gz", "wt", newline="") as f:
        train_rows.to_csv(f, index=False)

    def clean(part):
        q = pd.to_numeric(part["Quantity"], errors="coerce")
        keep = (part["CustomerID"] != "") & (q > 0) & ~part["InvoiceNo"].str.startswith("C") \
            & ~part["StockCode"].str.strip().str.upper().isin(NON_PRODUCT)
        return part[keep][["CustomerID", "StockCode", "InvoiceNo", "InvoiceDate"]].rename(
            columns={"CustomerID": "customer_id", "StockCode": "product_id", "InvoiceNo": "order_id", "InvoiceDate": "ts"})

    return clean(train_rows), clean(df[df["InvoiceDate"] >= cut]), len(train_rows), len(df) - len(train_rows)


def baselines(train, k: int) -> dict:
    """``{name: pandas frame customer_id, product_id, rank}`` for the plain baselines, in both settings."""
    import numpy as np
    import pandas as pd

    out = {}
    pop = train.groupby("product_id")["customer_id"].nunique().sort_values(ascending=False, kind="stable")
    customers = sorted(train["customer_id"].unique())
    seen = train[["customer_id", "product_id"]].drop_duplicates()
    top = list(pop.index[: k + 200])
    rows_all, rows_new = [], []
    seen_sets = seen.groupby("customer_id")["product_id"].agg(set).to_dict()
    for c in customers:
        rows_all += [(c, p, r + 1) for r, p in enumerate(top[:k])]
        fresh = [p for p in top if p not in seen_sets[c]][:k]
        rows_new += [(c, p, r + 1) for r, p in enumerate(fresh)]
    out[("popularity", "all")] = pd.DataFrame(rows_all, columns=["customer_id", "product_id", "rank"])
    out[("popularity", "new")] = pd.DataFrame(rows_new, columns=["customer_id", "product_id", "rank"])
    again = (train.groupby(["customer_id", "product_id"]).agg(n=("order_id", "nunique"), last=("ts", "max"))
             .reset_index().sort_values(["customer_id", "n", "last", "product_id"], ascending=[True, False, False, True]))
    again["rank"] = again.groupby("customer_id").cumcount() + 1
    out[("buy again", "all")] = again[again["rank"] <= k][["customer_id", "product_id", "rank"]]
    # EASE, lambda 200, on the binary customer x item matrix (Steck 2019)
    items = sorted(seen["product_id"].unique())
    ci = {c: i for i, c in enumerate(customers)}
    ii = {p: i for i, p in enumerate(items)}
    x = np.zeros((len(customers), len(items)), dtype=np.float32)
    x[seen["customer_id"].map(ci).to_numpy(), seen["product_id"].map(ii).to_numpy()] = 1.0
    g = (x.T @ x).astype(np.float64)
    g[np.diag_indices(len(items))] += 200.0
    p = np.linalg.inv(g)
    b = (p / (-np.diag(p))[None, :]).astype(np.float32)
    b[np.diag_indices(len(items))] = 0.0
    scores = x @ b
    for setting in ("all", "new"):
        s = scores.copy()
        if setting == "new":
            s[x > 0] = -np.inf
        idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
        out[("EASE λ=200 (plain numpy)", setting)] = pd.DataFrame(
            [(customers[u], items[idx[u, r]], r + 1) for u in range(len(customers)) for r in range(k)],
            columns=["customer_id", "product_id", "rank"])
    return out


def run_build(settings, spark, timings: dict, label: str) -> dict:
    from ecomrec_spark.recommend.run import recommend

    t = time.time()
    out = recommend(spark, settings)
    timings[label] = time.time() - t
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cut", default="2011-06-01", help="first held-back day (YYYY-MM-DD)")
    args = ap.parse_args()

    from bench.sections import machine_line, write_section
    from ecomrec_spark import lake as lk
    from ecomrec_spark.config import load_config
    from ecomrec_spark.ingest.run import ingest
    from ecomrec_spark.recommend.metrics import ranking_metrics
    from ecomrec_spark.session import build_session
    from ecomrec_spark.settings import Settings
    from ecomrec_spark.transform.run import transform

    shutil.rmtree(OUT, ignore_errors=True)
    raw, lake = OUT / "raw", OUT / "lake"
    train, held, n_train_rows, n_held_rows = split_file(args.cut, raw)
    sets = [f"paths.raw={raw}", f"paths.lake={lake}", f"paths.reports={OUT / 'reports'}"]
    cfg = load_config(REPO / "conf" / "online_retail.yaml", sets)
    spark = build_session(cfg, "bench-ltr-online-retail")
    timings: dict[str, float] = {}
    t = time.time()
    settings = Settings.from_config(cfg)
    ingest(spark, settings)
    timings["ingest"] = time.time() - t
    t = time.time()
    transform(spark, settings)
    timings["transform"] = time.time() - t
    built_a = run_build(settings, spark, timings, "build-recommendations (shop config, re-buys allowed)")
    snap_a = str(OUT / "gold_a")
    lk.read(spark, str(lake), "gold", "recommendations").write.mode("overwrite").parquet(snap_a)
    cfg_b = load_config(REPO / "conf" / "online_retail.yaml", sets + ["recommend.filters.exclude_purchased=true"])
    built_b = run_build(Settings.from_config(cfg_b), spark, timings, "build-recommendations (exclude_purchased: true)")
    gold_a = spark.read.parquet(snap_a)
    gold_b = lk.read(spark, str(lake), "gold", "recommendations")

    # truth: held-back purchases of returning customers (bought in the training months)
    returning = set(train["customer_id"])
    held = held[held["customer_id"].isin(returning)]
    truth_all = held[["customer_id", "product_id"]].drop_duplicates()
    bought = set(map(tuple, train[["customer_id", "product_id"]].drop_duplicates().to_numpy()))
    truth_new = truth_all[[t not in bought for t in map(tuple, truth_all.to_numpy())]]
    schema = "customer_id string, product_id string"
    truths = {"all": spark.createDataFrame(truth_all, schema).cache(), "new": spark.createDataFrame(truth_new, schema).cache()}

    def ndcg(recs, setting: str) -> float:
        return ranking_metrics(recs, truths[setting], K)["ndcg_at_k"] or 0.0

    results: dict[tuple[str, str], float] = {}
    models_a = [r["model"] for r in gold_a.select("model").distinct().collect()]
    for m in sorted(models_a):
        results[(f"gold `{m}` (shop config)", "all")] = ndcg(gold_a.where(f"model = '{m}'"), "all")
    for m in sorted(r["model"] for r in gold_b.select("model").distinct().collect()):
        if m != "ltr_new":
            results[(f"gold `{m}` (exclude purchased)", "new")] = ndcg(gold_b.where(f"model = '{m}'"), "new")
    if "ltr_new" in models_a:
        results[("gold `ltr_new` (shop config)", "new")] = ndcg(gold_a.where("model = 'ltr_new'"), "new")
    for (name, setting), frame in baselines(train, K).items():
        results[(name, setting)] = ndcg(spark.createDataFrame(frame.astype({"rank": "int32"}),
                                                              "customer_id string, product_id string, rank int"), setting)

    info = built_a["info"]
    rows = sorted({name for name, _ in results})
    table = ["| list | all purchases | new items only |", "|---|---|---|"]
    for name in sorted(rows, key=lambda r: -max(results.get((r, "all"), 0.0), results.get((r, "new"), 0.0))):
        cells = [f"{results[(name, s)]:.3f}" if (name, s) in results else "-" for s in ("all", "new")]
        table.append(f"| {name} | {cells[0]} | {cells[1]} |")
    imp = (info.get("ranker") or {}).get("importance", {})
    imp_lines = [f"- `{s}` ranker ({(info.get('ranker') or {}).get('params', {}).get(s)}): "
                 + ", ".join(f"{k} {val:.1f}" for k, val in list(w.items())[:10]) for s, w in imp.items()]
    best_single_new = max((val for (n, s), val in results.items()
                           if s == "new" and n.startswith("gold") and "ltr" not in n and "popular" not in n), default=0.0)
    checks = {
        "ltr above buy again (all)": results.get(("gold `ltr` (shop config)", "all"), 0.0) > results[("buy again", "all")],
        "ltr_new >= 1.2 x best single model (new)":
            results.get(("gold `ltr_new` (shop config)", "new"), 0.0) >= 1.2 * best_single_new,
        "ltr above plain EASE (all)": results.get(("gold `ltr` (shop config)", "all"), 0.0)
            > results[("EASE λ=200 (plain numpy)", "all")],
        "ltr_new above plain EASE (new)": results.get(("gold `ltr_new` (shop config)", "new"), 0.0)
            > results[("EASE λ=200 (plain numpy)", "new")],
    }
    lines = [
        "## Served lists on UCI Online Retail, scored on held-back months (`bench/ltr_online_retail.py`)", "",
        machine_line(), "",
        f"The product saw {n_train_rows:,} raw lines before {args.cut} through `conf/online_retail.yaml`; the "
        f"{n_held_rows:,} lines from {args.cut} on were held back. Truth: what the {truth_all['customer_id'].nunique():,} "
        f"returning customers bought then ({len(truth_all):,} pairs, {len(truth_new):,} of them new to the customer). "
        "Every list is the one in `gold/recommendations` as served (after filters); `all` scores the shop-config run, "
        "`new` the run with `exclude_purchased: true` (`ltr_new` from the shop-config run). NDCG@10, averaged over "
        "every returning customer with a held-back purchase.", "",
        *table, "",
        f"Served default picked on validation ({info['default']['setting']} setting, from "
        f"{info.get('validation_from', '')[:10]}): **{info['default']['model']}** "
        f"(validation NDCG@10 {info['default'].get('validation_ndcg') or 0:.3f}). Candidate recall on validation: "
        f"{json.dumps((info.get('candidate_recall') or {}).get('all', {}).get('any'))} (all), "
        f"{json.dumps((info.get('candidate_recall') or {}).get('new', {}).get('any'))} (new).", "",
        "Targets: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks.items()) + ".", "",
        "Gain importances (top 10):", "", *imp_lines, "",
        "Time per stage: " + ", ".join(f"{name} {sec:.0f} s" for name, sec in timings.items()) + ".",
    ]
    write_section("ltr-online-retail", lines)
    (OUT / "result.json").write_text(json.dumps({"results": {f"{a}|{b}": c for (a, b), c in results.items()},
                                                 "info_a": info, "info_b": built_b["info"], "timings": timings},
                                                indent=1, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
