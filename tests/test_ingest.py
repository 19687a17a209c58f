"""Ingest: every raw record lands in bronze or quarantine, re-runs add nothing."""

from __future__ import annotations

import os

import pytest
from pyspark.sql import functions as F

from ecomrec_spark import lake
from ecomrec_spark.ingest.run import IngestError, ingest_table
from ecomrec_spark.sources import olist

ITEMS_HEADER = '"order_id","order_item_id","product_id","seller_id","shipping_limit_date","price","freight_value"\n'
ITEMS_ROWS = [
    # (line, expected reason or None)
    ('"o1",1,"p1",s1,2018-01-01 10:00:00,58.90,13.29', None),
    ('o2,1,p2,"s1",2018-01-02 10:00:00,,0', None),                       # missing price is kept (imputed later)
    ("o3,1,p3,s1,2018-01-03 10:00:00,abc,1.0", "bad double in price: 'abc'"),
    ("o4,1,p4,s1,2018-13-45 25:61:00,10.0,1.0", "bad timestamp in shipping_limit_date: '2018-13-45 25:61:00'"),
    ("o5,1,p5,s1,2018-01-05 10:00:00,-3.5,1.0", "negative price"),
    ("o6,1,p6,s1,2018-01-06 10:00:00", "malformed record: wrong column count or broken quote"),
    ('o7,1,"p7,s1,2018-01-07 10:00:00,1.0,1.0', "malformed record: wrong column count or broken quote"),
    (",1,p8,s1,2018-01-08 10:00:00,1.0,1.0", "missing order_id"),
]


