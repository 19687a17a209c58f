"""The ``emr:`` section of a run config: every value checked and the defaults filled in, before any AWS call.

:func:`resolve_settings` merges the section over :data:`DEFAULTS` and validates each key;
:func:`check_launch_security` says what a new cluster still needs (a private subnet, the keys and
certificates of the encryption left on); the ``check_*`` functions validate ids, regions, buckets
and ``s3://`` URIs.  The section is the pydantic model :class:`EmrSettings`; a bad value raises
:class:`~ecomrec_spark.config.ConfigError` (a ``ValueError``) naming the config key (``emr.<key>``) and the
fix.  Credentials never come from config: boto3's default chain is used (``AWS_PROFILE``, SSO,
environment, instance role), and keys that look like credentials are refused (:func:`reject_credentials`).
Nothing here imports boto3.

>>> resolve_settings({"bucket": "my-bucket", "region": "eu-west-1"})["log_uri"]
's3://my-bucket/logs/emr/'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from ecomrec_spark.config import REPO_ROOT, ConfigError, Num, Section, config_error, fix, validate_uri
from ecomrec_spark.identifiers import bucket_problem

DEFAULT_RELEASE_LABEL = "emr-spark-8.0.0"  # Spark 4.0.2-amzn-0, Delta 4.0.0-amzn-1, Scala 2.13, Java 17
DEFAULT_CONF = REPO_ROOT / "conf" / "emr.yaml"
# Where EMR Serverless keeps Delta (EMR 7+ names the jar delta-spark.jar); spark.jars must list them.
SERVERLESS_DELTA_JARS = ["/usr/share/aws/delta/lib/delta-spark.jar", "/usr/share/aws/delta/lib/delta-storage.jar"]

#: What EMR does when a step fails (``emr.action_on_failure``).
ActionOnFailure = Literal["CANCEL_AND_WAIT", "CONTINUE", "TERMINATE_CLUSTER"]
ACTIONS_ON_FAILURE: tuple[str, ...] = ActionOnFailure.__args__  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Validation (all of it runs before any AWS call)
# --------------------------------------------------------------------------------------------

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
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


def bad_setting(key: str, value: Any, why: str, fix: str) -> ConfigError:
    """The ``ConfigError`` every check raises: the config key, its value, what is wrong and the fix."""
    return ConfigError(f"config key '{key}' = {value!r} {why}; fix: {fix}")


def check_region(key: str, region: Any) -> str:
    """Return ``region`` if it looks like an AWS region (``eu-west-1``), else raise ``ConfigError``."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise bad_setting(key, region, "is not an AWS region", f"--set {key}=eu-west-1 (or export AWS_DEFAULT_REGION)")
    return region


