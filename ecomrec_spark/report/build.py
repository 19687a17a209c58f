"""``ecomrec report``: the dashboards as one self-contained HTML page, ``<paths.reports>/index.html``.

Each section reads gold/silver/quarantine Delta tables, aggregates in Spark and
brings at most :data:`MAX_ROWS` aggregate rows to the driver; charts are inline
SVG (:mod:`ecomrec_spark.report.svg`).  A table that does not exist yet (a source
without events, a lake before ``ecomrec insights``) becomes a note naming the
command that writes it, so the page is useful at every stage of a run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.insights import analytics as A
from ecomrec_spark.report import svg
from ecomrec_spark.report.page import Section, kpis, note, render, table

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)

MAX_ROWS = 2000  # the most aggregate rows any one chart or table brings to the driver (weeks, reasons, ...)
TOP = 12  # bars per ranked chart
INSIGHTS_HINT = "run `ecomrec insights`"


class Tables:
    """Lazy, cached reads of the lake's tables; ``None`` for a table not written yet."""

    def __init__(self, spark: SparkSession, root: str) -> None:
        self.spark, self.root = spark, root
        self._cache: dict[tuple[str, str], DataFrame | None] = {}

    def get(self, layer: str, table: str) -> DataFrame | None:
        key = (layer, table)
        if key not in self._cache:
            self._cache[key] = lk.read_optional(self.spark, self.root, layer, table)
        return self._cache[key]

    def insight(self, name: str) -> DataFrame | None:
        return self.get("gold", A.TABLE_PREFIX + name)


