"""The ``emr:`` section of a run config: every value checked and the defaults filled in, before any AWS call.

:func:`resolve_settings` merges the section over :data:`DEFAULTS` and validates each key;
:func:`check_launch_security` says what a new cluster still needs (a private subnet, the keys and
certificates of the encryption left on); the ``check_*`` functions validate ids, regions, buckets
and ``s3://`` URIs.  A bad value raises ``ValueError`` naming the config key (``emr.<key>``) and the
fix.  Credentials never come from config: boto3's default chain is used (``AWS_PROFILE``, SSO,
environment, instance role), and keys that look like credentials are refused (:func:`reject_credentials`).
Nothing here imports boto3.

>>> resolve_settings({"bucket": "my-bucket", "region": "eu-west-1"})["log_uri"]
's3://my-bucket/logs/emr/'
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from typing import Any

from ecomrec_spark.config import REPO_ROOT
from ecomrec_spark.identifiers import bucket_problem

DEFAULT_RELEASE_LABEL = "emr-spark-8.0.0"  # Spark 4.0.2-amzn-0, Delta 4.0.0-amzn-1, Scala 2.13, Java 17
DEFAULT_CONF = REPO_ROOT / "conf" / "emr.yaml"
# Where EMR Serverless keeps Delta (EMR 7+ names the jar delta-spark.jar); spark.jars must list them.
SERVERLESS_DELTA_JARS = ["/usr/share/aws/delta/lib/delta-spark.jar", "/usr/share/aws/delta/lib/delta-storage.jar"]

#: What EMR does when a step fails (``emr.action_on_failure``).
ACTIONS_ON_FAILURE = ("CANCEL_AND_WAIT", "CONTINUE", "TERMINATE_CLUSTER")


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
ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
GLUE_DATABASE = re.compile(r"^[a-z0-9_]{1,255}$")
KEY_PREFIX = re.compile(r"^([A-Za-z0-9._-]+/)*$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
_ACCESS_KEY_VALUE = re.compile(r"\b(?:AKIA|ASIA|A3T[A-Z0-9])[A-Z0-9]{16}\b")
_CREDENTIAL_KEY = re.compile(r"access[_.-]?key|secret|session[_.-]?token|password", re.IGNORECASE)
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")


def bad_setting(key: str, value: Any, why: str, fix: str) -> ValueError:
    """The ``ValueError`` every check raises: the config key, its value, what is wrong and the fix."""
    return ValueError(f"config key '{key}' = {value!r} {why}; fix: {fix}")


def check_region(key: str, region: Any) -> str:
    """Return ``region`` if it looks like an AWS region (``eu-west-1``), else raise ``ValueError``."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise bad_setting(key, region, "is not an AWS region", f"--set {key}=eu-west-1 (or export AWS_DEFAULT_REGION)")
    return region


def check_bucket(key: str, bucket: Any) -> str:
    """Return ``bucket`` if it follows the S3 bucket naming rules, else raise ``ValueError`` naming ``key``.

    The rule is :func:`ecomrec_spark.identifiers.validate_bucket`'s, shared with ``upload-raw``, the
    config's ``catalog.*`` URIs and the lake lease.
    """
    why = bucket_problem(bucket)
    if why:
        raise bad_setting(key, bucket, f"is not a valid S3 bucket name: {why}", f"--set {key}=my-bucket")
    return bucket


def check_s3_uri(key: str, uri: Any) -> tuple[str, str]:
    """Split an ``s3://bucket/key`` URI into (bucket, key) after checking both parts.

    EMR reads S3 through EMRFS, so ``s3a://`` and ``s3n://`` are refused here.
    """
    m = _S3_URI.fullmatch(uri) if isinstance(uri, str) else None
    if not m or ".." in uri.split("/"):
        raise bad_setting(key, uri, "is not an s3:// URI",
                          f"--set {key}=s3://my-bucket/path (EMR uses s3://, not s3a://)")
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
        raise bad_setting(key, label, "is not an EMR release label", f"--set {key}={DEFAULT_RELEASE_LABEL}")
    return label


