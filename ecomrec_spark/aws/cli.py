"""``ecomrec emr up|submit|status|logs|down|wait|policy``: the launcher's command line.

Exit 0 on success, 2 on a configuration error (named key and fix, before any AWS call), 1 on an AWS
failure.  ``ecomrec emr ...`` (``ecomrec_spark.cli``) hands its arguments to :func:`main`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from ecomrec_spark.aws.clients import EmrError
from ecomrec_spark.aws.clusters import down, logs, status, submit, up, wait
from ecomrec_spark.aws.iam import render_iam
from ecomrec_spark.aws.layout import DEFAULT_CONF, PIPELINE, serverless_job_log_uri
from ecomrec_spark.aws.serverless import serverless_down, serverless_status
from ecomrec_spark.aws.settings import check_serverless_id, resolve_settings
from ecomrec_spark.config import bucket_filled_paths, load_config, parse_overrides, set_dotted


def _section(data: Mapping[str, Any], name: str, overrides: Sequence[str]) -> dict[str, Any]:
    """The config file's ``name:`` section with the ``--set name.*`` overrides applied (no full config checks)."""
    tree = {name: copy.deepcopy(dict(data.get(name) or {}))}
    for key, value in parse_overrides(overrides):
        if key.startswith(f"{name}."):
            set_dotted(tree, key, value)
    return tree[name]


