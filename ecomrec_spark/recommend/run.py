"""The ``recommend`` job: fit every recommender on the lake and write the gold tables.

Gold tables (each one Delta commit, a full rebuild, so a re-run gives the same
rows and a failed run leaves the previous version):

- ``recommendations``: customer_id, rank, product_id, score, model, reason,
  generated_at, model_version -- every configured model's top k per known
  customer, and the popularity fallback (``reason`` popular / popular_in_region)
  for customers in ``silver/customers`` with no history;
- ``similar_items``: product_id, rank, similar_product_id, similarity, model (knn, content);
- ``association_rules``: FPGrowth rules on order baskets (product and category
  level) and on event sessions when the source has events;
- ``popular_items``: overall, per category, per region and trending;
- ``recommendation_runs``: one row per run with the fitted parameters (LSH
  settings, tuned hybrid weights) as JSON.

The hybrid weights are tuned first on a validation split: the models are fitted
on interactions before ``hybrid.validation_days`` from the end, and the weight
grid is scored against the purchases after it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.recommend import models as M
from ecomrec_spark.recommend import rules
from ecomrec_spark.recommend import sources as src
from ecomrec_spark.recommend.interactions import TS, purchases
from ecomrec_spark.settings import HybridWeights, Recommend, Settings

if TYPE_CHECKING:  # for the annotation only: ltr is imported inside the functions that use it
    from ecomrec_spark.recommend import ltr

log = logging.getLogger(__name__)

REC_TABLE_COLUMNS = [C.CUSTOMER_ID, "rank", C.PRODUCT_ID, "score", "model", "reason", "generated_at", "model_version"]


def load_inputs(spark: SparkSession, lake: str) -> M.Inputs:
    """The recommenders' inputs from the lake.

    Order lines come from ``gold/order_features`` or ``silver/order_lines``.  A
    lake without them (Amazon reviews, REES46 events only) gets purchase-like
    lines from :mod:`.sources`: one per review and one per purchase event (per
    cart event when the log has no purchases); the events that became lines
    are dropped from ``events`` so no purchase counts twice.  Without
    ``silver/products`` the catalogue is derived from the events (else from
    the lines).  Raises ``ValueError`` naming the missing tables when there is
    nothing to recommend from.
    """
    lines = (lk.read_optional(spark, lake, "gold", "order_features")
             or lk.read_optional(spark, lake, "silver", "order_lines"))
    products = lk.read_optional(spark, lake, "silver", "products")
    events = all_events = lk.read_optional(spark, lake, "silver", "events")
    reviews = lk.read_optional(spark, lake, "silver", "reviews")
    if lines is None:
        if events is None and reviews is None:
            raise src.nothing_to_recommend(lake, has_events=False, has_reviews=False)
        derived = [] if reviews is None else [src.lines_from_reviews(reviews, products)]
        if events is not None:
            kinds = list(src.PURCHASE_EVENTS)
            if src.lines_from_events(events, kinds).limit(1).count() == 0:  # one row at most
                kinds = ["cart"]
                log.warning("silver/events has no purchase events: cart events stand in for purchases")
            derived.append(src.lines_from_events(events, kinds))
            events = src.events_without(events, kinds)
        lines = derived[0] if len(derived) == 1 else derived[0].unionByName(derived[1])
        if lines.limit(1).count() == 0:  # one row at most
            raise src.nothing_to_recommend(lake, has_events=events is not None, has_reviews=reviews is not None)
        log.info("no order lines in %s: purchase-like lines derived from %s", lake,
                 " and ".join(t for t, df in (("silver/reviews", reviews), ("silver/events", events)) if df is not None))
    if products is None:
        products = src.catalogue_from_events(all_events) if all_events is not None else src.catalogue_from_lines(lines)
    customers = lk.read_optional(spark, lake, "silver", "customers")
    if customers is not None and C.REGION not in customers.columns:  # Amazon's customers have no region
        customers = customers.withColumn(C.REGION, F.lit(None).cast("string"))
    return M.Inputs(
        lines=lines,
        catalogue=products,
        events=events,
        reviews=reviews,
        review_scores=lk.read_optional(spark, lake, "gold", "product_review_scores"),
        customers=customers,
    )


def before(inputs: M.Inputs, cutoff: dt.datetime) -> M.Inputs:
    """The inputs as they were at ``cutoff``: lines, events and reviews strictly before it."""
    return M.Inputs(
        lines=inputs.lines.where(F.col(C.ORDER_TS) < F.lit(cutoff)),
        catalogue=inputs.catalogue,
        events=None if inputs.events is None else inputs.events.where(F.col(C.EVENT_TS) < F.lit(cutoff)),
        reviews=None if inputs.reviews is None else inputs.reviews.where(F.col(C.REVIEW_TS) < F.lit(cutoff)),
        review_scores=inputs.review_scores,
        customers=inputs.customers,
    )


def data_end(inputs: M.Inputs) -> dt.datetime:
    """The last purchase time (one aggregate row)."""
    row = purchases(inputs.lines).agg(F.max(TS)).first()
    assert row is not None, "an aggregate without groupBy returns exactly one row"
    end = row[0]
    if end is None:
        raise ValueError("no purchases with a customer id in the order lines: nothing to recommend from")
    return end


def purchases_between(inputs: M.Inputs, start: dt.datetime, end: dt.datetime | None = None) -> DataFrame:
    """``customer_id, product_id`` bought in ``[start, end)``: the truth of a time split."""
    p = purchases(inputs.lines).where(F.col(TS) >= F.lit(start))
    if end is not None:
        p = p.where(F.col(TS) < F.lit(end))
    return p.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct()


def tune_hybrid(spark: SparkSession, inputs: M.Inputs, rc: Recommend, end: dt.datetime) -> dict[str, Any]:
    """Hybrid weights from the validation split (the last ``validation_days`` before ``end``)."""
    cutoff = end - dt.timedelta(days=rc.hybrid.validation_days)
    train = before(inputs, cutoff)
    truth = purchases_between(inputs, cutoff)
    if rc.filters.exclude_purchased:
        truth = truth.join(purchases(train.lines).select(C.CUSTOMER_ID, C.PRODUCT_ID), [C.CUSTOMER_ID, C.PRODUCT_ID],
                           "left_anti")
    fitted = M.fit_models(spark, train, rc, ("hybrid",), as_of=cutoff, tune_truth=truth)
    return {"weights": fitted.info["hybrid_weights"], "grid": fitted.info.get("hybrid_grid", []),
            "validation_from": cutoff.isoformat()}


def with_hybrid_weights(rc: Recommend, weights: Mapping[str, float]) -> Recommend:
    """``rc`` with the tuned hybrid ``weights`` fixed (``tune`` off): later fits reuse them instead of tuning again."""
    fixed = HybridWeights.model_validate(dict(weights))
    return rc.model_copy(update={"hybrid": rc.hybrid.model_copy(update={"weights": fixed, "tune": False})})


def association_rules(inputs: M.Inputs, rc: Recommend) -> DataFrame:
    """Product- and category-level rules on orders, and product rules on event sessions when there are events."""
    rr = rc.rules
    bought = purchases(inputs.lines)
    parts = [
        rules.association_rules(rules.baskets(bought), rr.min_support, rr.min_confidence, "product",
                                rr.max_items).withColumn("baskets", F.lit("orders")),
        rules.association_rules(rules.category_baskets(bought), rr.category_min_support, rr.min_confidence,
                                "category", rr.max_items).withColumn("baskets", F.lit("orders")),
    ]
    if inputs.events is not None and C.SESSION_ID in inputs.events.columns:
        sessions = rules.baskets(inputs.events.where(F.col(C.SESSION_ID).isNotNull()), basket_col=C.SESSION_ID)
        parts.append(rules.association_rules(sessions, rr.min_support, rr.min_confidence, "product",
                                             rr.max_items).withColumn("baskets", F.lit("sessions")))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def known_customers(inputs: M.Inputs, fitted: M.Fitted) -> DataFrame:
    """Every customer the shop knows (silver customers and anyone with interactions), with a region when known."""
    regions = purchases(inputs.lines).groupBy(C.CUSTOMER_ID).agg(F.max(C.REGION).alias(C.REGION))
    who = fitted.interactions.select(C.CUSTOMER_ID).distinct().join(regions, C.CUSTOMER_ID, "left")
    if inputs.customers is not None:
        who = who.unionByName(inputs.customers.select(C.CUSTOMER_ID, C.REGION))
    return who.groupBy(C.CUSTOMER_ID).agg(F.max(C.REGION).alias(C.REGION))


def review_inputs(spark: SparkSession, lake: str) -> ltr.ReviewInputs:
    """The review-side tables the ranker's features read when they exist (each one optional)."""
    from ecomrec_spark.recommend import ltr

    return ltr.ReviewInputs(reviews=lk.read_optional(spark, lake, "silver", "reviews"),
                            predictions=lk.read_optional(spark, lake, "gold", "review_predictions"),
                            sentiment=lk.read_optional(spark, lake, "gold", "review_sentiment"))


