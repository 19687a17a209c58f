"""``ecomrec``: one command line for every job.

``ecomrec ingest --conf conf/local.yaml`` does the same work as
``spark-submit jobs/ingest.py --conf conf/local.yaml``: the files in ``jobs/``
call :func:`main` with their command name.  Arguments and config are checked
before Spark starts; a bad one exits with code 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from typing import Any, Mapping, Sequence

from ecomrec_spark import runs
from ecomrec_spark.config import ConfigError, is_local_path, load_config, local_path
from ecomrec_spark.identifiers import CUSTOMER_ID_PATTERN
from ecomrec_spark.lease import LeaseHeld
from ecomrec_spark.serving.gate import GateRefused

log = logging.getLogger("ecomrec_spark")

COMMANDS = {
    "generate": "write a synthetic Olist + REES46 data set (real formats, planted structure and messy rows)",
    "ingest": "raw CSVs under paths.raw -> bronze Delta tables, bad records -> quarantine, reconciliation per file",
    "transform": "bronze -> silver (clean, deduplicated, imputed, outliers removed) -> gold feature tables",
    "train-review": "train, tune and compare the review-score models on the gold tables; save the tuned model",
    "score-reviews": "score every order line with the latest review model -> gold review_predictions, product_review_scores",
    "predict-review": "print one product's predicted review score (from gold product_review_scores)",
    "build-recommendations": "fit knn, hybrid, ALS, content and popularity recommenders -> gold recommendations, "
                             "similar_items, association_rules, popular_items",
    "evaluate-recommendations": "time-split offline evaluation of every recommender and baseline -> "
                                "gold recommendation_metrics and reports/recommendations.md",
    "insights": "analytics tables for Athena (behaviour, sales trends, seasonality, review impact, prediction "
                "confusion, recommendation insights) -> gold insights_<name>; review-text sentiment (MLlib) -> "
                "gold review_sentiment, product_sentiment",
    "report": "one self-contained HTML page with the dashboards, model comparisons, recommendation metrics and "
              "data-quality figures -> <paths.reports>/index.html",
    "ab-report": "A/B variants compared on the events the API took back (impressions, click-through and conversion "
                 "with 95%% intervals) -> gold insights_ab_test and a report section",
    "register-tables": "register every silver and gold Delta table as ecomrec.<table> in the metastore "
                       "(the session catalog locally, Glue on EMR)",
    "athena-ddl": "write the Athena CREATE EXTERNAL TABLE ... TBLPROPERTIES ('table_type'='DELTA') statements",
    "upload-raw": "upload a local raw folder to S3 with boto3: ecomrec upload-raw --from DIR --to s3://bucket/raw",
    "recommend": "print one customer's top k (unknown customers get the popularity fallback)",
    "emr": "launch and manage the pipeline on EMR: ecomrec emr up|submit|status|logs|down (see emr/README.md)",
    "publish": "copy the latest gold lists, product pages and popular lists into the serving store as a new version; "
               "live only if the quality gate passes (exit 3 otherwise); --list, --rollback, --force",
    "serve": "the online API and page (FastAPI + uvicorn, no Spark) over the serving store's live version",
    "run-all": "every pipeline stage in order (ingest, transform, train-review, score-reviews, build- and "
               "evaluate-recommendations, insights, ab-report, register-tables, report, publish) on the configured input",
}


# commands that never write the lake; every other command takes the lake's writer lease (ecomrec_spark.lease)
NO_LAKE_WRITES = ("generate", "athena-ddl", "upload-raw", "recommend", "predict-review", "emr", "serve")
LEASE_HELD_EXIT = 4  # another run is writing the lake: nothing was done, try again later


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conf", default=None, metavar="FILE", help="YAML config (default: conf/local.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set paths.lake=/tmp/lake (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecomrec", description="Spark-native e-commerce recommendations and review-score prediction on Delta Lake.",
        epilog="Every command is also a spark-submit entry point: spark-submit jobs/<command>.py --conf FILE ...")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        _common(p)
        if name not in NO_LAKE_WRITES:
            p.add_argument("--break-lock", action="store_true",
                           help="take over the lake's writer lease if its holder let it expire (never a live one)")
        if name == "generate":
            p.add_argument("--out", default=None, help="output folder (default: paths.generated)")
            p.add_argument("--orders", type=int, default=None, help="number of orders (default: generate.orders)")
            p.add_argument("--seed", type=int, default=None, help="random seed; same seed, same files (default: generate.seed)")
        if name == "predict-review":
            p.add_argument("--product-id", required=True, metavar="ID",
                           help="product id: letters, digits, '_', '-' or '.', at most 64 characters")
        if name == "athena-ddl":
            p.add_argument("--out", default=None, help="DDL file (default: <paths.reports>/athena_ddl.sql)")
            p.add_argument("--s3-lake", default=None, help="s3:// URI of the lake Athena reads (default catalog.s3_lake, "
                                                           "or paths.lake when it is on S3)")
        if name == "register-tables":
            p.add_argument("--athena", action="store_true",
                           help="also create the tables in Glue through Athena (needs catalog.athena_output)")
        if name == "recommend":
            from ecomrec_spark.identifiers import SERVE_MODELS  # not recommend.serve: that imports pyspark

            p.add_argument("--customer-id", required=True, metavar="ID",
                           help="customer id: letters, digits, '_', '-', '.' or ':', at most 64 characters")
            p.add_argument("--k", type=int, default=10, help="list length (1-100, default 10)")
            p.add_argument("--model", default=None, choices=SERVE_MODELS,
                           help="which model's list (default: the served default the last build picked on validation)")
        if name == "publish":
            p.add_argument("--force", action="store_true", help="make the new version live even if the gate refuses it")
            p.add_argument("--list", action="store_true", help="list the published versions with their metrics (no Spark)")
            p.add_argument("--rollback", action="store_true", help="make the previous version live (no Spark)")
        if name == "serve":
            p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
            p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
        if name == "run-all":
            p.add_argument("--generate", action="store_true",
                           help="first generate the demo data set into paths.raw (what `make demo` does)")
    return parser


def _validate_args(args: argparse.Namespace, cfg: Mapping[str, Any]) -> None:
    if getattr(args, "orders", None) is not None and args.orders < 10:
        raise ConfigError(f"--orders must be at least 10, got {args.orders}")
    if getattr(args, "seed", None) is not None and args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if getattr(args, "product_id", None) is not None:
        from ecomrec_spark.review.score import PRODUCT_ID_PATTERN

        if not PRODUCT_ID_PATTERN.fullmatch(args.product_id):
            raise ConfigError(f"--product-id {args.product_id!r} is not a product id: use 1-64 letters, digits, "
                              "'_', '-' or '.'")


def _validate_recommend(args: argparse.Namespace) -> None:
    if not CUSTOMER_ID_PATTERN.fullmatch(args.customer_id):
        raise ConfigError(f"--customer-id {args.customer_id!r} is not a customer id: use 1-64 letters, digits, "
                          "'_', '-', '.' or ':'")
    if not 1 <= args.k <= 100:
        raise ConfigError(f"--k must be in [1, 100], got {args.k}")


def _generate(spark, cfg: Mapping[str, Any], out: str | None, orders: int | None, seed: int | None) -> dict[str, Any]:
    from ecomrec_spark.config import validate_uri
    from ecomrec_spark.generate.dataset import generate_dataset

    target = out or cfg["paths"]["generated"]
    validate_uri("--out", target)
    settings = dict(cfg.get("generate", {}))
    if orders is not None:
        settings["orders"] = orders
    if seed is not None:
        settings["seed"] = seed
    return generate_dataset(spark, str(local_path(target).resolve()), settings)


def run(args: argparse.Namespace, cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if cfg is None:
        cfg = load_config(args.conf, args.overrides)
    _validate_args(args, cfg)
    if args.command == "recommend":
        _validate_recommend(args)
    if args.command == "serve":
        from ecomrec_spark.serving.api import serve

        return {"serve": serve(cfg, args.host, args.port)}
    if args.command == "publish" and (args.list or args.rollback):
        from ecomrec_spark.serving.versions import list_versions, rollback  # no pyspark import

        return {"publish": rollback(cfg) if args.rollback else list_versions(cfg)}
    # only now: the session imports pyspark, which `serve` and `publish --list/--rollback` must not load
    from ecomrec_spark.session import build_session

    if args.command == "generate" or getattr(args, "generate", False):
        local_path(args.out if getattr(args, "out", None) else cfg["paths"]["generated"])  # local only, checked before Spark
    elif args.command in ("ingest", "run-all") and is_local_path(cfg["paths"]["raw"]):
        raw = local_path(cfg["paths"]["raw"])
        if not raw.is_dir():
            raise ConfigError(f"config key 'paths.raw' = {raw} does not exist; run `ecomrec generate --out {raw}` "
                              "or point it at your data with --set paths.raw=DIR")
    run_id = runs.new_run_id()  # the lease's owner, the userMetadata of every commit, the manifest rows
    with contextlib.ExitStack() as held:
        if args.command not in NO_LAKE_WRITES:  # before the JVM starts: a second writer is refused at once
            from ecomrec_spark import lease

            held.enter_context(lease.writer(cfg["paths"]["lake"], args.command, cfg["spark"].get("conf"),
                                            getattr(args, "break_lock", False), run_id=run_id))
        spark = build_session(cfg, app_name=f"ecomrec-{args.command}")
        if args.command == "run-all":  # one manifest row per stage, each committed as that stage ends
            from ecomrec_spark import stages

            result = {"generate": _generate(spark, cfg, cfg["paths"]["raw"], None, None)} if args.generate else {}
            return {**result, **stages.run_all(spark, cfg, run_id)}
        # a writing command is one stage (its manifest row is its last write); any other reads the complete tables
        stage = None if args.command in NO_LAKE_WRITES else args.command
        with runs.stage(spark, cfg["paths"]["lake"], stage, run_id):
            return _run_spark(args, cfg, spark)


def _run_spark(args: argparse.Namespace, cfg: Mapping[str, Any], spark) -> dict[str, Any]:
    """The commands that need Spark but are not run-all, once the session is up (and the lease held, for writers)."""
    from ecomrec_spark import stages

    if args.command == "generate":
        return {"generate": _generate(spark, cfg, args.out, args.orders, args.seed)}
    if args.command == "athena-ddl":
        from ecomrec_spark.catalog import write_ddl

        out = args.out or f"{cfg['paths']['reports'].rstrip('/')}/athena_ddl.sql"
        s3_lake = args.s3_lake or cfg["catalog"]["s3_lake"]
        write_ddl(spark, cfg["paths"]["lake"], out, database=cfg["catalog"]["database"], s3_lake=s3_lake)
        return {"athena-ddl": {"path": out}}
    if args.command == "register-tables" and args.athena:
        from ecomrec_spark.catalog import register_athena

        c = cfg["catalog"]
        if not c["athena_output"]:
            raise ConfigError("register-tables --athena needs catalog.athena_output (an s3:// folder for query results)")
        stage_out = stages.register_tables_stage(spark, cfg)
        stage_out["athena_queries"] = register_athena(spark, cfg["paths"]["lake"], c["athena_output"], c["database"],
                                                      c["s3_lake"], c["workgroup"])
        return {"register-tables": stage_out}
    if args.command == "recommend":
        from ecomrec_spark.recommend.serve import default_model, recommend_for

        return {"recommend": recommend_for(spark, cfg, args.customer_id, args.k,
                                                args.model or default_model(spark, cfg["paths"]["lake"]))}
    if args.command == "predict-review":
        from ecomrec_spark.review.score import predict_review

        return {"predict-review": predict_review(spark, cfg, args.product_id)}
    if args.command == "publish":
        from ecomrec_spark.serving.publish import publish

        return {"publish": publish(spark, cfg, force=args.force)}
    stage = dict(stages.PIPELINE)[args.command]
    return {args.command: stage(spark, cfg)}


def table_lines(tables: Mapping[str, int], cfg_lake: str) -> list[str]:
    """``<lake>/<layer>/<table>  rows`` for each written table."""
    return [f"  {cfg_lake}/{table:<34} {n:>9} rows" for table, n in sorted(tables.items())]


def summarize(result: Mapping[str, Any], cfg_lake: str) -> str:
    lines = []
    if "generate" in result:
        g = result["generate"]
        lines.append(f"generated: {g.get('orders')} orders, {g.get('order_lines')} order lines, {g.get('events')} events "
                     f"in {len(g.get('files', {}))} CSV files -> {g.get('out_dir', '')} (ground truth in _truth/)")
    if "ingest" in result:
        i = result["ingest"]
        lines.append(f"ingest: {i['files_ingested']} new file(s): raw {i['raw_records']} = bronze {i['bronze_rows']} "
                     f"+ quarantine {i['quarantine_rows']}")
        for f in i["per_file"]:
            lines.append(f"  {f['table']:<28} raw {f['raw_records']:>9} bronze {f['bronze_rows']:>9} quarantine {f['quarantine_rows']:>6}")
    if "transform" in result:
        lines.append("tables:")
        lines += table_lines(result["transform"]["tables"], cfg_lake)
    for stage in ("train-review", "score-reviews"):
        if "skipped" in result.get(stage, {}):
            lines.append(f"{stage}: skipped, {result[stage]['skipped']}")
    if "train-review" in result and "skipped" not in result["train-review"]:
        lines += review_summary(result["train-review"])
    if "score-reviews" in result and "skipped" not in result["score-reviews"]:
        s = result["score-reviews"]
        lines.append(f"score-reviews: model {s['model_version']}")
        lines += table_lines(s["tables"], cfg_lake)
    if "build-recommendations" in result:
        b = result["build-recommendations"]
        lines.append(f"build-recommendations: version {b['model_version']}; "
                     f"knn {b['info'].get('knn', {})}; hybrid weights {b['info'].get('hybrid_weights')}")
        lines += build_lines(b["info"])
        lines += table_lines(b["tables"], cfg_lake)
        for entry in b.get("samples", []):
            lines += recommendation_lines(entry)
    if "evaluate-recommendations" in result:
        from ecomrec_spark.recommend.evaluate import markdown_table

        e = result["evaluate-recommendations"]
        lines.append(f"evaluate-recommendations: train before {e['info']['cutoff']}, "
                     f"{e['info']['n_test_customers']} test customers ({e['info']['n_cold_customers']} without history); "
                     f"table {e['table']}, report {e['report']}")
        lines += ["  " + row for row in markdown_table(e["results"])]
    if "recommend" in result:
        lines += recommendation_lines(result["recommend"])
    if "register-tables" in result:
        r = result["register-tables"]
        lines.append(f"register-tables: {len(r['tables'])} tables in database {r['database']} "
                     f"(e.g. spark.sql('select * from {r['database']}.recommendations'))")
    if "insights" in result:
        lines.append("insights:")
        lines += table_lines(result["insights"]["tables"], cfg_lake)
        lines.append(f"  review sentiment: {json.dumps(result['insights']['sentiment'], default=str)[:400]}")
    if "ab-report" in result:
        lines += ab_lines(result["ab-report"])
    if "report" in result:
        r = result["report"]
        lines.append(f"report: {r['path']} ({len(r['sections'])} sections, {r['charts']} charts"
                     + (f", {r['notes']} notes on missing tables" if r["notes"] else "") + ")")
    if runs.TIMINGS in result:
        t = result[runs.TIMINGS]
        lines.append(f"stage times (total {sum(t.values()):.0f} s): " + ", ".join(f"{n} {s:.0f} s" for n, s in t.items()))
    if "publish" in result:  # last: what to do next is start the API on it
        lines += publish_lines(result["publish"])
    if "athena-ddl" in result:
        lines.append(f"athena-ddl: {result['athena-ddl']['path']}")
    if "predict-review" in result:
        e = result["predict-review"]
        lines.append(f"product {e['product_id']}: predicted mean score {e['predicted_mean_score']:.2f}, "
                     f"P(satisfied) {e['p_satisfied']:.3f} over {e['n_orders']} order(s) (model {e['model_version']})")
    return "\n".join(lines)


def publish_lines(p: Mapping[str, Any]) -> list[str]:
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


def ab_lines(a: Mapping[str, Any]) -> list[str]:
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


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emr"]:  # the EMR launcher has its own sub-commands and needs no Spark
        from ecomrec_spark.aws import cli as emr_cli

        return emr_cli.main(args_list[1:])
    if args_list[:1] == ["upload-raw"]:  # boto3 only, no Spark
        from ecomrec_spark.aws import s3

        return s3.main(args_list[1:])
    argv = args_list
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        cfg = load_config(args.conf, args.overrides)  # once: the summary uses the config the run used
        result = run(args, cfg)
    except ConfigError as exc:
        print(f"ecomrec {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except LeaseHeld as exc:
        print(f"ecomrec {args.command}: lake busy: {exc}", file=sys.stderr)
        return LEASE_HELD_EXIT
    except GateRefused as exc:  # the new version was written but not made live
        print(f"ecomrec {args.command}: refused: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # a known input problem is one clear line, not a stack trace
        from ecomrec_spark.ingest.run import IngestError
        from ecomrec_spark.review.score import UnknownProductError

        if isinstance(exc, (IngestError, FileNotFoundError, ValueError, UnknownProductError)):
            print(f"ecomrec {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    print(summarize(result, cfg["paths"]["lake"]))
    if args.command not in ("generate", "predict-review", "recommend", "athena-ddl", "serve", "publish"):
        root = cfg["paths"]["lake"]
        print(f"Delta lake: {root}  (layers {root}/bronze, /silver, /gold, /quarantine; "
              f"reconciliation in {root}/bronze/ingest_reconciliation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
