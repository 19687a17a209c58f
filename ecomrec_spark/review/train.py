"""Train, tune and compare the review-score models; save the tuned one.

The model is an MLlib ``Pipeline``: ``StringIndexer`` per categorical column
(``handleInvalid="keep"``), a ``VectorAssembler`` (``handleInvalid="keep"``) and
``xgboost.spark.SparkXGBClassifier`` with ``weight_col`` (class weights, optional),
``validation_indicator_col`` + ``early_stopping_rounds``.  Tuning is MLlib's
``TrainValidationSplit`` over a ``ParamGridBuilder`` grid, with the random split
replaced by the time split (:class:`TimeTrainValidationSplit`).

Baselines fit on the same train rows and are scored on the same test rows:
majority class, LogisticRegression (one-hot categories), DecisionTree,
RandomForest and GBTClassifier (binary only in MLlib, so ``OneVsRest`` of GBTs for
the 5-class score).

Entry point: :func:`train_review` ``(spark, cfg) -> summary``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Mapping, Sequence
from multiprocessing.pool import ThreadPool
from typing import Any, cast

import numpy as np
from pyspark import inheritable_thread_target
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit, TrainValidationSplitModel, _parallelFitTasks
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark import model_store, storage
from ecomrec_spark.importance import gain_importance
from ecomrec_spark.review import dataset as D
from ecomrec_spark.review.metrics import evaluate
from ecomrec_spark.settings import Review as ReviewSettings
from ecomrec_spark.settings import Settings, XgbGrid

log = logging.getLogger(__name__)

FEATURES_COL = "features"
GRID_KEYS = ("max_depth", "learning_rate", "n_estimators", "min_child_weight", "subsample")
BASELINES = ("majority", "logistic_regression", "decision_tree", "random_forest", "gbt")
TARGETS = tuple(D.TARGET_LABELS)
MAX_BINS = 128  # trees need maxBins >= the number of categories (Olist has 71)


# ------------------------------------------------------------------ worker slots

def free_task_slots(spark: SparkSession) -> tuple[int, int, int]:
    """``(slots, defaultParallelism, spark.task.cpus)`` of the running session."""
    sc = spark.sparkContext
    task_cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    parallelism = int(sc.defaultParallelism)
    return parallelism // max(task_cpus, 1), parallelism, task_cpus


def check_worker_slots(spark: SparkSession, num_workers: int) -> int:
    """Fail at once when ``num_workers`` exceeds the free task slots.

    xgboost.spark trains in a barrier stage that needs all its tasks at once; with
    too few slots Spark retries for about ten minutes before it gives up.

    Returns the number of slots.
    """
    slots, parallelism, task_cpus = free_task_slots(spark)
    if num_workers < 1 or num_workers > slots:
        raise ValueError(
            f"review.num_workers={num_workers} needs {num_workers} free task slot(s) but this session has {slots} "
            f"(defaultParallelism {parallelism} // spark.task.cpus {task_cpus}); xgboost.spark's barrier stage would "
            f"wait about 10 minutes before failing. Set review.num_workers to 1..{slots} "
            "(--set review.num_workers=1) or give Spark more cores / a smaller spark.task.cpus.")
    return slots


# ------------------------------------------------------------------ tuning on the time split

class TimeTrainValidationSplit(TrainValidationSplit):
    """``TrainValidationSplit`` whose validation rows are the *later* rows flagged by ``validationCol``.

    Each candidate is fitted on the whole input (the XGBoost stage uses the same
    column as its ``validation_indicator_col``, so it trains on the train rows
    and only early-stops on the validation rows), then scored by the evaluator on
    the validation rows.  The best fitted candidate is kept (no refit), so
    ``bestModel`` is exactly the model that was validated.

    >>> tvs = TimeTrainValidationSplit(estimator=pipe, estimatorParamMaps=grid, evaluator=ev,
    ...                                validationCol="is_validation", parallelism=1)  # doctest: +SKIP
    """

    validationCol: Param[str] = Param(Params._dummy(), "validationCol", "boolean column: true marks validation rows",
                                      typeConverter=TypeConverters.toString)

    def __init__(self, *, validationCol: str = D.IS_VALIDATION, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._setDefault(validationCol=D.IS_VALIDATION)
        self._set(validationCol=validationCol)

    def _fit(self, dataset: DataFrame) -> TrainValidationSplitModel:
        est = self.getOrDefault(self.estimator)
        epm = self.getOrDefault(self.estimatorParamMaps)
        eva: Any = self.getOrDefault(self.evaluator)  # an Evaluator with getMetricName (the multiclass one)
        validation = dataset.where(F.col(self.getOrDefault(self.validationCol))).cache()
        tasks = map(inheritable_thread_target(dataset.sparkSession),
                    _parallelFitTasks(est, dataset, eva, validation, epm, True))
        metrics: list[float] = [0.0] * len(epm)
        models: list[Any] = [None] * len(epm)
        with ThreadPool(processes=min(self.getParallelism(), len(epm))) as pool:
            for j, metric, sub in pool.imap_unordered(lambda f: f(), tasks):
                metrics[j], models[j] = metric, sub
                log.info("candidate %d/%d %s: %s = %.5f", j + 1, len(epm),
                         {p.name: v for p, v in epm[j].items()}, eva.getMetricName(), metric)
        validation.unpersist()
        best = int(np.argmax(metrics) if eva.isLargerBetter() else np.argmin(metrics))
        return self._copyValues(TrainValidationSplitModel(models[best], metrics, models))


# ------------------------------------------------------------------ pipelines

def _indexers(categorical: Sequence[str]) -> list[Any]:
    from pyspark.ml.feature import StringIndexer

    return [StringIndexer(inputCol=c, outputCol=f"{c}_index", handleInvalid="keep", stringOrderType="frequencyDesc")
            for c in categorical]


def assembled_names(features: Sequence[str], categorical: Sequence[str]) -> list[str]:
    """Names of the vector slots the tree pipelines feed the classifier, in order."""
    return list(features) + [f"{c}_index" for c in categorical]


def xgb_pipeline(label_col: str, features: Sequence[str] = D.FEATURES, categorical: Sequence[str] = D.CATEGORICAL, *,
                 weight_col: str | None = None, validation_col: str | None = D.IS_VALIDATION,
                 early_stopping_rounds: int | None = 20, num_workers: int = 1, seed: int = 42) -> tuple[Pipeline, Any]:
    """``[StringIndexer..., VectorAssembler, SparkXGBClassifier]`` and the classifier (for grids)."""
    from pyspark.ml.feature import VectorAssembler
    from xgboost.spark import SparkXGBClassifier

    kwargs: dict[str, Any] = dict(features_col=FEATURES_COL, label_col=label_col, num_workers=num_workers,
                                  random_state=seed, tree_method="hist", verbose=False)
    if weight_col:
        kwargs["weight_col"] = weight_col
    if validation_col and early_stopping_rounds:
        kwargs["validation_indicator_col"] = validation_col
        kwargs["early_stopping_rounds"] = early_stopping_rounds
    clf = SparkXGBClassifier(**kwargs)
    assembler = VectorAssembler(inputCols=assembled_names(features, categorical), outputCol=FEATURES_COL,
                                handleInvalid="keep")
    return Pipeline(stages=[*_indexers(categorical), assembler, clf]), clf


def param_grid(clf: Any, grid: XgbGrid) -> list[dict[Any, Any]]:
    """``ParamGridBuilder`` over the classifier's ``GRID_KEYS`` params (an unset key keeps the default)."""
    builder = ParamGridBuilder()
    for key in GRID_KEYS:
        values = list(getattr(grid, key) or [])
        if values:
            cast = int if key in ("max_depth", "n_estimators") else float
            builder = builder.addGrid(clf.getParam(key), [cast(v) for v in values])
    return builder.build()