def served_models(rc: Recommend) -> list[str]:
    """The lists written to gold: every configured model, ``ltr_new`` beside ``ltr``, ``popular`` last."""
    out = [m for m in rc.models if m != "popular"]
    if "ltr" in out:
        out.insert(out.index("ltr") + 1, "ltr_new")
    return out + ["popular"]


def pick_default(rows: list[dict[str, Any]], setting: str, configured: str, served: list[str]) -> dict[str, Any]:
    """The served default: the configured model, or (``auto``) the best validation NDCG@k in the shop's setting."""
    scored = {r["model"]: r["ndcg_at_k"] for r in rows if r["setting"] == setting and r["model"] in served}
    if configured != "auto" and configured in served:
        return {"model": configured, "by": "config", "setting": setting, "validation_ndcg": scored.get(configured)}
    if configured != "auto":
        log.warning("recommend.default_model=%s was not written this run (%s are); picking by validation",
                    configured, ", ".join(served))
    if not scored:
        return {"model": served[0], "by": "first configured (no validation scores)", "setting": setting}
    best = max(scored, key=lambda m: (scored[m] or 0.0, -served.index(m)))
    return {"model": best, "by": "validation ndcg@k", "setting": setting, "validation_ndcg": scored[best],
            "candidates": dict(sorted(scored.items(), key=lambda kv: -(kv[1] or 0.0)))}


