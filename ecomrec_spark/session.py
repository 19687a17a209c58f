"""The one SparkSession factory used by jobs, the CLI and tests.

Locally it fetches Delta's jars from Maven Central once into a project-local
cache (``spark.jar_cache``) and afterwards points ``spark.jars`` at the cached
files, so a second run downloads nothing.  On EMR ``delta_packages`` is empty
and the cluster's own Delta is used.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from ecomrec_spark.config import ConfigError

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
MIN_JAVA = 17


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


def _record_jars(cache: Path, packages: list[str], conf: Mapping[str, str]) -> None:
    jars = cached_jars(cache, packages) or sorted(str(p) for p in (cache / "ivy" / "jars").glob("*.jar"))
    if not jars:
        return
    _manifest(cache, packages).write_text("\n".join(jars) + "\n")
    # A properties file for plain spark-submit, whose JVM starts before our Python runs.
    lines = [f"spark.jars {','.join(jars)}"] + [f"{k} {v}" for k, v in conf.items()]
    (cache / "spark-local.conf").write_text("\n".join(lines) + "\n")


def session_conf(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Every Spark setting the factory applies, as plain strings."""
    spark_cfg = cfg.get("spark", {})
    conf: dict[str, str] = dict(DELTA_CONF)
    conf["spark.sql.shuffle.partitions"] = str(spark_cfg.get("shuffle_partitions", 8))
    conf["spark.sql.ansi.enabled"] = "true"
    conf["spark.ui.showConsoleProgress"] = "true"
    if spark_cfg.get("bind_loopback"):
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
    conf.update({k: str(v) for k, v in (spark_cfg.get("conf") or {}).items()})
    if conf["spark.sql.ansi.enabled"].lower() != "true":
        raise ConfigError("spark.conf sets spark.sql.ansi.enabled to false; ANSI mode must stay on, as on EMR 8")
    return conf


def build_session(cfg: Mapping[str, Any], app_name: str | None = None, extra_conf: Mapping[str, str] | None = None):
    """Build (or reuse) the configured SparkSession.

    Parameters
    ----------
    cfg : the validated config from :func:`ecomrec_spark.config.load_config`.
    app_name : shown in the Spark UI and logs.
    extra_conf : settings for this session only (tests use it for a small footprint).
    """
    from pyspark.sql import SparkSession

    spark_cfg = cfg.get("spark", {})
    master = spark_cfg.get("master")
    base_conf = session_conf(cfg)
    conf = {**base_conf, **(extra_conf or {})}
    attached = "PYSPARK_GATEWAY_PORT" in os.environ  # under spark-submit the JVM already runs
    packages = list(spark_cfg.get("delta_packages") or [])
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
            log.info("fetching %s from Maven Central into %s (once)", packages, cache)

    builder = SparkSession.builder.appName(app_name or spark_cfg.get("app_name", "ecomrec"))
    if master and not attached:
        builder = builder.master(str(master))
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(spark_cfg.get("log_level", "WARN"))
    if packages and not attached:
        _record_jars(cache, packages, {"spark.master": str(master), **base_conf} if master else base_conf)
    _check_delta(spark, cache)
    return spark


def _check_delta(spark, cache: Path) -> None:
    from py4j.java_gateway import JavaClass

    # py4j resolves through Spark's own class loader; an unknown class comes back as a package
    if not isinstance(spark._jvm.io.delta.tables.DeltaTable, JavaClass):
        raise ConfigError(
            "Delta Lake is not on Spark's classpath. Locally run `make jars`, then "
            f"spark-submit --properties-file {cache / 'spark-local.conf'} jobs/<job>.py ...; "
            "on EMR add the delta-defaults classification (delta.enabled=true)."
        ) from None


def fetch_jars(conf_file: str | None = None) -> None:
    """Download the configured Delta jars into the project cache (what ``make jars`` runs)."""
    from ecomrec_spark.config import load_config

    spark = build_session(load_config(conf_file), app_name="ecomrec-fetch-jars", extra_conf={"spark.ui.showConsoleProgress": "false"})
    spark.stop()