def baseline_estimator(name: str, label_col: str, n_classes: int, features: Sequence[str] = D.FEATURES,
                       categorical: Sequence[str] = D.CATEGORICAL, seed: int = 42) -> Pipeline:
    """An MLlib baseline as a Pipeline (linear models get one-hot categories, trees the indices)."""
    from pyspark.ml.classification import (
        DecisionTreeClassifier,
        GBTClassifier,
        LogisticRegression,
        OneVsRest,
        RandomForestClassifier,
    )
    from pyspark.ml.feature import OneHotEncoder, VectorAssembler

    idx = _indexers(categorical)
    if name == "logistic_regression":
        ohe = OneHotEncoder(inputCols=[f"{c}_index" for c in categorical], outputCols=[f"{c}_vec" for c in categorical],
                            handleInvalid="keep")
        asm = VectorAssembler(inputCols=list(features) + [f"{c}_vec" for c in categorical], outputCol=FEATURES_COL,
                              handleInvalid="keep")
        lr = LogisticRegression(featuresCol=FEATURES_COL, labelCol=label_col, maxIter=200, regParam=1e-4)
        return Pipeline(stages=[*idx, ohe, asm, lr])
    asm = VectorAssembler(inputCols=assembled_names(features, categorical), outputCol=FEATURES_COL, handleInvalid="keep")
    common: dict[str, Any] = dict(featuresCol=FEATURES_COL, labelCol=label_col, maxBins=MAX_BINS, seed=seed)
    if name == "decision_tree":
        clf: Any = DecisionTreeClassifier(maxDepth=6, **common)
    elif name == "random_forest":
        clf = RandomForestClassifier(numTrees=60, maxDepth=8, **common)
    elif name == "gbt":
        gbt = GBTClassifier(maxIter=20, maxDepth=4, **common)
        clf = gbt if n_classes == 2 else OneVsRest(classifier=gbt, featuresCol=FEATURES_COL, labelCol=label_col)
    else:
        raise ValueError(f"unknown baseline '{name}'; choose from {', '.join(BASELINES)}")
    return Pipeline(stages=[*idx, asm, clf])