def check_instance_type(key: str, instance_type: Any) -> str:
    """Return an EC2 instance type (``m6i.xlarge``) or raise ``ValueError``."""
    if not isinstance(instance_type, str) or not _INSTANCE_TYPE.fullmatch(instance_type):
        raise bad_setting(key, instance_type, "is not an EC2 instance type", "use a family.size name like m6i.xlarge")
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
    # Delta's DynamoDB LogStore, for writers on more than one cluster at once (emr/README.md "Delta LogStore"):
    # null keeps the default S3 LogStore, safe with one writer at a time (the steps run one by one)
    "delta_logstore": {"dynamodb_table": None, "region": None},
    "serverless": {
        "application_id": None,
        "execution_role_arn": None,
        "architecture": "X86_64",
        "idle_timeout_minutes": 15,
        "max_capacity": None,  # e.g. {cpu: 16 vCPU, memory: 64 GB, disk: 200 GB}
        "delta_jars": SERVERLESS_DELTA_JARS,
    },
}


_SECTIONS = ("serverless", "encryption", "delta_logstore")  # nested sections whose keys are checked like the top level


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
        raise bad_setting("emr.mode", s["mode"], "is not a launch mode", "--set emr.mode=cluster (or serverless)")
    s["region"] = check_region("emr.region", s["region"] or os.environ.get("AWS_REGION")
                               or os.environ.get("AWS_DEFAULT_REGION"))
    if need_bucket or s["bucket"] is not None:
        check_bucket("emr.bucket", s["bucket"])
    if not isinstance(s["prefix"], str) or not KEY_PREFIX.fullmatch(s["prefix"]):
        raise bad_setting("emr.prefix", s["prefix"], "is not an S3 key prefix",
                          "use '' or a path ending in '/', like ecomrec/")
    if not isinstance(s["name"], str) or not re.fullmatch(r"[\w .:/=+@-]{1,256}", s["name"]):
        raise bad_setting("emr.name", s["name"], "is not a cluster name", "use letters, digits, spaces and -_.")
    check_release_label("emr.release_label", s["release_label"])
    apps = s["applications"]
    if not isinstance(apps, list) or "Spark" not in apps or not all(isinstance(a, str) and a.isalnum() for a in apps):
        raise bad_setting("emr.applications", apps, "must be a list that includes Spark",
                          "--set 'emr.applications=[Hadoop, Spark]'")
    if s["shipping"] not in ("bootstrap", "archive"):
        raise bad_setting("emr.shipping", s["shipping"], "is not a shipping method",
                          "--set emr.shipping=bootstrap (or archive)")
    if s["mode"] == "serverless":
        s["shipping"] = "archive"  # EMR Serverless has no bootstrap actions
    if not isinstance(s["python"], str) or not re.fullmatch(r"/[\w./-]+", s["python"]):
        raise bad_setting("emr.python", s["python"], "is not an absolute interpreter path",
                          "--set emr.python=/usr/bin/python3.11")
    for key in ("job_flow_role", "service_role"):
        if not isinstance(s[key], str) or not _ROLE_NAME.fullmatch(s[key]):
            raise bad_setting(f"emr.{key}", s[key], "is not an IAM role name",
                              f"--set emr.{key}=<role name> (see emr/README.md)")
    timeout = s["idle_timeout_seconds"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 60 <= timeout <= 604800:
        raise bad_setting("emr.idle_timeout_seconds", timeout,
                          "must be an integer in [60, 604800] (auto-termination stays on)",
                          "--set emr.idle_timeout_seconds=1800")
    if not isinstance(s["keep_alive"], bool):
        raise bad_setting("emr.keep_alive", s["keep_alive"], "must be true or false", "--set emr.keep_alive=false")
    if s["action_on_failure"] not in ACTIONS_ON_FAILURE:
        raise bad_setting("emr.action_on_failure", s["action_on_failure"],
                          f"must be one of {', '.join(ACTIONS_ON_FAILURE)}",
                          "--set emr.action_on_failure=CANCEL_AND_WAIT")
    if not isinstance(s["glue_database"], str) or not GLUE_DATABASE.fullmatch(s["glue_database"]):
        raise bad_setting("emr.glue_database", s["glue_database"], "is not a Glue database name (lowercase, digits, _)",
                          "--set emr.glue_database=ecomrec")
    for key, pattern in (("subnet_id", r"subnet-[0-9a-f]{8,17}"), ("ec2_key_name", r"[\w .@-]{1,255}"),
                         ("security_configuration", r"[\w .@-]{1,10280}")):
        if s[key] is not None and (not isinstance(s[key], str) or not re.fullmatch(pattern, s[key])):
            raise bad_setting(f"emr.{key}", s[key], "is not valid",
                              f"set emr.{key} to a {key.replace('_', ' ')} or null")
    ebs = s["ebs_root_volume_gb"]
    if ebs is not None and (isinstance(ebs, bool) or not isinstance(ebs, int) or not 15 <= ebs <= 100):
        raise bad_setting("emr.ebs_root_volume_gb", ebs, "must be null or an integer in [15, 100]",
                          "--set emr.ebs_root_volume_gb=30")
    if s["instance_fleets"] is not None:
        _check_fleets(s["instance_fleets"])
    else:
        _check_groups(s["instance_groups"])
    args = s["spark_submit_args"]
    if not isinstance(args, list) or not all(isinstance(a, str) and a and not re.search(r"\s", a) for a in args):
        raise bad_setting("emr.spark_submit_args", args, "must be a list of spark-submit arguments without spaces",
                          "--set 'emr.spark_submit_args=[--conf, spark.executor.memory=8g]'")
    defaults = s["spark_defaults"]
    if not isinstance(defaults, Mapping) or not all(isinstance(k, str) and k.startswith("spark.") for k in defaults):
        raise bad_setting("emr.spark_defaults", defaults, "must map spark.* keys to values",
                          "e.g. {spark.executor.memory: 8g}")
    s["spark_defaults"] = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in defaults.items()}
    reject_credentials(s["spark_defaults"], "emr.spark_defaults.")
    tags = s["tags"]
    if not isinstance(tags, Mapping) or not all(isinstance(k, str) and _TAG_KEY.fullmatch(k) for k in tags):
        raise bad_setting("emr.tags", tags, "must map tag keys to values", "e.g. {project: ecomrec, owner: data-team}")
    wait_minutes = s["wait_timeout_minutes"]
    if isinstance(wait_minutes, bool) or not isinstance(wait_minutes, (int, float)) or wait_minutes <= 0:
        raise bad_setting("emr.wait_timeout_minutes", wait_minutes, "must be a positive number",
                          "--set emr.wait_timeout_minutes=240")
    if s["log_uri"] is not None:
        bucket, key = check_s3_uri("emr.log_uri", s["log_uri"])
        s["log_uri"] = s["log_uri"].rstrip("/") + "/"
        if s["bucket"] and (bucket != s["bucket"] or not key.startswith(f"{s['prefix']}logs/")):
            raise bad_setting("emr.log_uri", s["log_uri"], "lies outside the job role's S3 prefixes",
                              f"use s3://{s['bucket']}/{s['prefix']}logs/... or null")
    elif s["bucket"]:
        s["log_uri"] = f"s3://{s['bucket']}/{s['prefix']}logs/emr/"
    _check_serverless(s)
    _check_security(s)
    _check_logstore(s)
    return s


