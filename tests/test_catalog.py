"""Catalog registration, the Athena DDL and the ready queries of sql/athena, on a tiny hand-built lake.

Expected query results are worked out by hand beside the input rows below.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from test_s3_end_to_end import s3  # noqa: F401  (the moto S3 server fixture)

from ecomrec_spark import catalog as cat
from ecomrec_spark import lake as lk

# gold/order_features: (order_id, line_id, product_id, customer_id, category, order_ts, price, quantity,
#                       review_score, is_holiday_season, purchase_month, purchase_weekday [1 = Sunday])
ORDER_FEATURES = [
    ("o1", "1", "p1", "c1", "toys", "2024-01-05 10:00:00", 10.0, 2, 5, False, 1, 6),     # Fri, 20
    ("o1", "2", "p2", "c1", "books", "2024-01-05 10:00:00", 5.0, 1, 5, False, 1, 6),     # Fri, 5
    ("o2", "1", "p1", "c2", "toys", "2024-01-20 09:30:00", 10.0, 1, 2, False, 1, 7),     # Sat, 10
    ("o3", "1", "p3", "c1", "books", "2024-02-10 18:00:00", 20.0, 1, 4, False, 2, 7),    # Sat, 20
    ("o6", "1", "p3", "c3", "books", "2024-02-14 12:00:00", 25.0, 1, 5, False, 2, 4),    # Wed, 25
    ("o4", "1", "p2", "c3", "books", "2024-11-29 08:00:00", 5.0, 4, None, True, 11, 6),  # Fri, 20, no review
    ("o5", "1", "p1", "c2", "toys", "2024-11-29 20:00:00", 10.0, 1, 1, True, 11, 6),     # Fri, 10
]
OF_SCHEMA = ("order_id string, line_id string, product_id string, customer_id string, category string, "
             "order_ts_s string, price double, quantity int, review_score int, is_holiday_season boolean, "
             "purchase_month int, purchase_weekday int")

# gold/review_predictions: (order_id, line_id, predicted_score, expected_score, p_satisfied, model_version)
PREDICTIONS = [
    ("o1", "1", 5, 4.6, 0.9, "v1"), ("o1", "2", 5, 4.6, 0.9, "v1"),
    ("o2", "1", 4, 3.8, 0.7, "v1"), ("o3", "1", 4, 4.2, 0.8, "v1"),
    ("o6", "1", 4, 4.1, 0.8, "v1"), ("o4", "1", 5, 4.5, 0.9, "v1"),
    ("o5", "1", 2, 2.0, 0.1, "v1"),
]
PRED_SCHEMA = ("order_id string, line_id string, predicted_score int, expected_score double, "
               "p_satisfied double, model_version string")

# gold/recommendations: (customer_id, rank, product_id, score, model); p9 has no product features
RECOMMENDATIONS = [
    ("c1", 1, "p1", 0.9, "hybrid"), ("c1", 2, "p2", 0.8, "hybrid"),
    ("c2", 1, "p1", 0.9, "hybrid"), ("c2", 2, "p3", 0.7, "hybrid"),
    ("c3", 1, "p3", 0.9, "hybrid"), ("c3", 2, "p1", 0.6, "hybrid"), ("c3", 3, "p9", 0.5, "hybrid"),
    ("c1", 1, "p1", 1.0, "popular"), ("c1", 2, "p3", 0.5, "popular"),
]
REC_SCHEMA = "customer_id string, rank int, product_id string, score double, model string"

# gold/product_features: (product_id, category, avg_price, n_orders)
PRODUCTS = [("p1", "toys", 10.0, 3), ("p2", "books", 5.0, 2), ("p3", "books", 22.5, 2), ("p4", "toys", 7.0, 0)]
PRODUCT_SCHEMA = "product_id string, category string, avg_price double, n_orders long"

EXPECTED_TABLES = [("silver", "order_lines"), ("gold", "order_features"), ("gold", "product_features"),
                   ("gold", "recommendations"), ("gold", "review_predictions")]
EXPECTED_NAMES = ["silver_order_lines", "order_features", "product_features", "recommendations", "review_predictions"]


@pytest.fixture(scope="module")
def tiny_lake(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("catalog")
    root = str(base / "lake")
    of = (spark.createDataFrame(ORDER_FEATURES, OF_SCHEMA)
          .withColumn("order_ts", F.to_timestamp("order_ts_s")).drop("order_ts_s"))
    lk.overwrite(of, root, "gold", "order_features")
    lk.overwrite(of.select("order_id", "line_id", "product_id", "customer_id", "price", "quantity"),
                 root, "silver", "order_lines")
    lk.overwrite(spark.createDataFrame(PREDICTIONS, PRED_SCHEMA), root, "gold", "review_predictions")
    lk.overwrite(spark.createDataFrame(RECOMMENDATIONS, REC_SCHEMA), root, "gold", "recommendations")
    lk.overwrite(spark.createDataFrame(PRODUCTS, PRODUCT_SCHEMA), root, "gold", "product_features")
    (base / "lake" / "gold" / "not_delta").mkdir()
    (base / "lake" / "gold" / "not_delta" / "part-0.csv").write_text("a\n1\n")  # a folder, not a Delta table
    return root


@pytest.fixture(scope="module")
def registered(spark, tiny_lake):
    # the suite shares one session catalog: start from an empty database whatever registered before (test_report's
    # run-all does); dropping it removes catalog entries only, the tables are external
    spark.sql(f"DROP DATABASE IF EXISTS {cat.DEFAULT_DATABASE} CASCADE")
    return cat.register_local(spark, tiny_lake)


def test_lake_tables_lists_silver_and_gold_delta_tables_only(spark, tiny_lake):
    got = cat.lake_tables(spark, tiny_lake)
    assert got == [(layer, t, lk.table_path(tiny_lake, layer, t)) for layer, t in EXPECTED_TABLES]
    assert cat.lake_tables(spark, tiny_lake + "/nowhere") == []


def test_register_local_names_counts_and_rerun(spark, tiny_lake, registered):
    assert registered == [f"ecomrec.{n}" for n in EXPECTED_NAMES]
    assert spark.sql("select count(*) from ecomrec.recommendations").first()[0] == len(RECOMMENDATIONS)
    assert spark.sql("select count(*) from ecomrec.silver_order_lines").first()[0] == len(ORDER_FEATURES)

    # the generated DDL, run again statement by statement, and a second registration change nothing
    statements = cat.split_statements(cat.local_ddl(spark, tiny_lake))
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS ecomrec"
    assert len(statements) == 1 + len(EXPECTED_NAMES)
    for stmt in statements:
        spark.sql(stmt)
    assert cat.register_local(spark, tiny_lake) == registered
    assert sorted(t.name for t in spark.catalog.listTables("ecomrec")) == sorted(EXPECTED_NAMES)
    assert spark.sql("select count(*) from ecomrec.recommendations").first()[0] == len(RECOMMENDATIONS)
    detail = {r.col_name: r.data_type for r in spark.sql("describe table extended ecomrec.recommendations").collect()}
    assert detail["Type"] == "EXTERNAL"
    assert detail["Location"].endswith("/lake/gold/recommendations")


def test_register_tables_reads_the_lake_and_database_from_the_settings(spark, tiny_lake, registered):
    from ecomrec_spark.config import ConfigError, load_settings

    settings = load_settings(None, [f"paths.lake={tiny_lake}"])
    assert cat.register_tables(spark, settings) == {"database": "ecomrec", "tables": registered}
    with pytest.raises(ConfigError, match="register-tables --athena needs catalog.athena_output"):
        cat.register_tables(None, settings, athena=True)  # checked before Spark runs


def test_register_local_replaces_a_table_registered_elsewhere(spark, tiny_lake):
    products = cat.sql_path(lk.table_path(tiny_lake, "gold", "product_features"))
    spark.sql("CREATE DATABASE IF NOT EXISTS ecomrec_swap")
    spark.sql(f"CREATE TABLE ecomrec_swap.recommendations USING DELTA LOCATION {products}")  # a stale entry
    assert spark.table("ecomrec_swap.recommendations").count() == len(PRODUCTS)
    names = cat.register_local(spark, tiny_lake, database="ecomrec_swap")
    assert names == [f"ecomrec_swap.{n}" for n in EXPECTED_NAMES]
    assert spark.table("ecomrec_swap.recommendations").count() == len(RECOMMENDATIONS)
    # only the catalog entry was dropped: the table it pointed at is intact
    assert lk.read(spark, tiny_lake, "gold", "product_features").count() == len(PRODUCTS)
    spark.sql("DROP DATABASE ecomrec_swap CASCADE")
    assert lk.read(spark, tiny_lake, "gold", "recommendations").count() == len(RECOMMENDATIONS)


def _query(spark, file: str, name: str):
    return cat.run_query_file(spark, cat.QUERY_DIR / file)[name]


def test_predicted_vs_actual(spark, registered):
    # orders with a review: o1 (5, pred 5, 4.6), o2 (2, 4, 3.8), o3 (4, 4, 4.2), o5 (1, 2, 2.0), o6 (5, 4, 4.1)
    assertDataFrameEqual(_query(spark, "predicted_vs_actual.sql", "confusion_by_actual_score"), [
        Row(actual_score=1, n_orders=1, predicted_1=0, predicted_2=1, predicted_3=0, predicted_4=0, predicted_5=0,
            mean_predicted_score=2.0, mean_expected_score=2.0, accuracy=0.0),
        Row(actual_score=2, n_orders=1, predicted_1=0, predicted_2=0, predicted_3=0, predicted_4=1, predicted_5=0,
            mean_predicted_score=4.0, mean_expected_score=3.8, accuracy=0.0),
        Row(actual_score=4, n_orders=1, predicted_1=0, predicted_2=0, predicted_3=0, predicted_4=1, predicted_5=0,
            mean_predicted_score=4.0, mean_expected_score=4.2, accuracy=1.0),
        Row(actual_score=5, n_orders=2, predicted_1=0, predicted_2=0, predicted_3=0, predicted_4=1, predicted_5=1,
            mean_predicted_score=4.5, mean_expected_score=4.35, accuracy=0.5),
    ], checkRowOrder=True)
    # books: o1 (5, 5, 4.6), o3 (4, 4, 4.2), o6 (5, 4, 4.1); toys: o1 (5, 5, 4.6), o2 (2, 4, 3.8), o5 (1, 2, 2.0)
    assertDataFrameEqual(_query(spark, "predicted_vs_actual.sql", "by_category"), [
        Row(category="books", n_orders=3, mean_actual_score=14 / 3, mean_predicted_score=13 / 3,
            mean_expected_score=12.9 / 3, accuracy=2 / 3, mean_abs_error=(0.4 + 0.2 + 0.9) / 3),
        Row(category="toys", n_orders=3, mean_actual_score=8 / 3, mean_predicted_score=11 / 3,
            mean_expected_score=10.4 / 3, accuracy=1 / 3, mean_abs_error=(0.4 + 1.8 + 1.0) / 3),
    ], checkRowOrder=True)


def test_top_recommended_by_category(spark, registered):
    # hybrid: p1 in c1, c2, c3 lists (ranks 1, 1, 2); p3 in c2, c3 (2, 1); p2 in c1 (2); p9 in c3 (3)
    assertDataFrameEqual(_query(spark, "top_recommended_by_category.sql", "top_recommended_by_category"), [
        Row(model="hybrid", category="books", category_rank=1, product_id="p3", n_customers=2, mean_rank=1.5,
            avg_price=22.5, product_orders=2),
        Row(model="hybrid", category="books", category_rank=2, product_id="p2", n_customers=1, mean_rank=2.0,
            avg_price=5.0, product_orders=2),
        Row(model="hybrid", category="toys", category_rank=1, product_id="p1", n_customers=3, mean_rank=4 / 3,
            avg_price=10.0, product_orders=3),
        Row(model="hybrid", category="unknown", category_rank=1, product_id="p9", n_customers=1, mean_rank=3.0,
            avg_price=None, product_orders=None),
        Row(model="popular", category="books", category_rank=1, product_id="p3", n_customers=1, mean_rank=2.0,
            avg_price=22.5, product_orders=2),
        Row(model="popular", category="toys", category_rank=1, product_id="p1", n_customers=1, mean_rank=1.0,
            avg_price=10.0, product_orders=3),
    ], checkRowOrder=True)


def test_sales_trends(spark, registered):
    # Jan: o1 20 + 5, o2 10; Feb: o3 20, o6 25; Nov: o4 20, o5 10
    assertDataFrameEqual(_query(spark, "sales_trends.sql", "monthly_sales"), [
        Row(order_month=dt.date(2024, 1, 1), n_orders=2, units=4, n_customers=2, revenue=35.0, mean_order_value=17.5),
        Row(order_month=dt.date(2024, 2, 1), n_orders=2, units=2, n_customers=2, revenue=45.0, mean_order_value=22.5),
        Row(order_month=dt.date(2024, 11, 1), n_orders=2, units=5, n_customers=2, revenue=30.0, mean_order_value=15.0),
    ], checkRowOrder=True)
    # p3: 20 + 25; p1: 20 + 10 + 10; p2: 5 + 20; total 110
    assertDataFrameEqual(_query(spark, "sales_trends.sql", "top_products_by_revenue"), [
        Row(revenue_rank=1, product_id="p3", category="books", n_orders=2, units=2,
            revenue=45.0, revenue_share=45 / 110),
        Row(revenue_rank=2, product_id="p1", category="toys", n_orders=3, units=4,
            revenue=40.0, revenue_share=40 / 110),
        Row(revenue_rank=3, product_id="p2", category="books", n_orders=2, units=5,
            revenue=25.0, revenue_share=25 / 110),
    ], checkRowOrder=True)


def test_seasonal_demand(spark, registered):
    assertDataFrameEqual(_query(spark, "seasonal_demand.sql", "by_month_of_year"), [
        Row(purchase_month=1, n_orders=2, units=4, revenue=35.0, revenue_share=35 / 110),
        Row(purchase_month=2, n_orders=2, units=2,
            revenue=45.0, revenue_share=45 / 110),
        Row(purchase_month=11, n_orders=2, units=5, revenue=30.0, revenue_share=30 / 110),
    ], checkRowOrder=True)
    # Wed: o6; Fri: o1 (3 units, 25), o4 (4, 20), o5 (1, 10); Sat: o2 (1, 10), o3 (1, 20)
    assertDataFrameEqual(_query(spark, "seasonal_demand.sql", "by_weekday"), [
        Row(purchase_weekday=4, weekday="Wed", n_orders=1, units=1, revenue=25.0),
        Row(purchase_weekday=6, weekday="Fri", n_orders=3, units=8, revenue=55.0),
        Row(purchase_weekday=7, weekday="Sat", n_orders=2, units=2, revenue=30.0),
    ], checkRowOrder=True)
    # rest: o1, o2, o3, o6 on 4 days; season: o4, o5 on 2024-11-29
    assertDataFrameEqual(_query(spark, "seasonal_demand.sql", "holiday_vs_rest"), [
        Row(is_holiday_season=False, n_days=4, n_orders=4, units=6, revenue=80.0, orders_per_day=1.0,
            revenue_per_day=20.0),
        Row(is_holiday_season=True, n_days=1, n_orders=2, units=5, revenue=30.0, orders_per_day=2.0,
            revenue_per_day=30.0),
    ], checkRowOrder=True)


def test_every_query_file_is_covered():
    names = {p.name: [n for n, _ in cat.load_queries(p)] for p in cat.query_files()}
    assert names == {
        "predicted_vs_actual.sql": ["confusion_by_actual_score", "by_category"],
        "seasonal_demand.sql": ["by_month_of_year", "by_weekday", "holiday_vs_rest"],
        "sales_trends.sql": ["monthly_sales", "top_products_by_revenue"],
        "top_recommended_by_category.sql": ["top_recommended_by_category"],
    }
    (_, sql), = cat.load_queries(cat.QUERY_DIR / "top_recommended_by_category.sql", database="shop")
    assert "shop.recommendations" in sql and "ecomrec." not in sql


def _athena_statement(name: str, layer: str, table: str) -> str:
    return (f"CREATE EXTERNAL TABLE IF NOT EXISTS ecomrec.{name} LOCATION 's3://bucket/lake/{layer}/{table}/' "
            "TBLPROPERTIES ('table_type'='DELTA')")


def test_athena_ddl(spark, tiny_lake, tmp_path):
    text = cat.athena_ddl(spark, tiny_lake, s3_lake="s3://bucket/lake/")
    assert cat.split_statements(text) == ["CREATE DATABASE IF NOT EXISTS ecomrec"] + [
        _athena_statement(n, layer, t) for n, (layer, t) in zip(EXPECTED_NAMES, EXPECTED_TABLES, strict=True)]
    assert len(re.findall(r"CREATE EXTERNAL TABLE", text)) == len(EXPECTED_TABLES)
    assert all("(" not in s.split("TBLPROPERTIES")[0] for s in cat.split_statements(text))  # no column list
    # an s3a:// lake is rendered as s3:// without a separate prefix
    refs = [("gold", "recommendations", "s3a://bucket/lake/gold/recommendations")]
    assert cat.ddl_statements(spark, "s3a://bucket/lake", flavour="athena", tables=refs)[1] == _athena_statement(
        "recommendations", "gold", "recommendations")
    out = str(tmp_path / "athena_ddl.sql")
    assert cat.write_ddl(spark, tiny_lake, out, s3_lake="s3://bucket/lake/") == text
    assert (tmp_path / "athena_ddl.sql").read_text() == text


def test_athena_ddl_needs_no_spark_and_lists_what_spark_lists(spark, tiny_lake, tmp_path):
    assert cat.listed_tables(tiny_lake) == cat.lake_tables(spark, tiny_lake)
    out = str(tmp_path / "no_spark.sql")
    assert cat.write_athena_ddl(tiny_lake, out, s3_lake="s3://bucket/lake/") == \
        cat.athena_ddl(spark, tiny_lake, s3_lake="s3://bucket/lake/") == (tmp_path / "no_spark.sql").read_text()


def test_athena_ddl_command_on_an_s3_lake_with_conf_emr_and_the_bucket_filled(spark, tiny_lake, tmp_path, s3):  # noqa: F811
    """Issue 14: `ecomrec athena-ddl --conf conf/emr.yaml --set emr.bucket=B` fills <bucket> in paths.* like every
    command, lists the S3 lake with boto3 and writes the DDL with no SparkSession (a child process checks that
    no JVM was started)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from test_s3_end_to_end import BUCKET

    root = Path(tiny_lake)
    for f in root.rglob("*"):
        if f.is_file():
            s3["client"].upload_file(str(f), BUCKET, f"lake/{f.relative_to(root)}")
    out = tmp_path / "ddl.sql"
    code = ("import sys; from ecomrec_spark.cli import main; rc = main(sys.argv[1:]); "
            "from pyspark import SparkContext; "
            "assert SparkContext._gateway is None, 'a JVM was started'; sys.exit(rc)")
    env = {**os.environ, "AWS_ENDPOINT_URL_S3": s3["endpoint"]}
    done = subprocess.run([sys.executable, "-c", code, "athena-ddl", "--conf", "conf/emr.yaml", "--set",
                           f"emr.bucket={BUCKET}", "--out", str(out)], env=env, cwd=cat.QUERY_DIR.parents[1],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert cat.split_statements(out.read_text()) == ["CREATE DATABASE IF NOT EXISTS ecomrec"] + [
        f"CREATE EXTERNAL TABLE IF NOT EXISTS ecomrec.{n} LOCATION 's3://{BUCKET}/lake/{layer}/{t}/' "
        "TBLPROPERTIES ('table_type'='DELTA')" for n, (layer, t) in zip(EXPECTED_NAMES, EXPECTED_TABLES, strict=True)]


def test_athena_ddl_of_a_local_lake_needs_an_s3_prefix(spark, tiny_lake):
    with pytest.raises(ValueError, match="pass s3_lake=s3://"):
        cat.athena_ddl(spark, tiny_lake)
    with pytest.raises(ValueError, match="s3_lake .* is not an s3:// URI"):
        cat.athena_ddl(spark, tiny_lake, s3_lake="/local/copy")


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_run_athena_ddl_under_moto(spark, tiny_lake, aws_env):
    import boto3
    from moto import mock_aws

    statements = cat.split_statements(cat.athena_ddl(spark, tiny_lake, s3_lake="s3://bucket/lake"))
    with mock_aws():
        client = boto3.client("athena", region_name="us-east-1")
        ids = cat.run_athena_ddl(statements, "ecomrec", "s3://bucket/athena-results/", client=client)
        assert len(ids) == len(statements) == 1 + len(EXPECTED_TABLES)
        sent = [client.get_query_execution(QueryExecutionId=q)["QueryExecution"] for q in ids]
        assert [q["Query"] for q in sent] == statements
        contexts = [q["QueryExecutionContext"]["Database"] for q in sent]
        assert contexts == ["default"] + ["ecomrec"] * len(EXPECTED_TABLES)  # the database may not exist yet
        assert {q["WorkGroup"] for q in sent} == {"primary"}
        assert all(q["ResultConfiguration"]["OutputLocation"].startswith("s3://bucket/athena-results/") for q in sent)
        assert {q["Status"]["State"] for q in sent} == {"SUCCEEDED"}
        assert len(cat.register_athena(spark, tiny_lake, "s3://bucket/athena-results/", s3_lake="s3://bucket/lake",
                                       client=client)) == len(statements)


class _FakeAthena:
    """Reports the given states in turn, to exercise the polling without AWS."""

    def __init__(self, states):
        self.states, self.polls = list(states), 0

    def start_query_execution(self, **_kwargs):
        return {"QueryExecutionId": "q1"}

    def get_query_execution(self, QueryExecutionId):
        self.polls += 1
        state = self.states.pop(0)
        return {"QueryExecution": {"Status": {"State": state, "StateChangeReason": "SYNTAX_ERROR: line 1"}}}


def test_run_athena_ddl_polls_until_done_and_reports_failures():
    fake = _FakeAthena(["QUEUED", "RUNNING", "SUCCEEDED"])
    assert cat.run_athena_ddl(["SELECT 1;"], "ecomrec", "s3://b/r/", client=fake, poll_s=0.001) == ["q1"]
    assert fake.polls == 3
    with pytest.raises(RuntimeError, match="FAILED: SYNTAX_ERROR"):
        cat.run_athena_ddl(["SELECT 1"], "ecomrec", "s3://b/r/", client=_FakeAthena(["FAILED"]), poll_s=0.001)
    with pytest.raises(RuntimeError, match="still RUNNING"):
        cat.run_athena_ddl(["SELECT 1"], "ecomrec", "s3://b/r/", client=_FakeAthena(["RUNNING"] * 5),
                           poll_s=0.001, timeout_s=0.0)
    assert cat.run_athena_ddl(["SELECT 1"], "ecomrec", "s3://b/r/", client=_FakeAthena([]), wait=False) == ["q1"]


@pytest.mark.parametrize("database", ["Ecomrec", "1shop", "shop;drop", "shop.x", "", "a" * 129])
def test_bad_database_names_are_refused_before_spark_runs(database):
    with pytest.raises(ValueError, match="database .* is not a valid name"):
        cat.register_local(None, "/nowhere", database=database)
    with pytest.raises(ValueError, match="database .* is not a valid name"):
        cat.run_athena_ddl(["SELECT 1"], database, "s3://b/r/")


def test_bad_table_folders_paths_and_athena_settings(spark):
    with pytest.raises(ValueError, match="table .* is not a valid name"):
        cat.ddl_statements(spark, "/lake", tables=[("gold", "Bad-Name", "/lake/gold/Bad-Name")])
    with pytest.raises(ValueError, match="holds a quote"):
        cat.ddl_statements(spark, "/lake", tables=[("gold", "recs", "/it's/lake/gold/recs")])
    with pytest.raises(ValueError, match="holds a quote"):
        cat.ddl_statements(spark, "/lake", flavour="athena", s3_lake="s3://b/x' OR '1",
                           tables=[("gold", "recs", "/lake/gold/recs")])
    with pytest.raises(ValueError, match="flavour"):
        cat.ddl_statements(spark, "/lake", flavour="hive", tables=[])
    with pytest.raises(ValueError, match="output_s3"):
        cat.run_athena_ddl(["SELECT 1"], "ecomrec", "/tmp/results")
    with pytest.raises(ValueError, match="workgroup"):
        cat.run_athena_ddl(["SELECT 1"], "ecomrec", "s3://b/r/", workgroup="bad group")
    script = "select 1; -- a;b\nselect ';' ;\n-- only a comment;\n"
    assert cat.split_statements(script) == ["select 1", "select ';'"]
    assert cat.split_statements(script, keep_comments=True) == ["select 1", "-- a;b\nselect ';'"]
