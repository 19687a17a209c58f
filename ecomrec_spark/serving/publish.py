"""``ecomrec publish``: the latest gold tables -> the serving store, as a new immutable version.

Why this module exists: a shop's website cannot query Delta on each page view, and the API
(``ecomrec serve``) runs with no Spark at all.  So publish turns what the API answers into
key -> JSON documents once per build (the shapes are in :mod:`.keys`), writes them as a new
version, and moves the live pointer only when the version is complete and passes the quality
gate (:mod:`.gate`).  A running API follows the pointer; ``--rollback`` moves it back.

What goes in (every document is built in Spark with built-in functions; no row-level data is
collected, no Python UDF runs):

* ``customer#<id>#<model>``: each served model's top ``serving.k`` from ``gold/recommendations``,
  each item enriched with the product's category and price
  (:func:`~ecomrec_spark.recommend.serve.product_attributes`), its predicted review score and
  P(satisfied) (``gold/product_review_scores``, optional) and the list's reason;
* ``product#<id>`` for every product with attributes, a review score or a catalogue row, and
  every product in any published list (so the API can answer 404 for exactly the unknown ones):
  the product itself (plus ``name``/``description`` from ``silver/products`` where the source
  has them), ``similar`` from ``gold/similar_items`` -- one model per product, ``knn`` where it
  has a knn list, else ``content`` (:data:`SIMILAR_PREFERENCE`), since knn uses what customers
  bought and content only the text -- and ``together`` from ``gold/association_rules``:
  product-level rules with one antecedent and lift above 1, order baskets preferred over event
  sessions for the same pair, ranked by lift, then confidence;
* ``popular#overall``, ``popular#category#<c>``, ``popular#region#<r>`` and ``trending`` from
  ``gold/popular_items``.

How rows reach the store: SQLite streams them through the driver with ``toLocalIterator`` into
one transaction; DynamoDB is written from the executors (``foreachPartition`` with
``batch_writer``), and an accumulator checks that every row was written.  Then the version is
committed with its info (default model, served models, k, build and review-model versions,
the gate's metrics, row counts, the categories and regions of the popular lists), the gate
runs, the pointer moves, and old, refused and failed versions are dropped (the rules, and
``--list``/``--rollback``, are in :mod:`.versions`, which imports no pyspark).

Example
-------
>>> out = publish(spark, load_settings("conf/local.yaml"))    # doctest: +SKIP
>>> out["version"], out["live"] == out["version"], out["rows"]  # doctest: +SKIP
('20261205T031500Z-1a2b3c4d', True, {'customer': 1200, 'product': 310, 'popular': 40, 'trending': 1})
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.identifiers import SERVE_MODELS
from ecomrec_spark.serving import gate, keys
from ecomrec_spark.serving.gate import GateRefused
from ecomrec_spark.serving.store import Store, open_store
from ecomrec_spark.serving.versions import (
    REFUSED,
    PublishError,
    list_versions,
    live_metrics,
    next_version,
    prune,
    rollback,
    store_errors,
)

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

__all__ = ["NothingToPublish", "PublishError", "documents", "list_versions", "load_gold", "publish", "rollback",
           "version_info", "GateRefused"]

log = logging.getLogger(__name__)

SIMILAR_PREFERENCE = ("knn", "content")  # the similar-items list a product page shows: the first it has
TOGETHER_BASKETS = ("orders", "sessions")  # the same rule from both: the order baskets' one wins
REVIEW_MODEL = "xgboost_tuned"  # the saved review model's row in its metadata's metrics
JSON_OPTIONS = {"ignoreNullFields": "false"}  # every item has every field; a missing value is null
KIND, KEY, VALUE = "kind", "key", "value"
ITEM_ID = C.PRODUCT_ID
OWNER = "_owner"  # the customer or product a list belongs to


class NothingToPublish(FileNotFoundError):
    """The lake has no ``gold/recommendations`` yet."""


# ---------------------------------------------------------------------------------------------
# Reading the gold tables
# ---------------------------------------------------------------------------------------------

@dataclass
class Gold:
    """The tables publish reads; all but ``recommendations`` and ``attributes`` may be missing."""

    recommendations: DataFrame  # customer_id, rank, product_id, score, model, reason, model_version
    attributes: DataFrame  # product_id, category, avg_price
    review_scores: DataFrame | None = None  # product_id, predicted_mean_score, p_satisfied, model_version
    products: DataFrame | None = None  # silver/products: product_id, title, description
    similar: DataFrame | None = None  # product_id, rank, similar_product_id, similarity, model
    rules: DataFrame | None = None  # level, antecedent, consequent, confidence, lift[, baskets]
    popular: DataFrame | None = None  # scope, scope_value, product_id, score, rank


def load_gold(spark: SparkSession, lake: str) -> Gold:
    """The gold (and silver/products) tables, or :class:`NothingToPublish` naming the job to run."""
    from ecomrec_spark.recommend.serve import product_attributes

    recs = lk.read_optional(spark, lake, "gold", "recommendations")
    if recs is None:
        raise NothingToPublish(f"nothing to publish: {lk.table_path(lake, 'gold', 'recommendations')} does not exist; "
                               "run `ecomrec build-recommendations` first")
    return Gold(recommendations=recs, attributes=product_attributes(spark, lake),
                review_scores=lk.read_optional(spark, lake, "gold", "product_review_scores"),
                products=lk.read_optional(spark, lake, "silver", "products"),
                similar=lk.read_optional(spark, lake, "gold", "similar_items"),
                rules=lk.read_optional(spark, lake, "gold", "association_rules"),
                popular=lk.read_optional(spark, lake, "gold", "popular_items"))


# ---------------------------------------------------------------------------------------------
# Documents (pure DataFrame -> DataFrame)
# ---------------------------------------------------------------------------------------------

def _null(name: str, dtype: str = "string") -> Column:
    return F.lit(None).cast(dtype).alias(name)


def product_info(gold: Gold) -> DataFrame:
    """``product_id, category, price, review_score, p_satisfied, name, description``, one row per product.

    Every product with attributes, a review score or a catalogue row (``silver/products``); price
    rounded to cents, the review score to 3 decimals and P(satisfied) to 4."""
    out = gold.attributes.select(C.PRODUCT_ID, C.CATEGORY, F.round("avg_price", 2).alias(C.PRICE))
    if gold.review_scores is not None:
        scores = gold.review_scores.select(C.PRODUCT_ID, F.round("predicted_mean_score", 3).alias("review_score"),
                                           F.round("p_satisfied", 4).alias("p_satisfied"))
        out = out.join(scores, C.PRODUCT_ID, "full")
    else:
        out = out.select("*", _null("review_score", "double"), _null("p_satisfied", "double"))
    p = gold.products
    catalogue = [(c, alias) for c, alias in (("title", "name"), ("description", "description"), (C.CATEGORY, "_cat"))
                 if p is not None and c in p.columns]
    if p is not None and catalogue:  # the catalogue's products, text, and category for the ones no sale covers (seen, not sold)
        names = p.where(F.col(C.PRODUCT_ID).isNotNull()).groupBy(C.PRODUCT_ID).agg(
            *[F.min(F.col(c)).alias(alias) for c, alias in catalogue])
        out = out.join(names, C.PRODUCT_ID, "full")
        if "_cat" in out.columns:
            out = out.withColumn(C.CATEGORY, F.coalesce(C.CATEGORY, "_cat"))
    for c in ("name", "description"):
        if c not in out.columns:
            out = out.withColumn(c, F.lit(None).cast("string"))
    return out.select(C.PRODUCT_ID, C.CATEGORY, C.PRICE, "review_score", "p_satisfied", "name", "description")


def _item(extra: Sequence[str] = ()) -> Column:
    """One list item (the :mod:`.keys` shape) from an enriched list row."""
    return F.struct(F.col(ITEM_ID).alias("product_id"), F.col("rank").cast("int").alias("rank"),
                    F.round(F.col("score").cast("double"), 6).alias("score"),
                    F.col("reason").cast("string").alias("reason"), F.col(C.CATEGORY).alias("category"),
                    F.col(C.PRICE).alias("price"), "review_score", "p_satisfied", *extra)


def _enrich(lists: DataFrame, info: DataFrame) -> DataFrame:
    """List rows (``product_id`` = the listed product) with the product's attributes and review score."""
    return lists.join(info.select(C.PRODUCT_ID, C.CATEGORY, C.PRICE, "review_score", "p_satisfied"), ITEM_ID, "left")


