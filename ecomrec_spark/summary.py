"""What the CLI prints after a command: a few lines per stage, the timings, where the results are.

:func:`summarize` walks the stages of :data:`ecomrec_spark.registry.PIPELINE`
in order; each names its ``*_lines(result, lake)`` function here.  No pyspark.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ecomrec_spark import registry, runs


def summarize(result: Mapping[str, Any], lake: str) -> str:
    lines: list[str] = []
    if "generate" in result:
        g = result["generate"]
        lines.append(f"generated: {g.get('orders')} orders, {g.get('order_lines')} order lines, {g.get('events')} events "
                     f"in {len(g.get('files', {}))} CSV files -> {g.get('out_dir', '')} (ground truth in _truth/)")
    for stage in registry.PIPELINE:
        if stage.name in result:
            if stage.name == "publish" and runs.TIMINGS in result:  # before publish: its lines end on what to do next
                lines.append(timing_line(result[runs.TIMINGS]))
            lines += stage.summary_lines(result[stage.name], lake)
    if runs.TIMINGS in result and "publish" not in result:
        lines.append(timing_line(result[runs.TIMINGS]))
    if "recommend" in result:
        lines += recommendation_lines(result["recommend"])
    if "athena-ddl" in result:
        lines.append(f"athena-ddl: {result['athena-ddl']['path']}")
    if "predict-review" in result:
        e = result["predict-review"]
        lines.append(f"product {e['product_id']}: predicted mean score {e['predicted_mean_score']:.2f}, "
                     f"P(satisfied) {e['p_satisfied']:.3f} over {e['n_orders']} order(s) (model {e['model_version']})")
    return "\n".join(lines)


def timing_line(seconds: Mapping[str, float]) -> str:
    """run-all's wall time per stage, so the slow ones are visible."""
    return (f"stage times (total {sum(seconds.values()):.0f} s): "
            + ", ".join(f"{n} {s:.0f} s" for n, s in seconds.items()))


def ingest_lines(i: Mapping[str, Any], lake: str) -> list[str]:
    lines = [f"ingest: {i['files_ingested']} new file(s): raw {i['raw_records']} = bronze {i['bronze_rows']} "
             f"+ quarantine {i['quarantine_rows']}"]
    for f in i["per_file"]:
        lines.append(f"  {f['table']:<28} raw {f['raw_records']:>9} bronze {f['bronze_rows']:>9} "
                     f"quarantine {f['quarantine_rows']:>6}")
    return lines


def transform_lines(t: Mapping[str, Any], lake: str) -> list[str]:
    return ["tables:", *table_lines(t["tables"], lake)]


def _skipped(name: str, out: Mapping[str, Any]) -> list[str] | None:
    return [f"{name}: skipped, {out['skipped']}"] if "skipped" in out else None


def train_review_lines(t: Mapping[str, Any], lake: str) -> list[str]:
    return _skipped("train-review", t) or review_summary(t)


def score_reviews_lines(s: Mapping[str, Any], lake: str) -> list[str]:
    return _skipped("score-reviews", s) or [f"score-reviews: model {s['model_version']}", *table_lines(s["tables"], lake)]


def build_recommendations_lines(b: Mapping[str, Any], lake: str) -> list[str]:
    lines = [f"build-recommendations: version {b['model_version']}; "
             f"knn {b['info'].get('knn', {})}; hybrid weights {b['info'].get('hybrid_weights')}"]
    lines += build_lines(b["info"])
    lines += table_lines(b["tables"], lake)
    for entry in b.get("samples", []):
        lines += recommendation_lines(entry)
    return lines


def evaluate_lines(e: Mapping[str, Any], lake: str) -> list[str]:
    from ecomrec_spark.recommend.evaluate import markdown_table

    lines = [f"evaluate-recommendations: train before {e['info']['cutoff']}, "
             f"{e['info']['n_test_customers']} test customers ({e['info']['n_cold_customers']} without history); "
             f"table {e['table']}, report {e['report']}"]
    return lines + ["  " + row for row in markdown_table(e["results"])]


def register_lines(r: Mapping[str, Any], lake: str) -> list[str]:
    return [f"register-tables: {len(r['tables'])} tables in database {r['database']} "
            f"(e.g. spark.sql('select * from {r['database']}.recommendations'))"]


def insights_lines(i: Mapping[str, Any], lake: str) -> list[str]:
    return ["insights:", *table_lines(i["tables"], lake),
            f"  review sentiment: {json.dumps(i['sentiment'], default=str)[:400]}"]


def report_lines(r: Mapping[str, Any], lake: str) -> list[str]:
    return [f"report: {r['path']} ({len(r['sections'])} sections, {r['charts']} charts"
            + (f", {r['notes']} notes on missing tables" if r["notes"] else "") + ")"]


def table_lines(tables: Mapping[str, int], cfg_lake: str) -> list[str]:
    """``<lake>/<layer>/<table>  rows`` for each written table."""
    return [f"  {cfg_lake}/{table:<34} {n:>9} rows" for table, n in sorted(tables.items())]


