"""The synthetic data generator: exact formats, determinism, planted defects and structure.

One main dataset (1,200 orders, raised defect rates so the counts mean something)
is generated once per module; a second run with other partitions and a third
with another seed (into the second run's folder) check determinism and reruns.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomrec_spark.config import ConfigError
from ecomrec_spark.generate.dataset import HEADERS, generate_dataset
from ecomrec_spark.generate.plan import build_plan, resolve_settings

MESSY = {"missing_price": 0.02, "missing_freight": 0.02, "outliers": 0.015, "duplicates": 0.02, "malformed": 0.02,
         "bad_timestamp": 0.02, "bad_number": 0.015, "negative_price": 0.015, "orphan_fk": 0.03}
SETTINGS = {"orders": 1200, "seed": 42, "partitions": 2, "messy": MESSY}
OLIST = ["olist_customers_dataset.csv", "olist_geolocation_dataset.csv", "olist_order_items_dataset.csv",
         "olist_order_payments_dataset.csv", "olist_order_reviews_dataset.csv", "olist_orders_dataset.csv",
         "olist_products_dataset.csv", "olist_sellers_dataset.csv", "product_category_name_translation.csv"]


def _path(root: Path, name: str) -> Path:
    return root / ("events" if name == "events.csv" else "olist") / name


def _text_files(root: Path) -> list[Path]:
    return sorted([*(root / "olist").glob("*.csv"), root / "events" / "events.csv", *(root / "_truth").glob("*.csv"),
                   root / "_truth" / "summary.json"])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def gen(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "out"
    summary = generate_dataset(spark, str(root), SETTINGS)
    return root, summary


@pytest.fixture(scope="module")
def read(spark, gen):
    """Parse a generated file with Spark: all strings + _corrupt_record, PERMISSIVE."""
    root, _ = gen
    cache = {}

    def _read(name: str):
        if name not in cache:
            schema = T.StructType([T.StructField(c, T.StringType()) for c in HEADERS[name]]
                                  + [T.StructField("_corrupt_record", T.StringType())])
            reader = (spark.read.schema(schema).option("header", True).option("mode", "PERMISSIVE")
                      .option("columnNameOfCorruptRecord", "_corrupt_record"))
            if name == "olist_order_reviews_dataset.csv":
                reader = reader.option("multiLine", True).option("escape", '"')
            cache[name] = reader.csv(str(_path(root, name))).cache()
        return cache[name]

    yield _read
    for df in cache.values():
        df.unpersist()


def _within(n: int, expected: float) -> bool:
    return abs(n - expected) <= 4 * math.sqrt(expected) + 3


# ----------------------------------------------------------------- settings
def test_settings_defaults_and_validation():
    s = resolve_settings({"orders": 1000})
    assert s["n_customers"] == 700 and s["n_products"] == 166 and s["n_sellers"] == 16
    assert s["messy"]["missing_price"] == 0.01
    layout = build_plan({"orders": 1000}).layout
    assert sum(layout.day_count) == sum(layout.chunk_count) == 1000
    # the one validator (generate/settings.py: Generate) names the key, as load_config does for the YAML
    for bad, key in (({"orders": 0}, "generate.orders"), ({"messy": {"outliers": 0.5}}, "generate.messy.outliers"),
                     ({"start_date": "2018-13-01"}, "generate.start_date"), ({"bogus": 1}, "generate.bogus"),
                     ({"start_date": "2018-02-01", "end_date": "2018-01-01"}, "generate.end_date"),
                     ({"messy": dict.fromkeys(("missing_price", "outliers", "duplicates", "malformed", "bad_number",
                                               "negative_price"), 0.19)}, "generate.messy"),
                     ({"partitions": 0}, "generate.partitions")):
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            resolve_settings(bad)


def test_out_dir_must_be_local(spark):
    with pytest.raises(ValueError, match="local folder"):
        generate_dataset(spark, "s3://bucket/raw", {"orders": 10})


# -------------------------------------------------------------- determinism
def test_same_seed_same_bytes_any_partitioning_and_rerun_replaces(spark, gen, tmp_path):
    root, summary = gen
    other = tmp_path / "out"
    generate_dataset(spark, str(other), {**SETTINGS, "partitions": 3})
    files = _text_files(root)
    assert len(files) == 12
    # the same seed again into the same folder keeps the identical CSVs untouched (ingest sees nothing new)
    csvs = sorted(other.glob("*/*.csv"))
    before = {p: p.stat().st_mtime_ns for p in csvs}
    generate_dataset(spark, str(other), {**SETTINGS, "partitions": 2})
    assert {p: p.stat().st_mtime_ns for p in csvs} == before
    files += sorted((root / "_truth").glob("*/*.parquet"))
    assert len(files) == 14
    for f in files:
        twin = other / f.relative_to(root)
        assert _digest(f) == _digest(twin), f"{f.name} differs between 2 and 3 partitions"
    assert sorted(p.relative_to(other) for p in (other / "_truth").rglob("*")) == sorted(
        p.relative_to(root) for p in (root / "_truth").rglob("*"))
    # another seed, written over the same folder: every seeded file changes, nothing is left behind
    generate_dataset(spark, str(other), {**SETTINGS, "seed": 7})
    for f in files:
        if f.name != "product_category_name_translation.csv":
            assert _digest(f) != _digest(other / f.relative_to(root)), f"{f.name} did not change with the seed"
    leftovers = [p.name for p in other.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    assert json.loads((other / "_truth" / "summary.json").read_text())["seed"] == 7


# ------------------------------------------------------------------ formats
def test_headers_bom_and_line_ends(gen, shared_data):
    root, summary = gen
    for name in ("olist_products_dataset.csv", "olist_sellers_dataset.csv", "product_category_name_translation.csv"):
        real = (shared_data / "olist" / name).read_bytes().split(b"\n", 1)[0]
        assert _path(root, name).read_bytes().split(b"\n", 1)[0] == real
    assert _path(root, "product_category_name_translation.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    with open(shared_data / "rees46-sample" / "2019-Oct-sample.csv", "rb") as f:
        assert _path(root, "events.csv").read_bytes().split(b"\n", 1)[0] == f.readline().rstrip(b"\n")
    assert _path(root, "olist_order_payments_dataset.csv").read_bytes().startswith(
        b"order_id,payment_sequential,payment_type,payment_installments,payment_value\n")
    for name in ("olist_orders_dataset.csv", "olist_order_items_dataset.csv", "olist_customers_dataset.csv"):
        assert _path(root, name).read_bytes().startswith(b'"' + HEADERS[name][0].encode() + b'","')
    reviews = _path(root, "olist_order_reviews_dataset.csv").read_bytes()
    lines = reviews.split(b"\n")
    assert lines[-1] == b"" and all(line.endswith(b"\r") for line in lines[:-1])
    info = summary["files"]["olist_order_reviews_dataset.csv"]
    assert info["physical_lines"] == len(lines) - 1 > info["records"] + 1  # comments with CRLF inside
    assert b'""' in reviews and b',"' in reviews  # doubled quotes inside quoted comments
    items = _path(root, "olist_order_items_dataset.csv").read_text().splitlines()
    assert any(line.startswith('"') for line in items[1:]) and any(line[0] != '"' for line in items[1:])
    sample = next(line for line in items[1:] if line.count(",") == 6 and '"' not in line)
    assert sample.split(",")[4][10] == " " and "." in sample.split(",")[5]


def test_parsed_counts_equal_summary(gen, read):
    _, summary = gen
    assert set(summary["files"]) == set(OLIST) | {"events.csv"}
    for name, info in summary["files"].items():
        df = read(name)
        corrupt = df.where(F.col("_corrupt_record").isNotNull()).count()
        assert df.count() == info["records"], name
        assert corrupt == info["planted"]["malformed"], name
        if name != "olist_order_reviews_dataset.csv":
            assert info["physical_lines"] == info["records"] + 1, name
    files = summary["files"]
    assert files["olist_orders_dataset.csv"]["records"] == files["olist_customers_dataset.csv"]["records"] == 1200
    assert summary["reviews"] == files["olist_order_reviews_dataset.csv"]["records"]
    assert summary["events"] == files["events.csv"]["records"]


# ----------------------------------------------------------- planted defects
def test_planted_item_defects_exact_and_near_rates(gen, read):
    _, summary = gen
    planted = summary["files"]["olist_order_items_dataset.csv"]["planted"]
    items = read("olist_order_items_dataset.csv").where(F.col("_corrupt_record").isNull()).drop("_corrupt_record")
    price = F.expr("try_cast(price AS DOUBLE)")
    assert items.where(F.col("price").isNull()).count() == planted["missing_price"]
    assert items.where(F.col("freight_value").isNull()).count() == planted["missing_freight"]
    assert items.where(F.col("price").isNotNull() & price.isNull()).count() == planted["bad_number"]
    assert items.where(price < 0).count() == planted["negative_price"]
    assert items.count() - items.distinct().count() == planted["duplicates"]
    products = read("olist_products_dataset.csv").select("product_id")
    orders = read("olist_orders_dataset.csv").select("order_id")  # malformed order rows still carry their id
    assert items.join(products, "product_id", "left_anti").count() == planted["orphan_product"]
    assert items.join(orders, "order_id", "left_anti").count() == planted["orphan_order"]
    # outliers: > 10x the lowest price of the product in the (clean) events
    events = read("events.csv").where(F.col("_corrupt_record").isNull())
    low = events.groupBy("product_id").agg(F.min(F.expr("try_cast(price AS DOUBLE)")).alias("low"))
    assert items.join(low, "product_id").where(price > F.col("low") * 10).count() == planted["outliers"]

    # order_lines_clean: distinct parseable lines, usable or missing price, existing product, good order row
    ts = F.expr("try_to_timestamp(order_purchase_timestamp, 'yyyy-MM-dd HH:mm:ss')")
    good_orders = read("olist_orders_dataset.csv").where(F.col("_corrupt_record").isNull() & ts.isNotNull())
    clean = (items.dropDuplicates().where(F.col("price").isNull() | (price >= 0))
             .join(products, "product_id", "left_semi").join(good_orders.select("order_id"), "order_id", "left_semi"))
    assert clean.count() == summary["order_lines_clean"]

    lines = summary["order_lines"] - summary["order_items_of_bad_orders"]
    for key in ("missing_price", "missing_freight", "outliers", "duplicates", "malformed", "bad_number",
                "negative_price"):
        assert _within(planted[key], MESSY[key] * lines), (key, planted[key])
    assert _within(planted["orphan_product"] + planted["orphan_order"], MESSY["orphan_fk"] * lines)
    assert summary["order_lines_clean"] == (lines - planted["malformed"] - planted["bad_number"]
                                            - planted["negative_price"] - planted["orphan_product"]
                                            - planted["orphan_order"])
    assert summary["order_lines_clean_values"] == (summary["order_lines_clean"] - planted["missing_price"]
                                                   - planted["missing_freight"] - planted["outliers"])
    orders = summary["files"]["olist_orders_dataset.csv"]["planted"]
    assert _within(orders["bad_timestamp"], MESSY["bad_timestamp"] * 1200)
    assert _within(orders["malformed"], MESSY["malformed"] * 1200)
    events = summary["files"]["events.csv"]["planted"]
    assert _within(events["bad_timestamp"], MESSY["bad_timestamp"] * summary["events"])
    assert _within(events["malformed"], MESSY["malformed"] * summary["events"])
    assert summary["order_items_of_bad_orders"] > 0
    for name in ("olist_order_reviews_dataset.csv", "olist_customers_dataset.csv", "olist_products_dataset.csv",
                 "olist_sellers_dataset.csv", "olist_order_payments_dataset.csv", "olist_geolocation_dataset.csv"):
        assert not any(summary["files"][name]["planted"].values()), name


def _field(path: Path, i: int) -> list[str]:
    """Field ``i`` (quotes stripped) of every data line; ids come before any field that may hold a comma."""
    return [line.split(",")[i].strip('"') for line in path.read_text(encoding="utf-8-sig").splitlines()[1:]]


@pytest.mark.parametrize("seed", [2, 5])
def test_lines_reference_written_products_and_sellers(spark, tmp_path, seed):
    # regression: an absent base line (null category and slot) hashed has_complement of the seed alone, so for
    # about a third of the seeds (2 and 5 among them) phantom complement lines of md5("<seed>:product") and
    # md5("<seed>:seller") filled the items and events files
    summary = generate_dataset(spark, str(tmp_path), {"orders": 300, "seed": seed, "partitions": 2})
    olist = tmp_path / "olist"
    products = set(_field(olist / "olist_products_dataset.csv", 0))
    sellers = set(_field(olist / "olist_sellers_dataset.csv", 0))
    items = olist / "olist_order_items_dataset.csv"
    planted = summary["files"]["olist_order_items_dataset.csv"]["planted"]
    assert sum(p not in products for p in _field(items, 2)) == planted["orphan_product"]
    assert all(s in sellers for s in _field(items, 3))
    assert all(p in products for p in _field(tmp_path / "events" / "events.csv", 2))
    assert 1.1 < summary["order_lines"] / 300 < 1.25


def test_bad_timestamps_do_not_parse(gen, read):
    _, summary = gen
    orders = read("olist_orders_dataset.csv").where(F.col("_corrupt_record").isNull())
    bad = orders.where(F.expr("try_to_timestamp(order_purchase_timestamp, 'yyyy-MM-dd HH:mm:ss')").isNull()).count()
    assert bad == summary["files"]["olist_orders_dataset.csv"]["planted"]["bad_timestamp"]
    events = read("events.csv").where(F.col("_corrupt_record").isNull())
    bad = events.where(F.expr("try_to_timestamp(event_time, \"yyyy-MM-dd HH:mm:ss 'UTC'\")").isNull()).count()
    assert bad == summary["files"]["events.csv"]["planted"]["bad_timestamp"]


# --------------------------------------------------------- planted structure
def test_review_scores_follow_delivery(gen, read, spark):
    root, summary = gen
    reviews = read("olist_order_reviews_dataset.csv")
    shares = {r["review_score"]: r["count"] for r in reviews.groupBy("review_score").count().collect()}
    total = sum(shares.values())
    assert set(shares) == {"1", "2", "3", "4", "5"}
    for k, n in shares.items():
        assert round(n / total, 6) == summary["review_score_share"][k]
    assert 0.72 <= (shares["4"] + shares["5"]) / total <= 0.83
    orders = read("olist_orders_dataset.csv").where(
        F.col("_corrupt_record").isNull() & F.col("order_delivered_customer_date").isNotNull())
    late = F.col("order_delivered_customer_date") > F.col("order_estimated_delivery_date")
    by_late = {r["late"]: r["score"] for r in reviews.join(orders, "order_id").groupBy(late.alias("late"))
               .agg(F.avg(F.col("review_score").cast("int")).alias("score")).collect()}
    assert by_late[True] < by_late[False] - 1.0
    probs = spark.read.parquet(str(root / "_truth" / "review_probs"))
    row = probs.agg(F.count("*").alias("n"), F.max(F.abs(F.col("p1") + F.col("p2") + F.col("p3") + F.col("p4")
                                                            + F.col("p5") - 1)).alias("err"),
                    F.avg(F.when(F.col("has_review"), F.greatest("p1", "p2", "p3", "p4", "p5"))).alias("bayes")).first()
    assert row["n"] == 1200 and row["err"] < 1e-9
    assert abs(row["bayes"] - summary["bayes_accuracy"]) < 1e-6 and 0.5 < summary["bayes_accuracy"] < 0.8
    # a few review ids repeat, on two orders of the same customer
    dup = reviews.groupBy("review_id").agg(F.count("*").alias("n")).where("n > 1")
    assert dup.agg(F.sum(F.col("n") - 1)).first()[0] == summary["duplicate_review_ids"] > 0
    order_customer = read("olist_orders_dataset.csv").select("order_id", "customer_id")
    owners = (reviews.join(dup, "review_id").join(order_customer, "order_id")
              .join(read("olist_customers_dataset.csv"), "customer_id")
              .groupBy("review_id").agg(F.countDistinct("customer_unique_id").alias("owners")))
    assert owners.count() == dup.count() and owners.where("owners != 1").count() == 0


def test_customers_repeat_and_season(gen, read):
    _, summary = gen
    customers = read("olist_customers_dataset.csv")
    per = customers.groupBy("customer_unique_id").count()
    assert per.count() == summary["customer_unique"] == 840
    assert per.where("count > 1").count() > 50
    assert summary["repeat_orders"] == 1200 - 840  # repeat_rate 0.3
    assert customers.select("customer_id").distinct().count() == 1200
    orders = read("olist_orders_dataset.csv").where(F.col("_corrupt_record").isNull())
    ts = F.expr("try_to_timestamp(order_purchase_timestamp, 'yyyy-MM-dd HH:mm:ss')")
    monthly = {r["m"]: r["count"] for r in orders.where(ts.isNotNull()).groupBy(F.date_format(ts, "yyyy-MM").alias("m"))
               .count().collect()}
    assert min(monthly) == "2017-01" and max(monthly) == "2018-08" and len(monthly) == 20
    average = sum(monthly.values()) / len(monthly)
    assert monthly["2017-12"] > 1.15 * average and monthly["2017-11"] > 1.15 * average
    bf_week = orders.where(ts.between("2017-11-20 00:00:00", "2017-11-27 23:59:59")).count()
    assert bf_week > 1.5 * 8 * sum(monthly.values()) / 607


def test_lines_payments_events_and_complements(spark, gen, read):
    root, summary = gen
    assert 1.1 < summary["order_lines"] / 1200 < 1.25
    items = read("olist_order_items_dataset.csv").where(F.col("_corrupt_record").isNull())
    value = F.expr("try_cast(price AS DOUBLE) + try_cast(freight_value AS DOUBLE)")
    per_order = items.dropDuplicates().groupBy("order_id").agg(F.sum(value).alias("v"))
    paid = read("olist_order_payments_dataset.csv").groupBy("order_id").agg(
        F.sum(F.col("payment_value").cast("double")).alias("paid"), F.count("*").alias("rows"))
    both = per_order.join(paid, "order_id")
    assert both.where(F.abs(F.col("v") - F.col("paid")) < 0.005).count() >= 0.9 * both.count()
    assert paid.where("rows > 1").count() > 10
    events = read("events.csv").where(F.col("_corrupt_record").isNull())
    types = {r["event_type"]: r["count"] for r in events.groupBy("event_type").count().collect()}
    assert set(types) == {"view", "cart", "remove_from_cart", "purchase"}
    assert abs(summary["events"] / 1200 - 6) < 1.0
    code_ok = F.col("category_code").rlike(r"^[a-z]+\.[a-z_]+$")
    assert events.where(F.col("category_code").isNotNull() & ~code_ok).count() == 0
    assert events.where(F.col("category_code").isNull()).count() > 0
    assert events.join(read("olist_customers_dataset.csv"), events.user_id == F.col("customer_unique_id"),
                       "left_anti").count() == 0
    uuid = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$"
    assert events.where(~F.col("user_session").rlike(uuid)).count() == 0
    geo = read("olist_geolocation_dataset.csv")
    assert geo.where(~F.col("geolocation_lat").cast("double").between(-34, 6)
                     | ~F.col("geolocation_lng").cast("double").between(-74, -34)).count() == 0
    # complement pairs are bought together
    comp = spark.read.csv(str(root / "_truth" / "complements.csv"), header=True)
    a, b = items.select("order_id", F.col("product_id").alias("product_id")), items.select(
        "order_id", F.col("product_id").alias("complement_product_id"))
    together = a.join(b, "order_id").join(comp, ["product_id", "complement_product_id"]).select("order_id").distinct()
    assert together.count() >= 20
