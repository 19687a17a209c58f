"""S3 end to end without an AWS account: moto serves a real S3 API on 127.0.0.1.

Raw CSVs are generated locally and uploaded with boto3 (``upload_raw``); then
ingest -> transform -> a small build-recommendations run against ``s3a://`` in a
child process, because hadoop-aws and the AWS SDK must be on the JVM's classpath
from the start and the suite's shared session was started without them.  The
child then reads the Delta tables back through s3a and prints their counts,
which are checked here against the generator's ground truth; boto3 checks the
objects themselves.

The first run fetches hadoop-aws and the AWS SDK bundle (about 550 MB) from
Maven Central into the project jar cache; later runs reuse it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecomrec_spark.aws.s3 import main as upload_main
from ecomrec_spark.aws.s3 import parse_s3_uri, upload_raw
from ecomrec_spark.config import load_config
from ecomrec_spark.generate.dataset import generate_dataset

REPO = Path(__file__).resolve().parents[1]
BUCKET = "ecomrec-test"
ORDERS = 300
K = 5
MODELS = ("als", "popular")
RESULT_PREFIX = "S3_E2E_RESULT "

# The child: the CLI entry points that jobs/*.py call, in one process (one JVM), then a read-back through s3a.
CHILD = r"""
import json, sys
from pyspark.sql import functions as F
from ecomrec_spark import lake as lk
from ecomrec_spark.cli import main
from ecomrec_spark.config import load_config
from ecomrec_spark.session import build_session

TABLES = ("olist_orders", "olist_order_items", "olist_order_reviews")
args = sys.argv[1:]
overrides = [a for prev, a in zip(["", *args], args) if prev == "--set"]
for command in ("ingest", "transform", "build-recommendations", "ingest"):  # the second ingest must find nothing new
    rc = main([command, *args])
    if rc:
        sys.exit(rc)
cfg = load_config(None, overrides)
spark = build_session(cfg)
root = cfg["paths"]["lake"]
recon = [r.asDict() for r in lk.read(spark, root, "bronze", "ingest_reconciliation").select(
    "table", "file", "raw_records", "bronze_rows", "quarantine_rows", "balanced").collect()]  # one row per file


def count(layer, table):
    df = lk.read_optional(spark, root, layer, table)
    return None if df is None else df.count()


tables = {f"{layer}/{t}": count(layer, t) for t in TABLES for layer in ("bronze", "quarantine")}
tables.update({t: count(*t.split("/")) for t in ("silver/order_lines", "silver/order_line_outliers",
                                                 "gold/recommendation_runs")})
per_list = lk.read(spark, root, "gold", "recommendations").groupBy("model", "customer_id").agg(
    F.count("*").alias("n"), F.min("rank").alias("lo"), F.max("rank").alias("hi"),
    F.countDistinct("product_id").alias("d"))
ok = (F.col("lo") == 1) & (F.col("hi") == F.col("n")) & (F.col("d") == F.col("n"))
stats = per_list.groupBy("model").agg(F.sum("n").alias("rows"), F.count("*").alias("lists"), F.max("n").alias("max_n"),
                                      F.sum(F.when(ok, 0).otherwise(1)).alias("bad_lists"))