def check_bucket(key: str, bucket: Any) -> str:
    """Return ``bucket`` if it follows the S3 bucket naming rules, else raise ``ConfigError`` naming ``key``.

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
    try:
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise ConfigError(uri)
        validate_uri(key, uri)  # the one URI rule: no placeholder, quote, space or '..'
    except ConfigError:
        raise bad_setting(key, uri, "is not an s3:// URI",
                          f"--set {key}=s3://my-bucket/path (EMR uses s3://, not s3a://)") from None
    bucket, _, path = uri[len("s3://"):].partition("/")
    return check_bucket(key, bucket), path


def check_cluster_id(cluster_id: Any) -> str:
    """Return an EMR cluster id (``j-...``) or raise ``ConfigError``."""
    if not isinstance(cluster_id, str) or not _CLUSTER_ID.fullmatch(cluster_id):
        raise ConfigError(f"--cluster-id {cluster_id!r} is not an EMR cluster id; fix: pass the id `ecomrec emr up` "
                         "printed, like j-1ABCDEFGHIJKL (see `aws emr list-clusters --active`)")
    return cluster_id


def check_step_id(step_id: Any) -> str:
    """Return an EMR step id (``s-...``) or raise ``ConfigError``."""
    if not isinstance(step_id, str) or not _STEP_ID.fullmatch(step_id):
        raise ConfigError(f"--step-id {step_id!r} is not an EMR step id; fix: pass an id from "
                         "`ecomrec emr status --cluster-id j-...`, like s-1ABCDEFGHIJKL")
    return step_id


def check_serverless_id(name: str, value: Any) -> str:
    """Return an EMR Serverless application or job-run id or raise ``ConfigError``."""
    if not isinstance(value, str) or not _SERVERLESS_ID.fullmatch(value):
        raise ConfigError(f"{name} {value!r} is not an EMR Serverless id (lowercase letters and digits); "
                         f"fix: pass the id `ecomrec emr up` printed")
    return value


def check_release_label(key: str, label: Any) -> str:
    """Return an EMR release label (``emr-7.12.0``, ``emr-spark-8.0.0``) or raise ``ConfigError``."""
    if not isinstance(label, str) or not _RELEASE_LABEL.fullmatch(label):
        raise bad_setting(key, label, "is not an EMR release label", f"--set {key}={DEFAULT_RELEASE_LABEL}")
    return label


def check_instance_type(key: str, instance_type: Any) -> str:
    """Return an EC2 instance type (``m6i.xlarge``) or raise ``ConfigError``."""
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
                raise ConfigError(f"config key '{name}' looks like a credential; {fix}")
            reject_credentials(value, f"{name}.")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            reject_credentials(value, f"{prefix}[{i}].")
    elif isinstance(node, str) and _ACCESS_KEY_VALUE.search(node):
        raise ConfigError(f"config key '{prefix.rstrip('.')}' holds what looks like an AWS access key id; {fix}")


# --------------------------------------------------------------------------------------------
# Settings: the ``emr:`` section as a typed model, with defaults
# --------------------------------------------------------------------------------------------

# DynamoDB table names: 3-255 of letters, digits, '_', '-', '.'
_DYNAMODB_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_KMS_KEY_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:kms:([a-z0-9-]+):\d{12}:key/[A-Za-z0-9-]{1,128}$")
_JAVA_CLASS = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$")
_PATTERNS = {"subnet_id": r"subnet-[0-9a-f]{8,17}", "ec2_key_name": r"[\w .@-]{1,255}",
             "security_configuration": r"[\w .@-]{1,10280}"}


def _checked(check: Any, *fields: str) -> Any:
    """A ``before`` validator running ``check(value, field_name)`` (it raises the message with its fix)."""
    def run(cls: Any, value: Any, info: ValidationInfo) -> Any:
        check(value, str(info.field_name))
        return value
    return field_validator(*fields, mode="before")(classmethod(run))


class Encryption(Section):
    """What the security configuration must encrypt; each protection off only on purpose (conf/emr.yaml)."""

    s3: Literal["SSE-S3", "SSE-KMS", False] = Field(
        default="SSE-S3", json_schema_extra=fix("--set emr.encryption.s3=SSE-S3 (false turns EMRFS encryption off, "
                                                "on purpose)"))
    s3_kms_key: str | None = None
    local_disks: bool = Field(default=True, json_schema_extra=fix("--set emr.encryption.local_disks=true (false "
                                                                  "turns it off, on purpose)"))
    local_disk_kms_key: str | None = None
    in_transit: bool = Field(default=True, json_schema_extra=fix("--set emr.encryption.in_transit=true (false turns "
                                                                 "it off, on purpose)"))
    tls_certificates: str | None = None  # s3://.../certs.zip (PEM) or s3://.../provider.jar with tls_provider_class
    tls_provider_class: str | None = None

    @field_validator("s3_kms_key", "local_disk_kms_key")
    @classmethod
    def _kms(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not _KMS_KEY_ARN.fullmatch(v):
            raise bad_setting(f"emr.encryption.{info.field_name}", v,
                              "is not a KMS key ARN (aliases cannot be granted in IAM)",
                              f"--set emr.encryption.{info.field_name}=arn:aws:kms:<region>:<account>:key/<key id>")
        return v

    @field_validator("tls_provider_class")
    @classmethod
    def _provider(cls, v: str | None) -> str | None:
        if v is not None and not _JAVA_CLASS.fullmatch(v):
            raise bad_setting("emr.encryption.tls_provider_class", v, "is not a Java class name",
                              "set it to your TLSArtifactsProvider class, like com.example.MyCertProvider, "
                              "or null for a PEM zip")
        return v

    @field_validator("tls_certificates")
    @classmethod
    def _certs(cls, v: str | None) -> str | None:
        if v is not None:
            check_s3_uri("emr.encryption.tls_certificates", v)
        return v


class DeltaLogstore(Section):
    """Delta's DynamoDB LogStore, for writers on more than one cluster at once (emr/README.md "Delta LogStore");
    a null table keeps the default S3 LogStore, safe with one writer at a time (the steps run one by one)."""

    dynamodb_table: str | None = None
    region: str | None = None  # null: emr.region

    @field_validator("dynamodb_table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        if v is not None and not _DYNAMODB_TABLE.fullmatch(v):
            raise bad_setting("emr.delta_logstore.dynamodb_table", v, "is not a DynamoDB table name",
                              "--set emr.delta_logstore.dynamodb_table=ecomrec_delta_log (or null for one writer)")
        return v


class Serverless(Section):
    application_id: str | None = None
    execution_role_arn: str | None = None  # required in serverless mode
    architecture: Literal["X86_64", "ARM64"] = Field(default="X86_64", json_schema_extra=fix(
        "--set emr.serverless.architecture=X86_64"))
    idle_timeout_minutes: int = Field(default=15, ge=1, le=10080, json_schema_extra=fix(
        "--set emr.serverless.idle_timeout_minutes=15"))
    max_capacity: dict[str, str] | None = Field(default=None, json_schema_extra=fix(
        "{cpu: 16 vCPU, memory: 64 GB, disk: 200 GB}"))
    delta_jars: list[str] = Field(default_factory=lambda: list(SERVERLESS_DELTA_JARS),
                                  json_schema_extra=fix("keep the default"))

    @field_validator("application_id")
    @classmethod
    def _app(cls, v: str | None) -> str | None:
        return None if v is None else check_serverless_id("emr.serverless.application_id", v)

    @field_validator("max_capacity")
    @classmethod
    def _capacity(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None and set(v) - {"cpu", "memory", "disk"}:
            raise bad_setting("emr.serverless.max_capacity", v, "must map cpu/memory/disk to strings",
                              "{cpu: 16 vCPU, memory: 64 GB, disk: 200 GB}")
        return v

    @field_validator("delta_jars")
    @classmethod
    def _jars(cls, v: list[str]) -> list[str]:
        if not all(re.fullmatch(r"/[\w./-]+\.jar", j) for j in v):
            raise bad_setting("emr.serverless.delta_jars", v, "must be a list of absolute .jar paths", "keep the default")
        return v


def _pattern(value: Any, key: str, pattern: str, why: str, fix_: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise bad_setting(f"emr.{key}", value, why, fix_)


class EmrSettings(Section):
    """The ``emr:`` section: every key typed and checked before any AWS call (conf/emr.yaml, emr/README.md)."""

    mode: Literal["cluster", "serverless"] = Field(default="cluster", json_schema_extra=fix(
        "--set emr.mode=cluster (or serverless)"))  # cluster (EMR on EC2) | serverless
    region: str = Field(default=None, validate_default=True)  # null: AWS_REGION / AWS_DEFAULT_REGION
    bucket: str | None = None
    prefix: str = ""  # key prefix inside the bucket ("" or "team/ecomrec/")
    name: str = "ecomrec"
    release_label: str = DEFAULT_RELEASE_LABEL
    applications: list[str] = Field(default_factory=lambda: ["Hadoop", "Spark"], json_schema_extra=fix(
        "--set 'emr.applications=[Hadoop, Spark]'"))
    shipping: Literal["bootstrap", "archive"] = Field(default="bootstrap", json_schema_extra=fix(
        "--set emr.shipping=bootstrap (or archive)"))
    python: str = "/usr/bin/python3.11"
    log_uri: str | None = None  # null: s3://<bucket>/<prefix>logs/emr/
    job_flow_role: str = "ecomrec-emr-ec2"
    service_role: str = "ecomrec-emr-service"
    idle_timeout_seconds: int = Field(default=1800, ge=60, le=604800, json_schema_extra=fix(
        "--set emr.idle_timeout_seconds=1800 (auto-termination stays on)"))
    keep_alive: bool = Field(default=True, json_schema_extra=fix("--set emr.keep_alive=false"))
    action_on_failure: ActionOnFailure = Field(
        default="CANCEL_AND_WAIT", json_schema_extra=fix("--set emr.action_on_failure=CANCEL_AND_WAIT"))
    glue_database: str = "ecomrec"
    subnet_id: str | None = None
    ec2_key_name: str | None = None
    security_configuration: str | None = None  # an existing EMR security configuration; null: `up` makes one
    encryption: Encryption = Encryption()
    require_private_subnet: bool = Field(default=True, json_schema_extra=fix(  # false: allow a public subnet
        "--set emr.require_private_subnet=true"))
    visible_to_all_users: bool = Field(default=False, json_schema_extra=fix("--set emr.visible_to_all_users=false"))
    ebs_root_volume_gb: int | None = Field(default=None, ge=15, le=100, json_schema_extra=fix(
        "--set emr.ebs_root_volume_gb=30"))
    instance_groups: list[dict[str, Any]] = Field(default_factory=lambda: [
        {"role": "MASTER", "instance_type": "m6i.xlarge", "count": 1},
        {"role": "CORE", "instance_type": "m6i.2xlarge", "count": 2}])
    instance_fleets: list[dict[str, Any]] | None = None  # set to use fleets instead of instance_groups
    spark_submit_args: list[str] = Field(default_factory=list, json_schema_extra=fix(
        "--set 'emr.spark_submit_args=[--conf, spark.executor.memory=8g]'"))
    spark_defaults: dict[str, Any] = Field(default_factory=dict, json_schema_extra=fix(
        "e.g. {spark.executor.memory: 8g}"))
    tags: dict[str, Any] = Field(default_factory=lambda: {"project": "ecomrec"}, json_schema_extra=fix(
        "e.g. {project: ecomrec, owner: data-team}"))
    wait_timeout_minutes: Num = Field(default=240, gt=0, json_schema_extra=fix("--set emr.wait_timeout_minutes=240"))
    delta_logstore: DeltaLogstore = DeltaLogstore()
    serverless: Serverless = Serverless()

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, v: Any) -> str:
        return check_region("emr.region", v or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))

    _release = _checked(lambda v, _: check_release_label("emr.release_label", v), "release_label")
    _prefix = _checked(lambda v, _: _pattern(v, "prefix", KEY_PREFIX.pattern, "is not an S3 key prefix",
                                             "use '' or a path ending in '/', like ecomrec/"), "prefix")
    _name = _checked(lambda v, _: _pattern(v, "name", r"[\w .:/=+@-]{1,256}", "is not a cluster name",
                                           "use letters, digits, spaces and -_."), "name")
    _python = _checked(lambda v, _: _pattern(v, "python", r"/[\w./-]+", "is not an absolute interpreter path",
                                             "--set emr.python=/usr/bin/python3.11"), "python")
    _roles = _checked(lambda v, key: _pattern(v, key, _ROLE_NAME.pattern, "is not an IAM role name",
                                              f"--set emr.{key}=<role name> (see emr/README.md)"),
                      "job_flow_role", "service_role")
    _glue = _checked(lambda v, _: _pattern(v, "glue_database", GLUE_DATABASE.pattern,
                                           "is not a Glue database name (lowercase, digits, _)",
                                           "--set emr.glue_database=ecomrec"), "glue_database")
    _optional = _checked(lambda v, key: _pattern(v, key, _PATTERNS[key], "is not valid",
                                                 f"set emr.{key} to a {key.replace('_', ' ')} or null", optional=True),
                         "subnet_id", "ec2_key_name", "security_configuration")

    @field_validator("applications")
    @classmethod
    def _apps(cls, v: list[str]) -> list[str]:
        if "Spark" not in v or not all(a.isalnum() for a in v):
            raise bad_setting("emr.applications", v, "must be a list that includes Spark",
                              "--set 'emr.applications=[Hadoop, Spark]'")
        return v

    @field_validator("spark_submit_args")
    @classmethod
    def _args(cls, v: list[str]) -> list[str]:
        if not all(a and not re.search(r"\s", a) for a in v):
            raise bad_setting("emr.spark_submit_args", v, "must be a list of spark-submit arguments without spaces",
                              "--set 'emr.spark_submit_args=[--conf, spark.executor.memory=8g]'")
        return v

    @field_validator("spark_defaults")
    @classmethod
    def _spark_defaults(cls, v: dict[str, Any]) -> dict[str, str]:
        if not all(k.startswith("spark.") for k in v):
            raise bad_setting("emr.spark_defaults", v, "must map spark.* keys to values", "e.g. {spark.executor.memory: 8g}")
        out = {k: str(x).lower() if isinstance(x, bool) else str(x) for k, x in v.items()}
        reject_credentials(out, "emr.spark_defaults.")
        return out

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not all(_TAG_KEY.fullmatch(k) for k in v):
            raise bad_setting("emr.tags", v, "must map tag keys to values", "e.g. {project: ecomrec, owner: data-team}")
        return v

    @field_validator("log_uri")
    @classmethod
    def _log_uri(cls, v: str | None) -> str | None:
        if v is not None:
            check_s3_uri("emr.log_uri", v)
        return None if v is None else v.rstrip("/") + "/"

    @model_validator(mode="after")
    def _together(self, info: ValidationInfo) -> EmrSettings:
        """The rules that read more than one key."""
        if (info.context or {}).get("need_bucket", True) or self.bucket is not None:
            check_bucket("emr.bucket", self.bucket)
        if self.instance_fleets is not None:
            _check_fleets(self.instance_fleets)
        else:
            _check_groups(self.instance_groups)
        if self.log_uri is not None and self.bucket:
            bucket, key = check_s3_uri("emr.log_uri", self.log_uri)
            if bucket != self.bucket or not key.startswith(f"{self.prefix}logs/"):
                raise bad_setting("emr.log_uri", self.log_uri, "lies outside the job role's S3 prefixes",
                                  f"use s3://{self.bucket}/{self.prefix}logs/... or null")
        role = self.serverless.execution_role_arn
        if self.mode == "serverless" and (role is None or not ROLE_ARN.fullmatch(role)):
            raise bad_setting("emr.serverless.execution_role_arn", role, "must be an IAM role ARN in serverless mode",
                              "--set emr.serverless.execution_role_arn="
                              "arn:aws:iam::123456789012:role/ecomrec-emr-serverless-job")
        e = self.encryption
        for key in ("s3_kms_key", "local_disk_kms_key"):
            m = _KMS_KEY_ARN.fullmatch(getattr(e, key) or "")
            if m and m.group(1) != self.region:
                raise bad_setting(f"emr.encryption.{key}", getattr(e, key), f"is not in the cluster's region {self.region}",
                                  "use a key in emr.region: EMR only uses keys in the cluster's region")
        want = ".jar" if e.tls_provider_class else ".zip"
        if e.tls_certificates is not None and not e.tls_certificates.endswith(want):
            raise bad_setting("emr.encryption.tls_certificates", e.tls_certificates, f"must be a {want} object "
                              + ("(the custom provider's jar)" if e.tls_provider_class else
                                 "(a zip of privateKey.pem and certificateChain.pem, optionally trustedCertificates.pem)"),
                              f"point it at s3://{self.bucket or '<bucket>'}/{self.prefix}artifacts/certs/<name>{want}")
        if self.delta_logstore.dynamodb_table is not None:
            check_region("emr.delta_logstore.region", self.delta_logstore.region or self.region)
        return self

    @classmethod
    def resolve(cls, section: Mapping[str, Any] | None, *, need_bucket: bool = True) -> EmrSettings:
        """Validate ``section`` and fill what derives from other keys (log_uri, the LogStore's region, shipping)."""
        section = dict(section or {})
        reject_credentials(section, "emr.")
        try:
            s = cls.model_validate(section, context={"need_bucket": need_bucket})
        except ValidationError as exc:
            raise config_error(exc, cls, "emr") from None
        update: dict[str, Any] = {}
        if s.mode == "serverless":
            update["shipping"] = "archive"  # EMR Serverless has no bootstrap actions
        if s.log_uri is None and s.bucket:
            update["log_uri"] = f"s3://{s.bucket}/{s.prefix}logs/emr/"
        if s.delta_logstore.dynamodb_table is not None:
            update["delta_logstore"] = s.delta_logstore.model_copy(
                update={"region": s.delta_logstore.region or s.region})
        return s.model_copy(update=update)


#: The defaults of every ``emr.*`` key (``region`` null: AWS_REGION / AWS_DEFAULT_REGION).
DEFAULTS: dict[str, Any] = EmrSettings.model_construct().model_dump()


def resolve_settings(section: Mapping[str, Any] | None, *, need_bucket: bool = True) -> dict[str, Any]:
    """Merge the ``emr:`` config section over :data:`DEFAULTS` and validate every value (:class:`EmrSettings`).

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
    ConfigError
        A ``ValueError`` naming the bad key (``emr.<key>``) and the fix.
    """
    return EmrSettings.resolve(section, need_bucket=need_bucket).model_dump()


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


def node_python_version(s: Mapping[str, Any]) -> str:
    """``3.11`` from ``emr.python`` (``/usr/bin/python3.11``): the wheels are picked for that interpreter."""
    m = re.search(r"python(3\.\d+)$", s["python"])
    if not m:
        raise bad_setting("emr.python", s["python"], "does not name its version (the wheelhouse is built for it)",
                          "--set emr.python=/usr/bin/python3.11")
    return m.group(1)
