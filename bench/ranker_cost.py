"""Benchmark: the learned ranker's booster, SparkXGBRanker against single-node xgboost.XGBRanker on the same rows.

The two-stage recommender (``recommend/ltr.py``) trains ``SparkXGBRanker`` in an MLlib
Pipeline on the candidates of every generator.  This measures what the distributed
wrapper costs against single-node xgboost on exactly the same training rows:

1. **Lake**: the demo data (``generate`` -> ``ingest`` -> ``transform``, ``--orders``
   orders) under ``bench/out/ranker_cost/`` (gitignored), or an existing lake
   (``--lake DIR --conf FILE``, e.g. the Online Retail one with ``conf/online_retail.yaml``).
   The review model is not run, so ``review_pred``/``p_satisfied`` stay missing (null)
   unless the reused lake has ``gold/review_predictions``.
2. **Rows**, built as ``recommend()`` builds them: ``E = data_end``, ``V =
   recommend.hybrid.validation_days``, ``T2 = E - V``, ``T1 = T2 - V``; the generator
   models fitted at ``T1`` and ``T2``, ``ltr.build_cut`` for both, and the ``all`` setting:
   training rows from the ``T1`` cut labelled by ``[T1, T2)`` (``RF.training_rows``),
   validation = the ``T2`` cut, truth = ``ltr.validation_truths(bought, T2)["all"]``.
   Written once to Parquet; this candidate generation is timed apart.  (Unlike
   ``recommend()``, EASE/ALS are not tuned on the validation window first and the
   ``T2`` models are fitted on the generator set only.)
3. **Timing**, each engine in a fresh process with the first point of
   ``recommend.rank.grid`` (objective ``recommend.rank.objective``), ``--repeats`` fits, median:

   - ``SparkXGBRanker``: ``ranker.fit_ranker`` (``[VectorAssembler, SparkXGBRanker]``,
     ``num_workers=1``) on ``local[2]`` with ``spark.task.cpus`` = all cores, so the one
     worker trains with as many threads as the single-node run (as ``bench/review_model.py``
     found fastest on 2 cores); the fit includes reading the Parquet;
   - ``xgboost.XGBRanker``: the same rows read with pyarrow, sorted by ``qid`` and product as ``fit_ranker`` sorts them (``qid=``),
     same booster parameters, ``tree_method=hist``, ``n_jobs`` = all cores; fit on arrays in memory.

   Predict = validation Parquet -> scores written to Parquet, for both.  NDCG@10 is the
   same for both: rank per customer (score desc, product id), then
   ``metrics.ranking_metrics(recs, truth, 10)`` in Spark (raw lists, no shop filters).
4. The result goes to ``BENCHMARKS.md`` between ``<!-- ranker-cost:start -->`` and
   ``<!-- ranker-cost:end -->`` (``--no-section`` to skip).

Usage::

    .venv/bin/python bench/ranker_cost.py                      # demo data, 20,000 orders
    .venv/bin/python bench/ranker_cost.py --orders 5000 --repeats 2
    .venv/bin/python bench/ranker_cost.py --lake bench/out/online_retail/lake --conf conf/online_retail.yaml
    .venv/bin/python bench/ranker_cost.py --reuse-rows         # only re-time (rows from the last run)
    .venv/bin/python bench/ranker_cost.py --render             # only re-write the section from results.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecomrec_spark.settings import Recommend

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/ranker_cost.py` from anywhere
    sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out" / "ranker_cost"
ROWS = OUT / "rows"
K = 10


def _config(a: argparse.Namespace) -> dict:
    from ecomrec_spark.config import load_config

    if a.lake:
        return load_config(a.conf, [f"paths.lake={Path(a.lake).resolve()}"])
    return load_config(a.conf, [f"paths.raw={OUT / 'raw'}", f"paths.lake={OUT / 'lake'}",
                                f"paths.reports={OUT / 'reports'}", f"generate.orders={a.orders}"])


def _session(cfg: dict, extra: dict | None = None):
    from ecomrec_spark.session import build_session

    return build_session(cfg, "bench-ranker-cost", extra_conf={"spark.ui.showConsoleProgress": "false", **(extra or {})})


def _rc(cfg: dict) -> Recommend:
    """The ``recommend`` settings with the fitted lists as deep as the ranker needs (as ``recommend()`` does)."""
    from ecomrec_spark.recommend.run import for_ranker
    from ecomrec_spark.settings import Settings

    return for_ranker(Settings.from_config(cfg).recommend)


def _params(rc: Recommend) -> dict:
    from ecomrec_spark.recommend.ranker import param_points

    return param_points(rc.rank.grid.model_dump())[0]


# --------------------------------------------------------------------------------------------- prepare


def prepare(a: argparse.Namespace) -> dict:
    """Lake (generated unless ``--lake``) and the ranker's training / validation rows as Parquet."""
    from pyspark.sql import functions as F

    from ecomrec_spark import columns as C
    from ecomrec_spark.recommend import ltr
    from ecomrec_spark.recommend import models as M
    from ecomrec_spark.recommend import rank_features as RF
    from ecomrec_spark.recommend.interactions import purchases
    from ecomrec_spark.recommend.run import before, data_end, load_inputs, review_inputs

    cfg = _config(a)
    spark = _session(cfg)
    info: dict = {"lake": cfg["paths"]["lake"], "conf": str(a.conf) if a.conf else "conf/local.yaml (default)"}
    t0 = time.perf_counter()
    if not a.lake:
        from bench.demo_lake import build_demo_lake

        shutil.rmtree(OUT / "raw", ignore_errors=True)
        shutil.rmtree(OUT / "lake", ignore_errors=True)
        counts = build_demo_lake(spark, cfg)
        info.update(orders=a.orders, lake_s=time.perf_counter() - t0,
                    order_lines=counts.get("silver/order_lines"))
    lake = cfg["paths"]["lake"]
    t0 = time.perf_counter()
    rc = _rc(cfg)
    rk, seed, days = rc.rank, rc.seed, rc.hybrid.validation_days
    inputs = load_inputs(spark, lake)
    end = data_end(inputs)
    t2 = end - dt.timedelta(days=days)
    t1 = t2 - dt.timedelta(days=days)
    bought_all = purchases(inputs.lines).persist()
    extra = review_inputs(spark, lake)
    gen_models = ltr.generator_models(rc)
    cuts = {}
    for name, t in (("t1", t1), ("t2", t2)):
        inp = before(inputs, t)
        cuts[name] = ltr.build_cut(spark, inp, M.fit_models(spark, inp, rc, gen_models, as_of=t), rc, t,
                                   bought_all, extra)
    names = RF.feature_names(ltr.generators(rc))
    rows = RF.training_rows(RF.with_labels(cuts["t1"].frame("all"), bought_all, t1, t2), rk.max_negatives, seed)
    shutil.rmtree(ROWS, ignore_errors=True)
    rows.select(C.CUSTOMER_ID, C.PRODUCT_ID, *names, RF.LABEL, RF.QID).write.parquet(str(ROWS / "train.parquet"))
    cuts["t2"].frame("all").select(C.CUSTOMER_ID, C.PRODUCT_ID, *names).write.parquet(
        str(ROWS / "validation.parquet"))
    truth = ltr.validation_truths(bought_all, t2)["all"]
    truth.select(C.CUSTOMER_ID, C.PRODUCT_ID).write.parquet(str(ROWS / "truth.parquet"))
    info["candidates_s"] = time.perf_counter() - t0
    tr = spark.read.parquet(str(ROWS / "train.parquet"))
    va = spark.read.parquet(str(ROWS / "validation.parquet"))
    tstats = tr.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(RF.QID).alias("g"),
                    F.sum(RF.LABEL).alias("pos")).first()
    vstats = va.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(C.CUSTOMER_ID).alias("c")).first()
    tru = spark.read.parquet(str(ROWS / "truth.parquet"))
    info.update(data_end=end.isoformat(), t1=t1.isoformat(), t2=t2.isoformat(), validation_days=days,
                generators=ltr.generators(rc), n_features=len(names), features=names,
                train_rows=int(tstats["n"]), train_groups=int(tstats["g"]), train_positives=int(tstats["pos"]),
                validation_rows=int(vstats["n"]), validation_customers=int(vstats["c"]),
                truth_customers=int(tru.select(C.CUSTOMER_ID).distinct().count()), truth_pairs=int(tru.count()),
                max_negatives=rk.max_negatives, rank_candidates=rk.candidates, params=_params(rc),
                objective=rk.objective, seed=seed,
                review_predictions=extra.predictions is not None)
    spark.stop()
    (ROWS / "meta.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return info


# --------------------------------------------------------------------------------------------- engines


def run_single(a: argparse.Namespace) -> dict:
    """``xgboost.XGBRanker`` on the rows in memory: ``--repeats`` fits, predict, scores to Parquet."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xgboost as xgb

    meta = json.loads((ROWS / "meta.json").read_text())
    names, params = meta["features"], meta["params"]
    t0 = time.perf_counter()
    # the order ranker.fit_ranker gives SparkXGBRanker: its row subsampling depends on the order within a query
    train = pq.read_table(ROWS / "train.parquet").to_pandas().sort_values(["qid", "product_id"], kind="stable")
    x = train[names].to_numpy(dtype=np.float64)
    y, qid = train["label"].to_numpy(), train["qid"].to_numpy()
    load = time.perf_counter() - t0
    fits, model = [], None
    for _ in range(a.repeats):
        model = xgb.XGBRanker(**params, objective=meta["objective"], tree_method="hist", n_jobs=os.cpu_count(),
                              random_state=meta["seed"], eval_metric=f"ndcg@{K}")
        t0 = time.perf_counter()
        model.fit(x, y, qid=qid)
        fits.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    val = pq.read_table(ROWS / "validation.parquet").to_pandas()
    score = model.predict(val[names].to_numpy(dtype=np.float64))
    out = pd.DataFrame({"customer_id": val["customer_id"], "product_id": val["product_id"],
                        "score": score.astype("float64")})
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), OUT / "scores_single.parquet")
    predict = time.perf_counter() - t0
    return {"engine": "single", "load_s": load, "fit_s": fits, "predict_s": predict, "xgboost": xgb.__version__,
            "n_jobs": os.cpu_count()}


def _top_k(scores, k: int):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("customer_id").orderBy(F.col("score").desc(), F.col("product_id"))
    return scores.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k)


def run_spark(a: argparse.Namespace) -> dict:
    """``ranker.fit_ranker`` (SparkXGBRanker, one worker with every core), predict, then NDCG@10 of both engines."""
    from pyspark.sql import functions as F

    from ecomrec_spark.recommend import ranker as R
    from ecomrec_spark.recommend.metrics import ranking_metrics
    from ecomrec_spark.review.train import check_worker_slots

    meta = json.loads((ROWS / "meta.json").read_text())
    cores = os.cpu_count() or 1
    cfg = _config(a)
    spark = _session(cfg, {"spark.master": f"local[{cores}]", "spark.task.cpus": str(cores),
                           "spark.default.parallelism": str(cores)})
    workers = 1
    check_worker_slots(spark, workers)
    names, params = meta["features"], meta["params"]
    fits, model = [], None
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        rows = spark.read.parquet(str(ROWS / "train.parquet"))
        model = R.fit_ranker(rows, names, params, meta["objective"], workers, meta["seed"])
        fits.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    val = spark.read.parquet(str(ROWS / "validation.parquet"))
    (model.transform(val).select("customer_id", "product_id", F.col("prediction").cast("double").alias("score"))
     .write.mode("overwrite").parquet(str(OUT / "scores_spark.parquet")))
    predict = time.perf_counter() - t0
    truth = spark.read.parquet(str(ROWS / "truth.parquet"))
    quality = {}
    tops = {}
    for engine in ("spark", "single"):
        tops[engine] = _top_k(spark.read.parquet(str(OUT / f"scores_{engine}.parquet")), K).cache()
        quality[engine] = ranking_metrics(tops[engine], truth, K)
    n_top = tops["spark"].count()
    same = tops["spark"].join(tops["single"], ["customer_id", "product_id"]).count()
    both = (spark.read.parquet(str(OUT / "scores_spark.parquet")).withColumnRenamed("score", "s1")
            .join(spark.read.parquet(str(OUT / "scores_single.parquet")), ["customer_id", "product_id"]))
    corr = both.agg(F.corr("s1", "score")).first()[0]
    spark.stop()
    return {"engine": "spark", "fit_s": fits, "predict_s": predict, "workers": workers, "task_cpus": cores,
            "quality": quality, "top_k_overlap": same / n_top if n_top else None, "score_corr": corr}


# --------------------------------------------------------------------------------------------- report


def _child(a: argparse.Namespace, what: str) -> dict:
    args = [sys.executable, __file__, "--child", what, "--repeats", str(a.repeats), "--orders", str(a.orders)]
    if a.lake:
        args += ["--lake", a.lake]
    if a.conf:
        args += ["--conf", str(a.conf)]
    t0 = time.perf_counter()
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=3 * 3600)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-6000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t0
    print(f"{what}: {json.dumps(res, default=str)[:1500]}", file=sys.stderr)
    return res


def report(meta: dict, single: dict, spark: dict, total_s: float, machine_note: str = "") -> list[str]:
    from bench.etl import machine_info, versions

    m, v = machine_info(), versions()
    v["xgboost"] = single["xgboost"]
    sf, nf = statistics.median(spark["fit_s"]), statistics.median(single["fit_s"])
    q_s, q_n = spark["quality"]["spark"], spark["quality"]["single"]
    nd_s, nd_n = q_s["ndcg_at_k"] or 0.0, q_n["ndcg_at_k"] or 0.0
    reps = len(spark["fit_s"])
    if meta.get("orders") is None:
        source = f"the lake `{meta['lake']}` (`{meta['conf']}`)"
    else:
        source = (f"the demo data, {meta['orders']:,} generated orders (`generate.orders`) through generate -> ingest -> transform "
                  f"({meta.get('order_lines') or 0:,} clean order lines, {meta['lake_s']:.0f} s)")
    close = abs(nd_s - nd_n) <= max(0.01, 0.05 * max(nd_s, nd_n))
    lines = [
        "## Ranker cost: SparkXGBRanker vs single-node XGBRanker (`bench/ranker_cost.py`)", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram'] / 2**30:.0f} GiB{machine_note}; "
        + ", ".join(f"{k} {val}" for k, val in v.items()) + ".", "",
        f"Data: {source}. Rows built as the build job builds them (`all` setting): data end {meta['data_end'][:10]}, "
        f"V = {meta['validation_days']} days, training cut T1 = {meta['t1'][:10]} labelled by [T1, T2), "
        f"validation cut T2 = {meta['t2'][:10]} scored on [T2, end]. Generators: {', '.join(meta['generators'])} "
        f"(top {meta['rank_candidates']} each). Training: {meta['train_rows']:,} rows in {meta['train_groups']:,} "
        f"query groups (customers with a purchase among their candidates; {meta['train_positives']:,} positives, "
        f"at most {meta['max_negatives']} negatives each), {meta['n_features']} features. Validation: "
        f"{meta['validation_rows']:,} candidate rows of {meta['validation_customers']:,} customers; "
        f"{meta['truth_customers']:,} of the customers with history bought in [T2, end] (the NDCG@{K} average). "
        f"Building the candidates and features of both cuts (generator models fitted at T1 and T2, written to "
        f"Parquet) took {meta['candidates_s']:.0f} s; it is not in the times below."
        + ("" if meta.get("review_predictions") else " The review model was not run, so `review_pred` and "
           "`p_satisfied` are missing for every row."), "",
        f"Booster: the first point of `recommend.rank.grid`, {json.dumps(meta['params'])}, objective "
        f"`{meta['objective']}`, tree_method hist, seed {meta['seed']}. SparkXGBRanker: `ranker.fit_ranker` "
        f"(`[VectorAssembler, SparkXGBRanker]`), {spark['workers']} worker on local[{m['cores']}] with "
        f"spark.task.cpus={spark['task_cpus']}; the fit time includes reading the Parquet. XGBRanker: n_jobs="
        f"{single['n_jobs']}, rows already in memory (reading and sorting them by qid took {single['load_s']:.1f} s). "
        f"Fit: median of {reps} fits (each engine in its own process). Predict: validation Parquet -> scores "
        f"written to Parquet. NDCG@{K}: raw lists ranked per customer (score, then product id), "
        f"`ranking_metrics(recs, truth, {K})` in Spark for both.", "",
        f"| engine | fit s (median of {reps}) | predict s | NDCG@{K} | ratio (fit, predict) vs single-node |",
        "|---|---|---|---|---|",
        f"| SparkXGBRanker | {sf:.1f} ({', '.join(f'{x:.1f}' for x in spark['fit_s'])}) | {spark['predict_s']:.1f} | "
        f"{nd_s:.4f} | {sf / nf:.1f}x, {spark['predict_s'] / single['predict_s']:.1f}x |",
        f"| xgboost.XGBRanker | {nf:.1f} ({', '.join(f'{x:.1f}' for x in single['fit_s'])}) | "
        f"{single['predict_s']:.1f} | {nd_n:.4f} | 1.0x |", "",
        f"The two boosters agree closely: validation NDCG@{K} {nd_s:.4f} vs {nd_n:.4f}, scores correlate at "
        f"{spark['score_corr']:.4f} and {100 * (spark['top_k_overlap'] or 0):.1f}% of the top-{K} pairs are the same"
        if close else
        f"The two boosters do NOT agree closely: validation NDCG@{K} {nd_s:.4f} vs {nd_n:.4f} (score correlation "
        f"{spark['score_corr']:.4f}, {100 * (spark['top_k_overlap'] or 0):.1f}% of the top-{K} pairs the same)",
    ]
    same = (spark["score_corr"] or 0.0) > 0.99995 and (spark["top_k_overlap"] or 0.0) == 1.0
    lines[-1] += (": the same model for practical purposes. " if close and same else
                  " (not identical: xgboost.spark builds its QuantileDMatrix from Arrow batches of "
                  "`spark.sql.execution.arrow.maxRecordsPerBatch` rows, 10,000 by default, and the hist bin edges merged "
                  "from batches differ from one array's once the rows outnumber a batch). " if close else ". ")
    lines[-1] += (f"At this size the Spark wrapper costs {sf / nf:.1f}x the single-node fit ({sf - nf:.1f} s more "
                  "per fit; the difference, not broken down here, is the Spark side's Parquet read, VectorAssembler, "
                  "repartition and sort by qid, the transfer to the barrier task and its start-up). The build job "
                  "pays it once per grid point and setting plus one refit per setting (`ltr.train`). "
                  f"Whole run of this script: {total_s / 60:.1f} min.")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=20000, help="orders of the generated demo data (without --lake)")
    p.add_argument("--lake", help="reuse an existing lake instead of generating one (with --conf)")
    p.add_argument("--conf", help="config file of the lake (default conf/local.yaml)")
    p.add_argument("--repeats", type=int, default=3, help="fits per engine (the median is reported)")
    p.add_argument("--reuse-rows", action="store_true", help="time the rows of the last run (skip the lake and rows)")
    p.add_argument("--no-section", action="store_true", help="do not write the BENCHMARKS.md section")
    p.add_argument("--machine-note", default="",
                   help="said after the machine, e.g. ' (shared with other work while it ran)'; saved with the results")
    p.add_argument("--render", action="store_true", help="only re-render the section from the last results.json")
    p.add_argument("--child", choices=["prepare", "single", "spark"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.lake and not a.conf:
        p.error("--lake needs --conf (the config the lake was built with)")
    if a.child:
        fn = {"prepare": prepare, "single": run_single, "spark": run_spark}[a.child]
        print(json.dumps(fn(a), default=str))
        return 0
    from bench.sections import write_section

    if a.render:
        saved = json.loads((OUT / "results.json").read_text())
        lines = report(saved["meta"], saved["single"], saved["spark"], saved["total_s"],
                       a.machine_note or saved.get("machine_note", ""))
        if saved.get("note"):  # e.g. why this size was reported
            lines += ["", saved["note"]]
        if not a.no_section:
            write_section("ranker-cost", lines)
        print("\n".join(lines))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if a.reuse_rows:
        meta = json.loads((ROWS / "meta.json").read_text())
    else:
        meta = _child(a, "prepare")
    single = _child(a, "single")
    spark = _child(a, "spark")
    total = time.perf_counter() - t0
    (OUT / "results.json").write_text(json.dumps({"meta": meta, "single": single, "spark": spark, "total_s": total,
                                                  "machine_note": a.machine_note}, indent=2, default=str) + "\n")
    lines = report(meta, single, spark, total, a.machine_note)
    if not a.no_section:
        write_section("ranker-cost", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
