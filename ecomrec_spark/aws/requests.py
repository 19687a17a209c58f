"""The exact boto3 requests of the launcher, built from the settings without calling AWS.

* :func:`cluster_request` -- ``run_job_flow``: instances, the Delta, Glue and Python configurations,
  the bootstrap action (bootstrap shipping) or ``spark.archives`` (archive shipping), the safe defaults;
* :func:`step_requests` -- ``add_job_flow_steps``: one ``command-runner.jar`` / ``spark-submit`` step per
  pipeline job, in pipeline order;
* :func:`serverless_requests` -- ``create_application`` / ``start_job_run`` of EMR Serverless;
* :func:`security_configuration_request` -- ``create_security_configuration`` for ``emr.encryption``, and
  :func:`check_security_configuration` for a named one.

Each takes the ``emr:`` section (or :func:`~ecomrec_spark.aws.settings.resolve_settings` output) and
validates it first, so a bad value fails here, before any client exists.

>>> safe = {"subnet_id": "subnet-0123456789abcdef0", "encryption": {
...     "local_disk_kms_key": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
...     "tls_certificates": "s3://my-bucket/artifacts/certs/emr.zip"}}
>>> req = cluster_request({"bucket": "my-bucket", "region": "eu-west-1", **safe}, {}, "s3://my-bucket/artifacts/x.whl")
>>> req["ReleaseLabel"], [c["Classification"] for c in req["Configurations"]][:3]
('emr-spark-8.0.0', ['delta-defaults', 'spark-defaults', 'spark-hive-site'])
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ecomrec_spark.aws.layout import JOB_SCRIPTS, PIPELINE, Artifacts, artifact_uris, check_paths, serverless_log_uri
from ecomrec_spark.aws.settings import (
    ACTIONS_ON_FAILURE,
    ROLE_ARN,
    bad_setting,
    check_launch_security,
    check_s3_uri,
    node_python_version,
    reject_credentials,
    resolve_settings,
)
from ecomrec_spark.config import parse_overrides

DELTA_SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# EMR ships Delta's DynamoDB LogStore beside delta-spark.jar (EMR on EKS / Serverless docs list the same path)
DYNAMODB_LOGSTORE_JAR = "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar"


def logstore_conf(s: Mapping[str, Any]) -> dict[str, str]:
    """Spark settings for Delta's DynamoDB LogStore when ``emr.delta_logstore.dynamodb_table`` is set, else none.

    Both schemes are set: EMR's own ``s3://`` and ``s3a://``.  The jar joins ``spark.jars`` (serverless adds
    it to its Delta jars; a cluster lists it alone, as EMR sets no ``spark.jars`` of its own).

    Examples
    --------
    >>> logstore_conf({"delta_logstore": {"dynamodb_table": None, "region": None}})
    {}
    >>> sorted(logstore_conf({"delta_logstore": {"dynamodb_table": "ecomrec_delta_log", "region": "eu-west-1"}}))[:2]
    ['spark.delta.logStore.s3.impl', 'spark.delta.logStore.s3a.impl']
    """
    ls = s["delta_logstore"]
    if not ls["dynamodb_table"]:
        return {}
    return {
        "spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
        "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": ls["dynamodb_table"],
        "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": ls["region"],
    }


GLUE_FACTORY = "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"
ENV_PYTHON = "./environment/bin/python"  # PYSPARK_PYTHON inside the unpacked spark.archives venv
MANAGED_POLICY_TAG = "for-use-with-amazon-emr-managed-policies"  # AmazonEMRServicePolicy_v2 needs it


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
        raise bad_setting("emr.security_configuration", name, f"does not turn on {', '.join(missing)}",
                          "name a security configuration that does, set emr.security_configuration: null to let `up` "
                          "create one, or turn those emr.encryption keys off on purpose")


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
    if logstore_conf(s):
        spark_defaults.update({**logstore_conf(s), "spark.jars": DYNAMODB_LOGSTORE_JAR})
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
    if action_on_failure not in ACTIONS_ON_FAILURE:
        raise bad_setting("emr.action_on_failure", action_on_failure, f"must be one of {', '.join(ACTIONS_ON_FAILURE)}",
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
    if not isinstance(sv["execution_role_arn"], str) or not ROLE_ARN.fullmatch(sv["execution_role_arn"]):
        raise bad_setting("emr.serverless.execution_role_arn", sv["execution_role_arn"], "must be an IAM role ARN",
                          "--set emr.serverless.execution_role_arn="
                          "arn:aws:iam::123456789012:role/ecomrec-emr-serverless-job")
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
        "spark.jars": ",".join(sv["delta_jars"] + ([DYNAMODB_LOGSTORE_JAR] if logstore_conf(s) else [])),
        **DELTA_SPARK_CONF,
        **logstore_conf(s),
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