def _collect_sorted(item: Column) -> Column:
    """The group's items as an array ordered by rank."""
    pairs = F.array_sort(F.collect_list(F.struct(F.col("rank").alias("_r"), item.alias("_i"))))
    return F.transform(pairs, lambda x: x["_i"])


def _json(*fields: Column) -> Column:
    return F.to_json(F.struct(*fields), JSON_OPTIONS)


def customer_documents(recs: DataFrame, info: DataFrame, k: int) -> DataFrame:
    """``customer#<id>#<model>`` -> ``{"items": [item, ...]}``: each served model's top ``k`` for the customer."""
    rows = recs.where(F.col("rank") <= F.lit(k)).select(
        F.col(C.CUSTOMER_ID).alias(OWNER), "model", ITEM_ID, "rank", "score", "reason")
    per_model = _enrich(rows, info).groupBy(OWNER, "model").agg(_collect_sorted(_item()).alias("items"))
    return per_model.select(F.lit(keys.CUSTOMER).alias(KIND),
                            F.concat(F.lit(keys.customer_prefix()), F.col(OWNER), F.lit(keys.SEP),
                                     F.col("model")).alias(KEY),
                            _json(F.col("items").alias("items")).alias(VALUE))


def similar_lists(similar: DataFrame, k: int, preference: Sequence[str] = SIMILAR_PREFERENCE) -> DataFrame:
    """``_owner, product_id, rank, score, reason``: each product's similar items from one model.

    The first model of ``preference`` the product has a list from (models not named there come
    after, by name), so a product page never mixes two rankings."""
    prio = F.coalesce(F.array_position(F.array(*[F.lit(m) for m in preference]), F.col("model")).cast("int"),
                      F.lit(len(preference) + 1))
    ranked = similar.select(F.col(C.PRODUCT_ID).alias(OWNER), F.col("similar_product_id").alias(ITEM_ID), "rank",
                            F.col("similarity").alias("score"), "model", prio.alias("_prio"))
    chosen = ranked.groupBy(OWNER).agg(F.min(F.struct("_prio", "model")).getField("model").alias("_model"))
    reason = F.concat(F.lit("similar ("), F.col("model"), F.lit(")"))
    return (ranked.join(chosen, OWNER).where((F.col("model") == F.col("_model")) & (F.col("rank") <= F.lit(k)))
            .select(OWNER, ITEM_ID, "rank", "score", reason.alias("reason")))


