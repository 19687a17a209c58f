"""The two-stage recommender's time windows: train, tune, refit and rank for serving.

With ``E`` the last purchase and ``V = recommend.hybrid.validation_days`` (the one
validation window every tuning in the build job uses)::

    T1 = E - 2V          T2 = E - V                E
    |-- features < T1 --|-- labels [T1, T2) --|
    |------ features < T2 -------------------|-- labels [T2, E] --|
    |------ features <= E (serving) -----------------------------|

1. **Train** on the candidates and features at ``T1``, labelled by the
   purchases of ``[T1, T2)``, once per grid point.
2. **Tune**: each fitted ranker ranks the candidates at ``T2``; the grid point
   with the best NDCG@k on the purchases of ``[T2, E]`` wins.  The same
   validation window scores every single model (:func:`score_lists`), so the
   served default is picked on one footing.
3. **Refit** the winning parameters on ``T2``'s features and labels (the most
   recent complete window) and rank the candidates built on all the data.

Both settings get their own ranker: ``all`` (lists may repeat purchases; buy
again is one of the generators) and ``new`` (past purchases are removed from the
candidates before training and ranking).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lineage
from ecomrec_spark.recommend import candidates as cands
from ecomrec_spark.recommend import models as M
from ecomrec_spark.recommend import rank_features as RF
from ecomrec_spark.recommend import ranker as R
from ecomrec_spark.recommend.metrics import new_items_only, ranking_metrics
from ecomrec_spark.settings import Recommend

log = logging.getLogger(__name__)

SETTINGS = ("all", "new")
LTR_MODELS = {"all": "ltr", "new": "ltr_new"}


@dataclass
class ReviewInputs:
    """Review-side inputs of the features, each optional: silver reviews, gold review predictions and sentiment."""

    reviews: DataFrame | None = None
    predictions: DataFrame | None = None
    sentiment: DataFrame | None = None


@dataclass
class Cut:
    """One cut: the models fitted on the data before it, their candidates and the candidates' features."""

    as_of: dt.datetime
    inputs: M.Inputs
    fitted: M.Fitted
    candidates: DataFrame
    features: DataFrame

    def frame(self, setting: str) -> DataFrame:
        """The features of one setting: ``new`` drops what the customer bought before the cut."""
        return self.features if setting == "all" else self.features.where(F.col("hist_orders") == 0)


@dataclass
class Trained:
    """The ranker's outcome: validation lists, chosen parameters, serving models and their importances."""

    validation: dict[str, DataFrame] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    trials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    models: dict[str, PipelineModel] = field(default_factory=dict)
    importance: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def in_setting(rc: Recommend, setting: str) -> Recommend:
    """``rc`` for one setting: ``new`` removes what the customer bought before from the lists, ``all`` keeps it."""
    return rc.model_copy(update={"filters": rc.filters.model_copy(update={"exclude_purchased": setting == "new"})})


def generators(rc: Recommend) -> list[str]:
    """The configured generators, in ``candidates.GENERATORS`` order (the feature order depends on it)."""
    wanted = set(rc.rank.generators)
    return [g for g in cands.GENERATORS if g in wanted]


def generator_models(rc: Recommend) -> tuple[str, ...]:
    """The fitted models the ranker takes candidates from."""
    return tuple(g for g in generators(rc) if g in cands.MODEL_GENERATORS)


def generate(fitted: M.Fitted, rc: Recommend, as_of: dt.datetime) -> DataFrame:
    """Every configured generator's top ``rank.candidates`` for the customers with history before ``as_of``."""
    from ecomrec_spark.recommend import rules as RU

    rk, wanted = rc.rank, set(generators(rc))
    n, bought = rk.candidates, fitted.bought
    parts = cands.from_models({m: df for m, df in fitted.candidates.items() if m in wanted}, n)
    if "buy_again" in wanted:
        parts.append(cands.buy_again(bought, as_of, n))
    if "rules" in wanted:
        rr = rc.rules
        rules = RU.association_rules(RU.baskets(bought), rr.min_support, rr.min_confidence, "product",
                                     rr.max_items)
        parts.append(cands.rules_fired(bought, rules, as_of, n, rk.recent_days))
    kinds = [g for g in cands.POPULAR_KINDS if g in wanted]
    if kinds:
        who = fitted.interactions.select(C.CUSTOMER_ID).distinct().join(
            bought.groupBy(C.CUSTOMER_ID).agg(F.max(C.REGION).alias(C.REGION)), C.CUSTOMER_ID, "left")
        parts += cands.popular_lists(who, cands.top_categories(bought, as_of), fitted.popular, n, kinds)
    warm = fitted.interactions.select(C.CUSTOMER_ID).distinct()
    return cands.union(parts).join(warm, C.CUSTOMER_ID, "left_semi")