def majority_predictions(train: DataFrame, test: DataFrame, label_col: str, n_classes: int) -> DataFrame:
    """Predict the train rows' most frequent class; the probability vector is the train class shares."""
    from pyspark.ml.functions import array_to_vector

    shares = train.agg(*[F.avg((F.col(label_col) == k).cast("double")).alias(f"_p{k}") for k in range(n_classes)])
    probs = F.array(*[F.col(f"_p{k}") for k in range(n_classes)])
    best = F.array_position(probs, F.array_max(probs)) - 1
    return (test.crossJoin(F.broadcast(shares))
            .withColumn("prediction", best.cast("double"))
            .withColumn("probability", array_to_vector(probs))
            .drop(*[f"_p{k}" for k in range(n_classes)]))


# ------------------------------------------------------------------ Bayes reference on generated data

def bayes_predictions(test: DataFrame, truth: DataFrame, target: str) -> tuple[DataFrame, Column]:
    """Bayes-optimal predictions from the generator's true ``p1..p5``.

    Returns the test rows that have truth with ``prediction``/``probability``, and
    the column whose mean is the expected (Bayes) accuracy, ``max_k p_k``.
    """
    from pyspark.ml.functions import array_to_vector

    probs = [F.col(f"p{k}") for k in range(1, 6)]
    joined = test.join(truth.select(C.ORDER_ID, *probs), C.ORDER_ID)
    if target == "score":
        arr = F.array(*probs)
    else:
        sat = probs[3] + probs[4]
        arr = F.array(F.lit(1.0) - sat, sat)
    pred = (joined.withColumn("_arr", arr)
            .withColumn("prediction", (F.array_position(F.col("_arr"), F.array_max(F.col("_arr"))) - 1).cast("double"))
            .withColumn("probability", array_to_vector(F.col("_arr")))
            .withColumn("_maxp", F.array_max(F.col("_arr"))))
    return pred, F.col("_maxp")


def read_truth(spark: SparkSession, raw: str) -> DataFrame | None:
    """``<raw>/_truth/review_probs`` when the input is generated data, else None."""
    uri = f"{raw.rstrip('/')}/_truth/review_probs"
    return spark.read.parquet(uri) if storage.exists(spark, uri) else None


# ------------------------------------------------------------------ one target