def _tune_single_models(inputs: M.Inputs, rc: Recommend, models: tuple[str, ...], truth: DataFrame,
                        as_of: dt.datetime, exclude_seen: bool, run_info: dict[str, Any]) -> Recommend:
    """EASE's lambda and ALS's grid chosen on the validation window (:mod:`.tuning`), in a copy of ``rc``."""
    if not (rc.item_item.tune or rc.als.tune):
        return rc
    from ecomrec_spark.recommend import tuning
    from ecomrec_spark.recommend.interactions import build_interactions

    ic = rc.interactions
    inter = build_interactions(inputs.lines, inputs.events, inputs.reviews, as_of=as_of,
                               half_life_days=ic.half_life_days, purchase_weight=ic.purchase_weight,
                               max_quantity=ic.max_quantity, event_weights=ic.event_weights,
                               review_weight=ic.review_weight).cache()
    tuned = tuning.tune_models(inter, truth, rc, models, exclude_seen)
    inter.unpersist()
    run_info["single_model_tuning"] = tuned
    return tuning.apply_tuned(rc, tuned)


def for_ranker(rc: Recommend) -> Recommend:
    """``rc`` with every fitted list at least ``rank.candidates`` deep: the ranker's generators read that far."""
    return rc.model_copy(update={"candidates": max(rc.candidates, rc.rank.candidates - rc.k)})


def _has_history(bought: DataFrame, cut: dt.datetime) -> bool:
    """Whether any purchase happened before ``cut`` (at most one row is read)."""
    return bought.where(F.col(TS) < F.lit(cut)).limit(1).count() > 0


def _ranked(model: str, trained: Any, rc: Recommend) -> bool:
    """Whether a ranker list can be written: its setting's ranker was trained (``ltr`` may use the ``new`` one)."""
    if trained is None:
        return False
    if model == "ltr_new":
        return "new" in trained.models
    return "all" in trained.models or (rc.filters.exclude_purchased and "new" in trained.models)


