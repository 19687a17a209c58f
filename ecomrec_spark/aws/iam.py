"""The IAM documents of ``emr/iam/``, filled in for one bucket, its project prefixes and one Glue database.

:func:`render_policy` fills one template; :func:`render_iam` renders all of :data:`IAM_FILES`.  The job
role reads ``raw/`` and ``artifacts/``, only puts to ``logs/`` and reads and writes only ``lake/`` and
``reports/`` (:data:`~ecomrec_spark.aws.layout.POLICY_PREFIXES`); the encryption keys add rights on
exactly those keys (:func:`encryption_statements`); with ``serving.store: dynamodb`` the job role also
gets the publish job's rights on the serving tables only (:func:`serving_statement`), and the API role
reads them and puts events only (:func:`api_role_policy`).  Pure: no AWS call.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ecomrec_spark.aws.layout import policy_prefixes
from ecomrec_spark.aws.settings import (
    ACCOUNT_ID,
    GLUE_DATABASE,
    KEY_PREFIX,
    check_bucket,
    check_region,
    check_s3_uri,
    resolve_settings,
)
from ecomrec_spark.config import REPO_ROOT

IAM_DIR = REPO_ROOT / "emr" / "iam"

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
        if not isinstance(p, str) or not p.endswith("/") or not KEY_PREFIX.fullmatch(p):
            raise ValueError(f"policy prefix {p!r} must be an S3 key prefix ending in '/', like raw/")
    if not GLUE_DATABASE.fullmatch(glue_database):
        raise ValueError(f"glue database {glue_database!r} must be lowercase letters, digits and _")
    check_region("region", region)
    if not ACCOUNT_ID.fullmatch(str(account)):
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


#: What Delta's S3DynamoDBLogStore does to its table: create it on first use (and describe it until it is
#: active), then one conditional PutItem per commit, GetItem and Query to find a table's latest entry.
DELTA_LOGSTORE_ACTIONS = ("dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
                          "dynamodb:Query")


def logstore_statement(s: Mapping[str, Any], account: str) -> dict[str, Any] | None:
    """The job role's statement for ``emr.delta_logstore``: :data:`DELTA_LOGSTORE_ACTIONS` on that one table."""
    ls = s["delta_logstore"]
    if not ls["dynamodb_table"]:
        return None
    return {"Sid": "DeltaLogStoreTable", "Effect": "Allow", "Action": list(DELTA_LOGSTORE_ACTIONS),
            "Resource": f"arn:aws:dynamodb:{ls['region']}:{account}:table/{ls['dynamodb_table']}"}


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
    logstore = logstore_statement(s, account)
    if logstore is not None:
        docs["job-role-policy.json"]["Statement"].append(logstore)
    statement = serving_statement(serving, s["region"], account)
    if statement is not None:
        docs["job-role-policy.json"]["Statement"].append(statement)
        api_policy = api_role_policy(serving, s, account)
        assert api_policy is not None, "serving.store is dynamodb: serving_statement returned one"
        docs["api-role-policy.json"] = api_policy
    return docs