def build_cut(spark: SparkSession, inputs: M.Inputs, fitted: M.Fitted, rc: Recommend, as_of: dt.datetime,
              bought_all: DataFrame, extra: ReviewInputs, only: DataFrame | None = None) -> Cut:
    """Candidates and features at ``as_of`` from models already fitted on the data before it.

    Both are materialized (:mod:`ecomrec_spark.lineage`): the ranker's training, validation and serving
    queries start from their stored rows, not from the fits' plans.

    ``only`` (``customer_id``) limits the cut to the customers that matter there: training and
    validation cuts need only the customers who bought in their label window (a group without a
    purchase neither trains a ranker nor counts in NDCG), which keeps them far smaller than the
    serving cut.
    """
    cand = generate(fitted, rc, as_of)
    if only is not None:
        cand = cand.join(only.select(C.CUSTOMER_ID).distinct(), C.CUSTOMER_ID, "left_semi")
    cand = lineage.materialize(cand)
    feats = RF.build_features(cand, generators(rc), bought_all, inputs.catalogue, as_of,
                              rc.hybrid.validation_days, extra.reviews, extra.predictions, extra.sentiment)
    return Cut(as_of, inputs, fitted, cand, lineage.materialize(feats))


def score_lists(spark: SparkSession, fitted: M.Fitted, rc: Recommend, models: Sequence[str],
                truths: Mapping[str, DataFrame], n_catalogue: int | None = None) -> list[dict[str, Any]]:
    """NDCG@k and the other metrics of each model's finished list (filters applied) in both settings.

    ``fitted.candidates`` must hold every model in ``models`` (the ranker's lists under ``ltr``/``ltr_new``).
    The ``all`` setting lets lists repeat purchases; ``new`` removes them and counts only new items.
    """
    rows = []
    for setting in SETTINGS:
        src = in_setting(rc, setting)
        for model in models:
            if model == LTR_MODELS["new" if setting == "all" else "all"] or model not in fitted.candidates:
                continue  # each ranker is scored in its own setting
            recs = M.finalize(spark, fitted, model, src)
            m = ranking_metrics(recs, truths[setting], rc.k, catalogue_size=n_catalogue)
            rows.append({"model": model, "setting": setting, **m})
            log.info("validation %s/%s: ndcg@%d %.4f", model, setting, rc.k, m["ndcg_at_k"] or 0.0)
    return rows


def buyers(bought_all: DataFrame, start: dt.datetime, end: dt.datetime | None = None) -> DataFrame:
    """``customer_id`` of the customers who bought in ``[start, end)`` and also before ``start``."""
    from ecomrec_spark.recommend.interactions import TS

    window = bought_all.where(F.col(TS) >= F.lit(start))
    if end is not None:
        window = window.where(F.col(TS) < F.lit(end))
    before_start = bought_all.where(F.col(TS) < F.lit(start)).select(C.CUSTOMER_ID)
    return window.select(C.CUSTOMER_ID).distinct().join(before_start, C.CUSTOMER_ID, "left_semi")


def validation_truths(bought_all: DataFrame, as_of: dt.datetime, end: dt.datetime | None = None
                      ) -> dict[str, DataFrame]:
    """``all``/``new`` truth of ``[as_of, end)`` for the customers who bought before ``as_of`` (cached)."""
    from ecomrec_spark.recommend.interactions import TS

    window = bought_all.where(F.col(TS) >= F.lit(as_of))
    if end is not None:
        window = window.where(F.col(TS) < F.lit(end))
    history = bought_all.where(F.col(TS) < F.lit(as_of))
    truth = (window.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct()
             .join(history.select(C.CUSTOMER_ID).distinct(), C.CUSTOMER_ID, "left_semi").cache())
    return {"all": truth, "new": new_items_only(truth, history).cache()}


