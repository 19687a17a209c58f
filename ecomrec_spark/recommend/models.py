"""Fit every recommender on one set of inputs and return raw candidate lists.

Used twice with the same code: by the build job on all the data, and by the
evaluation job on the data before the split time.  Each model returns
``customer_id, product_id, score, rank, reason`` with ``candidates`` rows per
customer (more than ``k``, so the business filters still leave ``k``);
:func:`finalize` applies the filters, re-ranks, blends light users with
popularity and fills customers without a list from the popularity fallback.

Models
------
``knn``      customer vector -> nearest product vectors (:mod:`.vectors`, :mod:`.knn`)
``hybrid``   the knn candidates re-ranked by similarity, predicted review score and price fit (:mod:`.hybrid`)
``als``      implicit ALS ``recommendForAllUsers`` (:mod:`.als`)
``content``  TF-IDF customer profile -> nearest product texts (:mod:`.content`)
``popular``  the overall popularity list, for everyone (the baseline and the fallback)
``item_knn`` cosine item-kNN on co-purchases (:mod:`.item_item`), the classic baseline
``ease``     EASE closed-form item model (:mod:`.item_item`), the most accurate on MovieLens
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lineage
from ecomrec_spark.recommend import filters, knn, lsh_rule, popularity
from ecomrec_spark.recommend.interactions import TS, build_interactions, purchases
from ecomrec_spark.settings import Filters, Knn, Recommend

log = logging.getLogger(__name__)

MODELS = ("knn", "hybrid", "als", "content", "popular", "item_knn", "ease")
PERSONAL = ("knn", "hybrid", "als", "content", "item_knn", "ease")
REASONS = {
    "knn": "close to the customer's purchase profile",
    "hybrid": "close to the profile, well reviewed, in the customer's price range",
    "als": "bought by customers with similar purchases",
    "content": "described like products the customer bought",
    "item_knn": "often bought by the buyers of the customer's products",
    "ease": "completes the customer's basket (EASE item model)",
}
REC_COLUMNS = [C.CUSTOMER_ID, C.PRODUCT_ID, "score", "rank", "reason"]


@dataclass
class Inputs:
    """What the recommenders read; ``events``, ``reviews``, ``review_scores`` and ``customers`` are optional."""

    lines: DataFrame  # order lines (gold order_features or silver order_lines)
    catalogue: DataFrame  # silver products: product_id, category, brand, title, description, ...
    events: DataFrame | None = None
    reviews: DataFrame | None = None
    review_scores: DataFrame | None = None  # gold product_review_scores
    customers: DataFrame | None = None  # silver customers: customer_id, region


@dataclass
class Fitted:
    """Raw candidate lists per model plus what the build job also writes (similar items, vectors)."""

    candidates: dict[str, DataFrame]
    interactions: DataFrame
    bought: DataFrame
    attributes: DataFrame
    popular: DataFrame
    similar: dict[str, DataFrame] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    cached: list[Any] = field(default_factory=list)  # every cached frame or fitted model behind the lists

    def keep(self, df: Any) -> Any:
        """Remember a cached frame (or an object with ``unpersist``) so :meth:`unpersist` can release it."""
        self.cached.append(df)
        return df

    def unpersist(self) -> None:
        """Release everything this fit cached: a build fits several cuts and must not keep them all in memory."""
        for df in [*self.cached, *self.similar.values(), self.interactions, self.bought, self.attributes, self.popular]:
            df.unpersist()
        for lists in self.candidates.values():
            lineage.release(lists)
        self.cached.clear()


def product_attributes(bought: DataFrame, catalogue: DataFrame, review_scores: DataFrame | None) -> DataFrame:
    """``product_id, category, avg_price, n_orders, predicted_mean_score`` from the given purchases only."""
    sales = bought.groupBy(C.PRODUCT_ID).agg(F.avg(C.PRICE).alias("avg_price"),
                                             F.countDistinct(C.ORDER_ID).alias("n_orders"))
    cat = catalogue.select(C.PRODUCT_ID, C.CATEGORY).dropDuplicates([C.PRODUCT_ID])
    out = (cat.join(sales, C.PRODUCT_ID, "full")
           .withColumn(C.CATEGORY, F.coalesce(F.col(C.CATEGORY), F.lit(C.UNKNOWN_CATEGORY)))
           .fillna({"n_orders": 0}))
    if review_scores is not None:
        out = out.join(review_scores.select(C.PRODUCT_ID, "predicted_mean_score"), C.PRODUCT_ID, "left")
    else:
        out = out.withColumn("predicted_mean_score", F.lit(None).cast("double"))
    return out


def nearest(queries: DataFrame, items: DataFrame, n: int, kcfg: Knn, seed: int,
            exclude_self: bool = False, item_out: str | None = None) -> tuple[DataFrame, dict[str, Any]]:
    """Top-``n`` items per query by the configured method.

    ``auto`` is exact while the broadcast item matrix stays under
    ``exact_max_products x 64`` floats (200,000 products at the KNN vectors'
    ~50 dimensions, fewer for 2,000-term TF-IDF vectors), else LSH.
    """
    n_items = items.count()  # one aggregate: decides the method
    first = items.select(F.size(vector_to_array(F.col(knn.FEATURES))).alias("d")).first() if n_items else None
    dim = first["d"] if first is not None else 0  # n_items > 0: a first row
    method = kcfg.method
    if method == "auto":
        method = "exact" if n_items * dim <= kcfg.exact_max_products * 64 else "lsh"
    kw: dict[str, Any] = {"query_col": queries.columns[0], "item_col": C.PRODUCT_ID, "exclude_self": exclude_self}
    if item_out:
        kw["item_out"] = item_out
    if method == "exact":
        return knn.exact_top_k(queries, items, n, **kw), {"method": "exact", "n_items": n_items, "dim": dim}
    params = lsh_rule.lsh_params(items, queries, n, target_recall=kcfg.target_recall, seed=seed,
                            query_col=queries.columns[0], exclude_self=exclude_self)
    out = knn.lsh_top_k(queries, items, n, params["bucket_length"], params["num_tables"], params["threshold"],
                        seed=seed, **kw)
    kept: dict[str, Any] = {k: params[k] for k in ("bucket_length", "num_tables", "threshold", "sample_recall") if k in params}
    return out, {"method": "lsh", "n_items": n_items, "dim": dim, **kept}


def _as_recs(df: DataFrame, model: str, score_col: str = "similarity") -> DataFrame:
    return df.select(C.CUSTOMER_ID, C.PRODUCT_ID, F.col(score_col).cast("double").alias("score"),
                     F.col("rank").cast("int").alias("rank"), F.lit(REASONS[model]).alias("reason"))


def fit_models(spark: SparkSession, inputs: Inputs, rc: Recommend, models: tuple[str, ...] = MODELS,
               as_of: dt.datetime | None = None, tune_truth: DataFrame | None = None,
               with_similar: bool = False) -> Fitted:
    """Fit the requested models on ``inputs`` and return their raw candidate lists.

    ``with_similar`` also computes the similar-items lists (the build job writes them).
    ``tune_truth`` (customer_id, product_id of a later period) makes the hybrid
    weights come from :func:`~.hybrid.tune_weights` on the knn candidates;
    without it the configured weights are used.
    """
    from ecomrec_spark.recommend import als, content, hybrid, vectors

    ic, seed, n_cand = rc.interactions, rc.seed, rc.k + rc.candidates
    bought = purchases(inputs.lines).cache()
    inter = build_interactions(
        inputs.lines, inputs.events, inputs.reviews, as_of=as_of, half_life_days=ic.half_life_days,
        purchase_weight=ic.purchase_weight, max_quantity=ic.max_quantity, event_weights=ic.event_weights,
        review_weight=ic.review_weight).cache()
    attrs = product_attributes(bought, inputs.catalogue, inputs.review_scores).cache()
    pop_k = max(n_cand, rc.popularity.top_n)
    trending = None
    if as_of is not None or bought.limit(1).count():
        end = as_of
        if not end:
            last = bought.agg(F.max(TS)).first()  # one aggregate row
            assert last is not None, "an aggregate without groupBy returns exactly one row"
            end = last[0]
        trending = popularity.trending_items(bought, end + dt.timedelta(seconds=1), rc.popularity.trending_days,
                                             pop_k, ts_col=TS)
    popular = popularity.popular_table(bought, pop_k, trending=trending).cache()
    out = Fitted(candidates={}, interactions=inter, bought=bought, attributes=attrs, popular=popular)
    # the popularity list is always built: it is also the fallback for customers without history
    overall = popular.where(F.col(popularity.SCOPE) == popularity.OVERALL).select(C.PRODUCT_ID, F.col("rank").alias("_r"))
    out.candidates["popular"] = (inter.select(C.CUSTOMER_ID).distinct().crossJoin(F.broadcast(overall))
                                 .select(C.CUSTOMER_ID, C.PRODUCT_ID, (F.lit(1.0) / F.col("_r")).alias("score"),
                                         F.col("_r").alias("rank"), F.lit(popularity.REASON_POPULAR).alias("reason")))
    if set(models) & {"knn", "hybrid", "als"}:
        a = rc.als
        fitted = als.fit_als(inter, rank=a.rank, reg_param=a.reg_param, alpha=a.alpha, max_iter=a.max_iter,
                             seed=seed)
        out.info["als"] = dict(fitted.params)
        out.keep(fitted)
        if "als" in models:
            out.candidates["als"] = _as_recs(als.recommend_all(fitted, n_cand, margin=0), "als", "score")
        if set(models) & {"knn", "hybrid"}:
            pv = out.keep(vectors.product_vectors(als.item_factors(fitted), attrs, rc.vectors.model_dump()).cache())
            cv = vectors.customer_vectors(inter, pv)
            cand, info = nearest(cv, pv, n_cand, rc.knn, seed)
            cand = out.keep(cand.cache())
            out.info["knn"] = info
            out.candidates["knn"] = _as_recs(cand, "knn")
            if with_similar:
                sim, _ = nearest(pv.withColumnRenamed(C.PRODUCT_ID, "_query"), pv, rc.similar_items, rc.knn, seed,
                                 exclude_self=True, item_out="similar_product_id")
                out.similar["knn"] = sim.withColumnRenamed("_query", C.PRODUCT_ID)
            if "hybrid" in models:
                terms = out.keep(hybrid.with_terms(cand, attrs, vectors.customer_price(inter, attrs)).cache())
                weights = rc.hybrid.weights.model_dump()
                if tune_truth is not None and rc.hybrid.tune:
                    weights, grid = hybrid.tune_weights(terms, tune_truth, rc.hybrid.grid.model_dump(), rc.k)
                    out.info["hybrid_grid"] = grid
                out.info["hybrid_weights"] = weights
                out.candidates["hybrid"] = _as_recs(hybrid.hybrid_scores(terms, weights), "hybrid", "score")
    if "content" in models:
        cc = rc.content
        text = content.product_text(inputs.catalogue, reviews=inputs.reviews, lines=inputs.lines)
        tfidf, _ = content.tfidf_vectors(text, vocab_size=cc.vocab_size, min_df=float(cc.min_df), log_empty=False)
        tfidf = out.keep(tfidf.cache())
        profiles = content.customer_profiles(inter, tfidf)
        ccand, info = nearest(profiles, tfidf, n_cand, rc.knn, seed)
        out.info["content"] = info
        out.candidates["content"] = _as_recs(ccand, "content")
        if with_similar:
            csim, _ = nearest(tfidf.withColumnRenamed(C.PRODUCT_ID, "_query"), tfidf, rc.similar_items, rc.knn,
                              seed, exclude_self=True, item_out="similar_product_id")
            out.similar["content"] = csim.withColumnRenamed("_query", C.PRODUCT_ID)
    for name, method in (("item_knn", "cosine"), ("ease", "ease")):
        if name in models:
            from ecomrec_spark.recommend import item_item, item_item_scoring

            ii = rc.item_item
            # EASE: ease_neighbors null = the unpruned dense model up to dense_max_items (else max_neighbors kept)
            neighbors = ii.ease_neighbors if method == "ease" else ii.max_neighbors
            fitted_ii = item_item.fit_item_item(
                inter, method=method, reg_lambda=ii.ease_lambda, max_neighbors=neighbors, max_items=ii.max_items,
                dense_max_items=ii.dense_max_items, fallback_neighbors=ii.max_neighbors)
            out.info[name] = fitted_ii.params
            out.keep(fitted_ii)
            out.candidates[name] = _as_recs(item_item_scoring.recommend_item_item(fitted_ii, inter, n_cand, exclude_history=False),
                                            name, "score")
    for name, cand in out.candidates.items():  # every list is read once per model and setting downstream
        out.candidates[name] = lineage.materialize(cand)
    return out


def blocked_products(spark: SparkSession, fc: Filters) -> DataFrame | None:
    """Unavailable or blacklisted products from config (a list and/or a Delta table with ``product_id``)."""
    parts = []
    if fc.blocked_products:
        parts.append(filters.blocked_frame(spark, fc.blocked_products))
    if fc.blocked_table:
        parts.append(spark.read.format("delta").load(fc.blocked_table).select(C.PRODUCT_ID))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out.distinct()


def apply_filters(spark: SparkSession, recs: DataFrame, fitted: Fitted, fc: Filters) -> DataFrame:
    """Already bought (when configured), blocked products and the category include/exclude lists."""
    recs = filters.exclude_purchased(recs, fitted.bought, fc.exclude_purchased)
    blocked = blocked_products(spark, fc)
    if blocked is not None:
        recs = filters.exclude_products(recs, blocked)
    if fc.include_categories or fc.exclude_categories:
        recs = filters.filter_categories(recs, fitted.attributes, include=fc.include_categories or None,
                                         exclude=fc.exclude_categories or None)
    return recs


def finalize(spark: SparkSession, fitted: Fitted, model: str, rc: Recommend,
             customers: DataFrame | None = None) -> DataFrame:
    """Filters, the light-user blend, re-rank to ``k``, and the cold-start fallback for ``customers`` without a list."""
    k, n_cand = rc.k, rc.k + rc.candidates
    recs = filters.rerank(apply_filters(spark, fitted.candidates[model], fitted, rc.filters), n_cand)
    popular = _filtered_popular(spark, fitted, rc)
    if model in PERSONAL:
        counts = fitted.interactions.groupBy(C.CUSTOMER_ID).agg(F.count(F.lit(1)).alias("n_interactions"))
        recs = popularity.blend_for_light_users(recs, popular, counts, rc.popularity.min_interactions, n_cand)
        recs = apply_filters(spark, recs, fitted, rc.filters)  # the blended-in popular items obey them too
    recs = filters.rerank(recs, k)
    if customers is not None:
        fallback = popularity.fallback_recommendations(customers, popular, k, known=recs)
        recs = recs.select(*REC_COLUMNS).unionByName(fallback.select(*REC_COLUMNS))
    return recs.select(*REC_COLUMNS)


def _filtered_popular(spark: SparkSession, fitted: Fitted, rc: Recommend) -> DataFrame:
    """The popular table without blocked or filtered-out categories (re-ranked per scope): fallbacks obey the filters."""
    from pyspark.sql import Window

    fc = rc.filters
    kept = fitted.popular
    blocked = blocked_products(spark, fc)
    if blocked is not None:
        kept = kept.join(blocked, C.PRODUCT_ID, "left_anti")
    if fc.include_categories or fc.exclude_categories:
        kept = filters.filter_categories(kept, fitted.attributes, include=fc.include_categories or None,
                                         exclude=fc.exclude_categories or None)
    if kept is fitted.popular:
        return kept
    w = Window.partitionBy(popularity.SCOPE, popularity.SCOPE_VALUE).orderBy("rank", C.PRODUCT_ID)
    return kept.withColumn("rank", F.row_number().over(w))