def publish_lines(p: Mapping[str, Any], lake: str = "") -> list[str]:
    """``publish``, ``publish --list`` and ``publish --rollback`` results."""
    if "versions" in p:
        lines = [f"serving store {p['store']}: {len(p['versions'])} version(s)"]
        for v in p["versions"]:
            m = v.get("metrics") or {}
            lines.append(f"  {'*' if v.get('live') else ' '} {v['version']}  {v['status']:<8}  default {v.get('default_model')}"
                         f"  NDCG@10 {m.get('ndcg_at_10')}  review macro-F1 {m.get('review_macro_f1')}"
                         + ("  (refused by the gate)" if str(v.get("gate", "")).startswith("refused") else ""))
        return lines
    if "rolled_back_from" in p:
        return [f"serving store {p['store']}: live version {p['live']} (was {p['rolled_back_from']})"]
    if "skipped" in p:
        return [f"publish: skipped, {p['skipped']}"]
    state = "live" if p["live"] == p["version"] else f"NOT live (live stays {p['live']})"
    lines = [f"publish: version {p['version']} -> {p['store']}, {state}; documents: "  # customer: one per customer and model
             + ", ".join(f"{k} {n}" for k, n in p.get("rows", {}).items())]
    if p.get("gate"):
        lines.append(f"  gate: {p['gate']}")
    if p.get("dropped"):
        lines.append(f"  dropped old versions: {', '.join(p['dropped'])}")
    if p.get("example_customer"):
        lines += ["serve it: make serve   (or .venv/bin/ecomrec serve [--conf FILE] [--host H] [--port P])",
                  f"  curl http://127.0.0.1:8000/v1/customers/{p['example_customer']}/recommendations",
                  "  page http://127.0.0.1:8000/   API docs http://127.0.0.1:8000/docs"]
    return lines


def ab_lines(a: Mapping[str, Any], lake: str = "") -> list[str]:
    if "skipped" in a:
        return [f"ab-report: skipped, {a['skipped']}"]
    lines = [f"ab-report: {a['events']} API events -> {a['table']}"]
    for v in a.get("variants", []):
        lines.append(f"  {v['variant']:<12} impressions {v['impressions']:>7}  CTR {v['ctr']:.3f} "
                     f"[{v['ctr_lo']:.3f}, {v['ctr_hi']:.3f}]  conversion {v['conversion']:.3f} "
                     f"[{v['conversion_lo']:.3f}, {v['conversion_hi']:.3f}]")
    return lines


def build_lines(info: Mapping[str, Any]) -> list[str]:
    """The served default, the validation NDCG@k of every list and the ranker's strongest features."""
    d = info.get("default", {})
    out = [f"  served default: {d.get('model')} (by {d.get('by')}, setting {d.get('setting')}); "
           f"validation window from {info.get('validation_from', '')[:10]}, NDCG@k:"]
    for setting in ("all", "new"):
        row = [f"{r['model']} {r['ndcg_at_k']:.4f}" for r in info.get("validation", [])
               if r["setting"] == setting and r["ndcg_at_k"] is not None]
        out.append(f"    {setting:<4} " + ", ".join(row))
    for setting, imp in (info.get("ranker") or {}).get("importance", {}).items():
        top = ", ".join(f"{k} {v:.1f}" for k, v in list(imp.items())[:8])
        out.append(f"  ranker ({setting}) params {info['ranker']['params'].get(setting)}; top gain: {top}")
    return out


def recommendation_lines(entry: Mapping[str, Any]) -> list[str]:
    """One customer's list, a line per product with its category, price and reason."""
    head = f"customer {entry['customer_id']}, model {entry['model']}"
    if entry["fallback"]:
        head += ": no list for this customer and model, popularity fallback"
    out = [head]
    for it in entry["items"]:
        price = "-" if it["price"] is None else f"{it['price']:.2f}"
        out.append(f"  {it['rank']:>3}. {it['product_id']:<34} {str(it['category'] or '-'):<24} {price:>9}  "
                   f"{it['score']:.3f}  {it['reason']}")
    return out


def review_summary(t: Mapping[str, Any]) -> list[str]:
    """The comparison table of ``train-review`` for the terminal."""
    def f(x: Any, d: int = 4) -> str:
        return "-" if x is None else f"{x:.{d}f}"

    lines = [f"review model {t['version']} -> {t['model_path']} (rows {t['rows']}; report {t['report']})"]
    for target, rows in t["results"].items():
        lines.append(f"  target {target}:")
        lines.append(f"    {'model':<22} {'weights':<11} {'accuracy':>8} {'macro-F1':>8} {'wF1':>7} {'ROC-AUC':>7} "
                     f"{'PR-AUC':>7} {'train s':>7}")
        for r in rows:
            extra = f"  (expected {f(r['expected_accuracy'])})" if r.get("expected_accuracy") is not None else ""
            lines.append(f"    {r['model']:<22} {r['class_weights']:<11} {f(r['accuracy']):>8} {f(r['macro_f1']):>8} "
                         f"{f(r['weighted_f1'], 3):>7} {f(r['roc_auc'], 3):>7} {f(r['pr_auc'], 3):>7} "
                         f"{f(r['train_seconds'], 1):>7}{extra}")
    return lines


