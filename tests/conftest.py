"""One local SparkSession, with Delta, shared by the whole suite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ecomrec_spark.config import load_config

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
# Fake AWS credentials for the whole session, set before any SparkSession starts: Spark's Python workers inherit
# the JVM's environment, so executor-side boto3 (publish's DynamoDB writer against moto) sees only what is set
# here, not what a test monkeypatches later.  Overwritten, never defaulted: no test can reach a real account.
for _key, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ[_key] = _value
for _key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_key, None)
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
            # one JVM serves the whole suite, which builds the recommendations (ranker included) several times
            "spark.driver.memory": "8g",
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


@pytest.fixture(scope="session")
def dynamodb_endpoint():
    """moto's server on a free loopback port: a real DynamoDB API (``http://127.0.0.1:<port>``) for the session.

    Tests share it, so each uses its own table prefix."""
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def lake(tmp_path):
    """A fresh lake root per test."""
    return str(tmp_path / "lake")


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder missing: {SHARED_DATA} (it sits beside the repo on dev machines and CI)")
    return SHARED_DATA


PLANTED_ORDERS = 1500


@pytest.fixture(scope="session")
def planted_lake(spark, tmp_path_factory):
    """Generate -> ingest -> transform on 1,500 planted orders, once, as the CLI runs them (with manifest rows).

    ``test_end_to_end`` checks it against the generator's ground truth; ``recommend_run`` builds on a copy.
    Read-only: a test that writes works on a copy of the lake (``shutil.copytree``).
    """
    from ecomrec_spark import runs
    from ecomrec_spark.generate.dataset import generate_dataset
    from ecomrec_spark.ingest.run import ingest
    from ecomrec_spark.settings import Settings
    from ecomrec_spark.transform.run import transform

    root = tmp_path_factory.mktemp("planted")
    cfg = load_config(None, [f"paths.raw={root / 'raw'}", f"paths.lake={root / 'lake'}",
                             f"generate.orders={PLANTED_ORDERS}", "generate.seed=5"])
    truth = generate_dataset(spark, cfg["paths"]["raw"], cfg["generate"])
    settings = Settings.from_config(cfg)
    with runs.stage(spark, cfg["paths"]["lake"], "ingest", "planted-base"):
        recon = ingest(spark, settings)
    with runs.stage(spark, cfg["paths"]["lake"], "transform", "planted-base") as done:
        counts = transform(spark, settings)
    return {"cfg": cfg, "truth": truth, "recon": recon, "counts": counts, "root": root, "transform": done}


@pytest.fixture(scope="session")
def recommend_run(spark, planted_lake, tmp_path_factory):
    """build-recommendations -> evaluate on a copy of ``planted_lake``, once.

    ``test_recommend_end_to_end`` checks it; ``test_report`` adds the review, insights and report
    stages to the same lake rather than paying for another ingest and transform.
    """
    import shutil

    from pyspark.sql import functions as F

    from ecomrec_spark import lake as lk
    from ecomrec_spark import runs
    from ecomrec_spark.recommend.evaluate import evaluate
    from ecomrec_spark.recommend.run import recommend
    from ecomrec_spark.settings import Settings

    root = tmp_path_factory.mktemp("rec_e2e")
    shutil.copytree(planted_lake["cfg"]["paths"]["lake"], root / "lake")
    sets = [
        f"paths.raw={planted_lake['cfg']['paths']['raw']}", f"paths.lake={root / 'lake'}",
        f"paths.reports={root / 'reports'}", f"paths.serving={root / 'serving'}",
        "recommend.als.max_iter=5", "recommend.als.rank=8",
        "recommend.hybrid.grid.review=[0.0]", "recommend.hybrid.grid.price=[0.0]",
        "recommend.hybrid.grid.popularity=[0.0,1.0]", "recommend.evaluate.models=[hybrid,als,popular,random]",
        "recommend.rules.min_support=0.0015",  # at least 2 of about 1,400 baskets
        # EASE/ALS tuning has its own tests (test_tuning.py); one ranker grid point: the wiring is tested here,
        # the benchmarks measure the tuning
        "recommend.als.tune=false", "recommend.item_item.tune=false", "recommend.rank.candidates=50",
        "recommend.rank.grid.max_depth=[4]", "recommend.rank.grid.n_estimators=[60]", "recommend.rank.min_customers=5",
    ]
    cfg = load_config(None, sets)
    lake = cfg["paths"]["lake"]
    # a never-seen customer with a known region: the fallback must serve them (a stage of its own, so the
    # manifest pins the table with the ghost in it for every later stage)
    with runs.stage(spark, lake, "transform", "ghost-customer"):
        cust = lk.read(spark, lake, "silver", "customers")
        ghost = cust.limit(1).select(F.lit("ghost-customer-1").alias("customer_id"),
                                     *[c for c in cust.columns if c != "customer_id"])
        lk.overwrite(cust.unionByName(ghost), lake, "silver", "customers")
    settings = Settings.from_config(cfg)
    built = recommend(spark, settings)
    recs_v1 = lk.read(spark, lake, "gold", "recommendations").drop("generated_at", "model_version").cache()
    recs_v1.count()
    evaluated = evaluate(spark, settings)
    return {"cfg": cfg, "settings": settings, "sets": sets, "built": built, "evaluated": evaluated, "root": root, "recs_v1": recs_v1}
