"""Launch the pipeline on Amazon EMR (on EC2, or EMR Serverless) with boto3; no Spark needed here.

The launcher turns the ``emr:`` section of a run config (``conf/emr.yaml``) into the
exact boto3 requests, ships the project to S3 and drives the cluster:

* **packaging** -- :func:`build_wheel` builds the project wheel (``pip wheel``),
  :func:`plan_uploads` lists what goes to ``s3://<bucket>/<prefix>artifacts/ecomrec-<version>/``
  (the wheelhouse, ``jobs/*.py``, the run config, the bootstrap script) and :func:`upload` puts it there.
  The default shipping method is ``bootstrap``: :func:`build_wheelhouse` resolves the dependencies once,
  at package time, into wheels for the nodes' Python and CPU, :func:`lock_wheelhouse` pins each by
  SHA-256, and ``emr/bootstrap/install-wheel.sh`` installs exactly those files on every node
  (``--no-index --require-hashes --no-deps``).  ``archive`` ships a packed venv (:func:`pack_venv`, built
  from the same lock) through ``spark.archives`` instead; EMR Serverless always uses the archive (it has
  no bootstrap actions).
* **safe defaults** -- a new cluster needs a private subnet (:func:`check_private_subnet`), is not
  visible to all users, and runs with a security configuration encrypting S3 (SSE), the local disks
  (KMS) and the traffic between nodes (TLS) (:func:`security_configuration_request`, or a named one
  checked by :func:`ensure_security_configuration`).  Each loosens only through its own ``emr.*`` key,
  and :func:`check_launch_security` names the key before any AWS call.
* **requests** -- :func:`cluster_request` (``run_job_flow``), :func:`step_requests`
  (``add_job_flow_steps``: one ``command-runner.jar`` / ``spark-submit`` step per pipeline job, in
  pipeline order) and :func:`serverless_requests` (``create_application`` / ``start_job_run``).
* **operations** -- :func:`up`, :func:`submit`, :func:`status`, :func:`logs`, :func:`down` and
  :func:`wait`; ``ecomrec emr up|submit|status|logs|down|wait|policy`` is :func:`main`.
* **IAM** -- :func:`render_policy` fills the templates in ``emr/iam/`` for one bucket, its
  project prefixes and one Glue database: the job role reads ``raw/`` and ``artifacts/``, only puts
  to ``logs/`` and reads and writes only ``lake/`` and ``reports/`` (:data:`POLICY_PREFIXES`); the
  encryption keys add rights on exactly those keys (:func:`encryption_statements`); with
  ``serving.store: dynamodb`` the job role also gets the publish job's rights on the serving tables
  only (:func:`serving_statement`), and the API role reads them and puts events only
  (:func:`api_role_policy`).

Every value is validated before the first AWS call; a bad one raises ``ValueError`` naming the
config key and the fix.  Credentials never come from config: boto3's default chain is used
(``AWS_PROFILE``, SSO, environment, instance role), and config keys that look like credentials are
rejected.

>>> safe = {"subnet_id": "subnet-0123456789abcdef0", "encryption": {
...     "local_disk_kms_key": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
...     "tls_certificates": "s3://my-bucket/artifacts/certs/emr.zip"}}
>>> req = cluster_request({"bucket": "my-bucket", "region": "eu-west-1", **safe}, {}, "s3://my-bucket/artifacts/x.whl")
>>> req["ReleaseLabel"], [c["Classification"] for c in req["Configurations"]][:3]
('emr-spark-8.0.0', ['delta-defaults', 'spark-defaults', 'spark-hive-site'])
"""

from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import io
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from ecomrec_spark.aws import s3 as _s3  # upload-raw's size + MD5 rule decides what is sent again
from ecomrec_spark.config import REPO_ROOT, load_config, parse_overrides
from ecomrec_spark.identifiers import bucket_problem

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

DEFAULT_RELEASE_LABEL = "emr-spark-8.0.0"  # Spark 4.0.2-amzn-0, Delta 4.0.0-amzn-1, Scala 2.13, Java 17
DEFAULT_CONF = REPO_ROOT / "conf" / "emr.yaml"
BOOTSTRAP_SCRIPT = REPO_ROOT / "emr" / "bootstrap" / "install-wheel.sh"
WHEELHOUSE = "wheelhouse/"  # under the artifacts' version prefix
LOCK_NAME = "requirements.lock"  # in the wheelhouse: name==version --hash=sha256:... for every wheel in it
IAM_DIR = REPO_ROOT / "emr" / "iam"

#: The pipeline, in order: (command, script under jobs/).  Same order as ``stages.PIPELINE``.
PIPELINE_JOBS: tuple[tuple[str, str], ...] = (
    ("ingest", "ingest.py"),
    ("transform", "transform.py"),
    ("train-review", "train_review_model.py"),
    ("score-reviews", "score_reviews.py"),
    ("build-recommendations", "build_recommendations.py"),
    ("evaluate-recommendations", "evaluate_recommendations.py"),
    ("insights", "insights.py"),
    ("ab-report", "ab_report.py"),
    ("register-tables", "register_tables.py"),
    ("report", "report.py"),
    ("publish", "publish.py"),
)
JOB_SCRIPTS: dict[str, str] = dict(PIPELINE_JOBS)
PIPELINE: tuple[str, ...] = tuple(name for name, _ in PIPELINE_JOBS)

DELTA_SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
GLUE_FACTORY = "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"
ENV_PYTHON = "./environment/bin/python"  # PYSPARK_PYTHON inside the unpacked spark.archives venv
MANAGED_POLICY_TAG = "for-use-with-amazon-emr-managed-policies"  # AmazonEMRServicePolicy_v2 needs it
# Where EMR Serverless keeps Delta (EMR 7+ names the jar delta-spark.jar); spark.jars must list them.
SERVERLESS_DELTA_JARS = ["/usr/share/aws/delta/lib/delta-spark.jar", "/usr/share/aws/delta/lib/delta-storage.jar"]

#: Key prefixes (under ``emr.prefix``) the job role may touch, by what it may do there.  The bootstrap and
#: the wheel run as root on every future cluster, so a job must not be able to rewrite its own code
#: (``artifacts/``) or the inputs it is accounted against (``raw/``); logs are written, never read back.
POLICY_PREFIXES: dict[str, tuple[str, ...]] = {
    "read": ("raw/", "artifacts/"),  # GetObject only
    "write": ("lake/", "reports/"),  # Get, Put, Delete (+ multipart clean-up)
    "log": ("logs/",),  # PutObject only
    "list": ("raw/", "artifacts/", "lake/", "reports/"),  # ListBucket with these as s3:prefix; not logs/
}
#: Which prefix each data path must lie under (so it gets the rights it needs and no more).
PATH_PREFIXES = {"raw": "raw/", "lake": "lake/", "reports": "reports/"}

# Requirements that EMR already provides (pyspark) or that must not pull pyspark in (delta-spark).
_PROVIDED = {"pyspark"}
_NO_DEPS = {"delta-spark"}

_ACTIONS_ON_FAILURE = ("CANCEL_AND_WAIT", "CONTINUE", "TERMINATE_CLUSTER")
_STEP_DONE = "COMPLETED"
_STEP_BAD = ("FAILED", "CANCELLED", "INTERRUPTED")
_CLUSTER_DEAD = ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS")
_RUN_BAD = ("FAILED", "CANCELLING", "CANCELLED")


class EmrError(RuntimeError):
    """An AWS-side failure: a step or job run failed, a cluster died, or waiting timed out."""


