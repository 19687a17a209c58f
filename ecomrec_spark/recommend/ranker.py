"""Stage two: a distributed XGBoost learning-to-rank model over the candidates, as an MLlib Pipeline.

The pipeline is ``[VectorAssembler(handleInvalid="keep"), SparkXGBRanker]``:
missing features stay NaN and XGBoost learns a default direction for them;
rows are grouped per customer through ``qid_col``; :func:`fit_ranker` range-partitions
them by the query id and sorts them by query and product, so the model does not
depend on the row order Spark's plan happened to give.  Nothing is
pickled: the fitted ``PipelineModel`` is saved in Spark ML's format with the
booster as XGBoost JSON (:mod:`ecomrec_spark.model_store`, ``models/ranker``).

Example
-------
>>> model = fit_ranker(rows, names, {"max_depth": 6, "n_estimators": 200, "learning_rate": 0.1}, rk)  # doctest: +SKIP
>>> ranked = rank_candidates(model, features, 10)                                                   # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import model_store
from ecomrec_spark.importance import gain_importance  # noqa: F401  (ltr.py and tests read R.gain_importance)
from ecomrec_spark.recommend.candidates import LABELS
from ecomrec_spark.recommend.rank_features import LABEL, QID

log = logging.getLogger(__name__)

FEATURES_COL = "features"
GRID_KEYS = ("max_depth", "n_estimators", "learning_rate", "min_child_weight", "subsample")
OBJECTIVES = ("rank:ndcg", "rank:pairwise", "rank:map")
MODEL_DIR = model_store.RANKER
REASON_PREFIX = "learned ranker; proposed by "


def param_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's value lists, in a stable order."""
    keys = [k for k in GRID_KEYS if grid.get(k)]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*[list(grid[k]) for k in keys])]


def ranker_pipeline(features: Sequence[str], params: Mapping[str, Any], objective: str = "rank:ndcg",
                    num_workers: int = 1, seed: int = 42) -> Pipeline:
    """``[VectorAssembler, SparkXGBRanker]`` over ``features`` with the given booster parameters."""
    from pyspark.ml.feature import VectorAssembler
    from xgboost.spark import SparkXGBRanker

    if objective not in OBJECTIVES:
        raise ValueError(f"recommend.rank.objective must be one of {OBJECTIVES}, got {objective!r}")
    assembler = VectorAssembler(inputCols=list(features), outputCol=FEATURES_COL, handleInvalid="keep")
    ranker = SparkXGBRanker(features_col=FEATURES_COL, label_col=LABEL, qid_col=QID, objective=objective,
                            num_workers=num_workers, random_state=seed, tree_method="hist", verbose=False,
                            eval_metric="ndcg@10", **dict(params))
    return Pipeline(stages=[assembler, ranker])


def fit_ranker(rows: DataFrame, features: Sequence[str], params: Mapping[str, Any], objective: str = "rank:ndcg",
               num_workers: int = 1, seed: int = 42) -> PipelineModel:
    """Fit the pipeline on labelled rows with ``qid`` (see :func:`.rank_features.training_rows`)."""
    log.info("fitting SparkXGBRanker %s (%s)", dict(params), objective)
    # xgboost.spark range-partitions and sorts the rows by qid, but a query's rows keep the order they came in,
    # and its row subsampling depends on that order: the join plan Spark happened to pick upstream. Sorting
    # them by product here (its range partitioning is then already done) makes the model a function of the rows.
    # (Rows without a product, built by hand, keep their order.)
    order = [QID, *([C.PRODUCT_ID] if C.PRODUCT_ID in rows.columns else [])]
    rows = rows.repartitionByRange(num_workers, QID).sortWithinPartitions(*order)
    return ranker_pipeline(features, params, objective, num_workers, seed).fit(rows)


def rank_candidates(model: PipelineModel, features: DataFrame, k: int | None = None) -> DataFrame:
    """``customer_id, product_id, score, rank`` + the frame's ``<g>_in``/``<g>_rank`` columns, best first.

    Ties are broken by product id, so the same model and features always give the same lists.
    """
    scored = model.transform(features).withColumn("score", F.col("prediction").cast("double"))
    w = Window.partitionBy(C.CUSTOMER_ID).orderBy(F.col("score").desc(), F.col(C.PRODUCT_ID))
    out = scored.withColumn("rank", F.row_number().over(w))
    if k is not None:
        out = out.where(F.col("rank") <= k)
    keep = [c for c in features.columns if c.endswith("_in") or c.endswith("_rank")]
    return out.select(C.CUSTOMER_ID, C.PRODUCT_ID, "score", "rank", *keep)


def with_reason(ranked: DataFrame, generators: Sequence[str]) -> DataFrame:
    """``reason``: the generators that proposed the item and their own ranks, e.g. "... EASE #2, buy again #1"."""
    parts = [F.when(F.col(f"{g}_in") > 0, F.concat(F.lit(f"{LABELS[g]} #"), F.col(f"{g}_rank").cast("int").cast("string")))
             for g in generators]
    return ranked.withColumn("reason", F.concat(F.lit(REASON_PREFIX), F.concat_ws(", ", *parts)))