def together_lists(rules: DataFrame, k: int) -> DataFrame:
    """``_owner, product_id, rank, score, reason, lift, confidence`` from product rules with one antecedent.

    Only rules with lift above 1 (a lift below 1 means the two go together less often than by
    chance, which is no reason to show one beside the other).  Ranked by lift, then confidence
    (then the product id, so ties are stable); ``score`` is the lift.  A pair mined from both
    order baskets and event sessions keeps the order rule."""
    r = rules.where((F.col("level") == F.lit("product")) & (F.size("antecedent") == 1) & (F.size("consequent") == 1)
                    & (F.col("lift") > F.lit(1.0)))
    baskets = F.col("baskets") if "baskets" in rules.columns else F.lit(TOGETHER_BASKETS[0])
    r = r.select(F.col("antecedent")[0].alias(OWNER), F.col("consequent")[0].alias(ITEM_ID),
                 F.col("lift").cast("double").alias("lift"), F.col("confidence").cast("double").alias("confidence"),
                 baskets.alias("_baskets"))
    prio = F.coalesce(F.array_position(F.array(*[F.lit(b) for b in TOGETHER_BASKETS]), F.col("_baskets")).cast("int"),
                      F.lit(len(TOGETHER_BASKETS) + 1))
    best = r.withColumn("_prio", prio).groupBy(OWNER, ITEM_ID).agg(
        F.min(F.struct("_prio", "lift", "confidence", "_baskets")).alias("_b"))
    pairs = best.select(OWNER, ITEM_ID, F.col("_b.lift").alias("lift"), F.col("_b.confidence").alias("confidence"),
                        F.col("_b._baskets").alias("_baskets"))
    # rank within the product: lift, then confidence, descending, then the id
    order = F.struct((-F.col("lift")).alias("_l"), (-F.col("confidence")).alias("_c"), F.col(ITEM_ID).alias("_id"))
    w = Window.partitionBy(OWNER).orderBy(order)
    return (pairs.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= F.lit(k))
            .select(OWNER, ITEM_ID, "rank", F.col("lift").alias("score"),
                    F.when(F.col("_baskets") == F.lit("sessions"), F.lit("viewed in the same session"))
                    .otherwise(F.lit("bought together")).alias("reason"),
                    F.round("lift", 4).alias("lift"), F.round("confidence", 4).alias("confidence")))


