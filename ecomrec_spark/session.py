"""The one SparkSession factory used by jobs, the CLI and tests.

Locally it fetches Delta's jars from Maven Central once into a project-local
cache (``spark.jar_cache``) and afterwards points ``spark.jars`` at the cached
files, so a second run downloads nothing.  On EMR ``delta_packages`` is empty
and the cluster's own Delta is used.

S3
--
Every path is a URI: ``s3://`` on EMR (EMRFS, nothing to add) and ``s3a://``
locally.  When a configured path is ``s3a://`` and the factory manages the jars
(``delta_packages`` is not empty), it also fetches ``hadoop-aws`` at the version
of the Hadoop that pyspark bundles (``pyspark/jars/hadoop-client-api-*.jar``);
Ivy brings in what it needs (the AWS SDK v2 ``bundle``, several hundred MB).
That set has its own manifest, so the Delta-only cache stays valid.  Credentials
come from the SDK's default chain (environment, profile, container or instance
role); never put keys in the config.  A local S3 API (moto, MinIO) is reached with
``--set spark.conf.spark.hadoop.fs.s3a.endpoint=http://127.0.0.1:PORT`` plus
``fs.s3a.path.style.access=true`` and ``fs.s3a.connection.ssl.enabled=false``
(``tests/test_s3_end_to_end.py``).  ``make jars-s3a`` fetches the jars ahead and
writes ``<jar_cache>/spark-local-s3a.conf`` for plain ``spark-submit``.

Delta on S3 assumes **one writer at a time** per table (the jobs run as
sequential steps), so Delta's default S3 LogStore (``S3SingleDriverLogStore``,
used for ``s3``, ``s3a`` and ``s3n``) is safe.  Concurrent writers from several
clusters would need the DynamoDB LogStore (``delta-storage-s3-dynamodb``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from ecomrec_spark.config import ConfigError

if TYPE_CHECKING:  # pyspark is imported where a session is built, not with this module
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
MIN_JAVA = 17
HADOOP_AWS = "org.apache.hadoop:hadoop-aws"
# fs.s3a.impl needs no setting (hadoop-aws registers S3AFileSystem); the rest is per endpoint, from spark.conf.
S3A_DEFAULTS = {
    "spark.hadoop.fs.s3a.aws.credentials.provider":
        "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",  # SDK v2: env, profile, role
}


def check_java() -> None:
    """Fail with an install hint unless a Java 17+ runtime is on PATH or JAVA_HOME."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    hint = "install a Java 17 runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17) and set JAVA_HOME"
    if not java or not Path(java).exists():
        raise ConfigError(f"Java was not found; Spark 4 needs Java {MIN_JAVA}+: {hint}")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise ConfigError(f"could not read the Java version from {java!r}: {out.strip()[:200]}; {hint}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise ConfigError(f"Java {major} found at {java}, but Spark 4 needs Java {MIN_JAVA}+: {hint}")


def bundled_hadoop_version() -> str:
    """The Hadoop version pyspark ships (``hadoop-aws`` must match it exactly).

    >>> bundled_hadoop_version()  # doctest: +SKIP
    '3.4.1'
    """
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    found = sorted(jars.glob("hadoop-client-api-*.jar"))
    match = re.fullmatch(r"hadoop-client-api-(\d+\.\d+\.\d+)\.jar", found[0].name) if found else None
    if not match:
        raise ConfigError(f"no hadoop-client-api-<version>.jar in {jars}; "
                          "cannot pick the matching hadoop-aws for s3a://")
    return match.group(1)


def s3a_packages() -> list[str]:
    """Maven coordinates for ``s3a://``: hadoop-aws matching pyspark's Hadoop (its SDK comes transitively)."""
    return [f"{HADOOP_AWS}:{bundled_hadoop_version()}"]


def uses_s3a(cfg: Mapping[str, Any]) -> bool:
    """Whether any configured path (``paths.*``, the blocked-products table) is an ``s3a://`` URI."""
    uris = list((cfg.get("paths") or {}).values())
    uris.append(((cfg.get("recommend") or {}).get("filters") or {}).get("blocked_table"))
    return any(isinstance(u, str) and u.startswith("s3a://") for u in uris)


def jar_packages(cfg: Mapping[str, Any], s3a: bool | None = None) -> list[str]:
    """The Maven packages the factory fetches for ``cfg``; empty where the platform provides the jars (EMR).

    Parameters
    ----------
    cfg : the validated config.
    s3a : add the ``s3a://`` jars; ``None`` decides from the configured paths (:func:`uses_s3a`).
    """
    packages = list((cfg.get("spark") or {}).get("delta_packages") or [])
    if packages and (uses_s3a(cfg) if s3a is None else s3a):
        packages += [p for p in s3a_packages() if p not in packages]
    return packages


def _manifest(cache: Path, packages: list[str]) -> Path:
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", "+".join(sorted(packages)))
    return cache / f"{key}.jars"


def cached_jars(cache: Path, packages: list[str]) -> list[str] | None:
    """Jar files recorded for ``packages`` if every one is still on disk."""
    manifest = _manifest(cache, packages)
    if not manifest.is_file():
        return None
    jars = [line for line in manifest.read_text().splitlines() if line]
    return jars if jars and all(Path(j).is_file() for j in jars) else None


def _resolved_jars(spark: SparkSession, cache: Path) -> list[str]:
    """The jars Ivy resolved for this session (spark-submit lists them in ``spark.jars``)."""
    ivy_jars = (cache / "ivy" / "jars").resolve()
    listed = spark.sparkContext.getConf().get("spark.jars", "") or ""
    jars = []
    for uri in filter(None, listed.split(",")):
        path = Path(unquote(urlparse(uri).path) if "://" in uri or uri.startswith("file:") else uri)
        if path.is_file() and path.resolve().parent == ivy_jars:
            jars.append(str(path))
    return sorted(jars)


def _record_jars(cache: Path, packages: list[str], jars: list[str], conf: Mapping[str, str], properties: str) -> None:
    jars = cached_jars(cache, packages) or jars or sorted(str(p) for p in (cache / "ivy" / "jars").glob("*.jar"))
    if not jars:
        return
    _manifest(cache, packages).write_text("\n".join(jars) + "\n")
    # A properties file for plain spark-submit, whose JVM starts before our Python runs.
    lines = [f"spark.jars {','.join(jars)}"] + [f"{k} {v}" for k, v in conf.items()]
    (cache / properties).write_text("\n".join(lines) + "\n")


def session_conf(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Every Spark setting the factory applies, as plain strings."""
    spark_cfg = cfg.get("spark", {})
    conf: dict[str, str] = dict(DELTA_CONF)
    conf["spark.sql.shuffle.partitions"] = str(spark_cfg.get("shuffle_partitions", 8))
    conf["spark.sql.ansi.enabled"] = "true"
    conf["spark.ui.showConsoleProgress"] = "true"
    if uses_s3a(cfg):
        conf.update(S3A_DEFAULTS)
    if spark_cfg.get("bind_loopback"):
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
    conf.update({k: str(v) for k, v in (spark_cfg.get("conf") or {}).items()})
    if conf["spark.sql.ansi.enabled"].lower() != "true":
        raise ConfigError("spark.conf sets spark.sql.ansi.enabled to false; ANSI mode must stay on, as on EMR 8")
    return conf


def runs_locally(spark: SparkSession) -> bool:
    """Whether ``spark`` runs on this machine (a ``local[...]`` master); ``False`` for Spark Connect (no SparkContext)."""
    from pyspark.errors import PySparkAttributeError

    try:
        master = spark.sparkContext.master
    except PySparkAttributeError:  # Spark Connect has no SparkContext: the server's cluster, not ours
        return False
    return (master or "").startswith("local")


def build_session(cfg: Mapping[str, Any], app_name: str | None = None, extra_conf: Mapping[str, str] | None = None,
                  s3a: bool | None = None) -> SparkSession:
    """Build (or reuse) the configured SparkSession.

    Parameters
    ----------
    cfg : the validated config from :func:`ecomrec_spark.config.load_config`.
    app_name : shown in the Spark UI and logs.
    extra_conf : settings for this session only (tests use it for a small footprint).
    s3a : load the ``s3a://`` jars (hadoop-aws and the AWS SDK); ``None`` decides from the configured paths.
        Jars cannot be added to a running JVM: a session started without them cannot read ``s3a://``.
    """
    from pyspark.sql import SparkSession

    spark_cfg = cfg.get("spark", {})
    master = spark_cfg.get("master")
    base_conf = session_conf(cfg)
    conf = {**base_conf, **(extra_conf or {})}
    attached = "PYSPARK_GATEWAY_PORT" in os.environ  # under spark-submit the JVM already runs
    want_s3a = uses_s3a(cfg) if s3a is None else s3a
    packages = jar_packages(cfg, want_s3a)
    if want_s3a:
        conf = {**S3A_DEFAULTS, **conf}
    cache = Path(spark_cfg.get("jar_cache") or ".cache/jars")
    if master and str(master).startswith("local") and not attached:
        check_java()
        # Python workers (pandas UDFs, xgboost.spark) must run this interpreter, not whatever python3 is on PATH
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if spark_cfg.get("bind_loopback"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if packages and not attached:
        jars = cached_jars(cache, packages)
        if jars:
            conf["spark.jars"] = ",".join(jars)
        else:
            cache.mkdir(parents=True, exist_ok=True)
            conf["spark.jars.packages"] = ",".join(packages)
            conf["spark.jars.ivy"] = str((cache / "ivy").resolve())
            big = any(p.startswith(HADOOP_AWS) for p in packages)
            log.info("fetching %s from Maven Central into %s (once%s)", packages, cache,
                     "; the AWS SDK bundle is several hundred MB" if big else "")

    builder = SparkSession.builder.appName(app_name or spark_cfg.get("app_name", "ecomrec"))
    if master and not attached:
        builder = builder.master(str(master))
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(spark_cfg.get("log_level", "WARN"))
    if packages and not attached:
        if any(p.startswith(HADOOP_AWS) for p in packages):
            # only what the JVM needs at start plus fixed settings: per-run values (an endpoint, a port,
            # temp folders) come from the config when build_session runs under spark-submit
            props = {**DELTA_CONF, **S3A_DEFAULTS, "spark.sql.ansi.enabled": "true"}
            _record_jars(cache, packages, _resolved_jars(spark, cache), props, "spark-local-s3a.conf")
        else:
            props = {"spark.master": str(master), **base_conf} if master else base_conf
            _record_jars(cache, packages, _resolved_jars(spark, cache), props, "spark-local.conf")
    _check_delta(spark, cache)
    if want_s3a:
        _check_s3a(spark, cache)
    return spark


def _check_delta(spark: SparkSession, cache: Path) -> None:
    from py4j.java_gateway import JavaClass

    from ecomrec_spark.storage import jvm

    # py4j resolves through Spark's own class loader; an unknown class comes back as a package
    if not isinstance(jvm(spark).io.delta.tables.DeltaTable, JavaClass):
        raise ConfigError(
            "Delta Lake is not on Spark's classpath. Locally run `make jars`, then "
            f"spark-submit --properties-file {cache / 'spark-local.conf'} jobs/<job>.py ...; "
            "on EMR add the delta-defaults classification (delta.enabled=true)."
        ) from None


def _check_s3a(spark: SparkSession, cache: Path) -> None:
    from py4j.java_gateway import JavaClass

    from ecomrec_spark.storage import jvm

    if not isinstance(jvm(spark).org.apache.hadoop.fs.s3a.S3AFileSystem, JavaClass):
        raise ConfigError(
            "hadoop-aws is not on Spark's classpath, so s3a:// paths cannot be read. Locally run `make jars-s3a`, then "
            f"spark-submit --properties-file {cache / 'spark-local-s3a.conf'} jobs/<job>.py ...; "
            "in a session that was started without it, jars cannot be added: start a new process."
        ) from None


def fetch_jars(conf_file: str | None = None, s3a: bool = False) -> None:
    """Download the configured jars into the project cache (what ``make jars`` and ``make jars-s3a`` run).

    Parameters
    ----------
    conf_file : the YAML config (default ``conf/local.yaml``).
    s3a : also fetch hadoop-aws and the AWS SDK bundle for ``s3a://`` paths.
    """
    from ecomrec_spark.config import load_config

    spark = build_session(load_config(conf_file), app_name="ecomrec-fetch-jars",
                          extra_conf={"spark.ui.showConsoleProgress": "false"}, s3a=s3a or None)
    spark.stop()