out = {
    "reconciliation": recon,
    "tables": tables,
    "recommendations": {r["model"]: {k: r[k] for k in ("rows", "lists", "max_n", "bad_lists")}
                        for r in stats.collect()},  # one row per model
    "hadoop_fs": spark._jvm.org.apache.hadoop.fs.Path(root).getFileSystem(
        spark._jsc.hadoopConfiguration()).getClass().getName(),
}
print("S3_E2E_RESULT " + json.dumps(out), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on loopback with one bucket; dummy credentials in the environment."""
    import boto3

    mp = pytest.MonkeyPatch()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(key, raising=False)
    mp.setenv("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_REGION", "us-east-1")
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    import moto.s3.utils
    import moto.settings
    from moto.server import ThreadedMotoServer

    # moto reads this setting at import time; another test module may have imported it already
    mp.setattr(moto.settings, "S3_IGNORE_SUBDOMAIN_BUCKETNAME", True)
    mp.setattr(moto.s3.utils, "S3_IGNORE_SUBDOMAIN_BUCKETNAME", True)
    werkzeug = logging.getLogger("werkzeug")
    werkzeug_level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # not a line per request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield {"endpoint": endpoint, "client": client}
    finally:
        server.stop()
        werkzeug.setLevel(werkzeug_level)
        mp.undo()


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.mark.parametrize("uri, expected", [
    ("s3://ecomrec-data/raw", ("ecomrec-data", "raw")),
    ("s3a://ecomrec-data/raw/olist/", ("ecomrec-data", "raw/olist")),
    ("s3://my.bucket-1", ("my.bucket-1", "")),
])
def test_parse_s3_uri_accepts_s3_and_s3a(uri, expected):
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri, message", [
    ("gs://bucket/raw", "not an S3 URI"),
    ("s3://<bucket>/raw", "not a valid S3 bucket name"),
    ("s3://My_Bucket/raw", "not a valid S3 bucket name"),
    ("s3://ab/raw", "not a valid S3 bucket name"),
    ("s3://" + "a" * 64 + "/raw", "not a valid S3 bucket name"),
    ("s3://bucket-/raw", "not a valid S3 bucket name"),
    ("s3://my..bucket/raw", "'..'"),
    ("s3://192.168.1.1/raw", "IP address"),
    ("s3://xn--bucket/raw", "reserves"),
    ("s3://bucket--table-s3/raw", "reserves"),  # once missing here, though the EMR launcher refused it
    ("s3://my-.bucket/raw", "'.-'"),  # once missing in the EMR launcher, though refused here
    ("s3://bucket/raw//olist", "empty, '.' or '..' segment"),
    ("s3://bucket/raw/../lake", "empty, '.' or '..' segment"),
    ("s3://bucket/raw\n", "control characters"),
])
def test_parse_s3_uri_rejects_bad_buckets_and_prefixes(uri, message):
    with pytest.raises(ValueError, match=message):
        parse_s3_uri(uri)


@pytest.mark.parametrize("bucket, valid", [
    ("my-bucket", True), ("my.bucket-1", True), ("a1b", True),
    ("my..bucket", False), ("my-.bucket", False), ("my.-bucket", False), ("192.168.1.1", False), ("ab", False),
    ("My_Bucket", False), ("<bucket>", False), ("xn--bucket", False), ("data--table-s3", False),
    ("data-s3alias", False),
])
def test_one_bucket_rule_for_upload_raw_the_config_the_lease_and_the_emr_launcher(bucket, valid):
    """identifiers.validate_bucket is the only rule: upload-raw, catalog.* and the lake lease (parse_s3_uri) and
    emr.bucket accept and refuse the same names."""
    from ecomrec_spark.aws.settings import check_bucket
    from ecomrec_spark.config import ConfigError
    from ecomrec_spark.identifiers import validate_bucket

    checks = [lambda: validate_bucket(bucket), lambda: parse_s3_uri(f"s3://{bucket}/lake"),
              lambda: check_bucket("emr.bucket", bucket),
              lambda: load_config(None, [f"catalog.s3_lake=s3://{bucket}/lake/"])]
    for check in checks:
        if valid:
            check()
        else:
            with pytest.raises((ValueError, ConfigError), match="not a valid S3 bucket name"):
                check()


def test_upload_raw_checks_everything_before_any_request(tmp_path):
    class NoCalls:
        def __getattr__(self, name):
            raise AssertionError(f"S3 was called ({name}) before the arguments were checked")

    (tmp_path / "a.csv").write_text("x\n")
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        upload_raw(tmp_path, "s3://Bad_Bucket/raw", client=NoCalls())
    with pytest.raises(ValueError, match="not a local folder"):
        upload_raw(tmp_path / "missing", "s3://bucket/raw", client=NoCalls())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        upload_raw(tmp_path / "empty", "s3://bucket/raw", client=NoCalls())


def test_upload_raw_keeps_the_layout_and_skips_unchanged_files(s3, tmp_path):
    client = s3["client"]
    (tmp_path / "olist").mkdir()
    (tmp_path / "olist" / "orders.csv").write_text("order_id\n1\n")
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "events.csv").write_bytes(os.urandom(9 * 1024 * 1024))  # multipart upload
    (tmp_path / "olist" / ".orders.csv.crc").write_bytes(b"crc")  # hidden: not uploaded

    first = upload_raw(tmp_path, f"s3a://{BUCKET}/layout/", client=client)
    assert first == [f"s3a://{BUCKET}/layout/events/events.csv", f"s3a://{BUCKET}/layout/olist/orders.csv"]
    assert _keys(client, "layout/") == ["layout/events/events.csv", "layout/olist/orders.csv"]
    assert upload_raw(tmp_path, f"s3://{BUCKET}/layout", client=client) == []  # the same objects: nothing sent

    (tmp_path / "olist" / "orders.csv").write_text("order_id\n2\n")  # same size, other content
    assert upload_raw(tmp_path, f"s3://{BUCKET}/layout", client=client) == [f"s3://{BUCKET}/layout/olist/orders.csv"]
    body = client.get_object(Bucket=BUCKET, Key="layout/olist/orders.csv")["Body"].read()
    assert body == b"order_id\n2\n"


def test_upload_raw_command_line(s3, tmp_path, capsys):
    (tmp_path / "olist").mkdir()
    (tmp_path / "olist" / "orders.csv").write_text("order_id\n1\n")
    assert upload_main(["--from", str(tmp_path), "--to", f"s3://{BUCKET}/cli", "--endpoint-url", s3["endpoint"]]) == 0
    assert f"s3://{BUCKET}/cli/olist/orders.csv" in capsys.readouterr().out
    assert upload_main(["--from", str(tmp_path), "--to", "s3://no-such-bucket-here/raw",
                        "--endpoint-url", s3["endpoint"]]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pipeline(spark, s3, tmp_path_factory):
    """Generate locally, upload with boto3, run ingest -> transform -> recommend on s3a:// in a child process."""
    root = tmp_path_factory.mktemp("s3_e2e")
    cfg = load_config(None, [f"paths.raw={root / 'raw'}", f"generate.orders={ORDERS}", "generate.seed=11"])
    truth = generate_dataset(spark, cfg["paths"]["raw"], cfg["generate"])
    uploaded = upload_raw(cfg["paths"]["raw"], f"s3://{BUCKET}/raw", client=s3["client"])

    sets = [
        f"paths.raw=s3a://{BUCKET}/raw", f"paths.lake=s3a://{BUCKET}/lake", f"paths.reports=s3a://{BUCKET}/reports",
        "ingest.sources=[olist]",  # events/ is uploaded too; its tables add a minute on 2 busy cores and no S3 path
        f"spark.conf.spark.hadoop.fs.s3a.endpoint={s3['endpoint']}",
        "spark.conf.spark.hadoop.fs.s3a.path.style.access=true",
        "spark.conf.spark.hadoop.fs.s3a.connection.ssl.enabled=false",
        "spark.master=local[2]", "spark.shuffle_partitions=2",
        "spark.conf.spark.default.parallelism=2", "spark.conf.spark.databricks.delta.snapshotPartitions=2",
        "spark.conf.spark.ui.showConsoleProgress=false", "spark.conf.spark.driver.memory=1536m",
        f"spark.conf.spark.local.dir={root / 'spark-local'}",
        f"recommend.models=[{','.join(MODELS)}]", "recommend.hybrid.tune=false", f"recommend.k={K}",
        "recommend.candidates=10", "recommend.als.rank=8", "recommend.als.max_iter=5",
        "recommend.rules.min_support=0.01", "recommend.als.tune=false", "recommend.item_item.tune=false",
    ]
    args = [a for s in sets for a in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    seconds = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        log_file = root / "s3a-pipeline.log"
        log_file.write_text(proc.stdout + "\n" + proc.stderr)
        err = proc.stderr[max(0, proc.stderr.rfind("Traceback (most recent call last)")):]
        err = "\n".join(line for line in err.splitlines() if not line.lstrip().startswith("at "))  # Java frames
        pytest.fail(f"s3a pipeline failed (exit {proc.returncode}) after {seconds:.0f}s; full log {log_file}:\n"
                    f"{err[-6000:]}")
    out = json.loads(lines[-1][len(RESULT_PREFIX):])
    return {"truth": truth, "uploaded": uploaded, "raw": Path(cfg["paths"]["raw"]), "out": out, "client": s3["client"]}


def test_raw_upload_mirrors_the_local_folder(pipeline):
    local = sorted(p.relative_to(pipeline["raw"]).as_posix() for p in pipeline["raw"].rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(pipeline["raw"]).parts))
    assert pipeline["uploaded"] == [f"s3://{BUCKET}/raw/{rel}" for rel in local]
    assert _keys(pipeline["client"], "raw/") == [f"raw/{rel}" for rel in local]
    assert upload_raw(pipeline["raw"], f"s3://{BUCKET}/raw", client=pipeline["client"]) == []


def test_ingest_from_s3a_reconciles_every_file_with_the_ground_truth(pipeline):
    truth, out = pipeline["truth"], pipeline["out"]
    assert out["hadoop_fs"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    recon = out["reconciliation"]
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in recon}
    assert len(by_name) == len(recon)  # the second ingest added no rows: S3 size and mtime are stable
    assert set(by_name) == {name for name in truth["files"] if name != "events.csv"}  # ingest.sources=[olist]
    assert all(r["file"].startswith(f"s3a://{BUCKET}/raw/") for r in recon)
    for name, r in by_name.items():
        planted = truth["files"][name]["planted"]
        rejected = sum(planted.get(k, 0) for k in ("malformed", "bad_timestamp", "bad_number", "negative_price"))
        expected = (truth["files"][name]["records"], rejected, True)
        assert (r["raw_records"], r["quarantine_rows"], r["balanced"]) == expected, name
        assert r["raw_records"] == r["bronze_rows"] + r["quarantine_rows"]
    bronze = {r["table"]: 0 for r in recon}
    quarantined = dict(bronze)
    for r in recon:
        bronze[r["table"]] += r["bronze_rows"]
        quarantined[r["table"]] += r["quarantine_rows"]
    for table in ("olist_orders", "olist_order_items", "olist_order_reviews"):  # read back through s3a
        assert out["tables"][f"bronze/{table}"] == bronze[table], table
        assert (out["tables"][f"quarantine/{table}"] or 0) == quarantined[table], table


def test_transform_and_recommend_write_delta_tables_to_s3(pipeline):
    truth, out = pipeline["truth"], pipeline["out"]
    t = out["tables"]
    assert t["silver/order_lines"] + t["silver/order_line_outliers"] == truth["order_lines_clean"]
    assert t["gold/recommendation_runs"] == 1
    recs = out["recommendations"]
    assert set(recs) == set(MODELS)
    for model, r in recs.items():
        assert r["lists"] > 0 and r["rows"] >= r["lists"], model
        assert r["max_n"] <= K and r["bad_lists"] == 0, model  # ranks 1..n over n distinct products in every list
    assert recs["popular"]["lists"] >= recs["als"]["lists"]  # popular reaches every known customer
    keys = _keys(pipeline["client"], "lake/")
    for table in ("bronze/olist_orders", "bronze/ingest_reconciliation", "quarantine/olist_order_items",
                  "silver/order_lines", "gold/recommendations", "gold/popular_items"):
        assert f"lake/{table}/_delta_log/00000000000000000000.json" in keys, table
        assert any(k.startswith(f"lake/{table}/") and k.endswith(".parquet") for k in keys), table