def _metric_row(name: str, weighting: str, m: Mapping[str, Any], seconds: float | None, extra: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    return {"model": name, "class_weights": weighting, "train_seconds": seconds, **m, **(extra or {})}


def train_target(spark: SparkSession, rows: DataFrame, target: str, rcfg: ReviewSettings,
                 truth: DataFrame | None = None) -> dict[str, Any]:
    """Tune XGBoost, fit the other weighting and the baselines, evaluate all on the test rows.

    ``rows`` carries ``split``/``is_validation`` (and ``class_weight``).  Returns
    ``{"model": PipelineModel, "best_params", "results": [metric rows], "importance", "bayes"}``.
    """
    label = D.TARGET_LABELS[target]
    k = D.TARGET_CLASSES[target]
    seed, weighted, es = rcfg.seed, rcfg.class_weights, rcfg.early_stopping_rounds
    fit_rows = rows.where(F.col(D.SPLIT) != "test")
    train = rows.where(F.col(D.SPLIT) == "train")
    test = rows.where(F.col(D.SPLIT) == "test")

    def xgb(weight: bool) -> tuple[Pipeline, Any]:
        return xgb_pipeline(label, weight_col=D.WEIGHT if weight else None, early_stopping_rounds=es,
                            num_workers=rcfg.num_workers, seed=seed)

    pipe, clf = xgb(weighted)
    grid = param_grid(clf, rcfg.grid)
    metric: Any = rcfg.tuning_metric  # pyspark's type hints leave out logLoss and hammingLoss, which it takes
    evaluator = MulticlassClassificationEvaluator(labelCol=label, metricName=metric)
    tvs = TimeTrainValidationSplit(estimator=pipe, estimatorParamMaps=grid, evaluator=evaluator,
                                   parallelism=rcfg.parallelism, seed=seed)
    t0 = time.perf_counter()
    tuned = tvs.fit(fit_rows)
    tune_seconds = time.perf_counter() - t0
    best_i = int(np.argmax(tuned.validationMetrics) if evaluator.isLargerBetter() else np.argmin(tuned.validationMetrics))
    best_map = grid[best_i] if grid else {}
    best_params = {p.name: v for p, v in best_map.items()}
    best = cast(PipelineModel, tuned.bestModel)
    fitted_xgb: Any = best.stages[-1]  # the fitted SparkXGBClassifierModel
    booster = fitted_xgb.get_booster()
    best_iteration = getattr(booster, "best_iteration", None)
    label_w = "weighted" if weighted else "unweighted"
    results = [_metric_row("xgboost_tuned", label_w, evaluate(best.transform(test), label, k), tune_seconds,
                           {"params": {**best_params, "best_iteration": best_iteration},
                            "grid_size": len(grid), "validation_metric": {metric: tuned.validationMetrics[best_i]}})]
    if rcfg.compare_weighting:
        other_pipe, other_clf = xgb(not weighted)
        other_map = {other_clf.getParam(p.name): v for p, v in best_map.items()}
        t0 = time.perf_counter()
        other = other_pipe.fit(fit_rows, other_map) if other_map else other_pipe.fit(fit_rows)
        secs = time.perf_counter() - t0
        results.append(_metric_row("xgboost_tuned", "unweighted" if weighted else "weighted",
                                   evaluate(other.transform(test), label, k), secs, {"params": best_params}))
    for name in rcfg.baselines:
        t0 = time.perf_counter()
        if name == "majority":
            pred = majority_predictions(train, test, label, k)
            secs = time.perf_counter() - t0
        else:
            model = baseline_estimator(name, label, k, seed=seed).fit(train)
            secs = time.perf_counter() - t0
            pred = model.transform(test)
        prob_col = "probability" if "probability" in pred.columns else None
        results.append(_metric_row(name, "unweighted", evaluate(pred, label, k, probability_col=prob_col), secs))
        log.info("%s %s: accuracy %.4f macro-F1 %.4f (%.1f s)", target, name, results[-1]["accuracy"],
                 results[-1]["macro_f1"], secs)
    bayes = None
    if truth is not None:
        pred, maxp = bayes_predictions(test, truth, target)
        m = evaluate(pred, label, k)
        first = pred.agg(F.avg(maxp)).first()
        assert first is not None, "an aggregate without groupBy returns exactly one row"
        expected = first[0]
        bayes = {**m, "expected_accuracy": expected}
        results.append(_metric_row("bayes_optimal", "-", m, None, {"expected_accuracy": expected}))
    importance = gain_importance(best, assembled_names(D.FEATURES, D.CATEGORICAL))
    return {"model": best, "best_params": best_params, "best_iteration": best_iteration, "results": results,
            "importance": importance, "bayes": bayes}


# ------------------------------------------------------------------ report

METRICS_SCHEMA = T.StructType([
    T.StructField("model_version", T.StringType()), T.StructField("target", T.StringType()),
    T.StructField("model", T.StringType()), T.StructField("class_weights", T.StringType()),
    T.StructField("n_test", T.LongType()), T.StructField("accuracy", T.DoubleType()),
    T.StructField("macro_f1", T.DoubleType()), T.StructField("weighted_f1", T.DoubleType()),
    T.StructField("roc_auc", T.DoubleType()), T.StructField("pr_auc", T.DoubleType()),
    T.StructField("train_seconds", T.DoubleType()),
    T.StructField("precision", T.ArrayType(T.DoubleType())), T.StructField("recall", T.ArrayType(T.DoubleType())),
    T.StructField("f1", T.ArrayType(T.DoubleType())), T.StructField("support", T.ArrayType(T.LongType())),
    T.StructField("confusion", T.ArrayType(T.ArrayType(T.LongType()))),
    T.StructField("params", T.StringType()), T.StructField("trained_at", T.TimestampType()),
])


def metrics_frame(spark: SparkSession, version: str, per_target: Mapping[str, Mapping[str, Any]],
                  trained_at: dt.datetime) -> DataFrame:
    """One row per (target, model, weighting) for ``gold/review_model_metrics``."""
    rows = []
    for target, out in per_target.items():
        for r in out["results"]:
            rows.append((version, target, r["model"], r["class_weights"], int(r["n"]), float(r["accuracy"]),
                         float(r["macro_f1"]), float(r["weighted_f1"]),
                         None if r.get("roc_auc") is None else float(r["roc_auc"]),
                         None if r.get("pr_auc") is None else float(r["pr_auc"]),
                         None if r.get("train_seconds") is None else float(r["train_seconds"]),
                         [float(x) for x in r["precision"]], [float(x) for x in r["recall"]], [float(x) for x in r["f1"]],
                         [int(x) for x in r["support"]], [[int(x) for x in row] for row in r["confusion"]],
                         json.dumps(r.get("params") or {}, default=str), trained_at))
    return spark.createDataFrame(rows, METRICS_SCHEMA)


def _f(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def comparison_table(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The Markdown comparison table of one target."""
    lines = ["| model | class weights | accuracy | macro-F1 | weighted-F1 | ROC-AUC | PR-AUC | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['class_weights']} | {_f(r['accuracy'])} | {_f(r['macro_f1'])} | "
                     f"{_f(r['weighted_f1'])} | {_f(r.get('roc_auc'))} | {_f(r.get('pr_auc'))} | "
                     f"{_f(r.get('train_seconds'), 1)} |")
    return lines


def markdown_report(version: str, summary: Mapping[str, Any], per_target: Mapping[str, Mapping[str, Any]]) -> str:
    out = [f"# Review model {version}", "",
           f"Rows: {summary['rows']} (time split; train until {summary['split_range']['train'][1]}, "
           f"test from {summary['split_range']['test'][0]}). Features: {len(D.FEATURES)} numeric + "
           f"{', '.join(D.CATEGORICAL)}.", ""]
    for target, res in per_target.items():
        out += [f"## Target `{target}`", "", *comparison_table(res["results"]), ""]
        if res.get("bayes"):
            b = res["bayes"]
            out += [f"Bayes-optimal on the test split (generator truth): accuracy {_f(b['accuracy'])} "
                    f"(expected {_f(b['expected_accuracy'])}), macro-F1 {_f(b['macro_f1'])}.", ""]
        out += [f"Best params: `{json.dumps(res['best_params'])}`, best iteration {res.get('best_iteration')}.", "",
                "Per-class precision / recall (class = score-1 for `score`; 1 = satisfied):", "",
                "| model | weights | " + " | ".join(f"P{c} / R{c}" for c in range(len(res['results'][0]['precision']))) + " |",
                "|---|---|" + "---|" * len(res["results"][0]["precision"])]
        for r in res["results"]:
            out.append(f"| {r['model']} | {r['class_weights']} | " + " | ".join(
                f"{p:.3f} / {rc:.3f}" for p, rc in zip(r["precision"], r["recall"], strict=True)) + " |")
        out += ["", "Confusion matrices (rows = true class, columns = predicted):", ""]
        for r in res["results"]:
            out.append(f"- {r['model']} ({r['class_weights']}): `{r['confusion']}`")
        out += ["", "XGBoost gain importance:", "", "| feature | gain |", "|---|---|"]
        out += [f"| {name} | {gain:.3f} |" for name, gain in res["importance"].items()]
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ the stage

def prepare_rows(spark: SparkSession, settings: Settings) -> DataFrame:
    """Labelled, split and weighted training rows from the gold and silver tables."""
    rcfg, root = settings.review, settings.paths.lake
    of = lk.read(spark, root, "gold", "order_features")
    reviews = lk.read(spark, root, "silver", "reviews")
    split = rcfg.split
    rows = D.time_split(D.labelled(D.build_dataset(of, reviews, float(rcfg.history_prior_weight))),
                        float(split.train_fraction), float(split.validation_fraction),
                        split.train_until, split.validation_until)
    return rows


def train_review(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """Train, evaluate, save and report; returns a small summary for the CLI."""
    rcfg, root = settings.review, settings.paths.lake
    check_worker_slots(spark, rcfg.num_workers)
    base = prepare_rows(spark, settings).persist()
    try:
        stats = {r[D.SPLIT]: (int(r["n"]), r["lo"], r["hi"]) for r in base.groupBy(D.SPLIT).agg(
            F.count(F.lit(1)).alias("n"), F.min(C.ORDER_TS).alias("lo"), F.max(C.ORDER_TS).alias("hi")).collect()}
        for part in ("train", "validation", "test"):
            if stats.get(part, (0,))[0] == 0:
                raise ValueError(f"the time split left no {part} rows ({ {k: v[0] for k, v in stats.items()} }); "
                                 "adjust review.split or use more data")
        truth = read_truth(spark, settings.paths.raw)
        per_target: dict[str, dict[str, Any]] = {}
        for target in rcfg.targets:
            rows = D.with_class_weights(base, D.TARGET_LABELS[target]).persist()
            try:
                per_target[target] = train_target(spark, rows, target, rcfg, truth)
            finally:
                rows.unpersist()
    finally:
        base.unpersist()
    trained_at = dt.datetime.now(dt.UTC)
    split_range = {k: [str(v[1]), str(v[2])] for k, v in stats.items()}
    recorded = rcfg.model_dump(mode="json")  # the review section as validated, defaults included
    fingerprint = {"features": D.FEATURES, "categorical": D.CATEGORICAL, "review": recorded, "range": split_range}
    version = model_store.new_version(fingerprint, trained_at)
    metadata = {
        "targets": list(per_target), "features": D.feature_columns(), "numeric_features": D.FEATURES,
        "categorical_features": D.CATEGORICAL, "labels": {t: D.TARGET_LABELS[t] for t in per_target},
        "params": {t: {**r["best_params"], "best_iteration": r["best_iteration"]} for t, r in per_target.items()},
        "config": recorded, "training_data": {"rows": {k: v[0] for k, v in stats.items()}, "order_ts_range": split_range},
        "metrics": {t: [{k: v for k, v in m.items() if k not in ("confusion",)} for m in r["results"]]
                    for t, r in per_target.items()},
        "importance_gain": {t: r["importance"] for t, r in per_target.items()},
        "code_version": model_store.code_version(), "trained_at": trained_at.isoformat(),
    }
    folder = model_store.save_models(spark, root, version, {t: r["model"] for t, r in per_target.items()}, metadata)
    metrics = metrics_frame(spark, version, per_target, trained_at.replace(tzinfo=None))
    path = lk.append(metrics, root, "gold", "review_model_metrics")
    summary = {"version": version, "model_path": folder, "metrics_table": path,
               "rows": {k: v[0] for k, v in stats.items()}, "split_range": split_range}
    report = markdown_report(version, summary, per_target)
    reports = settings.paths.reports or f"{root}/reports"
    storage.write_text(spark, f"{reports}/review_model.md", report + "\n")
    storage.write_text(spark, f"{reports}/review_model.json",
                       json.dumps({**summary, **{k: v for k, v in metadata.items() if k != "config"}}, indent=2,
                                  default=str) + "\n")
    summary["report"] = f"{reports}/review_model.md"
    summary["results"] = {t: [{k: r[k] for k in ("model", "class_weights", "accuracy", "macro_f1", "weighted_f1", "roc_auc",
                                                 "pr_auc", "train_seconds")} | {"expected_accuracy": r.get("expected_accuracy")}
                              for r in res["results"]] for t, res in per_target.items()}
    log.info("review model %s saved to %s; report %s", version, folder, summary["report"])
    return summary