def _serving_section(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    return _section(data, "serving", overrides)


def _read_emr_section(conf: str | None, overrides: Sequence[str]) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The config file's ``emr:`` section with ``--set emr.*`` applied, without the full config checks."""
    path = Path(conf) if conf else DEFAULT_CONF
    if not path.is_file():
        raise ValueError(f"config file not found: {path} (pass --conf conf/emr.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level")  # noqa: TRY004
    return path, data, _section(data, "emr", overrides)


def _bucket_overrides(data: Mapping[str, Any], section: Mapping[str, Any], overrides: Sequence[str]) -> list[str]:
    """``--set paths.X=...`` for every ``<bucket>`` path :func:`config.bucket_filled_paths` fills, so each job
    gets its lake and inputs spelled out (the user's own ``--set paths.X`` wins)."""
    given = {o.split("=", 1)[0].strip() for o in overrides}
    filled = bucket_filled_paths({"emr": section, "paths": data.get("paths") or {}})
    return [f"paths.{k}={v}" for k, v in filled.items() if f"paths.{k}" not in given]


def build_parser() -> argparse.ArgumentParser:
    """The ``ecomrec emr`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="ecomrec emr",
        description="Run the pipeline on Amazon EMR (or EMR Serverless); settings come from the emr: section.",
        epilog="One command: ecomrec emr up --conf conf/emr.yaml --set emr.bucket=my-bucket --set emr.region=eu-west-1")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--conf", default=None, metavar="FILE", help="YAML config (default: conf/emr.yaml)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config key, e.g. --set emr.bucket=my-bucket (repeatable)")

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cluster-id", default=None, help="EMR cluster id j-... (mode: cluster)")
        p.add_argument("--application-id", default=None, help="EMR Serverless application id (mode: serverless)")

    p = sub.add_parser("up", help="build + upload, create the cluster with the pipeline steps, wait")
    common(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the exact boto3 requests; build, upload and call nothing")
    p.add_argument("--no-wait", action="store_true", help="return once the cluster is requested")
    p.add_argument("--no-steps", action="store_true",
                   help="create an idle cluster for `submit` (auto-termination applies)")
    p.add_argument("--jobs", default=",".join(PIPELINE), help="comma-separated jobs (default: the whole pipeline)")
    p.add_argument("--wheel", default=None, metavar="FILE", help="a prebuilt wheel instead of building one")
    p.add_argument("--wheelhouse", default=None, metavar="DIR",
                   help="a prebuilt wheelhouse (wheel + dependencies + requirements.lock) instead of building one")
    p.add_argument("--archive", default=None, metavar="FILE", help="packed venv (emr.shipping: archive, serverless)")
    p = sub.add_parser("submit", help="upload jobs + conf and add the pipeline steps to a running cluster")
    common(p)
    target(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the exact boto3 requests (cluster, configurations, steps)")
    p.add_argument("--wait", action="store_true", help="wait for the steps")
    p.add_argument("--jobs", default=",".join(PIPELINE), help="comma-separated jobs (default: the whole pipeline)")
    p = sub.add_parser("status", help="cluster state and step states with their log URIs")
    common(p)
    target(p)
    p = sub.add_parser("wait", help="wait for a cluster's steps, reporting states and log URIs")
    common(p)
    target(p)
    p.add_argument("--step-id", action="append", default=[], help="step(s) to wait for (default: all)")
    p = sub.add_parser("logs", help="the S3 log folder of a step and its files")
    common(p)
    target(p)
    p.add_argument("--step-id", default=None, help="step id s-...")
    p.add_argument("--job-run-id", default=None, help="EMR Serverless job run id")
    p.add_argument("--tail", type=int, default=0, help="also print the last N lines of stderr")
    p = sub.add_parser("down", help="terminate the cluster (or stop and delete the serverless application)")
    common(p)
    target(p)
    p = sub.add_parser("policy", help="render the IAM policies of emr/iam/ for the configured bucket and database")
    common(p)
    p.add_argument("--account", required=True, help="12-digit AWS account id (aws sts get-caller-identity)")
    p.add_argument("--out", default=None, metavar="DIR", help="write the JSON files here (default: print)")
    return parser


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    path, data, section = _read_emr_section(args.conf, args.overrides)
    quick = args.command in ("status", "wait", "logs", "down")
    if quick:
        s = resolve_settings(section, need_bucket=False)
    else:
        s = resolve_settings(section)
    serverless = s["mode"] == "serverless"
    if args.command == "policy":
        rendered = render_iam(s, args.account, serving=_serving_section(data, args.overrides))
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for name, doc in rendered.items():
                (out / name).write_text(json.dumps(doc, indent=2) + "\n")
            return {"written": [str(out / n) for n in rendered]}
        return rendered
    if quick:
        if serverless:
            app = args.application_id or s["serverless"]["application_id"]
            if args.command == "status":
                return serverless_status(app, region=s["region"], settings=s)
            if args.command == "down":
                return serverless_down(app, region=s["region"])
            if args.command == "logs":
                check_serverless_id("--job-run-id", args.job_run_id)
                return {"uri": serverless_job_log_uri(s, app, args.job_run_id)} if s["bucket"] else {
                    "uri": None, "hint": "set emr.bucket to compute the log URI"}
            raise ValueError("`ecomrec emr wait` is for clusters; serverless `up` already waits for each job run")
        if args.command == "status":
            return status(args.cluster_id, region=s["region"])
        if args.command == "down":
            return down(args.cluster_id, region=s["region"])
        if args.command == "wait":
            return wait(args.cluster_id, args.step_id or None, region=s["region"],
                        timeout=s["wait_timeout_minutes"] * 60)
        return logs(args.cluster_id, args.step_id, region=s["region"], tail=args.tail)
    derived = _bucket_overrides(data, section, args.overrides)
    overrides = [*derived, *args.overrides]
    cfg = load_config(path, overrides)
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    if args.command == "up":
        return up(cfg, overrides=overrides, jobs=jobs, wheel=Path(args.wheel) if args.wheel else None,
                  wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None,
                  archive=Path(args.archive) if args.archive else None, with_steps=not args.no_steps,
                  wait_for=not args.no_wait, dry_run=args.dry_run)
    target_id = args.application_id if serverless else args.cluster_id
    return submit(cfg, target_id, overrides=overrides, jobs=jobs, wait_for=args.wait or serverless,
                  dry_run=args.dry_run)


def main(argv: Sequence[str] | None = None) -> int:
    """``ecomrec emr COMMAND``: exit 0 on success, 2 on a configuration error, 1 on an AWS failure."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from botocore.exceptions import NoCredentialsError, NoRegionError

    try:
        result = _dispatch(args)
    except (NoCredentialsError, NoRegionError) as exc:
        print(f"ecomrec emr {args.command}: {exc}; configure the default credential chain (AWS_PROFILE, "
              "`aws sso login`, or an instance role) and emr.region; keys never go in the config", file=sys.stderr)
        return 2
    except ValueError as exc:  # includes ConfigError
        print(f"ecomrec emr {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"ecomrec emr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (EmrError, ClientError, BotoCoreError, subprocess.CalledProcessError) as exc:
        print(f"ecomrec emr {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