def as_recs(ranked: DataFrame, gens: Sequence[str]) -> DataFrame:
    """Ranked candidates -> the ``REC_COLUMNS`` shape, with the proposing generators as the reason."""
    return R.with_reason(ranked, gens).select(*M.REC_COLUMNS)


def train(spark: SparkSession, train_cut: Cut, val_cut: Cut, rc: Recommend, bought_all: DataFrame,
          truths: Mapping[str, DataFrame]) -> Trained:
    """Fit every grid point on ``train_cut``, keep the best on ``val_cut`` per setting, refit it on ``val_cut``.

    ``truths``: :func:`validation_truths` of ``val_cut``.
    """
    rk, seed, k = rc.rank, rc.seed, rc.k
    gens = generators(rc)
    names = RF.feature_names(gens)
    out = Trained()
    for setting in SETTINGS:
        model_name = LTR_MODELS[setting]
        rows = RF.training_rows(RF.with_labels(train_cut.frame(setting), bought_all, train_cut.as_of, val_cut.as_of),
                                rk.max_negatives, seed).persist(StorageLevel.MEMORY_AND_DISK)
        n_groups = rows.select(C.CUSTOMER_ID).distinct().count()
        out.info[f"{setting}_training_customers"] = n_groups
        if n_groups < rk.min_customers:
            log.warning("ranker %s skipped: %d training customers with a purchase among their candidates in [%s, %s) "
                        "(recommend.rank.min_customers=%d)", setting, n_groups, train_cut.as_of, val_cut.as_of,
                        rk.min_customers)
            rows.unpersist()
            continue
        src = in_setting(rc, setting)
        trials, best, best_recs = [], None, None
        for params in R.param_points(rk.grid.model_dump()):
            model = R.fit_ranker(rows, names, params, rk.objective, rk.num_workers, seed)
            ranked = as_recs(R.rank_candidates(model, val_cut.frame(setting), k + rc.candidates), gens)
            val_cut.fitted.candidates[model_name] = ranked
            recs = M.finalize(spark, val_cut.fitted, model_name, src)
            ndcg = ranking_metrics(recs, truths[setting], k)["ndcg_at_k"] or 0.0
            trials.append({**params, "ndcg_at_k": ndcg})
            log.info("ranker %s %s: validation ndcg@%d %.4f", setting, params, k, ndcg)
            if best is None or ndcg > best["ndcg_at_k"]:
                best, best_recs = trials[-1], ranked
        rows.unpersist()
        assert best is not None and best_recs is not None, "param_points yields at least one point"
        val_cut.fitted.candidates[model_name] = best_recs
        params = {key: v for key, v in best.items() if key != "ndcg_at_k"}
        out.params[setting], out.trials[setting] = params, trials
        # refit on the latest complete window: features at T2, labels [T2, E]
        final_rows = RF.training_rows(RF.with_labels(val_cut.frame(setting), bought_all, val_cut.as_of, None),
                                      rk.max_negatives, seed)
        out.models[setting] = R.fit_ranker(final_rows, names, params, rk.objective, rk.num_workers, seed)
        out.importance[setting] = R.gain_importance(out.models[setting], names)
    return out


def serve_lists(cut: Cut, trained: Trained, rc: Recommend) -> dict[str, DataFrame]:
    """The fitted rankers' raw lists on the serving cut, under the model names ``ltr`` / ``ltr_new``."""
    gens, n = generators(rc), rc.k + rc.candidates
    lists = {}
    for setting, model in trained.models.items():
        lists[LTR_MODELS[setting]] = as_recs(R.rank_candidates(model, cut.frame(setting), n), gens)
    # `ltr` follows the shop's re-buy setting: a shop that excludes purchases serves the `new` ranker there too
    if rc.filters.exclude_purchased and "ltr_new" in lists:
        lists["ltr"] = lists["ltr_new"]
    return lists


def release(cut: Cut) -> None:
    """Drop a cut's cached frames and fitted models once they are scored (the next cut needs the memory)."""
    lineage.release(cut.features)
    lineage.release(cut.candidates)
    cut.fitted.unpersist()
