"""Stage one of the two-stage recommender: candidates from every generator, each remembering who proposed it.

A learned ranker can only reorder what reaches it, so candidate recall matters
more than any one generator's precision.  For each customer this module takes
the union of the top ``n`` of:

================  ============================================================
generator         what it proposes
================  ============================================================
``ease`` ...      every fitted personal model (EASE, item-kNN, ALS, vector KNN,
                  content): their raw lists from :func:`.models.fit_models`
``rules``         consequents of FPGrowth rules whose antecedent is inside the
                  customer's recent baskets (last ``recent_days`` before the cut)
``popular``       the overall popular list
``popular_region`` / ``popular_category``
                  popular in the customer's region / in the customer's top
                  categories
``trending``      the trending list (growth over the last ``trending_days``)
``buy_again``     the customer's own past items, by times bought then recency
================  ============================================================

Every frame has ``CANDIDATE_COLUMNS``: ``customer_id, product_id, generator,
score, rank`` (rank 1 = the generator's best); :func:`union` stacks them.  A
(customer, product) pair proposed by three generators has three rows here and
becomes one row with three score/rank pairs in :mod:`.rank_features`.

Everything is a pure DataFrame transform over data before the cut; nothing
reaches the driver.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from functools import reduce

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark.recommend import popularity
from ecomrec_spark.recommend.interactions import TS

GENERATOR = "generator"
CANDIDATE_COLUMNS = [C.CUSTOMER_ID, C.PRODUCT_ID, GENERATOR, "score", "rank"]
MODEL_GENERATORS = ("ease", "item_knn", "als", "knn", "content")
OTHER_GENERATORS = ("rules", "popular", "popular_region", "popular_category", "trending", "buy_again")
GENERATORS = MODEL_GENERATORS + OTHER_GENERATORS
LABELS = {
    "ease": "EASE", "item_knn": "item-kNN", "als": "ALS", "knn": "vector KNN", "content": "content",
    "rules": "bought together", "popular": "popular", "popular_region": "popular in region",
    "popular_category": "popular in category", "trending": "trending", "buy_again": "buy again",
}


def _shape(df: DataFrame, generator: str) -> DataFrame:
    return df.select(C.CUSTOMER_ID, C.PRODUCT_ID, F.lit(generator).alias(GENERATOR),
                     F.col("score").cast("double").alias("score"), F.col("rank").cast("int").alias("rank"))


def _top(df: DataFrame, n: int, order: Iterable, by: str = C.CUSTOMER_ID) -> DataFrame:
    """Rank 1..n per customer by ``order`` (then product id), keeping the best row of a repeated pair."""
    w = Window.partitionBy(by).orderBy(*order, C.PRODUCT_ID)
    return df.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= n)


def from_models(lists: Mapping[str, DataFrame], n: int) -> list[DataFrame]:
    """The top ``n`` of each fitted model's raw list (``customer_id, product_id, score, rank``)."""
    return [_shape(df.where(F.col("rank") <= n), name) for name, df in lists.items() if name in MODEL_GENERATORS]


def buy_again(bought: DataFrame, as_of: dt.datetime, n: int) -> DataFrame:
    """The customer's own past products: score = distinct orders of it, decayed by a 90-day half-life since the last.

    Instacart's "buy it again": what a customer bought most and most recently is
    the best single guess for a re-ordering shop.
    """
    days = (F.unix_timestamp(F.lit(as_of)) - F.unix_timestamp(F.col("_last"))) / F.lit(86400.0)
    per = (bought.where(F.col(TS) < F.lit(as_of)).groupBy(C.CUSTOMER_ID, C.PRODUCT_ID)
           .agg(F.countDistinct(C.ORDER_ID).alias("_n"), F.max(TS).alias("_last"))
           .withColumn("score", F.col("_n").cast("double") * F.pow(F.lit(0.5), F.greatest(days, F.lit(0.0)) / F.lit(90.0))))
    return _shape(_top(per, n, [F.col("score").desc()]), "buy_again")


def rules_fired(bought: DataFrame, rules: DataFrame, as_of: dt.datetime, n: int, recent_days: int) -> DataFrame:
    """Consequents of product rules whose whole antecedent was bought in the customer's last ``recent_days``.

    Score: the best ``confidence x lift`` over the rules that fire for the pair.
    The join goes through the antecedent's first item, then checks the rest with
    ``array_except``, so no customer x rule cross product is formed.
    """
    recent = (bought.where((F.col(TS) < F.lit(as_of)) & (F.col(TS) >= F.lit(as_of - dt.timedelta(days=recent_days))))
              .groupBy(C.CUSTOMER_ID).agg(F.collect_set(C.PRODUCT_ID).alias("_items")))
    firsts = recent.select(C.CUSTOMER_ID, "_items", F.explode("_items").alias("_first"))
    r = rules.where(F.col("level") == "product").select(
        F.col("antecedent")[0].alias("_first"), "antecedent", F.col("consequent")[0].alias(C.PRODUCT_ID),
        (F.col("confidence") * F.col("lift")).alias("_s"))
    fired = (firsts.join(r, "_first").where(F.size(F.array_except("antecedent", "_items")) == 0)
             .where(~F.array_contains("_items", F.col(C.PRODUCT_ID)))
             .groupBy(C.CUSTOMER_ID, C.PRODUCT_ID).agg(F.max("_s").alias("score")))
    return _shape(_top(fired, n, [F.col("score").desc()]), "rules")


