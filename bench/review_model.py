"""Benchmark: xgboost.spark's SparkXGBClassifier against single-node xgboost on the same rows.

Both engines train the same 5-class model (``hist``, same params, early stopping on the
same validation rows) on the same Parquet input and are scored on the same test rows.
Each measurement runs in a fresh process so the Spark settings that only apply at
start-up (``spark.task.cpus``) can differ:

- ``single``: ``xgboost.XGBClassifier`` (n_jobs = all cores) on numpy arrays read from the Parquet;
- ``spark W x C``: ``SparkXGBClassifier(num_workers=W)`` on ``local[2]`` with ``spark.task.cpus=C``.

The input is written once per size to ``bench/out/review_input_<rows>.parquet`` by Spark
(``spark.range`` + seeded ``randn``/``rand``): 30 numeric features and a score drawn from
an ordered-logit model with a few non-linear terms, like the review data.

Usage::

    .venv/bin/python bench/review_model.py --rows 1000000          # writes bench/out/review_model.md
    .venv/bin/python bench/review_model.py --rows 20000 --out /tmp/x.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
N_FEATURES = 30
PARAMS = {"max_depth": 6, "learning_rate": 0.1, "n_estimators": 200, "min_child_weight": 1.0, "subsample": 0.8}
EARLY_STOPPING = 20
SEED = 42
THRESHOLDS = (-0.62, -0.26, 0.39, 1.475)


def _session(task_cpus: int = 1, master: str = "local[2]"):
    from ecomrec_spark.config import load_config
    from ecomrec_spark.session import build_session

    return build_session(load_config(None), app_name="bench-review", extra_conf={
        "spark.master": master, "spark.task.cpus": str(task_cpus), "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2", "spark.ui.showConsoleProgress": "false", "spark.driver.memory": "10g",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "100000"})


def input_path(rows: int) -> Path:
    return OUT / f"review_input_{rows}.parquet"


def make_input(rows: int) -> Path:
    """Write the benchmark rows once (deterministic for a size)."""
    path = input_path(rows)
    if (path / "_SUCCESS").exists():
        return path
    from pyspark.sql import functions as F

    spark = _session()
    base = spark.range(0, rows, numPartitions=2)
    feats = [F.randn(SEED + i).alias(f"f{i}") for i in range(N_FEATURES)]
    df = base.select("id", *feats, F.rand(SEED + 1000).alias("_u"), (F.col("id") % 20).alias("_cat"))
    x = [F.col(f"f{i}") for i in range(N_FEATURES)]
    late = x[0] > 1.3  # about 10% late, as in the review data
    eta = (F.lit(1.85) - F.when(late, F.lit(1.4) + 0.6 * (x[0] - 1.3)).otherwise(0.0) + 0.03 * F.least(-x[0] * 5, F.lit(20.0))
           - 0.5 * F.greatest(x[1], F.lit(0.0)) + 0.25 * x[2] - 0.25 * x[3] + 0.1 * x[4] * x[5]
           + (F.col("_cat") - 10) * 0.02)
    cum = [1 / (1 + F.exp(-(F.lit(t) - eta))) for t in THRESHOLDS]
    score = sum(((F.col("_u") >= c).cast("int") for c in cum), F.lit(0))
    split = F.when(F.col("id") % 20 < 14, "train").when(F.col("id") % 20 < 17, "validation").otherwise("test")
    out = df.select("id", *x, F.col("_cat").cast("double").alias("f_cat"), score.cast("double").alias("label"),
                    split.alias("split"))
    out.write.mode("overwrite").parquet(str(path))
    spark.stop()
    return path


def run_single(rows: int) -> dict:
    import numpy as np
    import pyarrow.parquet as pq
    import xgboost as xgb

    t0 = time.perf_counter()
    table = pq.read_table(input_path(rows)).to_pandas()
    cols = [f"f{i}" for i in range(N_FEATURES)] + ["f_cat"]
    parts = {s: table[table.split == s] for s in ("train", "validation", "test")}
    load = time.perf_counter() - t0
    clf = xgb.XGBClassifier(**PARAMS, tree_method="hist", n_jobs=os.cpu_count(), random_state=SEED,
                            early_stopping_rounds=EARLY_STOPPING, objective="multi:softprob")
    t0 = time.perf_counter()
    clf.fit(parts["train"][cols].to_numpy(), parts["train"].label.to_numpy(),
            eval_set=[(parts["validation"][cols].to_numpy(), parts["validation"].label.to_numpy())], verbose=False)
    fit = time.perf_counter() - t0
    pred = clf.predict(parts["test"][cols].to_numpy())
    acc = float(np.mean(pred == parts["test"].label.to_numpy()))
    return {"engine": "single-node xgboost", "setting": f"n_jobs={os.cpu_count()}", "load_s": load, "fit_s": fit,
            "accuracy": acc, "best_iteration": int(clf.best_iteration),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_spark(rows: int, workers: int, task_cpus: int) -> dict:
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F
    from xgboost.spark import SparkXGBClassifier

    from ecomrec_spark.review.train import check_worker_slots

    spark = _session(task_cpus)
    check_worker_slots(spark, workers)
    t0 = time.perf_counter()
    df = spark.read.parquet(str(input_path(rows)))
    cols = [f"f{i}" for i in range(N_FEATURES)] + ["f_cat"]
    data = VectorAssembler(inputCols=cols, outputCol="features").transform(df).withColumn(
        "is_validation", F.col("split") == "validation")
    fit_rows = data.where(F.col("split") != "test")
    test = data.where(F.col("split") == "test")
    clf = SparkXGBClassifier(features_col="features", label_col="label", num_workers=workers, tree_method="hist",
                             random_state=SEED, validation_indicator_col="is_validation",
                             early_stopping_rounds=EARLY_STOPPING, **PARAMS)
    t0 = time.perf_counter()
    model = clf.fit(fit_rows)
    fit = time.perf_counter() - t0
    acc = model.transform(test).agg(F.avg((F.col("prediction") == F.col("label")).cast("double"))).first()[0]
    best = model.get_booster().best_iteration
    spark.stop()
    return {"engine": "SparkXGBClassifier", "setting": f"{workers} worker(s) x spark.task.cpus={task_cpus}",
            "load_s": 0.0, "fit_s": fit, "accuracy": float(acc), "best_iteration": int(best)}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], cwd=REPO, capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rounds(r: dict) -> int:
    """Boosting rounds actually trained: early stopping ran ``EARLY_STOPPING`` rounds past the best one."""
    return min(r["best_iteration"] + 1 + EARLY_STOPPING, PARAMS["n_estimators"])


def report(rows: int, results: list[dict]) -> str:
    single = next(r for r in results if r["engine"].startswith("single"))
    per_round = single["fit_s"] / _rounds(single)
    lines = [
        "## Review model: SparkXGBClassifier vs single-node xgboost",
        "",
        f"{rows:,} rows (70% train, 15% validation for early stopping, 15% test), {N_FEATURES + 1} features, 5 classes; "
        f"params {json.dumps(PARAMS)}, early_stopping_rounds={EARLY_STOPPING}, tree_method=hist. "
        f"Machine: {os.cpu_count()} cores, Spark local[2]. Fit time only (single-node input already in memory; "
        "Spark reads the Parquet and ships it to the workers inside the fit). Early stopping ends the runs at "
        "different rounds, so the time per trained round is compared too.",
        "",
        "| engine | setting | fit s | x single | rounds trained | s / round | x single per round | test accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        pr = r["fit_s"] / _rounds(r)
        lines.append(f"| {r['engine']} | {r['setting']} | {r['fit_s']:.1f} | {r['fit_s'] / single['fit_s']:.2f} | "
                     f"{_rounds(r)} | {pr:.3f} | {pr / per_round:.2f} | {r['accuracy']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--out", default=str(OUT / "review_model.md"))
    p.add_argument("--settings", default="1x2,2x1,1x1", help="Spark workers x task cpus, comma separated")
    p.add_argument("--render", metavar="JSON", help="only re-render the Markdown from an earlier results JSON")
    p.add_argument("--child", choices=["single", "spark"], help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--task-cpus", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child == "single":
        print(json.dumps(run_single(a.rows)))
        return 0
    if a.child == "spark":
        print(json.dumps(run_spark(a.rows, a.workers, a.task_cpus)))
        return 0
    if a.render:
        saved = json.loads(Path(a.render).read_text())
        Path(a.out).write_text(report(saved["rows"], saved["results"]))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    make_input(a.rows)
    print(f"input ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    results = [_child(["--rows", str(a.rows), "--child", "single"])]
    print(json.dumps(results[-1]), file=sys.stderr)
    for setting in a.settings.split(","):
        w, c = (int(x) for x in setting.split("x"))
        results.append(_child(["--rows", str(a.rows), "--child", "spark", "--workers", str(w), "--task-cpus", str(c)]))
        print(json.dumps(results[-1]), file=sys.stderr)
    text = report(a.rows, results)
    Path(a.out).write_text(text)
    Path(a.out).with_suffix(".json").write_text(json.dumps({"rows": a.rows, "results": results}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