def recommend(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """Tune on the validation window, train the ranker, fit on all data, write every gold recommendation table.

    Returns row counts, the model version and the run's parameters (validation scores, the default model).
    """
    from ecomrec_spark.model_store import new_version, save_models
    from ecomrec_spark.recommend import candidates as cands
    from ecomrec_spark.recommend import ltr

    rc, lake = settings.recommend, settings.paths.lake
    inputs = load_inputs(spark, lake)
    end = data_end(inputs)
    served = served_models(rc)
    use_ltr = "ltr" in served
    singles = tuple(m for m in served if m not in ("ltr", "ltr_new"))
    fit_set = tuple(dict.fromkeys(singles + (ltr.generator_models(rc) if use_ltr else ())))
    if use_ltr:
        rc = for_ranker(rc)
    setting = "new" if rc.filters.exclude_purchased else "all"
    days = rc.hybrid.validation_days
    t2 = end - dt.timedelta(days=days)
    run_info: dict[str, Any] = {"data_end": end.isoformat(), "models": served, "validation_from": t2.isoformat(),
                                "setting": setting}
    bought_all = purchases(inputs.lines).persist()
    truths = ltr.validation_truths(bought_all, t2)
    validate = _has_history(bought_all, t2) and truths[setting].limit(1).count() > 0  # one row at most
    if not validate:
        log.warning("no validation window: the data (to %s) has no returning purchases after %s with history before "
                    "it (recommend.hybrid.validation_days=%d); models keep their configured parameters, the ranker is "
                    "skipped and the default is recommend.default_model or the first model", end, t2, days)
    trained, validation, extra, cut2 = None, [], review_inputs(spark, lake), None
    if validate:
        inputs2 = before(inputs, t2)
        rc = _tune_single_models(inputs2, rc, fit_set, truths[setting], t2, setting == "new", run_info)
        fitted2 = M.fit_models(spark, inputs2, rc, fit_set, as_of=t2, tune_truth=truths[setting])
        if "hybrid_weights" in fitted2.info:
            run_info["hybrid_tuning"] = {"weights": fitted2.info["hybrid_weights"],
                                         "grid": fitted2.info.get("hybrid_grid", []), "validation_from": t2.isoformat()}
            rc = with_hybrid_weights(rc, fitted2.info["hybrid_weights"])
    t1 = t2 - dt.timedelta(days=days)
    if use_ltr and validate and not _has_history(bought_all, t1):
        log.warning("ltr skipped: no purchases before %s, the ranker's training cut (2 x validation_days before the "
                    "end of the data)", t1)
    elif use_ltr and validate:
        inputs1 = before(inputs, t1)
        cut1 = ltr.build_cut(spark, inputs1, M.fit_models(spark, inputs1, rc, ltr.generator_models(rc), as_of=t1),
                             rc, t1, bought_all, extra, only=ltr.buyers(bought_all, t1, t2))
        cut2 = ltr.build_cut(spark, inputs2, fitted2, rc, t2, bought_all, extra, only=truths["all"])
        run_info["candidate_recall"] = {s: cands.recall(cut2.frame(s), truths[s], ltr.generators(rc))
                                        for s in ltr.SETTINGS}
        trained = ltr.train(spark, cut1, cut2, rc, bought_all, truths)
        ltr.release(cut1)
        run_info["ranker"] = {"train_from": t1.isoformat(), "params": trained.params, "trials": trained.trials,
                              "importance": trained.importance, **trained.info}
    if validate:
        validation = ltr.score_lists(spark, fitted2, rc, [m for m in served if m != "popular"] + ["popular"], truths)
        if cut2 is not None:
            ltr.release(cut2)
        else:
            fitted2.unpersist()
        for truth in truths.values():
            truth.unpersist()
    run_info["validation"] = [{k: r[k] for k in ("model", "setting", "ndcg_at_k", "precision_at_k", "recall_at_k",
                                                 "n_users")} for r in validation]
    written = [m for m in served if m not in ("ltr", "ltr_new") or _ranked(m, trained, rc)]
    default = pick_default(validation, setting, rc.default_model, written)
    run_info["default"] = default
    log.info("served default: %s (%s; validation ndcg@%d %s)", default["model"], default["by"], rc.k,
             default.get("validation_ndcg"))
    fitted = M.fit_models(spark, inputs, rc, fit_set, with_similar=True)
    run_info.update({k: v for k, v in fitted.info.items() if k != "hybrid_grid"})
    version = new_version({"recommend": rc.model_dump(mode="json"), "data_end": run_info["data_end"]})
    serve_cut = None
    if trained and trained.models:
        serve_cut = ltr.build_cut(spark, inputs, fitted, rc, end + dt.timedelta(seconds=1), bought_all, extra)
        fitted.candidates.update(ltr.serve_lists(serve_cut, trained, rc))
        save_models(spark, lake, version, {s: m for s, m in trained.models.items()},
                    {"features": ltr.RF.feature_names(ltr.generators(rc)), "generators": ltr.generators(rc),
                     "targets": list(trained.models), "params": trained.params, "importance": trained.importance,
                     "data_end": end.isoformat()}, model_dir=ltr.R.MODEL_DIR)
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    customers = known_customers(inputs, fitted)
    lists = []
    for m in written:
        src = rc if m != "ltr_new" else ltr.in_setting(rc, "new")
        lists.append(M.finalize(spark, fitted, m, src, customers if m == "popular" else None)
                     .withColumn("model", F.lit(m)))
    recs = lists[0]
    for r in lists[1:]:
        recs = recs.unionByName(r)
    recs = recs.withColumn("generated_at", F.lit(generated)).withColumn("model_version", F.lit(version))
    counts: dict[str, int] = {}

    def write(df: DataFrame, table: str) -> None:
        lk.overwrite(df, lake, "gold", table)
        counts[f"gold/{table}"] = lk.read(spark, lake, "gold", table).count()

    write(recs.select(*REC_TABLE_COLUMNS), "recommendations")
    similar = [s.withColumn("model", F.lit(name)) for name, s in fitted.similar.items()]
    if similar:
        sim = similar[0]
        for s in similar[1:]:
            sim = sim.unionByName(s)
        write(sim.select(C.PRODUCT_ID, "rank", "similar_product_id", "similarity", "model"), "similar_items")
    write(association_rules(inputs, rc), "association_rules")
    write(fitted.popular, "popular_items")
    run_row = spark.createDataFrame(
        [(version, generated, default["model"], json.dumps(run_info, default=str))],
        "model_version string, generated_at timestamp, default_model string, info string")
    lk.replace_where(run_row, lake, "gold", "recommendation_runs", "model_version", [version])
    from ecomrec_spark.recommend.evaluate import metrics_frame

    if validation:
        lk.replace_where(metrics_frame(spark, f"validation-{version}", validation, rc.k, t2), lake, "gold",
                         "recommendation_metrics", "run_id", [f"validation-{version}"])
    # one session may run several builds (run-all, tests): leave nothing of this one cached
    if serve_cut is not None:
        ltr.release(serve_cut)
    else:
        fitted.unpersist()
    bought_all.unpersist()
    return {"model_version": version, "tables": counts, "info": run_info, "default_model": default["model"]}


def sample_lists(spark: SparkSession, settings: Settings, n_warm: int = 2) -> list[dict[str, Any]]:
    """Every model's list for the ``n_warm`` customers with the most purchases and one cold-start customer.

    What ``make demo`` prints; only those customers' rows reach the driver.
    """
    from ecomrec_spark.recommend.serve import recommend_for

    lake, rc = settings.paths.lake, settings.recommend
    recs = lk.read(spark, lake, "gold", "recommendations")
    lines = purchases(load_inputs(spark, lake).lines)
    personal = recs.where(F.col("model") != "popular").select(C.CUSTOMER_ID).distinct()
    warm = (lines.join(personal, C.CUSTOMER_ID, "left_semi").groupBy(C.CUSTOMER_ID)
            .agg(F.countDistinct(C.ORDER_ID).alias("n")).orderBy(F.col("n").desc(), C.CUSTOMER_ID).limit(n_warm))
    cold = (recs.where(F.col("reason").isin("popular_in_region", "popular") & (F.col("model") == "popular"))
            .join(lines, C.CUSTOMER_ID, "left_anti").select(C.CUSTOMER_ID).distinct().orderBy(C.CUSTOMER_ID).limit(1))
    who = [r[C.CUSTOMER_ID] for r in warm.collect()] + [r[C.CUSTOMER_ID] for r in cold.collect()]
    present = {r["model"] for r in recs.select("model").distinct().collect()}  # a handful of model names
    models = [m for m in served_models(rc) if m in present]
    return [recommend_for(spark, settings, c, rc.k, m) for c in who for m in models]