def _empty_array_like(df: DataFrame, column: str) -> Column:
    return F.coalesce(F.col(column), F.array().cast(df.schema[column].dataType))


def product_documents(info: DataFrame, similar: DataFrame | None, together: DataFrame | None,
                      listed: DataFrame) -> DataFrame:
    """``product#<id>`` -> ``{"product": item, "similar": [...], "together": [...]}``.

    Every product of ``info`` or ``listed`` (``product_id`` of every published list) gets one,
    with null attributes where the lake has none."""
    ids = [info.select(C.PRODUCT_ID), listed.select(C.PRODUCT_ID)]
    for lists in (similar, together):
        if lists is not None:
            ids += [lists.select(F.col(OWNER).alias(C.PRODUCT_ID)), lists.select(C.PRODUCT_ID)]
    universe = ids[0]
    for more in ids[1:]:
        universe = universe.unionByName(more)
    universe = universe.where(F.col(C.PRODUCT_ID).isNotNull()).distinct()
    product = F.struct(F.col(C.PRODUCT_ID).alias("product_id"), _null("rank", "int"), _null("score", "double"),
                       _null("reason"), C.CATEGORY, C.PRICE, "review_score", "p_satisfied", "name", "description")
    docs = universe.join(info, C.PRODUCT_ID, "left").select(F.col(C.PRODUCT_ID).alias(OWNER), product.alias("product"))
    parts: list[tuple[str, DataFrame | None, Sequence[str]]] = [("similar", similar, ()),
                                                                ("together", together, ("lift", "confidence"))]
    for name, lists, extra in parts:
        if lists is None:  # the lake has no such table: an empty list (its element type does not show in JSON)
            docs = docs.withColumn(name, F.array().cast("array<string>"))
            continue
        arrays = _enrich(lists, info).groupBy(OWNER).agg(_collect_sorted(_item(extra)).alias(name))
        docs = docs.join(arrays, OWNER, "left")
        docs = docs.withColumn(name, _empty_array_like(docs, name))
    return docs.select(F.lit(keys.PRODUCT).alias(KIND), F.concat(F.lit(keys.product("")), F.col(OWNER)).alias(KEY),
                       _json(F.col("product"), F.col("similar"), F.col("together")).alias(VALUE))


def popular_documents(popular: DataFrame, info: DataFrame, k: int) -> DataFrame:
    """``popular#overall``, ``popular#category#<c>``, ``popular#region#<r>``, ``trending`` -> ``{"items": [...]}``."""
    from ecomrec_spark.recommend.popularity import CATEGORY_SCOPE, OVERALL, REGION_SCOPE, SCOPE, SCOPE_VALUE, TRENDING

    scope, value = F.col(SCOPE), F.col(SCOPE_VALUE)
    key = (F.when(scope == F.lit(OVERALL), F.lit(keys.popular()))
           .when((scope == F.lit(CATEGORY_SCOPE)) & value.isNotNull(),
                 F.concat(F.lit(keys.popular(CATEGORY_SCOPE, "")), value))
           .when((scope == F.lit(REGION_SCOPE)) & value.isNotNull(),
                 F.concat(F.lit(keys.popular(REGION_SCOPE, "")), value))
           .when(scope == F.lit(TRENDING), F.lit(keys.trending())))
    reason = (F.when(scope == F.lit(OVERALL), F.lit("popular"))
              .when(scope == F.lit(TRENDING), F.lit("trending"))
              .otherwise(F.concat(F.lit("popular_in_"), scope)))
    rows = popular.where(F.col("rank") <= F.lit(k)).select(
        key.alias(OWNER), ITEM_ID, "rank", "score", reason.alias("reason")).where(F.col(OWNER).isNotNull())
    lists = _enrich(rows, info).groupBy(OWNER).agg(_collect_sorted(_item()).alias("items"))
    kind = F.when(F.col(OWNER) == F.lit(keys.trending()), F.lit(keys.TRENDING)).otherwise(F.lit(keys.POPULAR))
    return lists.select(kind.alias(KIND), F.col(OWNER).alias(KEY), _json(F.col("items")).alias(VALUE))