def top_categories(bought: DataFrame, as_of: dt.datetime, n: int = 3) -> DataFrame:
    """``customer_id, category, share``: the customer's ``n`` most bought known categories before ``as_of``."""
    known = bought.where((F.col(TS) < F.lit(as_of)) & F.col(C.CATEGORY).isNotNull()
                         & (F.col(C.CATEGORY) != C.UNKNOWN_CATEGORY))
    per = known.groupBy(C.CUSTOMER_ID, C.CATEGORY).agg(F.count(F.lit(1)).alias("_n"))
    w = Window.partitionBy(C.CUSTOMER_ID).orderBy(F.col("_n").desc(), C.CATEGORY)
    tot = Window.partitionBy(C.CUSTOMER_ID)
    return (per.withColumn("_r", F.row_number().over(w)).withColumn("share", F.col("_n") / F.sum("_n").over(tot))
            .where(F.col("_r") <= n).select(C.CUSTOMER_ID, C.CATEGORY, "share"))


POPULAR_KINDS = ("popular", "trending", "popular_region", "popular_category")


def popular_lists(customers: DataFrame, categories: DataFrame, popular: DataFrame, n: int,
                  kinds: Iterable[str] = POPULAR_KINDS) -> list[DataFrame]:
    """Overall, trending, region and top-category lists from gold ``popular_items`` rows, per customer.

    ``customers``: ``customer_id, region``; ``categories``: from :func:`top_categories`;
    ``kinds``: which of ``POPULAR_KINDS`` to build.  A category list item scores its
    popularity in the category times the customer's share of that category.
    """
    kinds = set(kinds)
    p = popular.where(F.col("rank") <= n)

    def scope(name: str) -> DataFrame:
        return p.where(F.col(popularity.SCOPE) == name).select(
            popularity.SCOPE_VALUE, C.PRODUCT_ID, F.col("score").alias("_s"), F.col("rank").alias("_r"))

    ids = customers.select(C.CUSTOMER_ID).distinct()
    overall = ids.crossJoin(F.broadcast(scope(popularity.OVERALL)))
    trending = ids.crossJoin(F.broadcast(scope(popularity.TRENDING)))
    region = customers.where(F.col(C.REGION).isNotNull()).join(
        scope(popularity.REGION_SCOPE).withColumnRenamed(popularity.SCOPE_VALUE, C.REGION), C.REGION)
    cat = categories.join(scope(popularity.CATEGORY_SCOPE).withColumnRenamed(popularity.SCOPE_VALUE, C.CATEGORY),
                          C.CATEGORY).withColumn("_s", F.col("_s") * F.col("share"))
    out = []
    for name, df, order in (("popular", overall, [F.col("_r")]), ("trending", trending, [F.col("_r")]),
                            ("popular_region", region, [F.col("_r")]),
                            ("popular_category", cat, [F.col("_s").desc(), F.col("_r")])):
        if name in kinds:
            out.append(_shape(_top(df.withColumn("score", F.col("_s")), n, order), name))
    return out


def union(parts: list[DataFrame]) -> DataFrame:
    """Stack generator frames (``CANDIDATE_COLUMNS``), one row per (customer, product, generator)."""
    return reduce(DataFrame.unionByName, parts).dropDuplicates([C.CUSTOMER_ID, C.PRODUCT_ID, GENERATOR])


def exclude_history(candidates: DataFrame, bought: DataFrame) -> DataFrame:
    """The ``new`` setting: drop candidates the customer bought before (ranked lists then hold only new items)."""
    seen = bought.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct()
    return candidates.join(seen, [C.CUSTOMER_ID, C.PRODUCT_ID], "left_anti")


def recall(frame: DataFrame, truth: DataFrame, generators: Iterable[str]) -> dict[str, float | None]:
    """Share of ``truth`` pairs (of customers with candidates) that any generator proposed, and per generator.

    ``frame`` is the wide candidate frame with ``<g>_in`` flags (:func:`.rank_features.generator_frame`).
    One aggregate row: the candidates' recall bounds every ranker trained on them.
    """
    gens = list(generators)
    who = frame.select(C.CUSTOMER_ID).distinct()
    t = truth.select(C.CUSTOMER_ID, C.PRODUCT_ID).distinct().join(who, C.CUSTOMER_ID, "left_semi")
    flags = frame.select(C.CUSTOMER_ID, C.PRODUCT_ID, *[F.col(f"{g}_in").alias(g) for g in gens])
    hit = t.join(flags, [C.CUSTOMER_ID, C.PRODUCT_ID], "left").fillna(0.0, subset=gens)
    row = hit.agg(F.count(F.lit(1)).alias("n"), F.sum(F.greatest(*[F.col(g) for g in gens], F.lit(0.0))).alias("any"),
                  *[F.sum(g).alias(g) for g in gens]).first()
    assert row is not None, "an aggregate without groupBy returns exactly one row"
    n = row["n"] or 0
    return {key: (None if not n else round(float(row[key] or 0) / n, 4)) for key in ("any", *gens)}
