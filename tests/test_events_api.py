"""The API's feedback batches as an ingest source: JSON Lines files -> bronze/quarantine -> silver/events."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pyspark.testing import assertDataFrameEqual

from ecomrec_spark import lake as lk
from ecomrec_spark.config import load_settings
from ecomrec_spark.settings import Settings
from ecomrec_spark.stages import ab_report_stage, ingest_stage, transform_stage
from ecomrec_spark.summary import ab_lines


def _event(customer: str, product: str, kind: str, ts: str, variant: str | None = "control",
           version: str | None = "v1", batch: str = "ab12") -> str:
    """One line exactly as the API writes it."""
    return json.dumps({"customer_id": customer, "product_id": product, "event_type": kind, "timestamp": ts,
                       "variant": variant, "version": version, "batch_id": batch,
                       "received_at": "2026-12-05T03:21:00Z"})


def _write(folder: Path, batch: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events-20261205T032100Z-{batch}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cfg(tmp_path: Path, lake: str) -> Settings:
    return load_settings(None, [f"paths.raw={tmp_path / 'raw'}", f"paths.lake={lake}", "ingest.sources=[events_api]"])


def T(hour: int, minute: int, second: int = 0, micro: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 5, hour, minute, second, micro)


BAD_LINES = {  # line -> the reason it is quarantined with
    '{"customer_id": "c3", "product_id": "p1", "event_type": "click"': "malformed record: not a JSON object",
    _event("c 3", "p1", "click", "2026-12-05T03:30:00Z"): "bad customer_id: not [A-Za-z0-9_.:-]{1,64}",
    _event("c3", "p1", "like", "2026-12-05T03:30:00Z"): "unknown event_type (expected impression, click, view, cart, "
                                                         "purchase)",
    _event("c3", "p1", "view", "05/12/2026 03:30"): "bad iso8601 in timestamp: '05/12/2026 03:30'",
    _event("c3", "p1\n", "view", "2026-12-05T03:30:00Z"): r"bad product_id: not [A-Za-z0-9_.\-]{1,64}",  # whole value
}


def test_a_batch_is_ingested_transformed_and_reported_and_bad_lines_are_quarantined(spark, lake, tmp_path):
    folder = tmp_path / "raw" / "events_api"
    good = _write(folder, "ab12", [
        _event("c1", "p1", "impression", "2026-12-05T03:20:00Z"),
        _event("c1", "p1", "click", "2026-12-05T03:20:05Z"),
        _event("c1", "p1", "purchase", "2026-12-05T04:25:00.5+01:00"),  # an offset is converted to UTC
        _event("c2", "p2", "view", "2026-12-05T03:26:00Z", variant=None, version=None),
        _event("c2", "p2", "impression", "2026-12-05T03:27:00Z", variant="override"),  # model= chose: not an arm
    ])
    mixed = _write(folder, "cd34", [_event("c2", "p1", "impression", "2026-12-05T03:30:00Z", variant="ranker",
                                           batch="cd34"), "", *BAD_LINES])  # a blank line is no record
    cfg = _cfg(tmp_path, lake)

    ingested = ingest_stage(spark, cfg)
    per_file = {Path(r["file"]).name: (r["raw_records"], r["bronze_rows"], r["quarantine_rows"])
                for r in ingested["per_file"]}
    assert per_file == {good.name: (5, 5, 0), mixed.name: (6, 1, 5)}  # raw = bronze + quarantine, per file
    quarantined = lk.read(spark, lake, "quarantine", "events_api").select("raw_text", "reason", "table")
    assertDataFrameEqual(quarantined, spark.createDataFrame(
        [(line, reason, "events_api") for line, reason in BAD_LINES.items()], quarantined.schema))

    transform_stage(spark, cfg)
    silver = lk.read(spark, lake, "silver", "events").select(
        "user_id", "product_id", "event_type", "event_ts", "variant", "version", "source", "session_id", "category")
    assertDataFrameEqual(silver, spark.createDataFrame([
        ("c1", "p1", "impression", T(3, 20), "control", "v1", "events_api", None, "unknown"),  # shown: no session
        ("c1", "p1", "click", T(3, 20, 5), "control", "v1", "events_api", "c1-1", "unknown"),
        ("c1", "p1", "purchase", T(3, 25, 0, 500000), "control", "v1", "events_api", "c1-1", "unknown"),
        ("c2", "p2", "view", T(3, 26), None, None, "events_api", "c2-1", "unknown"),
        ("c2", "p2", "impression", T(3, 27), "override", "v1", "events_api", None, "unknown"),
        ("c2", "p1", "impression", T(3, 30), "ranker", "v1", "events_api", None, "unknown"),
    ], silver.schema))

    report = ab_report_stage(spark, cfg)
    assert (report["events"], report["events_without_variant"], report["events_override"]) == (6, 1, 1)
    assert report["control"] == "control"
    assert [(v["variant"], v["impressions"], v["clicks"]) for v in report["variants"]] == [
        ("control", 1, 1), ("ranker", 1, 0)]
    assert ab_lines(report)[1].split()[:3] == ["control", "impressions", "1"]  # the CLI prints the summary


def test_no_events_api_folder_or_an_empty_one_is_nothing_to_do(spark, lake, tmp_path):
    cfg = _cfg(tmp_path, lake)
    assert ingest_stage(spark, cfg)["files_ingested"] == 0  # no <raw>/events_api/ at all
    (tmp_path / "raw" / "events_api").mkdir(parents=True)
    assert ingest_stage(spark, cfg)["files_ingested"] == 0  # the folder, but no batch yet
    assert not lk.exists(spark, lk.table_path(lake, "bronze", "events_api"))


def test_api_events_take_product_attributes_from_rees46_events_and_the_catalogue(spark):
    from ecomrec_spark.transform.events import api_events

    lineage = "_source_file string, _ingest_run string"
    api = spark.createDataFrame([
        ("c1", "p1", "click", T(3, 0), "control", "v1", "f", "r"),
        ("c1", "p2", "impression", T(3, 1), "control", "v1", "f", "r"),
        ("c2", "p3", "purchase", T(3, 2), "ranker", "v1", "f", "r"),
    ], f"customer_id string, product_id string, event_type string, event_time timestamp, variant string, "
       f"version string, {lineage}")
    rees46 = spark.createDataFrame([
        (T(1, 0), "view", "p1", "11", "electronics.audio", "Apple", 10.0, "u1", "s1", "f", "r"),
        (T(2, 0), "view", "p1", "11", "", "Sony", 12.0, "u2", "s2", "f", "r"),  # latest non-empty value wins
    ], f"event_time timestamp, event_type string, product_id string, category_id string, category_code string, "
       f"brand string, price double, user_id string, user_session string, {lineage}")
    catalogue = spark.createDataFrame([("p1", "audio"), ("p2", "toys")], "product_id string, category string")
    got = api_events(api, 30, rees46, catalogue).select(
        "user_id", "product_id", "event_type", "category_code", "category", "sub_category", "brand", "price",
        "session_id", "source")
    assertDataFrameEqual(got, spark.createDataFrame([
        # p1: the REES46 attributes (category from its category_code), p2: the catalogue's category, p3: unknown
        ("c1", "p1", "click", "electronics.audio", "electronics", "audio", "sony", 12.0, "c1-1", "events_api"),
        ("c1", "p2", "impression", None, "toys", None, None, None, None, "events_api"),
        ("c2", "p3", "purchase", None, "unknown", None, None, None, "c2-1", "events_api"),
    ], "user_id string, product_id string, event_type string, category_code string, category string, "
       "sub_category string, brand string, price double, session_id string, source string"))