def write_items(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(ITEMS_HEADER + "".join(line + "\n" for line, _ in rows))


def test_records_split_into_bronze_and_quarantine_with_reasons(spark, tmp_path, lake):
    raw = tmp_path / "raw"
    write_items(raw / "olist", "olist_order_items_dataset.csv", ITEMS_ROWS)
    rows = ingest_table(spark, olist.ORDER_ITEMS, str(raw), lake, "run1")
    assert [(r["raw_records"], r["bronze_rows"], r["quarantine_rows"], r["balanced"]) for r in rows] == [(8, 2, 6, True)]

    bronze = lake_read(spark, lake, "bronze", "olist_order_items")
    assert sorted(tuple(r) for r in bronze.select("order_id", "price", "freight_value").collect()) == [
        ("o1", 58.9, 13.29), ("o2", None, 0.0)]
    assert bronze.select("_ingest_run").distinct().collect()[0][0] == "run1"
    assert bronze.select("_source_file").distinct().collect()[0][0].endswith("olist_order_items_dataset.csv")

    quarantine = lake_read(spark, lake, "quarantine", "olist_order_items")
    got = {r["reason"] for r in quarantine.collect()}
    assert got == {reason for _, reason in ITEMS_ROWS if reason}
    texts = {r["raw_text"] for r in quarantine.collect()}
    assert "o6,1,p6,s1,2018-01-06 10:00:00" in texts


def test_rerun_is_a_no_op_and_new_files_are_added(spark, tmp_path, lake):
    raw = tmp_path / "raw"
    write_items(raw / "olist", "olist_order_items_dataset.csv", ITEMS_ROWS[:2])
    ingest_table(spark, olist.ORDER_ITEMS, str(raw), lake, "run1")
    assert ingest_table(spark, olist.ORDER_ITEMS, str(raw), lake, "run2") == []
    write_items(raw / "olist", "olist_order_items_dataset_2018-02.csv", ITEMS_ROWS[2:4])
    rows = ingest_table(spark, olist.ORDER_ITEMS, str(raw), lake, "run3")
    assert [(r["raw_records"], r["bronze_rows"], r["quarantine_rows"]) for r in rows] == [(2, 0, 2)]
    assert lake_read(spark, lake, "bronze", "olist_order_items").count() == 2
    assert lake_read(spark, lake, "quarantine", "olist_order_items").count() == 2
    # a corrected file (same name, new content) replaces its own rows only
    write_items(raw / "olist", "olist_order_items_dataset_2018-02.csv", ITEMS_ROWS[:1])
    os.utime(raw / "olist" / "olist_order_items_dataset_2018-02.csv", (2_000_000_000, 2_000_000_000))
    ingest_table(spark, olist.ORDER_ITEMS, str(raw), lake, "run4")
    assert lake_read(spark, lake, "bronze", "olist_order_items").count() == 3
    assert lake_read(spark, lake, "quarantine", "olist_order_items").count() == 0


def test_missing_column_is_a_clear_error_and_extra_column_is_ignored(spark, tmp_path, lake):
    raw = tmp_path / "raw" / "olist"
    raw.mkdir(parents=True)
    (raw / "olist_order_items_dataset.csv").write_text('order_id,order_item_id,product_id\no1,1,p1\n')
    with pytest.raises(IngestError, match="missing column\\(s\\) seller_id, shipping_limit_date, price, freight_value"):
        ingest_table(spark, olist.ORDER_ITEMS, str(tmp_path / "raw"), lake, "r")
    (raw / "olist_order_items_dataset.csv").write_text(
        'gift_wrap,' + ITEMS_HEADER.replace('"', "") + 'yes,o1,1,p1,s1,2018-01-01 10:00:00,5.0,1.0\n')
    rows = ingest_table(spark, olist.ORDER_ITEMS, str(tmp_path / "raw"), lake, "r")
    assert rows[0]["extra_columns"] == "gift_wrap" and rows[0]["bronze_rows"] == 1
    assert lake_read(spark, lake, "bronze", "olist_order_items").select("order_id", "price").first() == ("o1", 5.0)


def test_multiline_reviews_with_crlf_quotes_and_commas(spark, tmp_path, lake):
    raw = tmp_path / "raw" / "olist"
    raw.mkdir(parents=True)
    text = ('"review_id","order_id","review_score","review_comment_title","review_comment_message",'
            '"review_creation_date","review_answer_timestamp"\r\n'
            'r1,o1,5,,"Muito bom, chegou ""rápido""\r\nrecomendo",2018-01-18 00:00:00,2018-01-18 21:46:59\r\n'
            '"r2","o2",1,"ruim",,2018-02-01 00:00:00,2018-02-02 10:00:00\r\n'
            'r3,o3,9,,,2018-02-01 00:00:00,2018-02-02 10:00:00\r\n')
    (raw / "olist_order_reviews_dataset.csv").write_bytes(text.encode())
    rows = ingest_table(spark, olist.ORDER_REVIEWS, str(tmp_path / "raw"), lake, "r")
    assert (rows[0]["raw_records"], rows[0]["bronze_rows"], rows[0]["quarantine_rows"]) == (3, 2, 1)
    msg = lake_read(spark, lake, "bronze", "olist_order_reviews").where(F.col("review_id") == "r1").first()
    # the CSV parser normalises a quoted CRLF to \n
    assert msg["review_comment_message"] == 'Muito bom, chegou "rápido"\nrecomendo'
    assert str(msg["review_answer_timestamp"]) == "2018-01-18 21:46:59"


def test_missing_file_is_a_clear_error(spark, tmp_path, lake):
    (tmp_path / "raw" / "olist").mkdir(parents=True)
    with pytest.raises(IngestError, match="no file matching olist_order_items_dataset"):
        ingest_table(spark, olist.ORDER_ITEMS, str(tmp_path / "raw"), lake, "r")


def lake_read(spark, root, layer, table):
    return lake.read(spark, root, layer, table)


def test_amazon_reviews_multiline_text_and_unix_time(spark, tmp_path, lake):
    from ecomrec_spark.sources import amazon
    from ecomrec_spark.transform import canonical

    raw = tmp_path / "raw" / "amazon"
    raw.mkdir(parents=True)
    (raw / "Reviews.csv").write_text(
        "Id,ProductId,UserId,ProfileName,HelpfulnessNumerator,HelpfulnessDenominator,Score,Time,Summary,Text\n"
        '1,B001E4KFG0,A3SGXH7AUHU8GW,delmartian,1,1,5,1303862400,Good Quality Dog Food,"I have bought several,\nand ""all"" good."\n'
        "2,B00813GRG4,A1D87F6ZCVE5NK,dll pa,0,0,1,1346976000,Not as Advertised,Product arrived labeled as Jumbo\n"
        "3,B000LQOCH0,ABXLMWJIXXAIN,Natalia,1,1,7,1219017600,bad score,x\n")
    [row] = ingest_table(spark, amazon.REVIEWS, str(tmp_path / "raw"), lake, "r")
    assert (row["raw_records"], row["bronze_rows"], row["quarantine_rows"]) == (3, 2, 1)
    reviews = canonical.amazon_reviews(lake_read(spark, lake, "bronze", "amazon_reviews"))
    first = reviews.where(F.col("review_id") == "1").first()
    assert (first.product_id, first.customer_id, first.review_score, str(first.review_ts)) == (
        "B001E4KFG0", "A3SGXH7AUHU8GW", 5, "2011-04-27 00:00:00")
    assert first.text == 'I have bought several,\nand "all" good.'
    assert lake_read(spark, lake, "quarantine", "amazon_reviews").first().reason == "Score outside 1..5"


def test_a_rewrite_with_the_same_size_and_mtime_is_ingested_again(spark, tmp_path, lake):
    import hashlib

    folder = tmp_path / "raw" / "olist"
    write_items(folder, "olist_order_items_dataset.csv", ITEMS_ROWS[:1])  # o1, price 58.90
    path = folder / "olist_order_items_dataset.csv"
    os.utime(path, (1_600_000_000, 1_600_000_000))
    [first] = ingest_table(spark, olist.ORDER_ITEMS, str(tmp_path / "raw"), lake, "run1")
    assert first["content_hash"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    before = path.stat()
    path.write_bytes(path.read_bytes().replace(b"58.90", b"68.90"))  # same length, new price
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    [again] = ingest_table(spark, olist.ORDER_ITEMS, str(tmp_path / "raw"), lake, "run2")
    assert again["content_hash"] != first["content_hash"] and again["balanced"]
    assert lake_read(spark, lake, "bronze", "olist_order_items").select("order_id", "price").collect() == [("o1", 68.9)]
    assert ingest_table(spark, olist.ORDER_ITEMS, str(tmp_path / "raw"), lake, "run3") == []