# --------------------------------------------------------------------------------------------
# Validation (all of it runs before any AWS call)
# --------------------------------------------------------------------------------------------

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_S3_URI = re.compile(r"^s3://([^/\s]+)(/[^\s'\"]*)?$")
_CLUSTER_ID = re.compile(r"^j-[A-Z0-9]{1,255}$")
_STEP_ID = re.compile(r"^s-[A-Z0-9]{1,255}$")
_SERVERLESS_ID = re.compile(r"^[0-9a-z]{1,64}$")
_RELEASE_LABEL = re.compile(r"^emr-(?:[a-z]+-)?\d+\.\d+\.\d+$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_GLUE_DB = re.compile(r"^[a-z0-9_]{1,255}$")
_KEY_PREFIX = re.compile(r"^([A-Za-z0-9._-]+/)*$")
_ACCOUNT = re.compile(r"^\d{12}$")
_ACCESS_KEY_VALUE = re.compile(r"\b(?:AKIA|ASIA|A3T[A-Z0-9])[A-Z0-9]{16}\b")
_CREDENTIAL_KEY = re.compile(r"access[_.-]?key|secret|session[_.-]?token|password", re.IGNORECASE)
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")


def _bad(key: str, value: Any, why: str, fix: str) -> ValueError:
    return ValueError(f"config key '{key}' = {value!r} {why}; fix: {fix}")


def check_region(key: str, region: Any) -> str:
    """Return ``region`` if it looks like an AWS region (``eu-west-1``), else raise ``ValueError``."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise _bad(key, region, "is not an AWS region", f"--set {key}=eu-west-1 (or export AWS_DEFAULT_REGION)")
    return region


def check_bucket(key: str, bucket: Any) -> str:
    """Return ``bucket`` if it follows the S3 bucket naming rules, else raise ``ValueError`` naming ``key``.

    The rule is :func:`ecomrec_spark.identifiers.validate_bucket`'s, shared with ``upload-raw``, the
    config's ``catalog.*`` URIs and the lake lease.
    """
    why = bucket_problem(bucket)
    if why:
        raise _bad(key, bucket, f"is not a valid S3 bucket name: {why}", f"--set {key}=my-bucket")
    return bucket


def check_s3_uri(key: str, uri: Any) -> tuple[str, str]:
    """Split an ``s3://bucket/key`` URI into (bucket, key) after checking both parts.

    EMR reads S3 through EMRFS, so ``s3a://`` and ``s3n://`` are refused here.
    """
    m = _S3_URI.fullmatch(uri) if isinstance(uri, str) else None
    if not m or ".." in uri.split("/"):
        raise _bad(key, uri, "is not an s3:// URI", f"--set {key}=s3://my-bucket/path (EMR uses s3://, not s3a://)")
    bucket = check_bucket(key, m.group(1))
    return bucket, (m.group(2) or "/")[1:]


def check_cluster_id(cluster_id: Any) -> str:
    """Return an EMR cluster id (``j-...``) or raise ``ValueError``."""
    if not isinstance(cluster_id, str) or not _CLUSTER_ID.fullmatch(cluster_id):
        raise ValueError(f"--cluster-id {cluster_id!r} is not an EMR cluster id; fix: pass the id `ecomrec emr up` "
                         "printed, like j-1ABCDEFGHIJKL (see `aws emr list-clusters --active`)")
    return cluster_id


def check_step_id(step_id: Any) -> str:
    """Return an EMR step id (``s-...``) or raise ``ValueError``."""
    if not isinstance(step_id, str) or not _STEP_ID.fullmatch(step_id):
        raise ValueError(f"--step-id {step_id!r} is not an EMR step id; fix: pass an id from "
                         "`ecomrec emr status --cluster-id j-...`, like s-1ABCDEFGHIJKL")
    return step_id


def check_serverless_id(name: str, value: Any) -> str:
    """Return an EMR Serverless application or job-run id or raise ``ValueError``."""
    if not isinstance(value, str) or not _SERVERLESS_ID.fullmatch(value):
        raise ValueError(f"{name} {value!r} is not an EMR Serverless id (lowercase letters and digits); "
                         f"fix: pass the id `ecomrec emr up` printed")
    return value


def check_release_label(key: str, label: Any) -> str:
    """Return an EMR release label (``emr-7.12.0``, ``emr-spark-8.0.0``) or raise ``ValueError``."""
    if not isinstance(label, str) or not _RELEASE_LABEL.fullmatch(label):
        raise _bad(key, label, "is not an EMR release label", f"--set {key}={DEFAULT_RELEASE_LABEL}")
    return label


def check_instance_type(key: str, instance_type: Any) -> str:
    """Return an EC2 instance type (``m6i.xlarge``) or raise ``ValueError``."""
    if not isinstance(instance_type, str) or not _INSTANCE_TYPE.fullmatch(instance_type):
        raise _bad(key, instance_type, "is not an EC2 instance type", "use a family.size name like m6i.xlarge")
    return instance_type


def reject_credentials(node: Any, prefix: str) -> None:
    """Refuse credential-looking keys or values anywhere under ``node``.

    The launcher uses boto3's default credential chain and the cluster its instance profile; keys
    never belong in a config file that is uploaded to S3 and forwarded to every step.
    """
    fix = ("remove it: the launcher uses boto3's default credential chain (AWS_PROFILE, `aws sso login`, "
           "environment, instance role) and the cluster uses its instance profile")
    if isinstance(node, Mapping):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if _CREDENTIAL_KEY.search(str(key)):
                raise ValueError(f"config key '{name}' looks like a credential; {fix}")
            reject_credentials(value, f"{name}.")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            reject_credentials(value, f"{prefix}[{i}].")
    elif isinstance(node, str) and _ACCESS_KEY_VALUE.search(node):
        raise ValueError(f"config key '{prefix.rstrip('.')}' holds what looks like an AWS access key id; {fix}")


# --------------------------------------------------------------------------------------------
# Settings: the ``emr:`` section with defaults
# --------------------------------------------------------------------------------------------

DEFAULTS: dict[str, Any] = {
    "mode": "cluster",  # cluster (EMR on EC2) | serverless
    "region": None,  # null: AWS_REGION / AWS_DEFAULT_REGION
    "bucket": None,
    "prefix": "",  # key prefix inside the bucket ("" or "team/ecomrec/")
    "name": "ecomrec",
    "release_label": DEFAULT_RELEASE_LABEL,
    "applications": ["Hadoop", "Spark"],
    "shipping": "bootstrap",  # bootstrap | archive
    "python": "/usr/bin/python3.11",
    "log_uri": None,  # null: s3://<bucket>/<prefix>logs/emr/
    "job_flow_role": "ecomrec-emr-ec2",
    "service_role": "ecomrec-emr-service",
    "idle_timeout_seconds": 1800,
    "keep_alive": True,
    "action_on_failure": "CANCEL_AND_WAIT",
    "glue_database": "ecomrec",
    "subnet_id": None,
    "ec2_key_name": None,
    "security_configuration": None,  # an existing EMR security configuration to require; null: `up` makes one
    "encryption": {  # what the security configuration must encrypt; each off only on purpose (conf/emr.yaml)
        "s3": "SSE-S3",  # SSE-S3 | SSE-KMS (s3_kms_key) | false
        "s3_kms_key": None,
        "local_disks": True,  # instance store and EBS volumes (EnableEbsEncryption); needs local_disk_kms_key
        "local_disk_kms_key": None,
        "in_transit": True,  # TLS between the nodes; needs tls_certificates
        "tls_certificates": None,  # s3://.../certs.zip (PEM) or s3://.../provider.jar with tls_provider_class
        "tls_provider_class": None,
    },
    "require_private_subnet": True,  # false: allow no subnet_id (the default VPC's public subnet) or a public one
    "visible_to_all_users": False,  # true: every IAM principal of the account with EMR rights sees the cluster
    "ebs_root_volume_gb": None,
    "instance_groups": [
        {"role": "MASTER", "instance_type": "m6i.xlarge", "count": 1},
        {"role": "CORE", "instance_type": "m6i.2xlarge", "count": 2},
    ],
    "instance_fleets": None,  # set to use fleets instead of instance_groups
    "spark_submit_args": [],
    "spark_defaults": {},
    "tags": {"project": "ecomrec"},
    "wait_timeout_minutes": 240,
    "serverless": {
        "application_id": None,
        "execution_role_arn": None,
        "architecture": "X86_64",
        "idle_timeout_minutes": 15,
        "max_capacity": None,  # e.g. {cpu: 16 vCPU, memory: 64 GB, disk: 200 GB}
        "delta_jars": SERVERLESS_DELTA_JARS,
    },
}


_SECTIONS = ("serverless", "encryption")  # nested sections whose keys are checked like the top level


def resolve_settings(section: Mapping[str, Any] | None, *, need_bucket: bool = True) -> dict[str, Any]:
    """Merge the ``emr:`` config section over :data:`DEFAULTS` and validate every value.

    Parameters
    ----------
    section : mapping or None
        ``cfg.get("emr", {})``; already-resolved settings are accepted too.
    need_bucket : bool
        ``False`` for commands that only talk to an existing cluster (status, logs, down).

    Returns
    -------
    dict
        The complete settings; ``region`` is filled from the environment when the section has none.

    Raises
    ------
    ValueError
        Naming the bad key (``emr.<key>``) and the fix.
    """
    section = dict(section or {})
    reject_credentials(section, "emr.")
    unknown = sorted(set(section) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown config key 'emr.{unknown[0]}'; allowed: {', '.join(sorted(DEFAULTS))}")
    s = copy.deepcopy(DEFAULTS)
    for key, value in section.items():
        if key in _SECTIONS and isinstance(value, Mapping):
            bad = sorted(set(value) - set(DEFAULTS[key]))
            if bad:
                raise ValueError(f"unknown config key 'emr.{key}.{bad[0]}'; allowed: "
                                 f"{', '.join(sorted(DEFAULTS[key]))}")
            s[key].update(copy.deepcopy(dict(value)))
        else:
            s[key] = copy.deepcopy(value)

    if s["mode"] not in ("cluster", "serverless"):
        raise _bad("emr.mode", s["mode"], "is not a launch mode", "--set emr.mode=cluster (or serverless)")
    s["region"] = check_region("emr.region", s["region"] or os.environ.get("AWS_REGION")
                               or os.environ.get("AWS_DEFAULT_REGION"))
    if need_bucket or s["bucket"] is not None:
        check_bucket("emr.bucket", s["bucket"])
    if not isinstance(s["prefix"], str) or not _KEY_PREFIX.fullmatch(s["prefix"]):
        raise _bad("emr.prefix", s["prefix"], "is not an S3 key prefix",
                   "use '' or a path ending in '/', like ecomrec/")
    if not isinstance(s["name"], str) or not re.fullmatch(r"[\w .:/=+@-]{1,256}", s["name"]):
        raise _bad("emr.name", s["name"], "is not a cluster name", "use letters, digits, spaces and -_.")
    check_release_label("emr.release_label", s["release_label"])
    apps = s["applications"]
    if not isinstance(apps, list) or "Spark" not in apps or not all(isinstance(a, str) and a.isalnum() for a in apps):
        raise _bad("emr.applications", apps, "must be a list that includes Spark",
                   "--set 'emr.applications=[Hadoop, Spark]'")
    if s["shipping"] not in ("bootstrap", "archive"):
        raise _bad("emr.shipping", s["shipping"], "is not a shipping method",
                   "--set emr.shipping=bootstrap (or archive)")
    if s["mode"] == "serverless":
        s["shipping"] = "archive"  # EMR Serverless has no bootstrap actions
    if not isinstance(s["python"], str) or not re.fullmatch(r"/[\w./-]+", s["python"]):
        raise _bad("emr.python", s["python"], "is not an absolute interpreter path",
                   "--set emr.python=/usr/bin/python3.11")
    for key in ("job_flow_role", "service_role"):
        if not isinstance(s[key], str) or not _ROLE_NAME.fullmatch(s[key]):
            raise _bad(f"emr.{key}", s[key], "is not an IAM role name",
                       f"--set emr.{key}=<role name> (see emr/README.md)")
    timeout = s["idle_timeout_seconds"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 60 <= timeout <= 604800:
        raise _bad("emr.idle_timeout_seconds", timeout,
                   "must be an integer in [60, 604800] (auto-termination stays on)",
                   "--set emr.idle_timeout_seconds=1800")
    if not isinstance(s["keep_alive"], bool):
        raise _bad("emr.keep_alive", s["keep_alive"], "must be true or false", "--set emr.keep_alive=false")
    if s["action_on_failure"] not in _ACTIONS_ON_FAILURE:
        raise _bad("emr.action_on_failure", s["action_on_failure"], f"must be one of {', '.join(_ACTIONS_ON_FAILURE)}",
                   "--set emr.action_on_failure=CANCEL_AND_WAIT")
    if not isinstance(s["glue_database"], str) or not _GLUE_DB.fullmatch(s["glue_database"]):
        raise _bad("emr.glue_database", s["glue_database"], "is not a Glue database name (lowercase, digits, _)",
                   "--set emr.glue_database=ecomrec")
    for key, pattern in (("subnet_id", r"subnet-[0-9a-f]{8,17}"), ("ec2_key_name", r"[\w .@-]{1,255}"),
                         ("security_configuration", r"[\w .@-]{1,10280}")):
        if s[key] is not None and (not isinstance(s[key], str) or not re.fullmatch(pattern, s[key])):
            raise _bad(f"emr.{key}", s[key], "is not valid", f"set emr.{key} to a {key.replace('_', ' ')} or null")
    ebs = s["ebs_root_volume_gb"]
    if ebs is not None and (isinstance(ebs, bool) or not isinstance(ebs, int) or not 15 <= ebs <= 100):
        raise _bad("emr.ebs_root_volume_gb", ebs, "must be null or an integer in [15, 100]",
                   "--set emr.ebs_root_volume_gb=30")
    if s["instance_fleets"] is not None:
        _check_fleets(s["instance_fleets"])
    else:
        _check_groups(s["instance_groups"])
    args = s["spark_submit_args"]
    if not isinstance(args, list) or not all(isinstance(a, str) and a and not re.search(r"\s", a) for a in args):
        raise _bad("emr.spark_submit_args", args, "must be a list of spark-submit arguments without spaces",
                   "--set 'emr.spark_submit_args=[--conf, spark.executor.memory=8g]'")
    defaults = s["spark_defaults"]
    if not isinstance(defaults, Mapping) or not all(isinstance(k, str) and k.startswith("spark.") for k in defaults):
        raise _bad("emr.spark_defaults", defaults, "must map spark.* keys to values",
                   "e.g. {spark.executor.memory: 8g}")
    s["spark_defaults"] = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in defaults.items()}
    reject_credentials(s["spark_defaults"], "emr.spark_defaults.")
    tags = s["tags"]
    if not isinstance(tags, Mapping) or not all(isinstance(k, str) and _TAG_KEY.fullmatch(k) for k in tags):
        raise _bad("emr.tags", tags, "must map tag keys to values", "e.g. {project: ecomrec, owner: data-team}")
    wait_minutes = s["wait_timeout_minutes"]
    if isinstance(wait_minutes, bool) or not isinstance(wait_minutes, (int, float)) or wait_minutes <= 0:
        raise _bad("emr.wait_timeout_minutes", wait_minutes, "must be a positive number",
                   "--set emr.wait_timeout_minutes=240")
    if s["log_uri"] is not None:
        bucket, key = check_s3_uri("emr.log_uri", s["log_uri"])
        s["log_uri"] = s["log_uri"].rstrip("/") + "/"
        if s["bucket"] and (bucket != s["bucket"] or not key.startswith(f"{s['prefix']}logs/")):
            raise _bad("emr.log_uri", s["log_uri"], "lies outside the job role's S3 prefixes",
                       f"use s3://{s['bucket']}/{s['prefix']}logs/... or null")
    elif s["bucket"]:
        s["log_uri"] = f"s3://{s['bucket']}/{s['prefix']}logs/emr/"
    _check_serverless(s)
    _check_security(s)
    return s


_KMS_KEY_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:kms:([a-z0-9-]+):\d{12}:key/[A-Za-z0-9-]{1,128}$")
_JAVA_CLASS = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$")
_S3_MODES = ("SSE-S3", "SSE-KMS")


def _check_security(s: dict[str, Any]) -> None:
    """Types and shapes of the safe-default keys; what a launch requires is :func:`check_launch_security`."""
    for key in ("require_private_subnet", "visible_to_all_users"):
        if not isinstance(s[key], bool):
            raise _bad(f"emr.{key}", s[key], "must be true or false", f"--set emr.{key}={str(DEFAULTS[key]).lower()}")
    e = s["encryption"]
    if e["s3"] is not False and e["s3"] not in _S3_MODES:
        raise _bad("emr.encryption.s3", e["s3"], "must be SSE-S3, SSE-KMS or false",
                   "--set emr.encryption.s3=SSE-S3 (false turns EMRFS encryption off, on purpose)")
    for key in ("local_disks", "in_transit"):
        if not isinstance(e[key], bool):
            raise _bad(f"emr.encryption.{key}", e[key], "must be true or false",
                       f"--set emr.encryption.{key}=true (false turns it off, on purpose)")
    for key in ("s3_kms_key", "local_disk_kms_key"):
        m = _KMS_KEY_ARN.fullmatch(e[key]) if isinstance(e[key], str) else None
        if e[key] is not None and not m:
            raise _bad(f"emr.encryption.{key}", e[key], "is not a KMS key ARN (aliases cannot be granted in IAM)",
                       f"--set emr.encryption.{key}=arn:aws:kms:{s['region']}:<account>:key/<key id>")
        if m and m.group(1) != s["region"]:
            raise _bad(f"emr.encryption.{key}", e[key], f"is not in the cluster's region {s['region']}",
                       "use a key in emr.region: EMR only uses keys in the cluster's region")
    cert, provider = e["tls_certificates"], e["tls_provider_class"]
    if provider is not None and (not isinstance(provider, str) or not _JAVA_CLASS.fullmatch(provider)):
        raise _bad("emr.encryption.tls_provider_class", provider, "is not a Java class name",
                   "set it to your TLSArtifactsProvider class, like com.example.MyCertProvider, or null for a PEM zip")
    if cert is not None:
        check_s3_uri("emr.encryption.tls_certificates", cert)
        want = ".jar" if provider else ".zip"
        if not cert.endswith(want):
            raise _bad("emr.encryption.tls_certificates", cert, f"must be a {want} object "
                       + ("(the custom provider's jar)" if provider else
                          "(a zip of privateKey.pem and certificateChain.pem, optionally trustedCertificates.pem)"),
                       f"point it at s3://{s['bucket'] or '<bucket>'}/{s['prefix']}artifacts/certs/<name>{want}")


def check_launch_security(s: Mapping[str, Any]) -> None:
    """What a new cluster requires before any AWS call: a private subnet and the keys and certificates for
    the encryption left on.  Each requirement names the key that loosens it on purpose.

    With ``emr.security_configuration`` naming an existing configuration, its keys and certificates are
    that configuration's business; :func:`check_security_configuration` compares it with ``encryption``.
    """
    if s["require_private_subnet"] and s["subnet_id"] is None:
        raise _bad("emr.subnet_id", None, "is required: the cluster goes in a private subnet",
                   "--set emr.subnet_id=subnet-... (private, tagged for-use-with-amazon-emr-managed-policies=true), "
                   "or set emr.require_private_subnet: false to use the default VPC's public subnet on purpose")
    if s["security_configuration"] is not None:
        return
    e = s["encryption"]
    if e["s3"] == "SSE-KMS" and e["s3_kms_key"] is None:
        raise _bad("emr.encryption.s3_kms_key", None, "is required with emr.encryption.s3: SSE-KMS",
                   f"--set emr.encryption.s3_kms_key=arn:aws:kms:{s['region']}:<account>:key/<key id> "
                   "(or emr.encryption.s3=SSE-S3)")
    if e["local_disks"] and e["local_disk_kms_key"] is None:
        raise _bad("emr.encryption.local_disk_kms_key", None,
                   "is required while emr.encryption.local_disks is true (EMR encrypts local disks with a KMS key)",
                   f"--set emr.encryption.local_disk_kms_key=arn:aws:kms:{s['region']}:<account>:key/<key id>, "
                   "or set emr.encryption.local_disks: false on purpose")
    if e["in_transit"] and e["tls_certificates"] is None:
        raise _bad("emr.encryption.tls_certificates", None,
                   "is required while emr.encryption.in_transit is true (EMR needs the nodes' TLS certificates)",
                   f"--set emr.encryption.tls_certificates=s3://{s['bucket']}/{s['prefix']}artifacts/certs/emr.zip "
                   "(privateKey.pem + certificateChain.pem), or set emr.encryption.in_transit: false on purpose")


def security_configuration_doc(s: Mapping[str, Any]) -> dict[str, Any] | None:
    """The EMR ``SecurityConfiguration`` JSON for ``emr.encryption`` (``None`` when everything is off).

    Examples
    --------
    >>> s = resolve_settings({"bucket": "b-1", "region": "eu-west-1", "encryption": {
    ...     "local_disks": False, "in_transit": False}})
    >>> enc = security_configuration_doc(s)["EncryptionConfiguration"]
    >>> enc["EnableAtRestEncryption"], enc["EnableInTransitEncryption"], enc["AtRestEncryptionConfiguration"]
    (True, False, {'S3EncryptionConfiguration': {'EncryptionMode': 'SSE-S3'}})
    """
    e = s["encryption"]
    at_rest: dict[str, Any] = {}
    if e["s3"]:
        at_rest["S3EncryptionConfiguration"] = {"EncryptionMode": e["s3"]}
        if e["s3"] == "SSE-KMS":
            at_rest["S3EncryptionConfiguration"]["AwsKmsKey"] = e["s3_kms_key"]
    if e["local_disks"]:
        at_rest["LocalDiskEncryptionConfiguration"] = {
            "EncryptionKeyProviderType": "AwsKms", "AwsKmsKey": e["local_disk_kms_key"], "EnableEbsEncryption": True}
    if not at_rest and not e["in_transit"]:
        return None
    enc: dict[str, Any] = {"EnableAtRestEncryption": bool(at_rest), "EnableInTransitEncryption": e["in_transit"]}
    if at_rest:
        enc["AtRestEncryptionConfiguration"] = at_rest
    if e["in_transit"]:
        tls = ({"CertificateProviderType": "Custom", "S3Object": e["tls_certificates"],
                "CertificateProviderClass": e["tls_provider_class"]} if e["tls_provider_class"]
               else {"CertificateProviderType": "PEM", "S3Object": e["tls_certificates"]})
        enc["InTransitEncryptionConfiguration"] = {"TLSCertificateConfiguration": tls}
    return {"EncryptionConfiguration": enc}


def security_configuration_request(s: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``create_security_configuration`` request ``up`` sends when ``emr.security_configuration`` is null.

    The name carries a digest of the document, so a changed ``encryption`` section makes a new
    configuration and an unchanged one is reused.  ``None`` when a configuration is named or nothing is on.
    """
    if s["security_configuration"] is not None:
        return None
    doc = security_configuration_doc(s)
    if doc is None:
        return None
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    stem = re.sub(r"[^\w.-]", "-", s["name"])[:40]
    return {"Name": f"{stem}-{hashlib.sha256(body.encode()).hexdigest()[:12]}", "SecurityConfiguration": body}


def check_security_configuration(name: str, doc: Mapping[str, Any], s: Mapping[str, Any]) -> None:
    """Refuse an existing security configuration that encrypts less than ``emr.encryption`` asks for."""
    enc = doc.get("EncryptionConfiguration") or {}
    at_rest = (enc.get("AtRestEncryptionConfiguration") or {}) if enc.get("EnableAtRestEncryption") else {}
    e = s["encryption"]
    missing = [what for what, wanted, there in (
        ("S3 encryption (emr.encryption.s3)", e["s3"], "S3EncryptionConfiguration" in at_rest),
        ("local-disk encryption (emr.encryption.local_disks)", e["local_disks"],
         "LocalDiskEncryptionConfiguration" in at_rest),
        ("in-transit encryption (emr.encryption.in_transit)", e["in_transit"], enc.get("EnableInTransitEncryption")),
    ) if wanted and not there]
    if missing:
        raise _bad("emr.security_configuration", name, f"does not turn on {', '.join(missing)}",
                   "name a security configuration that does, set emr.security_configuration: null to let `up` "
                   "create one, or turn those emr.encryption keys off on purpose")


def _check_groups(groups: Any) -> None:
    if not isinstance(groups, list) or not groups:
        raise _bad("emr.instance_groups", groups, "must be a non-empty list",
                   "e.g. [{role: MASTER, instance_type: m6i.xlarge, count: 1}, {role: CORE, ...}]")
    roles = []
    for i, g in enumerate(groups):
        key = f"emr.instance_groups[{i}]"
        if not isinstance(g, Mapping) or set(g) - {"role", "instance_type", "count", "market", "ebs_gb", "name"}:
            raise _bad(key, g, "must have role, instance_type, count (optional market, ebs_gb, name)",
                       "{role: CORE, instance_type: m6i.2xlarge, count: 2}")
        if g.get("role") not in ("MASTER", "CORE", "TASK"):
            raise _bad(f"{key}.role", g.get("role"), "must be MASTER, CORE or TASK", "set role: CORE")
        check_instance_type(f"{key}.instance_type", g.get("instance_type"))
        count = g.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise _bad(f"{key}.count", count, "must be an integer >= 1", "set count: 2")
        if g.get("market", "ON_DEMAND") not in ("ON_DEMAND", "SPOT"):
            raise _bad(f"{key}.market", g.get("market"), "must be ON_DEMAND or SPOT", "set market: ON_DEMAND")
        ebs = g.get("ebs_gb")
        if ebs is not None and (isinstance(ebs, bool) or not isinstance(ebs, int) or not 1 <= ebs <= 16384):
            raise _bad(f"{key}.ebs_gb", ebs, "must be an integer GiB", "set ebs_gb: 64 or drop it")
        roles.append(g["role"])
    if roles.count("MASTER") != 1 or roles.count("CORE") > 1:
        raise _bad("emr.instance_groups", roles, "needs exactly one MASTER group and at most one CORE group",
                   "list one MASTER, one CORE and any TASK groups")


def _check_fleets(fleets: Any) -> None:
    if not isinstance(fleets, list) or not fleets:
        raise _bad("emr.instance_fleets", fleets, "must be a non-empty list or null",
                   "e.g. [{role: MASTER, instance_types: [m6i.xlarge, m5.xlarge], on_demand: 1}, ...]")
    roles = []
    for i, f in enumerate(fleets):
        key = f"emr.instance_fleets[{i}]"
        if not isinstance(f, Mapping) or set(f) - {"role", "instance_types", "on_demand", "spot", "name"}:
            raise _bad(key, f, "must have role, instance_types, on_demand and/or spot",
                       "{role: CORE, instance_types: [m6i.2xlarge, m5.2xlarge], on_demand: 0, spot: 2}")
        if f.get("role") not in ("MASTER", "CORE", "TASK"):
            raise _bad(f"{key}.role", f.get("role"), "must be MASTER, CORE or TASK", "set role: CORE")
        types = f.get("instance_types")
        if not isinstance(types, list) or not types:
            raise _bad(f"{key}.instance_types", types, "must be a non-empty list", "[m6i.2xlarge, m5.2xlarge]")
        for j, t in enumerate(types):
            check_instance_type(f"{key}.instance_types[{j}]", t)
        for cap in ("on_demand", "spot"):
            v = f.get(cap, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise _bad(f"{key}.{cap}", v, "must be an integer >= 0", f"set {cap}: 1")
        if f.get("on_demand", 0) + f.get("spot", 0) < 1:
            raise _bad(key, f, "has no capacity", "set on_demand: 1 (or spot)")
        roles.append(f["role"])
    if roles.count("MASTER") != 1 or roles.count("CORE") > 1:
        raise _bad("emr.instance_fleets", roles, "needs exactly one MASTER fleet and at most one CORE fleet",
                   "list one MASTER, one CORE and any TASK fleet")


def _check_serverless(s: dict[str, Any]) -> None:
    sv = s["serverless"]
    if sv["application_id"] is not None:
        check_serverless_id("emr.serverless.application_id", sv["application_id"])
    role = sv["execution_role_arn"]
    if s["mode"] == "serverless" and (not isinstance(role, str) or not _ROLE_ARN.fullmatch(role)):
        raise _bad("emr.serverless.execution_role_arn", role, "must be an IAM role ARN in serverless mode",
                   "--set emr.serverless.execution_role_arn=arn:aws:iam::123456789012:role/ecomrec-emr-serverless-job")
    if sv["architecture"] not in ("X86_64", "ARM64"):
        raise _bad("emr.serverless.architecture", sv["architecture"], "must be X86_64 or ARM64",
                   "--set emr.serverless.architecture=X86_64")
    idle = sv["idle_timeout_minutes"]
    if isinstance(idle, bool) or not isinstance(idle, int) or not 1 <= idle <= 10080:
        raise _bad("emr.serverless.idle_timeout_minutes", idle, "must be an integer in [1, 10080]",
                   "--set emr.serverless.idle_timeout_minutes=15")
    cap = sv["max_capacity"]
    if cap is not None and (not isinstance(cap, Mapping) or set(cap) - {"cpu", "memory", "disk"}
                            or not all(isinstance(v, str) for v in cap.values())):
        raise _bad("emr.serverless.max_capacity", cap, "must map cpu/memory/disk to strings",
                   "{cpu: 16 vCPU, memory: 64 GB, disk: 200 GB}")
    jars = sv["delta_jars"]
    if not isinstance(jars, list) or not all(isinstance(j, str) and re.fullmatch(r"/[\w./-]+\.jar", j) for j in jars):
        raise _bad("emr.serverless.delta_jars", jars, "must be a list of absolute .jar paths", "keep the default")


def policy_prefixes(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """The S3 key prefixes of the job role by right (:data:`POLICY_PREFIXES`), under ``emr.prefix``."""
    return {group: [f"{settings['prefix']}{p}" for p in prefixes] for group, prefixes in POLICY_PREFIXES.items()}


def check_paths(paths: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """Check that the data paths the jobs use on EMR are s3:// URIs the job role may reach.

    Raises
    ------
    ValueError
        When ``paths.raw``, ``paths.lake`` or ``paths.reports`` is not ``s3://`` in ``emr.bucket`` under
        its own prefix (:data:`PATH_PREFIXES`): raw is read-only, so a lake placed under ``raw/`` would
        be denied, and a raw folder under ``lake/`` would be writable.
    """
    for name, own in PATH_PREFIXES.items():
        uri = paths.get(name)
        if uri is None:
            continue
        key = f"paths.{name}"
        bucket, obj = check_s3_uri(key, uri)
        allowed = f"{settings['prefix']}{own}"
        if bucket != settings["bucket"] or not f"{obj.rstrip('/')}/".startswith(allowed):
            raise _bad(key, uri, f"is outside s3://{settings['bucket']}/{allowed}, the only prefix the job role "
                       f"grants {name} the rights it needs",
                       f"--set {key}=s3://{settings['bucket']}/{settings['prefix']}{name}")


# --------------------------------------------------------------------------------------------
# Where things go in S3
# --------------------------------------------------------------------------------------------

def project_version(root: Path = REPO_ROOT) -> str:
    """The project version from ``pyproject.toml``."""
    with open(root / "pyproject.toml", "rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def wheel_name(version: str | None = None, root: Path = REPO_ROOT) -> str:
    """The file name ``pip wheel`` gives the project wheel (pure Python, so ``py3-none-any``)."""
    return f"ecomrec_spark-{version or project_version(root)}-py3-none-any.whl"


@dataclass(frozen=True)
class Artifacts:
    """S3 URIs of everything the launcher ships, all under one versioned prefix."""

    base: str
    wheel: str
    jobs: str
    conf: str
    conf_archive: str
    bootstrap: str
    venv: str
    wheelhouse: str  # the project wheel, every dependency's wheel and requirements.lock (bootstrap shipping)

    @property
    def conf_name(self) -> str:
        """The config file's name; the steps read it from the container's working directory."""
        return self.conf.rsplit("/", 1)[1]


def artifact_uris(settings: Mapping[str, Any], *, wheel: str | None = None, conf_name: str = "emr.yaml",
                  root: Path = REPO_ROOT) -> Artifacts:
    """The artifact layout: ``s3://<bucket>/<prefix>artifacts/ecomrec-<version>/...``."""
    if not re.fullmatch(r"[\w.-]+\.ya?ml", conf_name):
        raise ValueError(f"--conf file name {conf_name!r} must be a plain *.yaml name (letters, digits, _ . -)")
    version = project_version(root)
    base = f"s3://{settings['bucket']}/{settings['prefix']}artifacts/ecomrec-{version}/"
    return Artifacts(
        base=base,
        wheel=base + WHEELHOUSE + (wheel or wheel_name(version)),
        wheelhouse=base + WHEELHOUSE,
        jobs=base + "jobs/",
        conf=base + "conf/" + conf_name,
        conf_archive=base + "conf/conf.tar.gz",
        bootstrap=base + "bootstrap/" + BOOTSTRAP_SCRIPT.name,
        venv=base + "pyspark_venv.tar.gz",
    )


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------

def runtime_requirements(root: Path = REPO_ROOT) -> tuple[list[str], list[str]]:
    """Split the project's dependencies for installing on EMR.

    Returns
    -------
    (no_deps, deps) : tuple of lists
        ``no_deps`` are installed with ``--no-deps`` (delta-spark, so it does not pull pyspark);
        ``deps`` normally.  pyspark itself is left out: EMR provides its own build.
    """
    with open(root / "pyproject.toml", "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    no_deps: list[str] = []
    normal: list[str] = []
    for req in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group().lower().replace("_", "-")  # type: ignore[union-attr]
        if name in _PROVIDED:
            continue
        (no_deps if name in _NO_DEPS else normal).append(req.replace(" ", ""))
    return no_deps, normal


def _instances(s: Mapping[str, Any]) -> dict[str, Any]:
    inst: dict[str, Any] = {"KeepJobFlowAliveWhenNoSteps": s["keep_alive"], "TerminationProtected": False}
    if s["instance_fleets"] is not None:
        inst["InstanceFleets"] = [
            {
                "Name": f.get("name", f["role"].lower()),
                "InstanceFleetType": f["role"],
                "TargetOnDemandCapacity": f.get("on_demand", 0),
                "TargetSpotCapacity": f.get("spot", 0),
                "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1} for t in f["instance_types"]],
            }
            for f in s["instance_fleets"]
        ]
        if s["subnet_id"]:
            inst["Ec2SubnetIds"] = [s["subnet_id"]]
    else:
        groups = []
        for g in s["instance_groups"]:
            group: dict[str, Any] = {
                "Name": g.get("name", g["role"].lower()),
                "InstanceRole": g["role"],
                "Market": g.get("market", "ON_DEMAND"),
                "InstanceType": g["instance_type"],
                "InstanceCount": g.get("count", 1),
            }
            if g.get("ebs_gb"):
                group["EbsConfiguration"] = {"EbsBlockDeviceConfigs": [
                    {"VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": g["ebs_gb"]}, "VolumesPerInstance": 1}]}
            groups.append(group)
        inst["InstanceGroups"] = groups
        if s["subnet_id"]:
            inst["Ec2SubnetId"] = s["subnet_id"]
    if s["ec2_key_name"]:
        inst["Ec2KeyName"] = s["ec2_key_name"]
    return inst


def _tags(s: Mapping[str, Any]) -> list[dict[str, str]]:
    tags = {str(k): str(v) for k, v in s["tags"].items()}
    tags[MANAGED_POLICY_TAG] = "true"
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def cluster_request(emr_cfg: Mapping[str, Any], paths: Mapping[str, Any], wheel_uri: str, *,
                    steps: Sequence[Mapping[str, Any]] = (), bootstrap_uri: str | None = None,
                    archive_uri: str | None = None) -> dict[str, Any]:
    """The exact ``run_job_flow`` keyword arguments for the configured cluster.

    Parameters
    ----------
    emr_cfg : mapping
        The ``emr:`` section (or :func:`resolve_settings` output).
    paths : mapping
        ``cfg["paths"]``; raw, lake and reports must be reachable by the job role (:func:`check_paths`).
    wheel_uri : str
        s3:// URI of the project wheel (installed by the bootstrap action).
    steps : sequence of dict
        Steps from :func:`step_requests` to run once the cluster is up (``Steps``); empty for none.
    bootstrap_uri, archive_uri : str, optional
        Override the artifact URIs of the bootstrap script / packed venv (default: :func:`artifact_uris`).

    Returns
    -------
    dict
        ``Name``, ``ReleaseLabel``, ``LogUri``, ``Applications``, ``Instances``, ``Configurations``
        (delta-defaults, spark-defaults with the Delta extension and catalog, spark-hive-site with the
        Glue Data Catalog factory, spark-env), ``JobFlowRole``, ``ServiceRole``, ``VisibleToAllUsers``
        (``emr.visible_to_all_users``, false by default), ``AutoTerminationPolicy``, ``StepConcurrencyLevel``
        (1: one Delta writer at a time), ``Tags``, ``SecurityConfiguration`` (the named one, or the one
        :func:`security_configuration_request` makes), ``BootstrapActions`` (bootstrap shipping) and ``Steps``.

    Raises
    ------
    ValueError
        Before any AWS call: no ``emr.subnet_id`` while ``emr.require_private_subnet`` is true, or encryption
        left on without its key or certificates (:func:`check_launch_security`).

    Examples
    --------
    >>> loose = {"require_private_subnet": False, "encryption": {"local_disks": False, "in_transit": False}}
    >>> r = cluster_request({"bucket": "b-1", "region": "us-east-1", **loose}, {"lake": "s3://b-1/lake"},
    ...                     "s3://b-1/artifacts/w.whl")
    >>> r["AutoTerminationPolicy"], r["Instances"]["InstanceGroups"][0]["InstanceRole"]
    ({'IdleTimeout': 1800}, 'MASTER')
    """
    s = resolve_settings(emr_cfg)
    check_launch_security(s)
    check_paths(paths, s)
    check_s3_uri("wheel_uri", wheel_uri)
    art = artifact_uris(s)
    spark_defaults: dict[str, str] = {
        **DELTA_SPARK_CONF,
        "spark.sql.catalogImplementation": "hive",  # so the Glue-backed Hive metastore is the session catalog
        "spark.yarn.maxAppAttempts": "1",  # a failed job fails its step once instead of re-running its writes
    }
    configurations: list[dict[str, Any]] = []
    bootstrap_actions: list[dict[str, Any]] = []
    if s["shipping"] == "archive":
        archive = archive_uri or art.venv
        check_s3_uri("archive_uri", archive)
        spark_defaults.update({
            "spark.archives": f"{archive}#environment",
            "spark.yarn.appMasterEnv.PYSPARK_PYTHON": ENV_PYTHON,
            "spark.executorEnv.PYSPARK_PYTHON": ENV_PYTHON,
        })
    else:
        script = bootstrap_uri or art.bootstrap
        check_s3_uri("bootstrap_uri", script)
        node_python_version(s)  # the wheelhouse is built for emr.python's version: it must name one
        wheelhouse = wheel_uri.rsplit("/", 1)[0] + "/"  # the wheel sits in the wheelhouse with its lock
        bootstrap_actions.append({
            "Name": "install the ecomrec-spark wheelhouse (pinned, hash-checked, no package index)",
            "ScriptBootstrapAction": {"Path": script, "Args": [s["python"], wheelhouse]},
        })
    spark_defaults.update(s["spark_defaults"])
    configurations += [
        {"Classification": "delta-defaults", "Properties": {"delta.enabled": "true"}},
        {"Classification": "spark-defaults", "Properties": spark_defaults},
        {"Classification": "spark-hive-site", "Properties": {"hive.metastore.client.factory.class": GLUE_FACTORY}},
    ]
    if s["shipping"] == "bootstrap":
        configurations.append({"Classification": "spark-env", "Properties": {}, "Configurations": [
            {"Classification": "export", "Properties": {"PYSPARK_PYTHON": s["python"]}}]})
    request: dict[str, Any] = {
        "Name": s["name"],
        "ReleaseLabel": s["release_label"],
        "LogUri": s["log_uri"],
        "Applications": [{"Name": a} for a in s["applications"]],
        "Instances": _instances(s),
        "Configurations": configurations,
        "JobFlowRole": s["job_flow_role"],
        "ServiceRole": s["service_role"],
        "VisibleToAllUsers": s["visible_to_all_users"],
        "AutoTerminationPolicy": {"IdleTimeout": s["idle_timeout_seconds"]},
        "StepConcurrencyLevel": 1,
        "Tags": _tags(s),
    }
    if bootstrap_actions:
        request["BootstrapActions"] = bootstrap_actions
    if steps:
        request["Steps"] = [dict(step) for step in steps]
    if s["ebs_root_volume_gb"]:
        request["EbsRootVolumeSize"] = s["ebs_root_volume_gb"]
    created = security_configuration_request(s)
    if s["security_configuration"] or created:
        request["SecurityConfiguration"] = s["security_configuration"] or created["Name"]  # type: ignore[index]
    return request


def _check_jobs(jobs: Iterable[str]) -> list[str]:
    jobs = list(jobs)
    if not jobs:
        raise ValueError(f"--jobs is empty; fix: choose from {', '.join(PIPELINE)}")
    for job in jobs:
        if job not in JOB_SCRIPTS:
            raise ValueError(f"--jobs has unknown job '{job}'; fix: choose from {', '.join(PIPELINE)}")
    return sorted(jobs, key=PIPELINE.index)  # always pipeline order


def _check_overrides(overrides: Iterable[str]) -> list[str]:
    out = []
    for pair in overrides:
        parse_overrides([pair])  # same rules as the jobs' own --set
        reject_credentials({pair.split("=", 1)[0]: pair.split("=", 1)[1]}, "--set ")
        out.append(pair)
    return out


def job_overrides(overrides: Iterable[str]) -> list[str]:
    """The ``--set`` overrides to forward to the jobs: all but the launcher's own ``emr.*`` keys."""
    return [o for o in overrides if not o.split("=", 1)[0].strip().startswith("emr.")]


def step_requests(jobs: Iterable[str], conf_uri: str, overrides: Iterable[str], *, jobs_uri: str,
                  action_on_failure: str = "CANCEL_AND_WAIT", submit_args: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One EMR step per pipeline job, in pipeline order.

    Each step is ``command-runner.jar`` running ``spark-submit --deploy-mode cluster --files <conf uri>
    ... <jobs_uri><job>.py --conf <conf name> --set k=v ...``.  ``--files`` puts the config into the
    driver container's working directory, where the job's own ``--conf`` finds it by name.

    Parameters
    ----------
    jobs : iterable of str
        Commands from :data:`PIPELINE` (sorted into pipeline order).
    conf_uri : str
        s3:// URI of the uploaded run config.
    overrides : iterable of str
        ``key=value`` overrides forwarded to every job as ``--set``.
    jobs_uri : str
        s3:// prefix (ending in ``/``) holding ``jobs/*.py``.
    action_on_failure : str
        ``CANCEL_AND_WAIT`` (default: later steps are cancelled, the cluster waits), ``CONTINUE`` or
        ``TERMINATE_CLUSTER``.
    submit_args : sequence of str
        Extra spark-submit arguments placed before the script.

    Examples
    --------
    >>> [s["Name"] for s in step_requests(["transform", "ingest"], "s3://b-1/c/emr.yaml", [], jobs_uri="s3://b-1/j/")]
    ['ecomrec ingest', 'ecomrec transform']
    """
    check_s3_uri("conf_uri", conf_uri)
    check_s3_uri("jobs_uri", jobs_uri)
    if not jobs_uri.endswith("/"):
        raise ValueError(f"jobs_uri {jobs_uri!r} must end with '/'")
    if action_on_failure not in _ACTIONS_ON_FAILURE:
        raise _bad("emr.action_on_failure", action_on_failure, f"must be one of {', '.join(_ACTIONS_ON_FAILURE)}",
                   "--set emr.action_on_failure=CANCEL_AND_WAIT")
    sets = [a for o in _check_overrides(overrides) for a in ("--set", o)]
    conf_name = conf_uri.rsplit("/", 1)[1]
    steps = []
    for job in _check_jobs(jobs):
        args = ["spark-submit", "--deploy-mode", "cluster", "--files", conf_uri, *submit_args,
                f"{jobs_uri}{JOB_SCRIPTS[job]}", "--conf", conf_name, *sets]
        steps.append({
            "Name": f"ecomrec {job}",
            "ActionOnFailure": action_on_failure,
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
        })
    return steps


def serverless_log_uri(settings: Mapping[str, Any]) -> str:
    """Where EMR Serverless writes job logs: ``s3://<bucket>/<prefix>logs/serverless/``."""
    return f"s3://{settings['bucket']}/{settings['prefix']}logs/serverless/"


def serverless_requests(emr_cfg: Mapping[str, Any], jobs: Iterable[str], overrides: Iterable[str], *,
                        artifacts: Artifacts | None = None,
                        application_id: str = "<application-id>") -> dict[str, Any]:
    """The ``create_application`` and ``start_job_run`` requests of the EMR Serverless mode.

    The packed venv and a small archive holding the run config travel through ``spark.archives``
    (unpacked as ``./environment`` and ``./conf`` in the driver's and executors' working directories);
    Delta comes from the jars EMR ships; the Glue Data Catalog is the metastore.

    Parameters
    ----------
    emr_cfg : mapping
        The ``emr:`` section; ``serverless.execution_role_arn`` is required.
    jobs, overrides : iterables of str
        As for :func:`step_requests`.
    artifacts : Artifacts, optional
        Default :func:`artifact_uris` of the settings.
    application_id : str
        Filled in after ``create_application`` (a placeholder for ``--dry-run``).

    Returns
    -------
    dict
        ``{"create_application": {...}, "start_job_run": [{...} per job, in pipeline order]}``.
    """
    s = resolve_settings(emr_cfg)
    sv = s["serverless"]
    if not isinstance(sv["execution_role_arn"], str) or not _ROLE_ARN.fullmatch(sv["execution_role_arn"]):
        raise _bad("emr.serverless.execution_role_arn", sv["execution_role_arn"], "must be an IAM role ARN",
                   "--set emr.serverless.execution_role_arn=arn:aws:iam::123456789012:role/ecomrec-emr-serverless-job")
    art = artifacts or artifact_uris(s)
    create: dict[str, Any] = {
        "name": s["name"],
        "releaseLabel": s["release_label"],
        "type": "SPARK",
        "architecture": sv["architecture"],
        "autoStartConfiguration": {"enabled": True},
        "autoStopConfiguration": {"enabled": True, "idleTimeoutMinutes": sv["idle_timeout_minutes"]},
        "tags": {t["Key"]: t["Value"] for t in _tags(s)},
    }
    if sv["max_capacity"]:
        create["maximumCapacity"] = dict(sv["max_capacity"])
    conf = {
        "spark.archives": f"{art.venv}#environment,{art.conf_archive}#conf",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": ENV_PYTHON,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": ENV_PYTHON,
        "spark.emr-serverless.executorEnv.PYSPARK_PYTHON": ENV_PYTHON,
        "spark.jars": ",".join(sv["delta_jars"]),
        **DELTA_SPARK_CONF,
        **s["spark_defaults"],
    }
    if any(re.search(r"\s", f"{k}={v}") for k, v in conf.items()):
        raise ValueError("emr.spark_defaults values must not contain spaces (they go into sparkSubmitParameters)")
    params = " ".join(f"--conf {k}={v}" for k, v in conf.items())
    sets = [a for o in _check_overrides(overrides) for a in ("--set", o)]
    runs = []
    for job in _check_jobs(jobs):
        runs.append({
            "applicationId": application_id,
            "executionRoleArn": sv["execution_role_arn"],
            "name": f"ecomrec {job}",
            "jobDriver": {"sparkSubmit": {
                "entryPoint": f"{art.jobs}{JOB_SCRIPTS[job]}",
                "entryPointArguments": ["--conf", f"conf/{art.conf_name}", *sets],
                "sparkSubmitParameters": params,
            }},
            "configurationOverrides": {
                "applicationConfiguration": [{"classification": "spark-defaults", "properties": {
                    "spark.hadoop.hive.metastore.client.factory.class": GLUE_FACTORY,
                    "spark.sql.catalogImplementation": "hive",
                }}],
                "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": serverless_log_uri(s)}},
            },
            "tags": create["tags"],
        })
    return {"create_application": create, "start_job_run": runs}


# --------------------------------------------------------------------------------------------
# Packaging
# --------------------------------------------------------------------------------------------

def _run(cmd: Sequence[str], **kwargs: Any) -> None:
    log.info("running %s", " ".join(cmd))
    subprocess.run(list(cmd), check=True, **kwargs)


def build_wheel(root: Path = REPO_ROOT, out_dir: Path | None = None) -> Path:
    """Build the project wheel with ``pip wheel . --no-deps -w dist/`` and return its path.

    ``pip wheel`` needs no extra package (``python -m build`` would); the wheel is pure Python.
    """
    out_dir = Path(out_dir or root / "dist")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel_name(project_version(root), root)
    _run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--quiet", "-w", str(out_dir)])
    if not target.is_file():
        raise FileNotFoundError(f"pip wheel did not produce {target}")
    log.info("built %s", target)
    return target


_WHEEL_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.!+]+)(?:-\d[\w.]*)?"
                         r"-[\w.]+-[\w.]+-[\w.]+\.whl$")
#: pip platform tags per node architecture: Amazon Linux 2023 has glibc 2.34, so every manylinux tag up to
#: 2_34 runs there.  pip matches the tags it is given and no older ones, so each is named.
_PLATFORMS = {arch: [f"manylinux_2_{v}_{arch}" for v in (34, 28, 17)] + [f"manylinux2014_{arch}"]
              for arch in ("x86_64", "aarch64")}
#: Graviton families (m6g, c7gn, r8g, x2gd, im4gn, t4g ...): a ``g`` after the generation digit.
_GRAVITON = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")


def node_architectures(s: Mapping[str, Any]) -> list[str]:
    """The CPU architectures of the configured instance types (``x86_64``, ``aarch64``), sorted."""
    types = ([t for f in s["instance_fleets"] for t in f["instance_types"]] if s["instance_fleets"] is not None
             else [g["instance_type"] for g in s["instance_groups"]])
    return sorted({"aarch64" if _GRAVITON.match(t) else "x86_64" for t in types})


def node_python_version(s: Mapping[str, Any]) -> str:
    """``3.11`` from ``emr.python`` (``/usr/bin/python3.11``): the wheels are picked for that interpreter."""
    m = re.search(r"python(3\.\d+)$", s["python"])
    if not m:
        raise _bad("emr.python", s["python"], "does not name its version (the wheelhouse is built for it)",
                   "--set emr.python=/usr/bin/python3.11")
    return m.group(1)


def lock_wheelhouse(folder: Path) -> str:
    """Write ``requirements.lock`` for every wheel in ``folder`` and return its text.

    One line per project, ``name==version --hash=sha256:<digest>`` with one hash per wheel file (one per
    architecture).  ``pip install --no-index --find-links <folder> --require-hashes --no-deps -r`` then
    installs exactly these files and nothing else: no version range is resolved and no index is asked.

    Raises
    ------
    ValueError
        When the folder has no wheels, a file is not a wheel name, or one project has two versions.
    """
    folder = Path(folder)
    pins: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(folder.glob("*.whl")):
        m = _WHEEL_FILE.match(path.name)
        if not m:
            raise ValueError(f"{path} is not a wheel file name (name-version-python-abi-platform.whl)")
        name = re.sub(r"[-_.]+", "-", m["name"]).lower()
        version, digest = m["version"], hashlib.sha256(path.read_bytes()).hexdigest()
        if name in pins and pins[name][0] != version:
            raise ValueError(f"the wheelhouse {folder} holds {name} {pins[name][0]} and {version}; "
                             "rebuild it from scratch (one version per project)")
        pins.setdefault(name, (version, []))[1].append(digest)
    if not pins:
        raise ValueError(f"the wheelhouse {folder} holds no wheels; build it with build_wheelhouse()")
    lines = [f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(hashes))
             for name, (version, hashes) in sorted(pins.items())]
    text = "# written by ecomrec_spark.aws.emr.lock_wheelhouse: every wheel of this folder, pinned and hashed\n"
    text += "\n".join(lines) + "\n"
    (folder / LOCK_NAME).write_text(text)
    return text


