"""``ecomrec``: one command line for every job.

``ecomrec ingest --conf conf/local.yaml`` does the same work as
``spark-submit jobs/ingest.py --conf conf/local.yaml``: the files in ``jobs/``
call :func:`main` with their command name.  Arguments and config are checked
before Spark starts; a bad one exits with code 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ecomrec_spark import registry, runs
from ecomrec_spark.config import ConfigError, is_local_path, load_config, local_path
from ecomrec_spark.identifiers import CUSTOMER_ID_PATTERN
from ecomrec_spark.lease import LeaseHeld
from ecomrec_spark.serving.gate import GateRefused
from ecomrec_spark.settings import Settings
from ecomrec_spark.summary import summarize

if TYPE_CHECKING:  # the CLI imports pyspark only once a command needs Spark
    from pyspark.sql import SparkSession

log = logging.getLogger("ecomrec_spark")

# the pipeline's stages come from the registry (in run-all order); these commands are tools around them
COMMANDS = {
    "generate": "write a synthetic Olist + REES46 data set (real formats, planted structure and messy rows)",
    **{stage.name: stage.help for stage in registry.PIPELINE},
    "predict-review": "print one product's predicted review score (from gold product_review_scores)",
    "athena-ddl": "write the Athena CREATE EXTERNAL TABLE ... TBLPROPERTIES ('table_type'='DELTA') statements",
    "upload-raw": "upload a local raw folder to S3 with boto3: ecomrec upload-raw --from DIR --to s3://bucket/raw",
    "recommend": "print one customer's top k (unknown customers get the popularity fallback)",
    "emr": "launch and manage the pipeline on EMR: ecomrec emr up|submit|status|logs|down (see emr/README.md)",
    "serve": "the online API and page (FastAPI + uvicorn, no Spark) over the serving store's live version",
    "run-all": f"every pipeline stage in order ({', '.join(registry.NAMES)}) on the configured input",
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


def _generate(spark: SparkSession, cfg: Mapping[str, Any], out: str | None, orders: int | None, seed: int | None) -> dict[str, Any]:
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
    settings = Settings.from_config(cfg)
    if args.command == "serve":
        from ecomrec_spark.serving.api import serve

        return {"serve": serve(settings, args.host, args.port)}
    if args.command == "publish" and (args.list or args.rollback):
        from ecomrec_spark.serving.versions import list_versions, rollback  # no pyspark import

        return {"publish": rollback(settings) if args.rollback else list_versions(settings)}
    if args.command == "athena-ddl":  # folder listings only (Athena reads each schema from the Delta log): no Spark
        from ecomrec_spark.catalog import write_athena_ddl

        out = args.out or f"{settings.paths.folder('reports', ' (or pass --out)')}/athena_ddl.sql"
        write_athena_ddl(settings.paths.lake, out, settings.catalog.database,
                         args.s3_lake or settings.catalog.s3_lake)
        return {"athena-ddl": {"path": out}}
    # only now: the session imports pyspark, which `serve` and `publish --list/--rollback` must not load
    from ecomrec_spark.session import build_session

    if args.command == "generate" or getattr(args, "generate", False):
        # local only, checked before Spark
        local_path(args.out if getattr(args, "out", None) else settings.paths.folder("generated", " (or pass --out)"))
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
            return {**result, **stages.run_all(spark, settings, run_id)}
        # a writing command is one stage (its manifest row is its last write); any other reads the complete tables
        stage = None if args.command in NO_LAKE_WRITES else args.command
        with runs.stage(spark, cfg["paths"]["lake"], stage, run_id):
            return _run_spark(args, cfg, settings, spark)


def _run_spark(args: argparse.Namespace, cfg: Mapping[str, Any], settings: Settings,
               spark: SparkSession) -> dict[str, Any]:
    """The commands that need Spark but are not run-all, once the session is up (and the lease held, for writers)."""
    if args.command == "generate":
        return {"generate": _generate(spark, cfg, args.out, args.orders, args.seed)}
    if args.command == "register-tables" and args.athena:
        from ecomrec_spark.catalog import register_tables

        return {"register-tables": register_tables(spark, settings, athena=True)}
    if args.command == "recommend":
        from ecomrec_spark.recommend.serve import default_model, recommend_for

        return {"recommend": recommend_for(spark, settings, args.customer_id, args.k,
                                           args.model or default_model(spark, settings.paths.lake))}
    if args.command == "predict-review":
        from ecomrec_spark.review.score import predict_review

        return {"predict-review": predict_review(spark, settings, args.product_id)}
    if args.command == "publish":
        from ecomrec_spark.serving.publish import publish

        return {"publish": publish(spark, settings, force=args.force)}
    return {args.command: registry.BY_NAME[args.command].load()(spark, settings)}


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