def rows(df: DataFrame, limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """At most ``limit`` rows of an aggregate as dicts (never row-level data); a cut is logged."""
    got = [r.asDict() for r in df.limit(limit + 1).collect()]
    if len(got) > limit:
        log.warning("report: an aggregate has more than %d rows; showing the first %d", limit, limit)
    return got[:limit]


def _col(rs: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    return [r[key] for r in rs]


def _latest(df: DataFrame, column: str) -> DataFrame:
    """The rows of the newest value of ``column`` (the last model version or evaluation run)."""
    newest = df.agg(F.max(column).alias("_v"))
    return df.join(F.broadcast(newest), F.col(column) == F.col("_v")).drop("_v")


# --------------------------------------------------------------------------- sections

def overview(t: Tables) -> Section:
    s = Section("overview", "Overview", "What the lake holds: sold order lines (canceled and unavailable orders "
                "excluded), customers, products and the period covered.")
    of = t.get("gold", "order_features")
    if of is None:
        s.blocks.append(note("no gold/order_features table: run `ecomrec transform`"))
        return s
    sold = A.sold_lines(of)
    r = rows(sold.agg(F.countDistinct(C.ORDER_ID).alias("orders"), F.countDistinct(C.CUSTOMER_ID).alias("customers"),
                      F.countDistinct(C.PRODUCT_ID).alias("products"), F.sum("amount").alias("revenue"),
                      F.min(C.ORDER_DATE).alias("first"), F.max(C.ORDER_DATE).alias("last")))[0]
    s.blocks.append(kpis([("orders", r["orders"]), ("customers", r["customers"]), ("products sold", r["products"]),
                          ("revenue", float(r["revenue"] or 0.0)), ("first order", str(r["first"])),
                          ("last order", str(r["last"]))]))
    return s


def _reason_kind(reason: str) -> Column:
    """A quarantine reason without its quoted value ("bad timestamp in x: '…'" -> "bad timestamp in x")."""
    return F.regexp_replace(F.col(reason), r": '.*$", "")


def data_quality(t: Tables) -> Section:
    s = Section("data-quality", "Data quality", "Nothing is dropped silently: every rejected record sits in a "
                "quarantine table with its reason, and every IQR outlier in silver/order_line_outliers.")
    recon = t.get("bronze", "ingest_reconciliation")
    if recon is not None:
        per = rows(recon.groupBy("table").agg(F.sum("raw_records").alias("raw"), F.sum("bronze_rows").alias("bronze"),
                                              F.sum("quarantine_rows").alias("quarantine"),
                                              F.count(F.lit(1)).alias("files")).orderBy("table"))
        s.blocks.append(table(["table", "files", "raw records", "bronze rows", "quarantined"],
                              [(r["table"], r["files"], r["raw"], r["bronze"], r["quarantine"]) for r in per],
                              "Ingest reconciliation: raw = bronze + quarantine"))
    frames = []
    for name in _quarantine_tables(t):
        q = t.get("quarantine", name)
        if q is None or "reason" not in q.columns:
            continue
        src = F.col("table") if "table" in q.columns else F.lit(name)
        frames.append(q.select(src.alias("table"), F.explode(F.split("reason", "; ")).alias("reason")))
    if frames:
        union = frames[0]
        for f in frames[1:]:
            union = union.unionByName(f)
        by = rows(union.groupBy("table", _reason_kind("reason").alias("reason")).count()
                  .orderBy(F.desc("count"), "table", "reason"))
        s.chart(svg.hbar_chart("Quarantined records by reason (top 12)",
                               [f"{r['table']}: {r['reason']}" for r in by[:TOP]], _col(by[:TOP], "count")),
                "no quarantined records")
        s.blocks.append(table(["table", "reason", "records"], [(r["table"], r["reason"], r["count"]) for r in by],
                              "Quarantine counts by reason"))
    else:
        s.blocks.append(note("no quarantine tables: run `ecomrec ingest`"))
    lines, outliers = t.get("silver", "order_lines"), t.get("silver", "order_line_outliers")
    if lines is not None and outliers is not None:
        def per_category(df: DataFrame, name: str) -> DataFrame:
            category = F.coalesce(F.col(C.CATEGORY), F.lit(C.UNKNOWN_CATEGORY)).alias(C.CATEGORY)
            return df.groupBy(category).agg(F.count(F.lit(1)).alias(name))

        both = per_category(lines, "kept").join(per_category(outliers, "removed"), C.CATEGORY, "full").na.fill(0)
        top = rows(both.orderBy(F.desc("removed"), C.CATEGORY), TOP)
        s.chart(svg.hbar_chart(f"IQR outliers removed by category (top {TOP})", _col(top, C.CATEGORY),
                               _col(top, "removed")), "no outliers removed")
        total = rows(both.agg(F.sum("removed").alias("removed"), F.sum(F.col("kept") + F.col("removed")).alias("all")))[0]
        s.blocks.append(kpis([("outlier lines removed", total["removed"] or 0),
                              ("share of order lines", (total["removed"] or 0) / total["all"] if total["all"] else 0.0)]))
    else:
        s.blocks.append(note("no silver/order_lines: run `ecomrec transform`"))
    return s


def _quarantine_tables(t: Tables) -> list[str]:
    """The quarantine tables' names (one per bronze table, plus ``transform_rejects``)."""
    from ecomrec_spark import storage

    root, fs = storage.hadoop_fs(t.spark, f"{t.root.rstrip('/')}/quarantine")
    if not fs.exists(root):
        return []
    return sorted(str(st.getPath().getName()) for st in fs.listStatus(root) if st.isDirectory())


def sales(t: Tables) -> Section:
    s = Section("sales", "Sales trends", "Revenue and orders over time, by category and by region "
                "(gold/insights_sales_trends, insights_top_products).")
    trends = t.insight("sales_trends")
    if trends is None:
        s.blocks.append(note(f"no gold/insights_sales_trends: {INSIGHTS_HINT}"))
        return s
    monthly = rows(trends.where("grain = 'month' AND dimension = 'total'").orderBy("period"))
    weekly = rows(trends.where("grain = 'week' AND dimension = 'total'").orderBy("period"))
    s.charts((svg.line_chart("Revenue by month", [str(r["period"])[:7] for r in monthly],
                             {"revenue": _col(monthly, "revenue")}), "no monthly sales"),
             (svg.line_chart("Orders by week", [str(r["period"]) for r in weekly],
                             {"orders": _col(weekly, "n_orders")}), "no weekly sales"))
    ranked = []
    for dim in ("category", "region"):
        top = rows(trends.where(f"grain = 'month' AND dimension = '{dim}'").groupBy("value")
                   .agg(F.sum("revenue").alias("revenue")).orderBy(F.desc("revenue"), "value"), TOP)
        ranked.append((svg.hbar_chart(f"Revenue by {dim} (top {TOP})", _col(top, "value"), _col(top, "revenue")),
                       f"no {dim} in the data"))
    s.charts(*ranked)
    tp = t.insight("top_products")
    if tp is not None:
        last = rows(_latest(tp, "month").orderBy("rank"))
        if last:
            s.blocks.append(table(["rank", "product", "category", "orders", "units", "revenue"],
                                  [(r["rank"], r[C.PRODUCT_ID], r[C.CATEGORY], r["n_orders"], r["units"], r["revenue"])
                                   for r in last], f"Best-selling products in {str(last[0]['month'])[:7]}", 2))
    return s


def seasonality(t: Tables) -> Section:
    s = Section("seasonality", "Seasonal demand", "Units by month of year and weekday, the holiday-season lift "
                "(units per day in season / out of season) and each category's correlation with total demand.")
    month, weekday = t.insight("demand_by_month"), t.insight("demand_by_weekday")
    if month is None or weekday is None:
        s.blocks.append(note(f"no gold/insights_demand_by_month: {INSIGHTS_HINT}"))
        return s
    m = rows(month.orderBy("month"))
    w = rows(weekday.orderBy("weekday"))
    s.charts((svg.bar_chart("Units by month of year", [str(r["month"]) for r in m], {"units": _col(m, "units")}),
              "no monthly demand"),
             (svg.bar_chart("Units by weekday", _col(w, "weekday_name"), {"units": _col(w, "units")}),
              "no weekday demand"))
    lift, corr = t.insight("holiday_lift"), t.insight("season_correlation")
    charts = []
    if lift is not None:
        lr = rows(lift.where("level = 'category' AND lift IS NOT NULL").orderBy(F.desc("lift"), C.CATEGORY), TOP)
        overall = rows(lift.where("level = 'overall'"))
        head = f" (overall {overall[0]['lift']:.2f}x)" if overall and overall[0]["lift"] is not None else ""
        charts.append((svg.hbar_chart(f"Holiday lift by category{head}", _col(lr, C.CATEGORY), _col(lr, "lift"), "x"),
                       "no holiday-season days in the data"))
    if corr is not None:
        cr = rows(corr.where("corr_monthly IS NOT NULL").orderBy(F.desc("corr_monthly"), C.CATEGORY), TOP)
        charts.append((svg.hbar_chart("Correlation of category demand with total demand", _col(cr, C.CATEGORY),
                                      _col(cr, "corr_monthly")), "too few months to correlate"))
    if charts:
        s.charts(*charts)
    return s


def behaviour(t: Tables) -> Section:
    s = Section("behaviour", "Behaviour (clickstream)", "The seven behaviour schemas: daily category counts, views, "
                "purchases and users by date, purchases per customer, purchases by category / sub-category / brand, "
                "and product views by category per day.")
    views, buys, users = t.insight("views_by_date"), t.insight("purchases_by_date"), t.insight("users_per_date")
    if views is None or buys is None or users is None:
        s.blocks.append(note(f"no behaviour tables (the sources have no events, or {INSIGHTS_HINT})"))
        return s
    # weeks, not days: a bounded series for any history length
    week = F.date_trunc("week", F.col(A.EVENT_DATE)).cast("date").alias("week")
    weekly = rows(views.join(buys, A.EVENT_DATE, "full").join(users, A.EVENT_DATE, "full").groupBy(week).agg(
        F.sum("n_views").alias("views"), F.sum("n_purchases").alias("purchases"),
        F.avg("n_users").alias("users"), F.avg("n_buyers").alias("buyers")).orderBy("week"))
    weeks = [str(r["week"]) for r in weekly]
    s.charts((svg.line_chart("View and purchase events per week", weeks,
                             {"views": _col(weekly, "views"), "purchases": _col(weekly, "purchases")}),
              "no events by date"),
             (svg.line_chart("Users and buyers per day (weekly mean)", weeks,
                             {"users": _col(weekly, "users"), "buyers": _col(weekly, "buyers")}), "no users by date"))
    dcc, pbc, ppc = (t.insight(n) for n in ("daily_category_counts", "purchases_by_category", "purchases_per_customer"))
    charts = []
    if dcc is not None:
        top = rows(dcc.groupBy(C.CATEGORY).agg(F.sum("n_events").alias("n")).orderBy(F.desc("n"), C.CATEGORY), 4)
        names = [r[C.CATEGORY] for r in top]
        per = rows(dcc.where(F.col(C.CATEGORY).isin(*names)).groupBy(week, C.CATEGORY)
                   .agg(F.sum("n_events").alias("n")), MAX_ROWS * 4)
        by = {(str(r["week"]), r[C.CATEGORY]): r["n"] for r in per}
        weeks = sorted({w for w, _ in by})
        charts.append((svg.line_chart("Events per week, top 4 categories", weeks,
                                      {str(c): [by.get((w, c)) for w in weeks] for c in names}), "no category counts"))
    if pbc is not None:
        top = rows(pbc.groupBy(C.CATEGORY).agg(F.sum("n_purchases").alias("n")).orderBy(F.desc("n"), C.CATEGORY), TOP)
        charts.append((svg.hbar_chart("Purchase events by category", _col(top, C.CATEGORY), _col(top, "n")),
                       "no purchases by category"))
    if ppc is not None:
        hist = rows(ppc.groupBy(F.least(F.col("n_purchases"), F.lit(10)).alias("k")).count().orderBy("k"))
        charts.append((svg.bar_chart("Customers by number of purchase events (10 = 10+)", [str(r["k"]) for r in hist],
                                     {"customers": _col(hist, "count")}), "no purchases per customer"))
    if charts:
        s.charts(*charts)
    counts = [(n, None if (df := t.insight(n)) is None else df.count()) for n in (
        "daily_category_counts", "views_by_date", "purchases_by_date", "users_per_date", "purchases_per_customer",
        "purchases_by_category", "product_views_by_category_day")]
    s.blocks.append(table(["table (ecomrec.insights_…)", "rows"], counts, "The seven behaviour tables"))
    return s


def review_impact(t: Tables) -> Section:
    s = Section("review-impact", "Review impact on purchases", "Conversion (purchase events / view events) by the "
                "product's mean review score, and how next month's units move after a product's monthly rating "
                "goes down, stays flat or goes up.")
    conv, moves = t.insight("conversion_by_rating"), t.insight("rating_move_impact")
    if conv is None and moves is None:
        s.blocks.append(note(f"no review-impact tables: {INSIGHTS_HINT}"))
        return s
    charts = []
    if conv is not None:
        c = rows(conv.orderBy("band"))
        charts.append((svg.bar_chart("Conversion by rating band", _col(c, "band"), {"conversion": _col(c, "conversion")}),
                       "no views of rated products"))
    if moves is not None:
        order = F.when(F.col("band") == "down", 0).when(F.col("band") == "flat", 1).otherwise(2)
        mv = rows(moves.orderBy(order))
        charts.append((svg.bar_chart("Units this month and next, by rating move", _col(mv, "band"),
                                     {"this month": _col(mv, "mean_units_month"),
                                      "next month": _col(mv, "mean_units_next_month")}), "no rating moves"))
        s.blocks.append(table(["rating move", "product-months", "mean score change", "mean units change"],
                              [(r["band"], r["n_product_months"], r["mean_score_change"], r["mean_units_change"])
                               for r in mv], "", 3))
    s.charts(*charts)
    return s


def review_prediction(t: Tables) -> Section:
    s = Section("review-prediction", "Review prediction: predicted against actual", "The latest review model's "
                "predicted score against the review the customer left, over reviewed order lines.")
    conf = t.insight("prediction_confusion")
    if conf is None:
        s.blocks.append(note(f"no gold/insights_prediction_confusion: run `ecomrec score-reviews`, then {INSIGHTS_HINT}"))
        return s
    cells = rows(conf.groupBy("actual", "predicted").agg(F.sum("n").alias("n")))
    labels = [1, 2, 3, 4, 5]
    by = {(r["actual"], r["predicted"]): r["n"] for r in cells}
    matrix = [[by.get((a, p), 0) for p in labels] for a in labels]
    per_cat = rows(conf.groupBy(C.CATEGORY).agg(
        F.sum("n").alias("n"), F.sum(F.when(F.col("actual") == F.col("predicted"), F.col("n")).otherwise(0)).alias("hit"),
        F.sum(F.col("n") * F.col("actual")).alias("sa"), F.sum(F.col("n") * F.col("predicted")).alias("sp"))
        .withColumn("accuracy", F.try_divide(F.col("hit").cast("double"), F.col("n")))
        .orderBy(F.desc("n"), C.CATEGORY), TOP)
    s.charts((svg.heatmap("Predicted vs actual review score (lines)", [str(a) for a in labels],
                          [str(p) for p in labels], matrix, "actual", "predicted"), "no scored reviews"),
             (svg.bar_chart("Mean actual vs predicted score, largest categories", _col(per_cat, C.CATEGORY),
                            {"actual": [r["sa"] / r["n"] for r in per_cat],
                             "predicted": [r["sp"] / r["n"] for r in per_cat]}), "no categories"))
    s.blocks.append(table(["category", "reviewed lines", "exact-score accuracy"],
                          [(r[C.CATEGORY], r["n"], r["accuracy"]) for r in per_cat], "Accuracy by category", 3))
    return s


def review_models(t: Tables) -> Section:
    s = Section("review-models", "Review-score models compared", "Tuned distributed XGBoost against the baselines "
                "on the held-out test orders of the latest training run (gold/review_model_metrics).")
    metrics = t.get("gold", "review_model_metrics")
    if metrics is None:
        s.blocks.append(note("no gold/review_model_metrics: run `ecomrec train-review`"))
        return s
    latest = rows(_latest(metrics, "model_version").orderBy("target", F.desc("macro_f1")))
    charts = []
    for target in sorted({r["target"] for r in latest}):
        rs = [r for r in latest if r["target"] == target]
        names = [f"{r['model']} ({r['class_weights']})" if r["class_weights"] not in ("-", "unweighted") else r["model"]
                 for r in rs]
        s.blocks.append(table(["model", "class weights", "accuracy", "macro-F1", "weighted F1", "macro precision",
                               "macro recall", "ROC-AUC", "test rows"],
                              [(r["model"], r["class_weights"], r["accuracy"], r["macro_f1"], r["weighted_f1"],
                                _mean(r["precision"]), _mean(r["recall"]), r["roc_auc"], r["n_test"]) for r in rs],
                              f"target {target} (model version {rs[0]['model_version']})"))
        charts.append((svg.bar_chart(f"Target {target}: accuracy and macro-F1", names,
                                     {"accuracy": _col(rs, "accuracy"), "macro-F1": _col(rs, "macro_f1")}),
                       f"no metrics for {target}"))
    s.charts(*charts)
    return s


def _mean(values: Sequence[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def sentiment(t: Tables) -> Section:
    s = Section("sentiment", "Sentiment of the review text", "An MLlib TF-IDF + logistic regression model trained on "
                "review scores as weak labels (>= 4 positive, <= 2 negative), evaluated on held-out reviews.")
    metrics, reviews = t.get("gold", "sentiment_metrics"), t.get("gold", "review_sentiment")
    if metrics is None or reviews is None:
        s.blocks.append(note(f"no gold/sentiment_metrics: {INSIGHTS_HINT} (needs reviews with text)"))
        return s
    m = rows(_latest(metrics, "trained_at"))[0]
    s.blocks.append(table(["model version", "test reviews", "accuracy", "ROC-AUC", "PR-AUC", "F1 positive",
                           "F1 negative", "vocabulary"],
                          [(m["model_version"], m["n_test"], m["accuracy"], m["roc_auc"], m["pr_auc"], m["f1_positive"],
                            m["f1_negative"], m["vocabulary_size"])], "Held-out metrics of the latest model"))
    by = rows(reviews.groupBy(C.REVIEW_SCORE).agg(F.avg("sentiment").alias("p"), F.count(F.lit(1)).alias("n"))
              .orderBy(C.REVIEW_SCORE))
    charts = [(svg.bar_chart("Mean P(positive text) by review score", [str(r[C.REVIEW_SCORE]) for r in by],
                             {"P(positive)": _col(by, "p")}), "no scored reviews")]
    products, features = t.get("gold", "product_sentiment"), t.get("gold", "product_features")
    if products is not None and features is not None:
        cats = features.select(C.PRODUCT_ID, C.CATEGORY).dropDuplicates([C.PRODUCT_ID])
        pc = rows(products.join(cats, C.PRODUCT_ID).groupBy(C.CATEGORY).agg(
            F.try_divide(F.sum(F.col("mean_sentiment") * F.col("n_reviews_with_text")),
                         F.sum("n_reviews_with_text")).alias("p"),
            F.sum("n_reviews_with_text").alias("n")).orderBy(F.desc("n"), C.CATEGORY), TOP)
        charts.append((svg.hbar_chart("Mean text sentiment, largest categories", _col(pc, C.CATEGORY), _col(pc, "p")),
                       "no product sentiment"))
    s.charts(*charts)
    return s


def recommendations(t: Tables) -> Section:
    s = Section("recommendations", "Recommendations", "Offline evaluation on a time split (gold/"
                "recommendation_metrics, latest run), catalogue coverage, fallback share and the most recommended "
                "products by category.")
    metrics = t.get("gold", "recommendation_metrics")
    if metrics is None:
        s.blocks.append(note("no gold/recommendation_metrics: run `ecomrec evaluate-recommendations`"))
    else:
        ms = rows(_latest(metrics, "evaluated_at").orderBy("setting", F.desc("ndcg_at_k")))
        k = ms[0]["k"] if ms else "k"
        models = list(dict.fromkeys(r["model"] for r in ms))
        series = {st: [next((r["ndcg_at_k"] for r in ms if r["model"] == mo and r["setting"] == st), None)
                       for mo in models] for st in dict.fromkeys(r["setting"] for r in ms)}
        s.chart(svg.bar_chart(f"NDCG@{k} by model (all items / new items only)", models, series),
                "no evaluation rows")
        s.blocks.append(table(["model", "setting", f"precision@{k}", f"recall@{k}", f"NDCG@{k}", f"MAP@{k}", "MRR",
                               "hit rate", "coverage", "users"],
                              [(r["model"], r["setting"], r["precision_at_k"], r["recall_at_k"], r["ndcg_at_k"],
                                r["map_at_k"], r["mrr"], r["hit_rate"], r["coverage"], r["n_users"]) for r in ms],
                              "Ranking metrics"))
    cov, fb, top = t.insight("catalogue_coverage"), t.insight("fallback_share"), t.insight("top_recommended_products")
    if cov is None or fb is None:
        s.blocks.append(note(f"no recommendation insights: run `ecomrec build-recommendations`, then {INSIGHTS_HINT}"))
        return s
    both = rows(cov.join(fb.drop("n_customers"), "model", "left").orderBy("model"))
    s.charts((svg.hbar_chart("Catalogue coverage by model", _col(both, "model"), _col(both, "coverage")),
              "no recommendations"),
             (svg.hbar_chart("Share of customers with a fallback list", _col(both, "model"), _col(both, "fallback_share")),
              "no recommendations"))
    s.blocks.append(table(["model", "customers", "products recommended", "catalogue", "coverage", "fallback share",
                           "partly fallback"],
                          [(r["model"], r["n_customers"], r["n_recommended"], r["catalogue_size"], r["coverage"],
                            r["fallback_share"], r["any_fallback_share"]) for r in both], "", 3))
    if top is not None:
        model = "hybrid" if both and "hybrid" in _col(both, "model") else (both[0]["model"] if both else None)
        best = rows(top.where((F.col("model") == model) & (F.col("rank") <= 3)).orderBy(C.CATEGORY, "rank"), 90)
        s.blocks.append(table(["category", "rank", "product", "customers", "mean list position"],
                              [(r[C.CATEGORY], r["rank"], r[C.PRODUCT_ID], r["n_customers"], r["mean_list_rank"])
                               for r in best], f"Most recommended products by category (model {model}, top 3)", 2))
    return s


def _interval(lo: float | None, hi: float | None) -> str:
    """``[lo, hi]`` to three places, ``-`` when there is none (no impressions, or the control's own row)."""
    return "-" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"


def ab_test(t: Tables) -> Section:
    s = Section("ab-test", "A/B variants", "From the events the API took back (POST /v1/events), per served "
                "variant: click-through = clicks / impressions and conversion = purchases / impressions, with 95% "
                "Wilson intervals, and each variant minus the control with a 95% interval (normal approximation). "
                "An interval of the difference that excludes 0 is a difference at the 5% level.")
    ab = t.insight("ab_test")
    if ab is None:
        s.blocks.append(note("no gold/insights_ab_test: no API events yet (POST /v1/events, then `ecomrec ingest` "
                             "and `ecomrec transform`), or run `ecomrec ab-report`"))
        return s
    rs = rows(ab.orderBy(F.col("is_control").desc(), "variant"))
    names = _col(rs, "variant")
    s.chart(svg.bar_chart("Click-through and conversion by variant", names,
                          {"click-through": _col(rs, "ctr"), "conversion": _col(rs, "conversion")}),
            "no variant has impressions")
    control = rs[0]["control"] if rs else None
    s.blocks.append(table(
        ["variant", "customers", "impressions", "clicks", "purchases", "click-through", "95% interval",
         "conversion", "95% interval", f"click-through - {control}", "95% interval", f"conversion - {control}",
         "95% interval"],
        [(r["variant"] + (" (control)" if r["is_control"] else ""), r["customers"], r["impressions"], r["clicks"],
          r["purchases"], r["ctr"], _interval(r["ctr_lo"], r["ctr_hi"]), r["conversion"],
          _interval(r["conversion_lo"], r["conversion_hi"]), r["ctr_diff"],
          _interval(r["ctr_diff_lo"], r["ctr_diff_hi"]), r["conversion_diff"],
          _interval(r["conversion_diff_lo"], r["conversion_diff_hi"])) for r in rs],
        "Variants (gold/insights_ab_test)", 3))
    return s


SECTIONS: tuple[Callable[[Tables], Section], ...] = (
    overview, data_quality, sales, seasonality, behaviour, review_impact, review_prediction, review_models, sentiment,
    recommendations, ab_test)
SECTION_IDS = ("overview", "data-quality", "sales", "seasonality", "behaviour", "review-impact", "review-prediction",
               "review-models", "sentiment", "recommendations", "ab-test")


def report_path(settings: Settings) -> str:
    """``<paths.reports>/index.html``; a ``ConfigError`` when ``paths.reports`` is not set."""
    return f"{settings.paths.folder('reports')}/index.html"


def build_report(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """Build every section from the lake and write ``<paths.reports>/index.html`` (local or s3://)."""
    from ecomrec_spark.storage import write_text

    root = settings.paths.lake
    if not lk.exists(spark, lk.table_path(root, "gold", "order_features")) and \
            not lk.exists(spark, lk.table_path(root, "silver", "events")):
        raise FileNotFoundError(f"no gold/order_features or silver/events under {root}; run `ecomrec transform` first")
    tables = Tables(spark, root)
    sections = []
    for make in SECTIONS:
        log.info("report section %s", make.__name__)
        sections.append(make(tables))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    html = render("ecomrec_spark report", f"lake {root} · built {stamp}", sections)
    path = report_path(settings)
    write_text(spark, path, html)
    charts = html.count('class="chart"')
    return {"path": path, "sections": [s.id for s in sections], "charts": charts, "notes": html.count('class="note"')}
