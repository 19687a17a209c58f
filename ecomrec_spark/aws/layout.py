"""Where the launcher puts things in S3, and where EMR puts its logs; no AWS call.

Everything lives in ``emr.bucket`` under the optional ``emr.prefix``: the data (``raw/``, ``lake/``,
``reports/``, each reachable by the job role only as :data:`POLICY_PREFIXES` says, checked by
:func:`check_paths`), the shipped code under ``artifacts/ecomrec-<version>/`` (:func:`artifact_uris`)
and the logs under ``logs/`` (:func:`step_log_uri`, :func:`serverless_job_log_uri`).

>>> artifact_uris({"bucket": "my-bucket", "prefix": "team/"}).jobs  # doctest: +ELLIPSIS
's3://my-bucket/team/artifacts/ecomrec-.../jobs/'
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomrec_spark import registry
from ecomrec_spark.aws.settings import DEFAULT_CONF, bad_setting, check_s3_uri
from ecomrec_spark.config import REPO_ROOT

BOOTSTRAP_SCRIPT = REPO_ROOT / "emr" / "bootstrap" / "install-wheel.sh"
WHEELHOUSE = "wheelhouse/"  # under the artifacts' version prefix
LOCK_NAME = "requirements.lock"  # in the wheelhouse: name==version --hash=sha256:... for every wheel in it

#: The pipeline, in order: (command, script under jobs/), from the stage registry.
PIPELINE_JOBS: tuple[tuple[str, str], ...] = tuple((stage.name, stage.script) for stage in registry.PIPELINE)
JOB_SCRIPTS: dict[str, str] = dict(PIPELINE_JOBS)
PIPELINE: tuple[str, ...] = tuple(name for name, _ in PIPELINE_JOBS)

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
            raise bad_setting(key, uri, f"is outside s3://{settings['bucket']}/{allowed}, the only prefix the job role "
                              f"grants {name} the rights it needs",
                              f"--set {key}=s3://{settings['bucket']}/{settings['prefix']}{name}")


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


def serverless_log_uri(settings: Mapping[str, Any]) -> str:
    """Where EMR Serverless writes job logs: ``s3://<bucket>/<prefix>logs/serverless/``."""
    return f"s3://{settings['bucket']}/{settings['prefix']}logs/serverless/"


def serverless_job_log_uri(settings: Mapping[str, Any], application_id: str, job_run_id: str) -> str:
    """``<logUri>applications/<app>/jobs/<run>/`` (``SPARK_DRIVER/stderr.gz`` and friends)."""
    return f"{serverless_log_uri(settings)}applications/{application_id}/jobs/{job_run_id}/"


def normal_log_uri(uri: str | None) -> str | None:
    """EMR reports LogUri as ``s3n://``; EMRFS and boto3 users want ``s3://``."""
    if not uri:
        return None
    return "s3://" + uri.split("://", 1)[1].rstrip("/") + "/" if "://" in uri else uri


def step_log_uri(log_uri: str | None, cluster_id: str, step_id: str) -> str | None:
    """``<LogUri>/<cluster-id>/steps/<step-id>/`` where EMR copies a step's stderr, stdout, controller."""
    base = normal_log_uri(log_uri)
    return f"{base}{cluster_id}/steps/{step_id}/" if base else None


def config_path(cfg: Mapping[str, Any]) -> Path:
    """The run config file a loaded config came from (``conf/emr.yaml`` when it does not say)."""
    return Path(cfg.get("_source") or DEFAULT_CONF)
