"""One local SparkSession, with Delta, shared by the whole suite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ecomrec_spark.config import load_config

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def cfg():
    return load_config(None)


@pytest.fixture(scope="session")
def spark(cfg):
    from ecomrec_spark.session import build_session

    local_dir = tempfile.mkdtemp(prefix="ecomrec-spark-local-")
    session = build_session(
        cfg,
        app_name="ecomrec-tests",
        extra_conf={
            "spark.master": "local[2]",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.showConsoleProgress": "false",
            "spark.local.dir": local_dir,
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
        },
    )
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path):
    """A fresh lake root per test."""
    return str(tmp_path / "lake")


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder missing: {SHARED_DATA} (it sits beside the repo on dev machines and CI)")
    return SHARED_DATA
