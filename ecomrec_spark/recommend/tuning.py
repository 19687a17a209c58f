"""Hyper-parameter tuning of the single models on a validation split: EASE's lambda and ALS's grid.

:func:`tune_models` fits each candidate setting on the training interactions,
recommends ``k`` products per customer and scores the lists by NDCG@k
(:func:`~.metrics.ranking_metrics`) against ``truth``, the purchases after the
training cut; :func:`apply_tuned` returns a copy of the ``recommend`` settings
(:class:`~ecomrec_spark.settings.Recommend`) with the winners in.  The caller (``recommend/run.py``) chooses the
split; nothing here looks at the test period.

* **EASE** - every value of ``item_item.ease_lambdas``, all from one Gram matrix
  (:func:`~.item_item.iter_ease_grid`: one Spark self-join, one driver solve per
  lambda, one model held at a time), with the configured ``ease_neighbors``
  (``null``: the unpruned, dense model).
* **ALS** - every combination of ``als.grid`` (``rank`` x ``reg_param`` x
  ``alpha``) at the configured ``max_iter`` and seed.  It is tuned when ``als`` is
  requested and also for ``knn`` and ``hybrid``, whose vectors embed ALS's item
  factors.  Each point is one ALS fit, so the grid is kept small (4 points in
  ``conf/local.yaml``).

Ties go to the earlier grid point.  With ``exclude_seen`` the lists drop the
customer's training products and only products new to the customer count as
relevant (the ``new`` setting of the evaluation); otherwise repeats count and
lists may repeat.

Example
-------
>>> rc = settings.recommend
>>> tuned = tune_models(train_inter, later_purchases, rc, ("ease", "als"), exclude_seen=True)  # doctest: +SKIP
>>> tuned["ease"]["reg_lambda"], [t["ndcg_at_k"] for t in tuned["ease"]["trials"]]           # doctest: +SKIP
(250.0, [0.061, 0.066, 0.064, 0.059])
>>> rc = apply_tuned(rc, tuned)                                                                # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame

from ecomrec_spark import columns as C
from ecomrec_spark.recommend.metrics import new_items_only, ranking_metrics
from ecomrec_spark.settings import Recommend

log = logging.getLogger(__name__)

ALS_KEYS = ("rank", "reg_param", "alpha")
ALS_USERS = ("als", "knn", "hybrid")  # models that need ALS factors


def _best(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial with the highest NDCG@k; ties (and None) go to the earlier one."""
    return max(trials, key=lambda t: (t["ndcg_at_k"] if t["ndcg_at_k"] is not None else float("-inf"),
                                      -trials.index(t)))


def als_grid(grid: Mapping[str, Sequence[float]]) -> list[dict[str, Any]]:
    """Every ``(rank, reg_param, alpha)`` combination of the grid, in order.

    Examples
    --------
    >>> als_grid({"rank": [64], "reg_param": [0.1, 1.0], "alpha": [10.0]})
    [{'rank': 64, 'reg_param': 0.1, 'alpha': 10.0}, {'rank': 64, 'reg_param': 1.0, 'alpha': 10.0}]
    """
    missing = [key for key in ALS_KEYS if not grid.get(key)]
    if missing:
        raise ValueError(f"als grid lacks values for {missing}; expected lists for {ALS_KEYS}")
    return [dict(zip(ALS_KEYS, combo, strict=True)) for combo in itertools.product(*(grid[key] for key in ALS_KEYS))]


def tune_ease(interactions: DataFrame, truth: DataFrame, rc: Recommend, exclude_seen: bool
              ) -> dict[str, Any]:
    """EASE's ``reg_lambda`` by NDCG@k: see :func:`tune_models` (``truth`` already restricted)."""
    from ecomrec_spark.recommend.item_item import iter_ease_grid
    from ecomrec_spark.recommend.item_item_scoring import history_arrays, recommend_item_item

    ii, k = rc.item_item, rc.k
    neighbors = ii.ease_neighbors
    trials: list[dict[str, Any]] = []
    grid = [(float(lam), neighbors) for lam in ii.ease_lambdas]
    arrays: DataFrame | None = None  # the dense fits share their item indices: one history grouping for all
    try:
        for fitted in iter_ease_grid(interactions, grid, max_items=ii.max_items, dense_max_items=ii.dense_max_items,
                                     fallback_neighbors=ii.max_neighbors):
            t0 = time.perf_counter()
            try:
                if fitted.dense is not None and arrays is None:
                    arrays = history_arrays(fitted, interactions).cache()
                recs = recommend_item_item(fitted, interactions, k, exclude_history=exclude_seen,
                                           arrays=arrays if fitted.dense is not None else None)
                m = ranking_metrics(recs, truth, k)
            finally:
                fitted.unpersist()
            trials.append({"reg_lambda": fitted.params["reg_lambda"], "ndcg_at_k": m["ndcg_at_k"],
                           "precision_at_k": m["precision_at_k"], "scoring": fitted.params["scoring"]})
            log.info("EASE tuning: lambda %s (%s) ndcg@%d %.4f (%.1f s)", fitted.params["reg_lambda"],
                     fitted.params["scoring"], k, m["ndcg_at_k"] or 0.0, time.perf_counter() - t0)
    finally:
        if arrays is not None:
            arrays.unpersist()
    best = _best(trials)
    return {"reg_lambda": best["reg_lambda"], "trials": trials}