def build_wheelhouse(wheel: Path, out_dir: Path, *, python_version: str = "3.11",
                     architectures: Sequence[str] = ("x86_64",), root: Path = REPO_ROOT) -> Path:
    """Download the wheels the nodes need, for their Python and architecture, next to the project wheel,
    and lock them (:func:`lock_wheelhouse`).

    The version ranges of ``pyproject.toml`` are resolved here, once, at package time (``pip download
    --only-binary=:all:``); the nodes install the resulting files by hash and never see an index.
    delta-spark comes without its dependencies (pyspark is EMR's own), as on the cluster.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.whl"):  # a wheelhouse is rebuilt whole, so an old version never lingers
        stale.unlink()
    no_deps, deps = runtime_requirements(root)
    for arch in architectures:
        if arch not in _PLATFORMS:
            raise ValueError(f"architecture {arch!r} is not one of {', '.join(_PLATFORMS)}")
        platforms = [a for tag in _PLATFORMS[arch] for a in ("--platform", tag)]
        target = ["--only-binary=:all:", *platforms, "--python-version", python_version,
                  "--implementation", "cp", "--dest", str(out_dir), "--quiet"]
        _run([sys.executable, "-m", "pip", "download", *target, *deps])
        _run([sys.executable, "-m", "pip", "download", *target, "--no-deps", *no_deps])
    (out_dir / Path(wheel).name).write_bytes(Path(wheel).read_bytes())
    lock_wheelhouse(out_dir)
    log.info("wheelhouse %s: %d wheels for Python %s on %s", out_dir, len(list(out_dir.glob("*.whl"))),
             python_version, ", ".join(architectures))
    return out_dir


def wheelhouse_wheel(wheelhouse: Path) -> Path:
    """The project wheel in a wheelhouse folder, after checking the folder is one (a lock, one project wheel)."""
    folder = Path(wheelhouse)
    if not (folder / LOCK_NAME).is_file():
        raise FileNotFoundError(f"{folder / LOCK_NAME} does not exist; build the wheelhouse with build_wheelhouse() "
                                "(or drop --wheelhouse to build it)")
    wheels = sorted(folder.glob("ecomrec_spark-*.whl"))
    if len(wheels) != 1:
        raise ValueError(f"the wheelhouse {folder} must hold exactly one ecomrec_spark wheel, not {len(wheels)}")
    return wheels[0]


def pack_venv(wheel: Path, out: Path, *, python: str = "python3.11", root: Path = REPO_ROOT,
              wheelhouse: Path | None = None) -> Path:
    """Build a venv holding the wheel and its dependencies and pack it with venv-pack.

    The archive is unpacked on the cluster nodes as ``./environment`` (``spark.archives``) and run
    with ``PYSPARK_PYTHON=./environment/bin/python``.  venv-pack does not copy the interpreter, so run
    this on the cluster's OS, CPU architecture and Python (for EMR: Amazon Linux 2023, x86_64 or
    arm64 for Graviton instances), e.g. inside ``docker run amazonlinux:2023``; see emr/README.md.

    The venv gets exactly the wheels of a locked wheelhouse (:func:`build_wheelhouse`, built here for
    this machine's CPU when none is given), installed as the bootstrap installs them: by hash, without
    an index and without resolving anything.

    Parameters
    ----------
    wheel : Path
        The project wheel from :func:`build_wheel`.
    out : Path
        Where to write ``pyspark_venv.tar.gz``.
    python : str
        The interpreter that matches ``emr.python`` on the nodes (its name ends in the version: python3.11).
    wheelhouse : Path, optional
        A wheelhouse already built for that Python and this CPU.
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError("pack_venv must run on Linux matching the cluster (Amazon Linux 2023); "
                           "use the Docker recipe in emr/README.md or emr.shipping: bootstrap")
    version = re.search(r"python(3\.\d+)$", python)
    if wheelhouse is None and not version:
        raise ValueError(f"python {python!r} must end in its version, like python3.11 (the wheels are picked for it)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ecomrec-venv-") as tmp:
        if wheelhouse is None and version:
            wheelhouse = build_wheelhouse(wheel, Path(tmp) / "wheelhouse", python_version=version.group(1),
                                          architectures=[platform.machine()], root=root)
        env = Path(tmp) / "venv"
        _run([python, "-m", "venv", str(env)])
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        _run([*pip, "--no-index", "--find-links", str(wheelhouse), "--require-hashes", "--no-deps",
              "-r", str(Path(wheelhouse) / LOCK_NAME)])
        _run([*pip, "venv-pack==0.2.0"])  # the packing tool, at pack time; the nodes never run pip
        _run([str(env / "bin" / "venv-pack"), "-p", str(env), "-o", str(out), "-f"])
    return out


def shipped_config(conf_path: Path) -> bytes:
    """The run config as uploaded: the file with the sections it inherits from conf/local.yaml merged in
    and without the launcher-only ``emr:`` section.

    The wheel holds no ``conf/`` folder, so on the cluster the file must stand alone.
    """
    from ecomrec_spark import config as _config

    raw = yaml.safe_load(Path(conf_path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"config file {conf_path} must hold a mapping at the top level")  # noqa: TRY004
    merged = _config._with_defaults(raw, Path(conf_path))  # same inheritance as load_config
    merged.pop("emr", None)
    reject_credentials(merged, "")
    header = f"# shipped by `ecomrec emr` from {Path(conf_path).name}; inherited sections merged in\n"
    return (header + yaml.safe_dump(merged, sort_keys=False)).encode()


def conf_archive(conf_name: str, conf_bytes: bytes) -> bytes:
    """A ``.tar.gz`` holding only the run config (EMR Serverless unpacks it as ``./conf``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(conf_name)
        info.size = len(conf_bytes)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(conf_bytes))
    return buf.getvalue()


def plan_uploads(settings: Mapping[str, Any], art: Artifacts, conf_path: Path, *,
                 wheelhouse: Path | None = None, archive: Path | None = None, root: Path = REPO_ROOT,
                 parts: Sequence[str] = ("wheelhouse", "jobs", "conf", "bootstrap", "archive"),
                 ) -> dict[str, Path | bytes]:
    """What to upload, as ``{key relative to art.base: local file or bytes}``.

    ``parts`` picks among the wheelhouse (bootstrap shipping: the project wheel, its dependencies'
    wheels and ``requirements.lock``), ``jobs/*.py``, the shipped config (and its archive in serverless
    mode), the bootstrap script (bootstrap shipping) and the packed venv (archive shipping).
    """
    files: dict[str, Path | bytes] = {}
    if "wheelhouse" in parts and settings["shipping"] == "bootstrap":
        if wheelhouse is None:
            raise ValueError("no wheelhouse to upload; build one with build_wheelhouse() or pass --wheelhouse DIR")
        name = wheelhouse_wheel(wheelhouse).name
        if art.wheel.rsplit("/", 1)[1] != name:
            raise ValueError(f"the wheelhouse {wheelhouse} holds {name}, not {art.wheel.rsplit('/', 1)[1]}")
        for path in sorted(Path(wheelhouse).iterdir()):
            if path.name.endswith(".whl") or path.name == LOCK_NAME:
                files[art.wheelhouse[len(art.base):] + path.name] = path
    if "jobs" in parts:
        for script in sorted((root / "jobs").glob("*.py")):
            files[f"jobs/{script.name}"] = script
    if "conf" in parts:
        body = shipped_config(conf_path)
        files[art.conf[len(art.base):]] = body
        if settings["mode"] == "serverless":
            files[art.conf_archive[len(art.base):]] = conf_archive(art.conf_name, body)
    if "bootstrap" in parts and settings["shipping"] == "bootstrap":
        files[art.bootstrap[len(art.base):]] = BOOTSTRAP_SCRIPT
    if "archive" in parts and settings["shipping"] == "archive":
        if archive is None:
            raise ValueError("archive shipping needs a packed venv: pass --archive pyspark_venv.tar.gz "
                             "(see emr/README.md) or set emr.shipping=bootstrap")
        files[art.venv[len(art.base):]] = Path(archive)
    for key, src in files.items():
        if isinstance(src, Path) and not src.is_file():
            raise FileNotFoundError(f"{src} (for {key}) does not exist")
    return files


def upload(files: Mapping[str, Path | bytes], s3_prefix: str, *, client: Any = None,
           region: str | None = None) -> list[str]:
    """Upload files to S3 under ``s3_prefix`` with boto3 and return their URIs.

    Parameters
    ----------
    files : mapping
        ``{relative key: local Path or bytes}``.
    s3_prefix : str
        ``s3://bucket/prefix/`` (ending in ``/``).
    client : boto3 S3 client, optional
        Default: a new client (default credential chain) in ``region``.
    """
    bucket, prefix = check_s3_uri("s3_prefix", s3_prefix)
    if prefix and not prefix.endswith("/"):
        raise ValueError(f"s3_prefix {s3_prefix!r} must end with '/'")
    for key in files:
        if key.startswith("/") or ".." in key.split("/") or not key:
            raise ValueError(f"upload key {key!r} must be a relative path")
    s3 = client or boto3.client("s3", region_name=region)
    try:
        s3.head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as exc:  # 403/404, no credentials
        raise EmrError(f"bucket s3://{bucket} is missing or not accessible with the current credentials ({exc}); "
                       f"create it first: aws s3 mb s3://{bucket} --region <region>") from None
    uris = []
    for key, src in files.items():
        uris.append(f"s3://{bucket}/{prefix}{key}")
        if isinstance(src, (bytes, bytearray)):
            s3.put_object(Bucket=bucket, Key=prefix + key, Body=bytes(src))
        elif _unchanged(s3, bucket, prefix + key, Path(src)):  # the wheelhouse is ~150 MB and rarely changes
            log.info("unchanged, not sent again: %s", uris[-1])
            continue
        else:
            md5, _ = _s3._md5(Path(src))
            s3.upload_file(str(src), bucket, prefix + key, ExtraArgs={"Metadata": {_s3.MD5_METADATA: md5}})
        log.info("uploaded %s", uris[-1])
    return uris


def _unchanged(s3: Any, bucket: str, key: str, path: Path) -> bool:
    """True when ``key`` already holds ``path`` (same size and MD5, the rule of ``ecomrec upload-raw``)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return _s3._same_object(head, path.stat().st_size, *_s3._md5(path))


# --------------------------------------------------------------------------------------------
# Operations: EMR on EC2
# --------------------------------------------------------------------------------------------

def _client(service: str, region: str | None, client: Any = None) -> Any:
    """``client`` or a new boto3 client; credentials come from boto3's default chain only."""
    return client if client is not None else boto3.client(service, region_name=region)


def check_private_subnet(subnet_id: str, *, ec2_client: Any = None, region: str | None = None) -> None:
    """Refuse a subnet the internet can reach: one that maps public IPs on launch, or whose route table
    (its own, else the VPC's main one) sends ``0.0.0.0/0`` or ``::/0`` to an internet gateway.

    Raises
    ------
    ValueError
        Naming ``emr.subnet_id`` and ``emr.require_private_subnet`` (the key that allows it on purpose).
    """
    ec2 = _client("ec2", region, ec2_client)
    subnet = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
    if not tables["RouteTables"]:  # no explicit association: the VPC's main route table applies
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                                                    {"Name": "association.main", "Values": ["true"]}])
    to_igw = [r for table in tables["RouteTables"] for r in table.get("Routes", [])
              if str(r.get("GatewayId", "")).startswith("igw-")
              and (r.get("DestinationCidrBlock") == "0.0.0.0/0" or r.get("DestinationIpv6CidrBlock") == "::/0")]
    why = ("maps public IP addresses on launch" if subnet.get("MapPublicIpOnLaunch")
           else f"routes to the internet gateway {to_igw[0]['GatewayId']}" if to_igw else None)
    if why:
        raise _bad("emr.subnet_id", subnet_id, f"is a public subnet: it {why}",
                   "use a private subnet (a NAT gateway or VPC endpoints for S3, Glue, DynamoDB and KMS), "
                   "or set emr.require_private_subnet: false on purpose")


def ensure_security_configuration(s: Mapping[str, Any], *, emr_client: Any = None) -> str | None:
    """Check the named security configuration, or create the one :func:`security_configuration_request`
    describes if it does not exist yet; return the name the cluster uses (``None``: everything off)."""
    emr = _client("emr", s["region"], emr_client)
    wanted = security_configuration_request(s)
    name = s["security_configuration"] or (wanted["Name"] if wanted else None)
    if name is None:
        return None
    try:
        found = emr.describe_security_configuration(Name=name)
    except ClientError as exc:
        if wanted is None:  # a named configuration must exist
            raise _bad("emr.security_configuration", name, f"cannot be read ({exc})",
                       "create it first (aws emr create-security-configuration) or set it to null") from None
        emr.create_security_configuration(**wanted)
        log.info("created EMR security configuration %s", name)
        return name
    check_security_configuration(name, json.loads(found["SecurityConfiguration"]), s)
    return name


def _conf_path(cfg: Mapping[str, Any]) -> Path:
    return Path(cfg.get("_source") or DEFAULT_CONF)


def up(cfg: Mapping[str, Any], *, overrides: Sequence[str] = (), jobs: Iterable[str] = PIPELINE,
       wheel: Path | None = None, wheelhouse: Path | None = None, archive: Path | None = None,
       with_steps: bool = True, wait_for: bool = True,
       dry_run: bool = False, emr_client: Any = None, s3_client: Any = None, serverless_client: Any = None,
       ec2_client: Any = None, root: Path = REPO_ROOT,
       sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Check the network and the security configuration, build, upload, create the cluster with the
    pipeline steps and (optionally) wait for them.

    Parameters
    ----------
    cfg : mapping
        A loaded run config (:func:`ecomrec_spark.config.load_config`) with an ``emr:`` section.
    overrides : sequence of str
        The ``--set`` overrides used to load ``cfg``; all but ``emr.*`` are forwarded to the jobs.
    jobs : iterable of str
        Which pipeline jobs to run (default: all six, in order).
    wheel, wheelhouse, archive : Path, optional
        A prebuilt wheel, a prebuilt wheelhouse folder (:func:`build_wheelhouse`: the wheel, its
        dependencies and ``requirements.lock``) or a packed venv; default: :func:`build_wheel` then
        :func:`build_wheelhouse` for the nodes' Python and architectures (archive shipping needs ``archive``).
    with_steps : bool
        ``False`` creates an idle cluster (auto-termination still applies) for :func:`submit`.
    wait_for : bool
        Wait for the steps, logging every state change and the log URI.
    dry_run : bool
        Validate and return the requests without building, uploading or calling AWS.
    emr_client, s3_client, serverless_client, ec2_client : boto3 clients, optional
        Injected clients (tests); default: new clients in ``emr.region``.

    Returns
    -------
    dict
        ``mode``, ``run_job_flow`` (the request), ``create_security_configuration`` (the request, used
        when no configuration of that name exists yet), ``uploads``, and after a real run ``cluster_id``,
        ``step_ids``, ``log_uri`` and ``status``.
    """
    s = resolve_settings(cfg.get("emr", {}))
    if s["mode"] == "serverless":
        return serverless_up(cfg, overrides=overrides, jobs=jobs, wheel=wheel, archive=archive, wait_for=wait_for,
                             dry_run=dry_run, client=serverless_client, s3_client=s3_client, root=root, sleep=sleep)
    conf_path = _conf_path(cfg)
    if wheelhouse is not None:
        wheel = wheelhouse_wheel(wheelhouse)
    art = artifact_uris(s, wheel=Path(wheel).name if wheel else None, conf_name=conf_path.name, root=root)
    steps: list[dict[str, Any]] = []
    if with_steps:
        steps = step_requests(jobs, art.conf, job_overrides(overrides), jobs_uri=art.jobs,
                              action_on_failure=s["action_on_failure"], submit_args=s["spark_submit_args"])
    request = cluster_request(s, cfg.get("paths", {}), art.wheel, steps=steps, bootstrap_uri=art.bootstrap,
                              archive_uri=art.venv)
    result: dict[str, Any] = {"mode": "cluster", "run_job_flow": request, "artifacts": art.base,
                              "create_security_configuration": security_configuration_request(s)}
    if dry_run:
        return result
    # the network and the security configuration are checked before anything is built or uploaded
    if s["require_private_subnet"]:
        check_private_subnet(s["subnet_id"], ec2_client=ec2_client, region=s["region"])
    emr = _client("emr", s["region"], emr_client)
    ensure_security_configuration(s, emr_client=emr)
    if s["shipping"] == "bootstrap" and wheelhouse is None:
        wheelhouse = build_wheelhouse(wheel or build_wheel(root), root / "dist" / "wheelhouse",
                                      python_version=node_python_version(s), architectures=node_architectures(s),
                                      root=root)
    files = plan_uploads(s, art, conf_path, wheelhouse=wheelhouse, archive=archive, root=root)
    result["uploads"] = upload(files, art.base, client=_client("s3", s["region"], s3_client))
    cluster_id = emr.run_job_flow(**request)["JobFlowId"]
    log.info("cluster %s starting (%s, %s); logs under %s%s/", cluster_id, s["release_label"], s["region"],
             s["log_uri"], cluster_id)
    by_name = {st["name"]: st["id"] for st in status(cluster_id, emr_client=emr)["steps"]}
    step_ids = [by_name[st["Name"]] for st in steps if st["Name"] in by_name]  # pipeline order
    result.update(cluster_id=cluster_id, step_ids=step_ids, log_uri=f"{s['log_uri']}{cluster_id}/")
    if wait_for and step_ids:
        result["status"] = wait(cluster_id, step_ids, emr_client=emr, timeout=s["wait_timeout_minutes"] * 60,
                                sleep=sleep)
    return result


def submit(cfg: Mapping[str, Any], cluster_id: str | None = None, *, overrides: Sequence[str] = (),
           jobs: Iterable[str] = PIPELINE, upload_files: bool = True, wait_for: bool = False, dry_run: bool = False,
           emr_client: Any = None, s3_client: Any = None, serverless_client: Any = None, root: Path = REPO_ROOT,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Add the pipeline steps to a running cluster (``add_job_flow_steps``).

    The jobs and the run config are uploaded again first, so config or job-script changes need no new
    cluster; a changed library needs a new ``up`` (the wheel is installed at bootstrap).  With
    ``dry_run`` (and no cluster id) the result holds both the ``run_job_flow`` request ``up`` would
    send and the ``add_job_flow_steps`` request.

    Returns
    -------
    dict
        ``add_job_flow_steps`` (the request), and after a real run ``step_ids`` and ``status``.
    """
    s = resolve_settings(cfg.get("emr", {}))
    if s["mode"] == "serverless":
        app = cluster_id or s["serverless"]["application_id"]
        return serverless_submit(cfg, app, overrides=overrides, jobs=jobs, upload_files=upload_files,
                                 wait_for=wait_for, dry_run=dry_run, client=serverless_client, s3_client=s3_client,
                                 root=root, sleep=sleep)
    if cluster_id is not None or not dry_run:
        check_cluster_id(cluster_id)
    conf_path = _conf_path(cfg)
    art = artifact_uris(s, conf_name=conf_path.name, root=root)
    check_paths(cfg.get("paths", {}), s)
    steps = step_requests(jobs, art.conf, job_overrides(overrides), jobs_uri=art.jobs,
                          action_on_failure=s["action_on_failure"], submit_args=s["spark_submit_args"])
    request = {"JobFlowId": cluster_id or "<cluster-id from run_job_flow>", "Steps": steps}
    result: dict[str, Any] = {"mode": "cluster", "add_job_flow_steps": request}
    if dry_run:
        if cluster_id is None:
            result["run_job_flow"] = cluster_request(s, cfg.get("paths", {}), art.wheel, bootstrap_uri=art.bootstrap,
                                                     archive_uri=art.venv)
        return result
    if upload_files:
        files = plan_uploads(s, art, conf_path, root=root, parts=("jobs", "conf"))
        result["uploads"] = upload(files, art.base, client=_client("s3", s["region"], s3_client))
    emr = _client("emr", s["region"], emr_client)
    step_ids = emr.add_job_flow_steps(**request)["StepIds"]
    log.info("added %d step(s) to %s: %s", len(step_ids), cluster_id, ", ".join(step_ids))
    result["step_ids"] = step_ids
    if wait_for:
        result["status"] = wait(str(cluster_id), step_ids, emr_client=emr, timeout=s["wait_timeout_minutes"] * 60,
                                sleep=sleep)
    return result


def _s3_uri(uri: str | None) -> str | None:
    """EMR reports LogUri as ``s3n://``; EMRFS and boto3 users want ``s3://``."""
    if not uri:
        return None
    return "s3://" + uri.split("://", 1)[1].rstrip("/") + "/" if "://" in uri else uri


def step_log_uri(log_uri: str | None, cluster_id: str, step_id: str) -> str | None:
    """``<LogUri>/<cluster-id>/steps/<step-id>/`` where EMR copies a step's stderr, stdout, controller."""
    base = _s3_uri(log_uri)
    return f"{base}{cluster_id}/steps/{step_id}/" if base else None


def status(cluster_id: str, *, emr_client: Any = None, region: str | None = None) -> dict[str, Any]:
    """A cluster's state and its steps (oldest first) with their states and log URIs.

    Returns
    -------
    dict
        ``cluster_id``, ``name``, ``state``, ``reason``, ``log_uri`` and ``steps``: a list of
        ``{"id", "name", "state", "reason", "log_uri"}``.
    """
    check_cluster_id(cluster_id)
    emr = _client("emr", region, emr_client)
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    log_uri = _s3_uri(cluster.get("LogUri"))
    steps = []
    for page in emr.get_paginator("list_steps").paginate(ClusterId=cluster_id):
        steps.extend(page["Steps"])
    steps.reverse()  # EMR lists the newest first
    out_steps = []
    for st in steps:
        st_status = st.get("Status", {})
        failure = st_status.get("FailureDetails") or {}
        reason = (failure.get("Message") or failure.get("Reason")
                  or (st_status.get("StateChangeReason") or {}).get("Message"))
        out_steps.append({"id": st["Id"], "name": st.get("Name", ""), "state": st_status.get("State"),
                          "reason": reason, "log_uri": step_log_uri(log_uri, cluster_id, st["Id"])})
    c_status = cluster.get("Status", {})
    return {
        "cluster_id": cluster_id,
        "name": cluster.get("Name"),
        "state": c_status.get("State"),
        "reason": (c_status.get("StateChangeReason") or {}).get("Message"),
        "log_uri": f"{log_uri}{cluster_id}/" if log_uri else None,
        "steps": out_steps,
    }


def wait(cluster_id: str, step_ids: Sequence[str] | None = None, *, emr_client: Any = None,
         region: str | None = None, timeout: float = 4 * 3600, poll: float = 15.0, max_poll: float = 120.0,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll with backoff until the steps complete (or, without steps, until the cluster is up).

    Every state change is logged with the step's S3 log URI.  boto3's ``step_complete`` waiter would
    do for one step; this loop follows all of them and says which one failed.

    Raises
    ------
    EmrError
        When a step fails or is cancelled, the cluster terminates first, or ``timeout`` seconds pass;
        the message names the step, its state and its log URI.
    """
    check_cluster_id(cluster_id)
    for sid in step_ids or ():
        check_step_id(sid)
    emr = _client("emr", region, emr_client)
    deadline = clock() + timeout
    delay = poll
    seen: dict[str, str | None] = {}
    while True:
        st = status(cluster_id, emr_client=emr)
        steps = st["steps"]
        if step_ids:
            by_id = {x["id"]: x for x in steps}
            steps = [by_id[i] for i in step_ids if i in by_id]
        if seen.get(cluster_id) != st["state"]:
            log.info("cluster %s: %s", cluster_id, st["state"])
            seen[cluster_id] = st["state"]
        for x in steps:
            if seen.get(x["id"]) != x["state"]:
                log.info("step %s (%s): %s  logs: %s", x["name"], x["id"], x["state"], x["log_uri"])
                seen[x["id"]] = x["state"]
        bad = [x for x in steps if x["state"] in _STEP_BAD]
        if bad:
            x = bad[0]
            raise EmrError(f"step '{x['name']}' ({x['id']}) {x['state']}: {x['reason'] or 'no reason given'}; "
                           f"logs: {x['log_uri']} (ecomrec emr logs --cluster-id {cluster_id} --step-id {x['id']})")
        if step_ids and len(steps) == len(step_ids) and all(x["state"] == _STEP_DONE for x in steps):
            return st
        if not step_ids and st["state"] in ("WAITING", "RUNNING"):
            return st
        if st["state"] in _CLUSTER_DEAD:
            raise EmrError(f"cluster {cluster_id} is {st['state']} before its steps finished: "
                           f"{st['reason'] or 'no reason given'}; logs: {st['log_uri']}")
        remaining = deadline - clock()
        if remaining <= 0:
            states = ", ".join(f"{x['name']}={x['state']}" for x in steps) or "no steps"
            raise EmrError(f"gave up waiting for cluster {cluster_id} after {timeout:.0f} s ({st['state']}; {states}); "
                           f"it keeps running: `ecomrec emr status --cluster-id {cluster_id}` or "
                           f"`ecomrec emr down --cluster-id {cluster_id}`")
        sleep(min(delay, remaining))
        delay = min(delay * 1.5, max_poll)


def logs(cluster_id: str, step_id: str, *, emr_client: Any = None, s3_client: Any = None,
         region: str | None = None, tail: int = 0) -> dict[str, Any]:
    """The S3 log folder of a step and the files in it (stderr, stdout, controller, syslog).

    EMR copies step logs to S3 about every five minutes, so a running step may show none yet.  The
    driver's own log (cluster deploy mode) is under ``<LogUri>/<cluster-id>/containers/``.

    Parameters
    ----------
    tail : int
        When > 0, also return the last ``tail`` lines of stderr (gunzipped).
    """
    check_cluster_id(cluster_id)
    check_step_id(step_id)
    emr = _client("emr", region, emr_client)
    log_uri = _s3_uri(emr.describe_cluster(ClusterId=cluster_id)["Cluster"].get("LogUri"))
    if not log_uri:
        raise EmrError(f"cluster {cluster_id} has no LogUri; its step logs were not copied to S3")
    uri = step_log_uri(log_uri, cluster_id, step_id)
    bucket, prefix = check_s3_uri("LogUri", uri)
    s3 = _client("s3", region, s3_client)
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            files.append({"name": obj["Key"][len(prefix):], "size": obj["Size"], "uri": f"s3://{bucket}/{obj['Key']}"})
    out: dict[str, Any] = {"uri": uri, "files": files, "containers_uri": f"{log_uri}{cluster_id}/containers/"}
    if tail > 0:
        stderr = next((f for f in files if f["name"] in ("stderr.gz", "stderr")), None)
        if stderr:
            body = s3.get_object(Bucket=bucket, Key=prefix + stderr["name"])["Body"].read()
            text = (gzip.decompress(body) if stderr["name"].endswith(".gz") else body).decode("utf-8", "replace")
            out["stderr_tail"] = text.splitlines()[-tail:]
    return out


def down(cluster_id: str, *, emr_client: Any = None, region: str | None = None) -> dict[str, Any]:
    """Terminate a cluster (``terminate_job_flows``) and return its state afterwards."""
    check_cluster_id(cluster_id)
    emr = _client("emr", region, emr_client)
    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    state = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
    log.info("cluster %s: %s", cluster_id, state)
    return {"cluster_id": cluster_id, "state": state}


# --------------------------------------------------------------------------------------------
# Operations: EMR Serverless
# --------------------------------------------------------------------------------------------

def serverless_up(cfg: Mapping[str, Any], *, overrides: Sequence[str] = (), jobs: Iterable[str] = PIPELINE,
                  wheel: Path | None = None, archive: Path | None = None, wait_for: bool = True,
                  dry_run: bool = False, client: Any = None, s3_client: Any = None, root: Path = REPO_ROOT,
                  sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Create (or reuse ``emr.serverless.application_id``) an application and run the jobs one by one."""
    s = resolve_settings(cfg.get("emr", {}))
    check_paths(cfg.get("paths", {}), s)
    conf_path = _conf_path(cfg)
    art = artifact_uris(s, conf_name=conf_path.name, root=root)
    requests = serverless_requests(s, jobs, job_overrides(overrides), artifacts=art)
    result: dict[str, Any] = {"mode": "serverless", **requests, "artifacts": art.base}
    if dry_run:
        return result
    files = plan_uploads(s, art, conf_path, archive=archive, root=root, parts=("jobs", "conf", "archive"))
    result["uploads"] = upload(files, art.base, client=_client("s3", s["region"], s3_client))
    es = _client("emr-serverless", s["region"], client)
    app_id = s["serverless"]["application_id"]
    if app_id is None:
        app_id = es.create_application(**requests["create_application"])["applicationId"]
        log.info("EMR Serverless application %s created (%s)", app_id, s["release_label"])
    result["application_id"] = app_id
    result.update(_run_serverless_jobs(es, app_id, requests["start_job_run"], s, wait_for, sleep))
    return result


def serverless_submit(cfg: Mapping[str, Any], application_id: str | None, *, overrides: Sequence[str] = (),
                      jobs: Iterable[str] = PIPELINE, upload_files: bool = True, wait_for: bool = True,
                      dry_run: bool = False, client: Any = None, s3_client: Any = None, root: Path = REPO_ROOT,
                      sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run the jobs on an existing EMR Serverless application."""
    s = resolve_settings(cfg.get("emr", {}))
    if application_id is not None or not dry_run:
        check_serverless_id("--application-id", application_id)
    check_paths(cfg.get("paths", {}), s)
    conf_path = _conf_path(cfg)
    art = artifact_uris(s, conf_name=conf_path.name, root=root)
    requests = serverless_requests(s, jobs, job_overrides(overrides), artifacts=art,
                                   application_id=application_id or "<application-id>")
    result: dict[str, Any] = {"mode": "serverless", "start_job_run": requests["start_job_run"]}
    if dry_run:
        return result
    if upload_files:
        files = plan_uploads(s, art, conf_path, root=root, parts=("jobs", "conf"))
        result["uploads"] = upload(files, art.base, client=_client("s3", s["region"], s3_client))
    es = _client("emr-serverless", s["region"], client)
    result["application_id"] = application_id
    result.update(_run_serverless_jobs(es, str(application_id), requests["start_job_run"], s, wait_for, sleep))
    return result


def _run_serverless_jobs(es: Any, app_id: str, runs: Sequence[Mapping[str, Any]], s: Mapping[str, Any],
                         wait_for: bool, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Start the job runs in order; each waits for the previous one (one Delta writer at a time)."""
    run_ids = []
    for run in runs:
        run_id = es.start_job_run(**{**run, "applicationId": app_id})["jobRunId"]
        run_ids.append(run_id)
        log.info("job run %s (%s) started; logs: %s", run_id, run["name"], serverless_job_log_uri(s, app_id, run_id))
        if not wait_for:
            if len(runs) > 1:
                log.warning("--no-wait starts only the first job: later jobs need its output")
            break
        wait_job_run(app_id, run_id, client=es, settings=s, timeout=s["wait_timeout_minutes"] * 60, sleep=sleep)
    return {"job_run_ids": run_ids}


def serverless_job_log_uri(settings: Mapping[str, Any], application_id: str, job_run_id: str) -> str:
    """``<logUri>applications/<app>/jobs/<run>/`` (``SPARK_DRIVER/stderr.gz`` and friends)."""
    return f"{serverless_log_uri(settings)}applications/{application_id}/jobs/{job_run_id}/"


def wait_job_run(application_id: str, job_run_id: str, *, client: Any, settings: Mapping[str, Any],
                 timeout: float = 4 * 3600, poll: float = 15.0, max_poll: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll ``get_job_run`` with backoff until SUCCESS; raise :class:`EmrError` on failure or timeout."""
    deadline = clock() + timeout
    delay, last = poll, None
    uri = serverless_job_log_uri(settings, application_id, job_run_id)
    while True:
        run = client.get_job_run(applicationId=application_id, jobRunId=job_run_id)["jobRun"]
        if run["state"] != last:
            log.info("job run %s (%s): %s  logs: %s", job_run_id, run.get("name"), run["state"], uri)
            last = run["state"]
        if run["state"] == "SUCCESS":
            return {"job_run_id": job_run_id, "state": run["state"], "log_uri": uri}
        if run["state"] in _RUN_BAD:
            raise EmrError(f"job run {run.get('name')} ({job_run_id}) {run['state']}: "
                           f"{run.get('stateDetails') or 'no details'}; logs: {uri}SPARK_DRIVER/")
        remaining = deadline - clock()
        if remaining <= 0:
            raise EmrError(f"gave up waiting for job run {job_run_id} after {timeout:.0f} s ({run['state']}); "
                           f"logs: {uri}")
        sleep(min(delay, remaining))
        delay = min(delay * 1.5, max_poll)


def serverless_status(application_id: str, *, client: Any = None, region: str | None = None,
                      settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An application's state and its job runs (newest first)."""
    check_serverless_id("--application-id", application_id)
    es = _client("emr-serverless", region, client)
    app = es.get_application(applicationId=application_id)["application"]
    runs = []
    for page in es.get_paginator("list_job_runs").paginate(applicationId=application_id):
        for r in page["jobRuns"]:
            entry = {"id": r["id"], "name": r.get("name"), "state": r["state"]}
            if settings and settings.get("bucket"):
                entry["log_uri"] = serverless_job_log_uri(settings, application_id, r["id"])
            runs.append(entry)
    return {"application_id": application_id, "name": app.get("name"), "state": app["state"], "job_runs": runs}


def serverless_down(application_id: str, *, client: Any = None, region: str | None = None, timeout: float = 600,
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Stop and delete an EMR Serverless application."""
    check_serverless_id("--application-id", application_id)
    es = _client("emr-serverless", region, client)
    es.stop_application(applicationId=application_id)
    waited = 0.0
    while es.get_application(applicationId=application_id)["application"]["state"] not in ("STOPPED", "CREATED"):
        if waited >= timeout:
            raise EmrError(f"application {application_id} did not stop within {timeout:.0f} s; "
                           "retry `ecomrec emr down`")
        sleep(10)
        waited += 10
    es.delete_application(applicationId=application_id)
    state = es.get_application(applicationId=application_id)["application"]["state"]
    return {"application_id": application_id, "state": state}


# --------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")


def render_policy(template: str | Path | Mapping[str, Any], bucket: str,
                  prefixes: Iterable[str] | Mapping[str, Iterable[str]], glue_database: str, region: str, account: str,
                  **extra: str) -> dict[str, Any]:
    """Fill an IAM policy template from ``emr/iam/`` for one bucket, its prefixes and one Glue database.

    ``${bucket}``, ``${glue_database}``, ``${region}``, ``${account}`` and any ``extra`` name
    (``${job_role}``) are replaced in every string.  A list element containing ``${prefix}`` (the key
    prefix, ``raw/``) or ``${folder}`` (the same without the slash, for EMRFS ``<folder>_$folder$``
    markers) is repeated once per prefix.  With prefixes grouped by right (``{"read": [...], "write": [...]}``,
    :func:`policy_prefixes`), ``${read_prefix}`` / ``${read_folder}`` repeat over the ``read`` group, and so on.

    Parameters
    ----------
    template : str, Path or mapping
        The JSON text, a file, or the parsed document.
    prefixes : iterable of str, or mapping of group name to iterable of str
        Key prefixes ending in ``/``; grouped, e.g. :func:`policy_prefixes`.

    Returns
    -------
    dict
        The policy document.

    Raises
    ------
    ValueError
        On a bad bucket, prefix, database, region or account, or a placeholder nobody filled.

    Examples
    --------
    >>> t = {"Statement": [{"Resource": ["arn:aws:s3:::${bucket}/${prefix}*"]}]}
    >>> render_policy(t, "my-bucket", ["raw/", "lake/"], "ecomrec", "eu-west-1", "123456789012")
    {'Statement': [{'Resource': ['arn:aws:s3:::my-bucket/raw/*', 'arn:aws:s3:::my-bucket/lake/*']}]}
    """
    check_bucket("bucket", bucket)
    groups = ({f"{g}_": list(ps) for g, ps in prefixes.items()} if isinstance(prefixes, Mapping)
              else {"": list(prefixes)})
    for p in (p for ps in groups.values() for p in ps):
        if not isinstance(p, str) or not p.endswith("/") or not _KEY_PREFIX.fullmatch(p):
            raise ValueError(f"policy prefix {p!r} must be an S3 key prefix ending in '/', like raw/")
    if not _GLUE_DB.fullmatch(glue_database):
        raise ValueError(f"glue database {glue_database!r} must be lowercase letters, digits and _")
    check_region("region", region)
    if not _ACCOUNT.fullmatch(str(account)):
        raise ValueError(f"account {account!r} must be a 12-digit AWS account id (aws sts get-caller-identity)")
    for name, value in extra.items():
        if not re.fullmatch(r"[\w+=,.@/-]{1,512}", str(value)):
            raise ValueError(f"policy value {name}={value!r} has characters IAM does not allow")
    values = {"bucket": bucket, "glue_database": glue_database, "region": region, "account": str(account), **extra}
    if isinstance(template, Path):
        doc = json.loads(template.read_text())
    elif isinstance(template, str):
        doc = json.loads(template)
    else:
        doc = copy.deepcopy(dict(template))

    def fill(text: str, more: Mapping[str, str]) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in more:
                return more[name]
            if name in values:
                return values[name]
            raise ValueError(f"policy template placeholder ${{{name}}} has no value")
        return _PLACEHOLDER.sub(one, text)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                group = next((g for g in groups if isinstance(item, str)
                              and (f"${{{g}prefix}}" in item or f"${{{g}folder}}" in item)), None)
                if group is not None:
                    out += [fill(item, {f"{group}prefix": p, f"{group}folder": p.rstrip("/")}) for p in groups[group]]
                else:
                    out.append(walk(item))
            return out
        if isinstance(node, str):
            if re.search(r"\$\{(?:\w+_)?(?:prefix|folder)\}", node):
                raise ValueError(f"policy template uses a ${{...prefix}} outside a list: {node!r}")
            return fill(node, {})
        return node

    return walk(doc)


#: The job role's policy serves both modes: EC2 instances assume it through trust-ec2.json, EMR Serverless
#: job runs (emr.serverless.execution_role_arn) through trust-emr-serverless.json.
IAM_FILES = ("job-role-policy.json", "service-role-policy.json", "trust-ec2.json", "trust-emr.json",
             "trust-emr-serverless.json")

#: What ``ecomrec publish`` does to its DynamoDB tables (serving/store.py ``DynamoStore``): create a version's
#: table and wait for it, write and read items, move the live pointer, list versions (Scan), drop old versions.
SERVING_PUBLISH_ACTIONS = ("dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:DeleteTable", "dynamodb:PutItem",
                           "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:Scan")
_SERVING_TABLE_PREFIX = re.compile(r"[A-Za-z0-9_.-]{3,200}")


def serving_statement(serving: Mapping[str, Any] | None, region: str, account: str) -> dict[str, Any] | None:
    """The job role's DynamoDB statement for the publish job, only when ``serving.store`` is ``dynamodb``.

    Least privilege: :data:`SERVING_PUBLISH_ACTIONS` on ``table/<serving.dynamodb.table_prefix>-*`` in the
    tables' region (``serving.dynamodb.region``, else the cluster's) and nothing else.  ``None`` for the
    SQLite store, which the EMR jobs never use.
    """
    s = dict(serving or {})
    if s.get("store") != "dynamodb":
        return None
    d = dict(s.get("dynamodb") or {})
    prefix = d.get("table_prefix") or "ecomrec-serving"
    if not isinstance(prefix, str) or not _SERVING_TABLE_PREFIX.fullmatch(prefix):
        raise ValueError(f"serving.dynamodb.table_prefix {prefix!r} must be 3-200 letters, digits, '_', '-' or '.'")
    table_region = check_region("serving.dynamodb.region", d.get("region") or region)
    return {"Sid": "ServingTablesForPublish", "Effect": "Allow", "Action": list(SERVING_PUBLISH_ACTIONS),
            "Resource": f"arn:aws:dynamodb:{table_region}:{account}:table/{prefix}-*"}


#: What ``ecomrec serve`` does with DynamoDB (serving/store.py ``DynamoStore``): ``/healthz`` describes the
#: versions table, every lookup and the live pointer are GetItem; only the versions table is scanned (when
#: the live pointer moves).  Nothing is written: the API role can read the serving tables and no more.
SERVING_API_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:DescribeTable")


def api_role_policy(serving: Mapping[str, Any] | None, settings: Mapping[str, Any],
                    account: str) -> dict[str, Any] | None:
    """The API role's policy (``ecomrec serve`` on AWS), only when ``serving.store`` is ``dynamodb``.

    Read-only on the serving tables (:data:`SERVING_API_READ_ACTIONS` on ``<prefix>-*``, ``Scan`` on
    ``<prefix>-versions`` alone) and ``s3:PutObject`` only under ``<prefix>raw/events_api/``, where
    ``POST /v1/events`` appends its batches.  ``settings`` are :func:`resolve_settings`' output.
    """
    statement = serving_statement(serving, settings["region"], account)
    if statement is None:
        return None
    tables = statement["Resource"]  # arn:...:table/<prefix>-*
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadTheServingTables", "Effect": "Allow", "Action": list(SERVING_API_READ_ACTIONS),
         "Resource": tables},
        {"Sid": "ListTheServingVersions", "Effect": "Allow", "Action": "dynamodb:Scan",
         "Resource": tables.removesuffix("-*") + "-versions"},
        {"Sid": "AppendFeedbackEventsOnly", "Effect": "Allow", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{settings['bucket']}/{settings['prefix']}raw/events_api/*"},
    ]}


#: The instance profile as a user of the local-disk key (EMR encrypts instance store and EBS with data keys).
LOCAL_DISK_KEY_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey")
#: EMRFS writing and reading SSE-KMS objects.
S3_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
#: The service role attaching encrypted EBS volumes (EnableEbsEncryption): EC2 uses the key through a grant.
EBS_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*")


def encryption_statements(s: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The extra statements ``emr.encryption`` needs, by policy file: each on exactly one key or object.

    * job role: the local-disk key (:data:`LOCAL_DISK_KEY_ACTIONS`), the SSE-KMS key (:data:`S3_KEY_ACTIONS`),
      and ``s3:GetObject`` on the TLS certificates object when it lies outside ``artifacts/`` (which the role
      reads already);
    * service role: :data:`EBS_KEY_ACTIONS` on the local-disk key, and ``kms:CreateGrant`` on it only for
      AWS resources (``kms:GrantIsForAWSResource``).

    Nothing for a named ``emr.security_configuration``: its keys are not in the config.
    """
    out: dict[str, list[dict[str, Any]]] = {"job-role-policy.json": [], "service-role-policy.json": []}
    if s["security_configuration"] is not None:
        return out
    e = s["encryption"]
    job, service = out["job-role-policy.json"], out["service-role-policy.json"]
    if e["local_disks"] and e["local_disk_kms_key"]:
        key = e["local_disk_kms_key"]
        job.append({"Sid": "UseTheLocalDiskKey", "Effect": "Allow", "Action": list(LOCAL_DISK_KEY_ACTIONS),
                    "Resource": key})
        service += [{"Sid": "EncryptTheEbsVolumesWithTheLocalDiskKey", "Effect": "Allow",
                     "Action": list(EBS_KEY_ACTIONS), "Resource": key},
                    {"Sid": "GrantTheLocalDiskKeyToEc2Only", "Effect": "Allow", "Action": "kms:CreateGrant",
                     "Resource": key, "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}]
    if e["s3"] == "SSE-KMS" and e["s3_kms_key"]:
        job.append({"Sid": "UseTheS3Key", "Effect": "Allow", "Action": list(S3_KEY_ACTIONS),
                    "Resource": e["s3_kms_key"]})
    cert = e["tls_certificates"]
    if e["in_transit"] and cert:
        bucket, key = check_s3_uri("emr.encryption.tls_certificates", cert)
        if bucket != s["bucket"] or not key.startswith(f"{s['prefix']}artifacts/"):
            job.append({"Sid": "ReadTheTlsCertificates", "Effect": "Allow", "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/{key}"})
    return out


def render_iam(settings: Mapping[str, Any], account: str, iam_dir: Path = IAM_DIR,
               serving: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Render the IAM documents of ``emr/iam/`` (:data:`IAM_FILES`) for the configured bucket, prefixes and database.

    The encryption keys and certificates of ``emr.encryption`` add :func:`encryption_statements`.
    ``serving`` is the config's ``serving`` section: with ``store: dynamodb`` the job role also gets
    :func:`serving_statement`, and a fifth document, ``api-role-policy.json``, is the API's
    (:func:`api_role_policy`)."""
    s = resolve_settings(settings)
    docs = {name: render_policy(iam_dir / name, s["bucket"], policy_prefixes(s), s["glue_database"], s["region"],
                                account, job_role=s["job_flow_role"])
            for name in IAM_FILES}
    for name, statements in encryption_statements(s).items():
        docs[name]["Statement"] += statements
    statement = serving_statement(serving, s["region"], account)
    if statement is not None:
        docs["job-role-policy.json"]["Statement"].append(statement)
        docs["api-role-policy.json"] = api_role_policy(serving, s, account)
    return docs


def _serving_section(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The config file's ``serving:`` section with ``--set serving.*`` applied."""
    section = copy.deepcopy(dict(data.get("serving") or {}))
    for key, value in parse_overrides(overrides):
        if key.startswith("serving."):
            node = section
            parts = key.split(".")[1:]
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
    return section


# --------------------------------------------------------------------------------------------
# Command line: ecomrec emr up|submit|status|logs|down|wait|policy
# --------------------------------------------------------------------------------------------

def _read_emr_section(conf: str | None, overrides: Sequence[str]) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The config file's ``emr:`` section with ``--set emr.*`` applied, without the full config checks."""
    path = Path(conf) if conf else DEFAULT_CONF
    if not path.is_file():
        raise ValueError(f"config file not found: {path} (pass --conf conf/emr.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level")  # noqa: TRY004
    section = copy.deepcopy(data.get("emr") or {})
    for key, value in parse_overrides(overrides):
        if key.startswith("emr."):
            node = section
            parts = key.split(".")[1:]
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
    return path, data, section


def _bucket_overrides(data: Mapping[str, Any], section: Mapping[str, Any], overrides: Sequence[str]) -> list[str]:
    """``--set paths.X=...`` filling the ``<bucket>`` placeholder of conf/emr.yaml from ``emr.bucket``."""
    bucket = section.get("bucket")
    if not isinstance(bucket, str) or "<" in bucket:
        return []
    given = {o.split("=", 1)[0].strip() for o in overrides}
    out = []
    for key, value in (data.get("paths") or {}).items():
        if isinstance(value, str) and "<bucket>" in value and f"paths.{key}" not in given:
            out.append(f"paths.{key}={value.replace('<bucket>', bucket)}")
    return out


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