# DynamoDB table names: 3-255 of letters, digits, '_', '-', '.'
_DYNAMODB_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def _check_logstore(s: dict[str, Any]) -> None:
    ls = s["delta_logstore"]
    table = ls["dynamodb_table"]
    if table is None:
        return
    if not isinstance(table, str) or not _DYNAMODB_TABLE.fullmatch(table):
        raise bad_setting("emr.delta_logstore.dynamodb_table", table, "is not a DynamoDB table name",
                          "--set emr.delta_logstore.dynamodb_table=ecomrec_delta_log (or null for one writer)")
    ls["region"] = check_region("emr.delta_logstore.region", ls["region"] or s["region"])


_KMS_KEY_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:kms:([a-z0-9-]+):\d{12}:key/[A-Za-z0-9-]{1,128}$")
_JAVA_CLASS = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$")
_S3_MODES = ("SSE-S3", "SSE-KMS")


def _check_security(s: dict[str, Any]) -> None:
    """Types and shapes of the safe-default keys; what a launch requires is :func:`check_launch_security`."""
    for key in ("require_private_subnet", "visible_to_all_users"):
        if not isinstance(s[key], bool):
            raise bad_setting(f"emr.{key}", s[key], "must be true or false",
                              f"--set emr.{key}={str(DEFAULTS[key]).lower()}")
    e = s["encryption"]
    if e["s3"] is not False and e["s3"] not in _S3_MODES:
        raise bad_setting("emr.encryption.s3", e["s3"], "must be SSE-S3, SSE-KMS or false",
                          "--set emr.encryption.s3=SSE-S3 (false turns EMRFS encryption off, on purpose)")
    for key in ("local_disks", "in_transit"):
        if not isinstance(e[key], bool):
            raise bad_setting(f"emr.encryption.{key}", e[key], "must be true or false",
                              f"--set emr.encryption.{key}=true (false turns it off, on purpose)")
    for key in ("s3_kms_key", "local_disk_kms_key"):
        m = _KMS_KEY_ARN.fullmatch(e[key]) if isinstance(e[key], str) else None
        if e[key] is not None and not m:
            raise bad_setting(f"emr.encryption.{key}", e[key],
                              "is not a KMS key ARN (aliases cannot be granted in IAM)",
                              f"--set emr.encryption.{key}=arn:aws:kms:{s['region']}:<account>:key/<key id>")
        if m and m.group(1) != s["region"]:
            raise bad_setting(f"emr.encryption.{key}", e[key], f"is not in the cluster's region {s['region']}",
                              "use a key in emr.region: EMR only uses keys in the cluster's region")
    cert, provider = e["tls_certificates"], e["tls_provider_class"]
    if provider is not None and (not isinstance(provider, str) or not _JAVA_CLASS.fullmatch(provider)):
        raise bad_setting("emr.encryption.tls_provider_class", provider, "is not a Java class name",
                          "set it to your TLSArtifactsProvider class, like com.example.MyCertProvider, "
                          "or null for a PEM zip")
    if cert is not None:
        check_s3_uri("emr.encryption.tls_certificates", cert)
        want = ".jar" if provider else ".zip"
        if not cert.endswith(want):
            raise bad_setting("emr.encryption.tls_certificates", cert, f"must be a {want} object "
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
        raise bad_setting("emr.subnet_id", None, "is required: the cluster goes in a private subnet",
                          "--set emr.subnet_id=subnet-... "
                          "(private, tagged for-use-with-amazon-emr-managed-policies=true), "
                          "or set emr.require_private_subnet: false to use the default VPC's public subnet on purpose")
    if s["security_configuration"] is not None:
        return
    e = s["encryption"]
    if e["s3"] == "SSE-KMS" and e["s3_kms_key"] is None:
        raise bad_setting("emr.encryption.s3_kms_key", None, "is required with emr.encryption.s3: SSE-KMS",
                          f"--set emr.encryption.s3_kms_key=arn:aws:kms:{s['region']}:<account>:key/<key id> "
                          "(or emr.encryption.s3=SSE-S3)")
    if e["local_disks"] and e["local_disk_kms_key"] is None:
        raise bad_setting("emr.encryption.local_disk_kms_key", None,
                          "is required while emr.encryption.local_disks is true "
                          "(EMR encrypts local disks with a KMS key)",
                          f"--set emr.encryption.local_disk_kms_key=arn:aws:kms:{s['region']}:<account>:key/<key id>, "
                          "or set emr.encryption.local_disks: false on purpose")
    if e["in_transit"] and e["tls_certificates"] is None:
        raise bad_setting("emr.encryption.tls_certificates", None,
                          "is required while emr.encryption.in_transit is true (EMR needs the nodes' TLS certificates)",
                          f"--set emr.encryption.tls_certificates="
                          f"s3://{s['bucket']}/{s['prefix']}artifacts/certs/emr.zip "
                          "(privateKey.pem + certificateChain.pem), or set emr.encryption.in_transit: false on purpose")


def _check_groups(groups: Any) -> None:
    if not isinstance(groups, list) or not groups:
        raise bad_setting("emr.instance_groups", groups, "must be a non-empty list",
                          "e.g. [{role: MASTER, instance_type: m6i.xlarge, count: 1}, {role: CORE, ...}]")
    roles = []
    for i, g in enumerate(groups):
        key = f"emr.instance_groups[{i}]"
        if not isinstance(g, Mapping) or set(g) - {"role", "instance_type", "count", "market", "ebs_gb", "name"}:
            raise bad_setting(key, g, "must have role, instance_type, count (optional market, ebs_gb, name)",
                              "{role: CORE, instance_type: m6i.2xlarge, count: 2}")
        if g.get("role") not in ("MASTER", "CORE", "TASK"):
            raise bad_setting(f"{key}.role", g.get("role"), "must be MASTER, CORE or TASK", "set role: CORE")
        check_instance_type(f"{key}.instance_type", g.get("instance_type"))
        count = g.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise bad_setting(f"{key}.count", count, "must be an integer >= 1", "set count: 2")
        if g.get("market", "ON_DEMAND") not in ("ON_DEMAND", "SPOT"):
            raise bad_setting(f"{key}.market", g.get("market"), "must be ON_DEMAND or SPOT", "set market: ON_DEMAND")
        ebs = g.get("ebs_gb")
        if ebs is not None and (isinstance(ebs, bool) or not isinstance(ebs, int) or not 1 <= ebs <= 16384):
            raise bad_setting(f"{key}.ebs_gb", ebs, "must be an integer GiB", "set ebs_gb: 64 or drop it")
        roles.append(g["role"])
    if roles.count("MASTER") != 1 or roles.count("CORE") > 1:
        raise bad_setting("emr.instance_groups", roles, "needs exactly one MASTER group and at most one CORE group",
                          "list one MASTER, one CORE and any TASK groups")


def _check_fleets(fleets: Any) -> None:
    if not isinstance(fleets, list) or not fleets:
        raise bad_setting("emr.instance_fleets", fleets, "must be a non-empty list or null",
                          "e.g. [{role: MASTER, instance_types: [m6i.xlarge, m5.xlarge], on_demand: 1}, ...]")
    roles = []
    for i, f in enumerate(fleets):
        key = f"emr.instance_fleets[{i}]"
        if not isinstance(f, Mapping) or set(f) - {"role", "instance_types", "on_demand", "spot", "name"}:
            raise bad_setting(key, f, "must have role, instance_types, on_demand and/or spot",
                              "{role: CORE, instance_types: [m6i.2xlarge, m5.2xlarge], on_demand: 0, spot: 2}")
        if f.get("role") not in ("MASTER", "CORE", "TASK"):
            raise bad_setting(f"{key}.role", f.get("role"), "must be MASTER, CORE or TASK", "set role: CORE")
        types = f.get("instance_types")
        if not isinstance(types, list) or not types:
            raise bad_setting(f"{key}.instance_types", types, "must be a non-empty list", "[m6i.2xlarge, m5.2xlarge]")
        for j, t in enumerate(types):
            check_instance_type(f"{key}.instance_types[{j}]", t)
        for cap in ("on_demand", "spot"):
            v = f.get(cap, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad_setting(f"{key}.{cap}", v, "must be an integer >= 0", f"set {cap}: 1")
        if f.get("on_demand", 0) + f.get("spot", 0) < 1:
            raise bad_setting(key, f, "has no capacity", "set on_demand: 1 (or spot)")
        roles.append(f["role"])
    if roles.count("MASTER") != 1 or roles.count("CORE") > 1:
        raise bad_setting("emr.instance_fleets", roles, "needs exactly one MASTER fleet and at most one CORE fleet",
                          "list one MASTER, one CORE and any TASK fleet")


def _check_serverless(s: dict[str, Any]) -> None:
    sv = s["serverless"]
    if sv["application_id"] is not None:
        check_serverless_id("emr.serverless.application_id", sv["application_id"])
    role = sv["execution_role_arn"]
    if s["mode"] == "serverless" and (not isinstance(role, str) or not ROLE_ARN.fullmatch(role)):
        raise bad_setting("emr.serverless.execution_role_arn", role, "must be an IAM role ARN in serverless mode",
                          "--set emr.serverless.execution_role_arn="
                          "arn:aws:iam::123456789012:role/ecomrec-emr-serverless-job")
    if sv["architecture"] not in ("X86_64", "ARM64"):
        raise bad_setting("emr.serverless.architecture", sv["architecture"], "must be X86_64 or ARM64",
                          "--set emr.serverless.architecture=X86_64")
    idle = sv["idle_timeout_minutes"]
    if isinstance(idle, bool) or not isinstance(idle, int) or not 1 <= idle <= 10080:
        raise bad_setting("emr.serverless.idle_timeout_minutes", idle, "must be an integer in [1, 10080]",
                          "--set emr.serverless.idle_timeout_minutes=15")
    cap = sv["max_capacity"]
    if cap is not None and (not isinstance(cap, Mapping) or set(cap) - {"cpu", "memory", "disk"}
                            or not all(isinstance(v, str) for v in cap.values())):
        raise bad_setting("emr.serverless.max_capacity", cap, "must map cpu/memory/disk to strings",
                          "{cpu: 16 vCPU, memory: 64 GB, disk: 200 GB}")
    jars = sv["delta_jars"]
    if not isinstance(jars, list) or not all(isinstance(j, str) and re.fullmatch(r"/[\w./-]+\.jar", j) for j in jars):
        raise bad_setting("emr.serverless.delta_jars", jars, "must be a list of absolute .jar paths",
                          "keep the default")


def node_python_version(s: Mapping[str, Any]) -> str:
    """``3.11`` from ``emr.python`` (``/usr/bin/python3.11``): the wheels are picked for that interpreter."""
    m = re.search(r"python(3\.\d+)$", s["python"])
    if not m:
        raise bad_setting("emr.python", s["python"], "does not name its version (the wheelhouse is built for it)",
                          "--set emr.python=/usr/bin/python3.11")
    return m.group(1)