def tune_als(interactions: DataFrame, truth: DataFrame, rc: Recommend, exclude_seen: bool
             ) -> dict[str, Any]:
    """ALS's ``rank, reg_param, alpha`` by NDCG@k: see :func:`tune_models` (``truth`` already restricted)."""
    from ecomrec_spark.recommend.als import fit_als, recommend_all

    a, k = rc.als, rc.k
    seen = interactions.select(C.CUSTOMER_ID, C.PRODUCT_ID) if exclude_seen else None
    trials: list[dict[str, Any]] = []
    for point in als_grid(a.grid.model_dump()):
        t0 = time.perf_counter()
        fitted = fit_als(interactions, rank=int(point["rank"]), reg_param=float(point["reg_param"]),
                         alpha=float(point["alpha"]), max_iter=a.max_iter, seed=rc.seed)
        try:
            # a fixed margin bounds recommendForAllUsers (a heavy buyer may then get fewer than k new items)
            recs = recommend_all(fitted, k, exclude_seen=seen, margin=rc.candidates if seen is not None else 0)
            m = ranking_metrics(recs, truth, k)
        finally:
            fitted.unpersist()
        trials.append({**point, "ndcg_at_k": m["ndcg_at_k"], "precision_at_k": m["precision_at_k"]})
        log.info("ALS tuning: %s ndcg@%d %.4f (%.1f s)", point, k, m["ndcg_at_k"] or 0.0, time.perf_counter() - t0)
    best = _best(trials)
    return {**{key: best[key] for key in ALS_KEYS}, "trials": trials}


def tune_models(interactions: DataFrame, truth: DataFrame, rc: Recommend, models: Sequence[str],
                exclude_seen: bool) -> dict[str, Any]:
    """Pick EASE's lambda and ALS's (rank, reg_param, alpha) by NDCG@``rc.k`` on ``truth``.

    Parameters
    ----------
    interactions : DataFrame
        The training interactions (output of
        :func:`~.interactions.build_interactions`: ``customer_id, product_id,
        weight, ...``).  Cache it: every grid point reads it.
    truth : DataFrame
        ``customer_id, product_id`` bought after the training cut.  Customers in it
        without training history score 0 under every setting (the means shrink, the
        choice does not change); pass only warm customers for readable numbers.
    rc : Recommend
        The ``recommend`` settings (``k``, ``seed``, ``candidates``,
        ``item_item`` and ``als`` with their ``tune`` switches and grids).
    models : sequence of str
        The models being built: EASE is tuned for ``"ease"``, ALS for ``"als"``,
        ``"knn"`` or ``"hybrid"`` (they use ALS factors).
    exclude_seen : bool
        Score only products new to the customer and drop training products from
        the lists.

    Returns
    -------
    dict
        ``{"ease": {"reg_lambda": best, "trials": [{"reg_lambda", "ndcg_at_k", ...}, ...]},
        "als": {"rank", "reg_param", "alpha", "trials": [{"rank", "reg_param", "alpha", "ndcg_at_k", ...}]}}``,
        only with the entries whose model is requested and whose ``tune`` is on.

    Examples
    --------
    >>> tuned = tune_models(inter, truth, settings.recommend, ("ease",), exclude_seen=True)   # doctest: +SKIP
    >>> tuned["ease"]["reg_lambda"]                                                          # doctest: +SKIP
    250.0
    """
    want_ease = "ease" in models and rc.item_item.tune
    want_als = bool(set(models) & set(ALS_USERS)) and rc.als.tune
    out: dict[str, Any] = {}
    if not (want_ease or want_als):
        return out
    if exclude_seen:
        truth = new_items_only(truth, interactions)
    truth = truth.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct().cache()
    try:
        if want_ease:
            out["ease"] = tune_ease(interactions, truth, rc, exclude_seen)
            log.info("EASE tuned: reg_lambda %s", out["ease"]["reg_lambda"])
        if want_als:
            out["als"] = tune_als(interactions, truth, rc, exclude_seen)
            log.info("ALS tuned: %s", {key: out["als"][key] for key in ALS_KEYS})
    finally:
        truth.unpersist()
    return out


def apply_tuned(rc: Recommend, tuned: Mapping[str, Any]) -> Recommend:
    """A copy of ``rc`` with the chosen parameters written in.

    ``tuned["als"]`` sets ``rc.als.rank | reg_param | alpha`` and
    ``tuned["ease"]`` sets ``rc.item_item.ease_lambda``; anything missing
    leaves the configured value.  ``rc`` is frozen: it is not changed.

    Examples
    --------
    >>> rc = Recommend()
    >>> new = apply_tuned(rc, {"ease": {"reg_lambda": 250.0, "trials": []}})
    >>> new.item_item.ease_lambda, rc.item_item.ease_lambda
    (250.0, 500.0)
    """
    update: dict[str, Any] = {}
    if "ease" in tuned:
        update["item_item"] = rc.item_item.model_copy(update={"ease_lambda": float(tuned["ease"]["reg_lambda"])})
    if "als" in tuned:
        update["als"] = rc.als.model_copy(update={"rank": int(tuned["als"]["rank"]),
                                                  "reg_param": float(tuned["als"]["reg_param"]),
                                                  "alpha": float(tuned["als"]["alpha"])})
    return rc.model_copy(update=update)
