"""Runs are whole or absent (ecomrec_spark.runs): the run id on every commit, the manifest committed last,
and readers on the versions of the last complete stage, checked by Delta history versions."""

from __future__ import annotations

import json

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark import lake as lk
from ecomrec_spark import runs


def _history(spark, lake, layer, table):
    """[(version, userMetadata)] newest first."""
    rows = DeltaTable.forPath(spark, lk.table_path(lake, layer, table)).history().select("version", "userMetadata")
    return [(r["version"], r["userMetadata"]) for r in rows.collect()]  # one row per commit: a handful


def _manifest(spark, lake):
    return [r.asDict() for r in lk.read(spark, lake, *runs.MANIFEST).orderBy("finished_at").collect()]


def _frame(spark, value):
    return spark.createDataFrame([(1, value), (2, value)], "id int, v string")


def test_a_finished_stage_stamps_every_commit_and_records_its_versions_last(spark, lake):
    with runs.stage(spark, lake, "transform", "20261205T000000Z-aaaaaaaa"):
        lk.overwrite(_frame(spark, "a"), lake, "silver", "one")
        lk.overwrite(_frame(spark, "a2"), lake, "silver", "one")
        lk.append(_frame(spark, "b"), lake, "gold", "two")
    stamp = json.dumps({"run_id": "20261205T000000Z-aaaaaaaa", "stage": "transform"}, sort_keys=True)
    assert _history(spark, lake, "silver", "one") == [(1, stamp), (0, stamp)]
    assert _history(spark, lake, "gold", "two") == [(0, stamp)]
    [row] = _manifest(spark, lake)
    assert (row["run_id"], row["stage"], row["tables"]) == (
        "20261205T000000Z-aaaaaaaa", "transform", {"silver/one": 1, "gold/two": 0})
    assert row["started_at"] <= row["finished_at"]
    # the manifest is the stage's last commit
    assert _history(spark, lake, *runs.MANIFEST)[0][1] == stamp
    assert spark.conf.get(runs.USER_METADATA, None) is None  # the session is left as it was


def test_a_failed_stage_records_nothing_and_readers_keep_the_last_complete_versions(spark, lake, monkeypatch):
    with runs.stage(spark, lake, "transform", "r1"):
        lk.overwrite(_frame(spark, "old"), lake, "silver", "one")
        lk.overwrite(_frame(spark, "old"), lake, "silver", "two")
    monkeypatch.setenv(runs.FAIL_AFTER_COMMITS, "1")
    with pytest.raises(runs.InjectedFailure, match="after its commit 1"):
        with runs.stage(spark, lake, "transform", "r2"):
            lk.overwrite(_frame(spark, "new"), lake, "silver", "one")
            lk.overwrite(_frame(spark, "new"), lake, "silver", "two")  # never reached
    monkeypatch.delenv(runs.FAIL_AFTER_COMMITS)
    assert [r["run_id"] for r in _manifest(spark, lake)] == ["r1"]
    assert [v for v, _ in _history(spark, lake, "silver", "one")] == [1, 0]  # the new version is there ...
    with runs.stage(spark, lake, None, "reader"):  # ... but a reader sees the complete run's
        assert runs.version_to_read(lake, "silver", "one") == 0
        assertDataFrameEqual(lk.read(spark, lake, "silver", "one"), _frame(spark, "old"))
        assertDataFrameEqual(lk.read(spark, lake, "silver", "two"), _frame(spark, "old"))
    assert lk.read(spark, lake, "silver", "one").where(F.col("v") == "new").count() == 2  # outside a run: latest
    # the re-run completes and becomes what readers see
    with runs.stage(spark, lake, "transform", "r3"):
        assertDataFrameEqual(lk.read(spark, lake, "silver", "one"), _frame(spark, "old"))  # not yet written: pinned
        lk.overwrite(_frame(spark, "new"), lake, "silver", "one")
        assertDataFrameEqual(lk.read(spark, lake, "silver", "one"), _frame(spark, "new"))  # its own write
        lk.overwrite(_frame(spark, "new"), lake, "silver", "two")
    assert _manifest(spark, lake)[-1]["tables"] == {"silver/one": 2, "silver/two": 1}
    with runs.stage(spark, lake, None, "reader"):
        assertDataFrameEqual(lk.read(spark, lake, "silver", "two"), _frame(spark, "new"))


def test_each_table_is_pinned_by_the_newest_stage_that_wrote_it(spark, lake):
    with runs.stage(spark, lake, "ingest", "r1"):
        lk.overwrite(_frame(spark, "bronze"), lake, "bronze", "t")
    with runs.stage(spark, lake, "transform", "r1"):
        lk.overwrite(_frame(spark, "silver"), lake, "silver", "t")
    with runs.stage(spark, lake, "ingest", "r2"):
        lk.overwrite(_frame(spark, "bronze2"), lake, "bronze", "t")
    assert runs.pins(spark, lake) == {"bronze/t": 1, "silver/t": 0}


def test_a_commit_by_another_writer_during_the_stage_fails_it(spark, lake):
    lk.overwrite(_frame(spark, "x"), lake, "silver", "one")
    with pytest.raises(runs.ForeignCommit, match="another writer committed while transform ran"):
        with runs.stage(spark, lake, "transform", "r1"):
            spark.conf.set(runs.USER_METADATA, "someone else")  # as a commit from another session would carry
            lk.overwrite(_frame(spark, "y"), lake, "silver", "one")
    assert not lk.exists(spark, lk.table_path(lake, *runs.MANIFEST))


def test_a_lake_without_a_manifest_is_read_at_its_latest_versions(spark, lake):
    lk.overwrite(_frame(spark, "a"), lake, "silver", "one")
    lk.overwrite(_frame(spark, "b"), lake, "silver", "one")
    with runs.stage(spark, lake, None, "reader"):
        assertDataFrameEqual(lk.read(spark, lake, "silver", "one"), _frame(spark, "b"))


def test_transform_reads_only_bronze_slices_whose_reconciliation_balanced(spark, lake):
    """A slice is written before its file's reconciliation row: a file with no row (a killed ingest) or an
    unbalanced one (a failed ingest) is not read; other tables' rows do not count."""
    from ecomrec_spark.ingest.parse import SOURCE_FILE
    from ecomrec_spark.ingest.run import RECONCILIATION, finished_slices

    bronze = spark.createDataFrame([("a.csv", "1"), ("a.csv", "2"), ("b.csv", "3"), ("c.csv", "4"), ("d.csv", "5")],
                                   f"{SOURCE_FILE} string, order_id string")
    lk.overwrite(bronze, lake, "bronze", "orders")
    recon = spark.createDataFrame([("orders", "a.csv", True), ("orders", "b.csv", False), ("items", "d.csv", True)],
                                  "table string, file string, balanced boolean")
    lk.overwrite(recon, lake, "bronze", RECONCILIATION)
    assertDataFrameEqual(finished_slices(spark, lake, "orders"),
                         spark.createDataFrame([("a.csv", "1"), ("a.csv", "2")], f"{SOURCE_FILE} string, order_id string"))
    assert finished_slices(spark, lake, "events_api", required=False) is None
    with pytest.raises(FileNotFoundError, match="ecomrec ingest"):
        finished_slices(spark, lake, "events_api")


def test_the_run_all_summary_prints_each_stage_time_and_the_total():
    from ecomrec_spark.summary import summarize

    out = summarize({runs.TIMINGS: {"ingest": 12.34, "transform": 40.0, "publish": 0.4}}, "/lake")
    assert out.splitlines() == ["stage times (total 53 s): ingest 12 s, transform 40 s, publish 0 s"]