def documents(gold: Gold, k: int) -> DataFrame:
    """Every document of a version: ``kind, key, value`` (``value`` JSON text in the :mod:`.keys` shapes)."""
    info = product_info(gold)
    similar = similar_lists(gold.similar, k) if gold.similar is not None else None
    together = together_lists(gold.rules, k) if gold.rules is not None else None
    listed = gold.recommendations.where(F.col("rank") <= F.lit(k)).select(C.PRODUCT_ID)
    out = customer_documents(gold.recommendations, info, k)
    if gold.popular is not None:
        out = out.unionByName(popular_documents(gold.popular, info, k))
        listed = listed.unionByName(gold.popular.where(F.col("rank") <= F.lit(k)).select(C.PRODUCT_ID))
    return out.unionByName(product_documents(info, similar, together, listed))


# ---------------------------------------------------------------------------------------------
# The version's info (a few small reads on the driver)
# ---------------------------------------------------------------------------------------------

def _ordered_models(models: Sequence[str]) -> list[str]:
    known = [m for m in SERVE_MODELS if m in models]
    return known + sorted(m for m in models if m not in SERVE_MODELS)


def review_macro_f1(spark: SparkSession, lake: str, version: str) -> float | None:
    """The saved review model's macro-F1 on its test rows (its metadata's score-target row), or None."""
    from ecomrec_spark import model_store

    try:
        meta = model_store.load_metadata(spark, lake, version)
    except (FileNotFoundError, ValueError) as exc:
        log.warning("review model %s has no readable metadata (%s): its macro-F1 is not gated", version, exc)
        return None
    weighting = "weighted" if (meta.get("config") or {}).get("class_weights") else "unweighted"
    rows = [r for r in (meta.get("metrics") or {}).get("score") or [] if r.get("model") == REVIEW_MODEL]
    row = next((r for r in rows if r.get("class_weights") == weighting), rows[0] if rows else None)
    return None if row is None or row.get("macro_f1") is None else float(row["macro_f1"])


def version_info(spark: SparkSession, lake: str, gold: Gold, k: int) -> dict[str, Any]:
    """What the API and ``--list`` need about the version, and the gate's metrics."""
    from ecomrec_spark.recommend.popularity import CATEGORY_SCOPE, REGION_SCOPE, SCOPE, SCOPE_VALUE
    from ecomrec_spark.recommend.serve import default_model

    agg = gold.recommendations.where(F.col("rank") <= F.lit(k)).agg(
        F.max("model_version").alias("v"), F.collect_set("model").alias("models")).first()  # one row
    assert agg is not None, "an aggregate without groupBy returns exactly one row"
    rec_version, models = agg["v"], _ordered_models(agg["models"] or [])
    runs = lk.read_optional(spark, lake, "gold", "recommendation_runs")
    run = None
    if runs is not None and rec_version is not None:
        run = runs.where(F.col("model_version") == F.lit(rec_version)).orderBy(F.col("generated_at").desc()).select(
            "default_model", "info").first()  # one row
    default = run["default_model"] if run is not None and run["default_model"] else default_model(spark, lake)
    run_info = json.loads(run["info"]) if run is not None and run["info"] else {}
    setting = (run_info.get("default") or {}).get("setting") or run_info.get("setting")
    ndcg, ndcg_k = None, None
    metrics_table = lk.read_optional(spark, lake, "gold", "recommendation_metrics")
    if metrics_table is not None and rec_version is not None and setting:
        row = metrics_table.where((F.col("run_id") == F.lit(f"validation-{rec_version}"))
                                  & (F.col("model") == F.lit(default)) & (F.col("setting") == F.lit(setting))
                                  ).select("ndcg_at_k", "k").first()  # one row
        if row is not None:
            ndcg = None if row["ndcg_at_k"] is None else float(row["ndcg_at_k"])
            ndcg_k = row["k"]
    review_version, macro_f1 = None, None
    if gold.review_scores is not None and "model_version" in gold.review_scores.columns:
        latest = gold.review_scores.agg(F.max("model_version")).first()  # one aggregate
        assert latest is not None, "an aggregate without groupBy returns exactly one row"
        review_version = latest[0]
        if review_version:
            macro_f1 = review_macro_f1(spark, lake, review_version)
    scopes: dict[str, list[str]] = {CATEGORY_SCOPE: [], REGION_SCOPE: []}
    if gold.popular is not None:
        for r in (gold.popular.where(F.col(SCOPE).isin(CATEGORY_SCOPE, REGION_SCOPE) & F.col(SCOPE_VALUE).isNotNull())
                  .select(SCOPE, SCOPE_VALUE).distinct().collect()):  # the drop-downs: a few dozen values
            scopes[r[SCOPE]].append(r[SCOPE_VALUE])
    return {"default_model": default, "models": models, "k": k, "recommendation_version": rec_version,
            "default_picked_on": setting, "review_model_version": review_version,
            "metrics": {gate.NDCG: ndcg, gate.NDCG_K: ndcg_k, gate.MACRO_F1: macro_f1},
            "categories": sorted(scopes[CATEGORY_SCOPE]), "regions": sorted(scopes[REGION_SCOPE])}


