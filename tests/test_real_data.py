"""The real public files in ../shared/data parse with exact row counts.

Expected counts come from the files' PROVENANCE.md and, where noted, from an
independent count with Python's csv module.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip

from pyspark.sql import functions as F

from ecomrec_spark import lake
from ecomrec_spark.ingest.run import ingest_table
from ecomrec_spark.settings import Settings
from ecomrec_spark.sources import events, olist, transactions
from ecomrec_spark.transform import canonical


def test_olist_real_tables(spark, shared_data, lake):
    expected = {olist.PRODUCTS: 32_951, olist.SELLERS: 3_095, olist.CATEGORY_TRANSLATION: 71, olist.ORDER_PAYMENTS: 103_886}
    for spec, n in expected.items():
        [row] = ingest_table(spark, spec, str(shared_data), lake, "real")
        assert (row["raw_records"], row["bronze_rows"], row["quarantine_rows"]) == (n, n, 0), spec.table
    products = lake_read(spark, lake, "olist_products")
    # the misspelled *_lenght columns are renamed; 610 products have no category in the real file
    assert products.where(F.col("product_category_name").isNull()).count() == 610
    assert products.where(F.col("product_name_length").isNotNull()).count() == 32_951 - 610
    # the BOM does not leak into the first column, and quoted and unquoted ids read the same
    tr = lake_read(spark, lake, "olist_category_translation")
    assert tr.where(F.col("product_category_name") == "beleza_saude").first()["product_category_name_english"] == "health_beauty"
    sellers = lake_read(spark, lake, "olist_sellers")
    assert sellers.where(F.col("seller_id") == "3442f8959a84dea7ee197c632cb2df15").first()["seller_zip_code_prefix"] == "13023"
    pay = lake_read(spark, lake, "olist_order_payments")
    assert pay.select("order_id").distinct().count() == 99_440
    counts = {r["payment_type"]: r["count"] for r in pay.groupBy("payment_type").count().collect()}
    assert counts == {"credit_card": 76_795, "boleto": 19_784, "voucher": 5_775, "debit_card": 1_529, "not_defined": 3}


def test_rees46_sample(spark, shared_data, lake):
    spec = dataclasses.replace(events.EVENTS, source="rees46-sample")
    [row] = ingest_table(spark, spec, str(shared_data), lake, "real")
    assert (row["raw_records"], row["bronze_rows"], row["quarantine_rows"]) == (1000, 1000, 0)
    ev = lake_read(spark, lake, "events")
    assert {r["event_type"]: r["count"] for r in ev.groupBy("event_type").count().collect()} == {"view": 987, "cart": 3, "purchase": 10}
    assert ev.select("user_id").distinct().count() == 330
    assert str(ev.agg(F.min("event_time")).first()[0]) == "2019-10-01 00:00:00"


def test_online_retail_through_the_column_mapping(spark, cfg, shared_data, lake):
    tx_conf = cfg["sources"]["transactions"]
    spec = dataclasses.replace(transactions.table_spec(Settings.from_config(cfg).sources.transactions),
                               source="online-retail")
    [row] = ingest_table(spark, spec, str(shared_data), lake, "real")
    assert (row["raw_records"], row["bronze_rows"], row["quarantine_rows"]) == (320_705, 320_705, 0)

    # independent count of cancellations and non-product codes with Python's csv module
    with gzip.open(shared_data / "online-retail" / "online_retail_2010-12_to_2011-08.csv.gz", "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    codes = {c.upper() for c in tx_conf["non_product_codes"]}
    distinct = {tuple(r[k] for k in ("InvoiceNo", "StockCode", "InvoiceDate", "Quantity", "UnitPrice", "CustomerID")) for r in rows}
    n_dups = len(rows) - len(distinct)
    tx = lake_read(spark, lake, "transactions")
    lines, returns, rejects = canonical.transaction_lines(tx, tx_conf["cancel_prefix"], tx_conf["non_product_codes"])
    n_lines, n_returns, n_rejects = lines.count(), returns.count(), rejects.count()
    assert n_lines + n_returns + n_rejects == len(rows)  # nothing lost
    assert rejects.where(F.col("reason").startswith("duplicate")).count() == n_dups
    uniq = [dict(zip(("InvoiceNo", "StockCode", "InvoiceDate", "Quantity", "UnitPrice", "CustomerID"), d, strict=True)) for d in distinct]
    non_product = sum(1 for r in uniq if r["StockCode"].strip().upper() in codes)
    assert rejects.where(F.col("reason").startswith("non-product code")).count() == non_product
    cancels = sum(1 for r in uniq if r["StockCode"].strip().upper() not in codes and int(r["Quantity"]) != 0
                  and (r["InvoiceNo"].startswith("C") or int(r["Quantity"]) < 0))
    assert n_returns == cancels
    assert returns.where(F.col("quantity") <= 0).count() == 0  # returned units are stored as positive counts


def lake_read(spark, root, table):
    return lake.read(spark, root, "bronze", table)