# ---------------------------------------------------------------------------------------------
# Writing, the gate, the pointer
# ---------------------------------------------------------------------------------------------

def _write_from_executors(spark: SparkSession, store: Any, version: str, frame: DataFrame) -> int:
    """``foreachPartition`` with the store's executor-side writer; returns the rows written (an accumulator)."""
    written = spark.sparkContext.accumulator(0)
    write = store.partition_writer(version)

    def counted(rows: Iterator) -> None:
        n = 0

        def each() -> Iterator:
            nonlocal n
            for row in rows:
                n += 1
                yield row

        write(each())
        written.add(n)  # after the partition's batch_writer flushed: counts rows really sent

    frame.foreachPartition(counted)
    return int(written.value)


def write_documents(spark: SparkSession, store: Store, version: str, docs: DataFrame) -> int:
    """Rows into the version: from the executors where the store can (DynamoDB), else streamed (SQLite)."""
    frame = docs.select(KEY, VALUE)
    if hasattr(store, "partition_writer"):
        return _write_from_executors(spark, store, version, frame)
    return store.write(version, ((r[KEY], r[VALUE]) for r in frame.toLocalIterator()))


def publish(spark: SparkSession, settings: Settings, force: bool = False) -> dict[str, Any]:
    """Write the latest gold tables as a new version; make it live if the gate passes (or ``force``).

    Returns ``{"version", "store", "live", "rows", "gate", "dropped", "default_model", "metrics",
    "example_customer"}``.  Raises
    :class:`NothingToPublish` without ``gold/recommendations``, :class:`GateRefused` (the
    version stays complete but not live) when a metric dropped too far, :class:`PublishError`
    when the store is unreachable or a write came up short.
    """
    s, lake = settings.serving, settings.paths.lake
    gold = load_gold(spark, lake)
    k = s.k
    info = version_info(spark, lake, gold, k)
    store = open_store(settings)
    docs = documents(gold, k).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows = {r[KIND]: int(r["count"]) for r in docs.groupBy(KIND).count().collect()}  # four rows
        # one customer to try the API with (printed by run-all / make demo): the smallest key, one scalar
        smallest = docs.where(F.col(KIND) == keys.CUSTOMER).agg(F.min(KEY)).first()
        assert smallest is not None, "an aggregate without groupBy returns exactly one row"
        first_key = smallest[0]
        with store_errors():
            version = next_version(store)
            store.begin(version, info)
            log.info("publishing version %s to %s: %s", version, store.description, rows)
            written = write_documents(spark, store, version, docs)
    finally:
        docs.unpersist()
    expected = sum(rows.values())
    if written != expected:
        raise PublishError(f"version {version} came up short in {store.description}: {written} of {expected} rows "
                           "written; it stays pending and the next publish drops it")
    info = {**info, "rows": {kind: rows.get(kind, 0) for kind in (keys.CUSTOMER, keys.PRODUCT, keys.POPULAR,
                                                                  keys.TRENDING)},
            "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with store_errors():
        live = store.live()
        ok, text = gate.compare(live_metrics(store, live), info["metrics"], s.gate)
        held = not ok and not force
        if not ok and force:
            text += "; made live anyway (--force)"
        info["gate"] = REFUSED + text if held else text
        store.commit(version, info)  # complete either way: a refused version can be inspected, never rolled back to
        if held:
            raise GateRefused(f"version {version} did not pass the quality gate against live version {live}: {text}. "
                              f"It is published but NOT live (live stays {live}); `ecomrec publish --force` "
                              "publishes again and switches anyway")
        store.set_live(version)
        log.info("serving version %s is live (%s)", version, text)
        dropped = prune(store, s.keep_versions, version)
    return {"version": version, "store": store.description, "live": version, "rows": info["rows"], "gate": text,
            "dropped": dropped, "default_model": info["default_model"], "metrics": info["metrics"],
            "example_customer": keys.customer_of(first_key) if first_key else None}
