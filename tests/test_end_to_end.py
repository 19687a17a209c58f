"""Generate -> ingest -> transform on small data, checked against the generator's ground truth.

The session's planted lake (``conftest.planted_lake``, shared with the recommendation and report tests)
feeds every test here; the SIGKILL tests re-run jobs in subprocesses against a copy of it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from ecomrec_spark import lake as lk
from ecomrec_spark import runs
from ecomrec_spark.config import load_settings
from ecomrec_spark.ingest.run import ingest
from ecomrec_spark.transform.run import transform

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(planted_lake):
    """The planted 1,500-order lake of ``conftest.planted_lake`` (ingest and transform run as the CLI runs them)."""
    done = planted_lake["transform"]
    assert done.commits == len(done.written) == len(planted_lake["counts"])  # transform writes each table once
    return planted_lake


def _table(spark, run, layer, table):
    return lk.read(spark, run["cfg"]["paths"]["lake"], layer, table)


def _planted(truth, file, kind):
    return truth["files"][file]["planted"].get(kind, 0)


def test_reconciliation_matches_the_planted_defects(run):
    truth = run["truth"]
    by_file = {Path(r["file"]).name: r for r in run["recon"]}
    assert set(by_file) == set(truth["files"])
    for name, r in by_file.items():
        planted = truth["files"][name]
        rejected = sum(planted["planted"].get(k, 0) for k in ("malformed", "bad_timestamp", "bad_number", "negative_price"))
        assert (r["raw_records"], r["quarantine_rows"]) == (planted["records"], rejected), name
        assert r["raw_records"] == r["bronze_rows"] + r["quarantine_rows"]


def test_duplicates_and_orphans_are_removed_and_kept_in_quarantine(spark, run):
    truth = run["truth"]
    items = "olist_order_items_dataset.csv"
    lines = _table(spark, run, "silver", "order_lines")
    assert lines.groupBy("order_id", "line_id").count().where("count > 1").count() == 0
    rejects = _table(spark, run, "quarantine", "transform_rejects").where(F.col("table") == "order_lines")
    by_reason = {r["reason"]: r["count"] for r in rejects.groupBy("reason").count().collect()}
    assert by_reason.get("duplicate of an earlier row with the same (order_id, order_item_id)", 0) == _planted(truth, items, "duplicates")
    assert by_reason.get("orphan product_id: no such product_id in the parent table", 0) == _planted(truth, items, "orphan_product")
    assert by_reason.get("orphan order_id: no such order_id in the parent table", 0) == (
        _planted(truth, items, "orphan_order") + truth["order_items_of_bad_orders"])
    outliers = _table(spark, run, "silver", "order_line_outliers")
    assert lines.count() + outliers.count() == truth["order_lines_clean"]


def test_iqr_bounds_and_imputed_means_match_an_independent_computation(spark, run):
    import numpy as np

    lines = _table(spark, run, "silver", "order_lines").toPandas()  # small test data
    outliers = _table(spark, run, "silver", "order_line_outliers").toPandas()
    k = run["cfg"]["transform"]["iqr_k"]
    before = np.concatenate  # noqa: F841  (readability: the pre-filter set is kept + outliers)
    observed = lines[~lines.price_imputed][["category", "price"]]._append(outliers[["category", "price"]])
    for cat, grp in observed.groupby("category"):
        q1, q3 = np.quantile(grp.price, [0.25, 0.75], method="inverted_cdf")
        lo, hi = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
        kept = lines[(lines.category == cat) & ~lines.price_imputed].price
        out = outliers[outliers.category == cat].price
        assert ((kept >= lo - 1e-9) & (kept <= hi + 1e-9)).all(), cat
        assert ((out < lo) | (out > hi)).all(), cat
    # every imputed price is its category's mean of the kept, observed prices
    truth = run["truth"]
    assert int(lines.price_imputed.sum()) == _planted(truth, "olist_order_items_dataset.csv", "missing_price")
    means = lines[~lines.price_imputed].groupby("category").price.mean()
    imputed = lines[lines.price_imputed]
    assert len(imputed) > 0
    for _, row in imputed.iterrows():
        assert abs(row.price - means[row.category]) < 1e-6
    assert int(lines.freight_value_imputed.sum()) == _planted(truth, "olist_order_items_dataset.csv", "missing_freight")


def test_gold_tables_hold_the_planted_structure(spark, run):
    feats = _table(spark, run, "gold", "order_features")
    assert feats.count() == _table(spark, run, "silver", "order_lines").count()
    late = feats.groupBy("is_late").agg(F.avg("review_score").alias("s")).collect()
    means = {r["is_late"]: r["s"] for r in late}
    assert means[True] < means[False] - 0.5  # delivery delay drives the score
    assert feats.where(F.col("popularity_index") < 0).count() == 0
    assert feats.where(F.col("price_freight_ratio").isNull() & F.col("freight_value").isNotNull()).count() == 0
    customers = _table(spark, run, "gold", "customer_features")
    assert customers.where(F.col("frequency") > 1).count() > 0  # repeat buyers
    assert _table(spark, run, "gold", "sessions").where("converted").count() > 0
    for table in ("customer_features", "product_features", "sessions"):
        assert run["counts"][f"gold/{table}"] > 0


def _versions(path: Path) -> int:
    return len(list((path / "_delta_log").glob("*.json")))


def _run_job_and_kill(job: str, cfg_args: list[str], watch: Path, timeout: float = 240.0) -> bool:
    """Start a job; SIGKILL its whole process group as soon as ``watch`` gets a new commit."""
    before = _versions(watch) if watch.exists() else 0
    proc = subprocess.Popen([sys.executable, str(REPO / "jobs" / job), *cfg_args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if watch.exists() and _versions(watch) > before:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return False


def test_ingest_killed_mid_write_leaves_tables_readable_and_rerun_has_no_duplicates(spark, run, tmp_path):
    lake_dir = tmp_path / "lake"
    shutil.copytree(Path(run["cfg"]["paths"]["lake"]), lake_dir)
    raw_dir = Path(run["cfg"]["paths"]["raw"])  # same paths, so earlier files count as ingested
    # a new month of order lines arrives
    new_file = raw_dir / "olist" / "olist_order_items_dataset_2019-01.csv"
    shutil.copy(raw_dir / "olist" / "olist_order_items_dataset.csv", new_file)
    try:
        _kill_ingest_and_rerun(spark, run, raw_dir, lake_dir)
    finally:
        new_file.unlink()


def _kill_ingest_and_rerun(spark, run, raw_dir: Path, lake_dir: Path) -> None:
    args = ["--set", f"paths.raw={raw_dir}", "--set", f"paths.lake={lake_dir}"]
    killed = _run_job_and_kill("ingest.py", args, lake_dir / "bronze" / "olist_order_items")
    assert killed, "the job finished before the kill; the test did not exercise a mid-write kill"
    cfg = load_settings(None, args[1::2])
    recon = lk.read(spark, str(lake_dir), "bronze", "ingest_reconciliation")
    assert recon.where(F.col("file").endswith("_2019-01.csv")).count() == 0  # the run never finished
    for table in ("olist_order_items", "olist_orders"):
        lk.read(spark, str(lake_dir), "bronze", table).count()  # still readable
    rows = ingest(spark, cfg)
    assert [Path(r["file"]).name for r in rows] == ["olist_order_items_dataset_2019-01.csv"]
    new = rows[0]
    assert new["balanced"] and new["raw_records"] == run["truth"]["files"]["olist_order_items_dataset.csv"]["records"]
    bronze = lk.read(spark, str(lake_dir), "bronze", "olist_order_items")
    assert bronze.where(F.col("_source_file").endswith("_2019-01.csv")).count() == new["bronze_rows"]
    assert ingest(spark, cfg) == []  # and a third run changes nothing


def _latest_versions(spark, lake_dir: Path, tables) -> dict[str, int]:
    from delta.tables import DeltaTable

    return {t: DeltaTable.forPath(spark, lk.table_path(str(lake_dir), *t.split("/"))).history(1).first()["version"]
            for t in tables}


def _manifest_rows(spark, lake_dir: Path) -> list[tuple[str, str]]:
    return [(r["run_id"], r["stage"]) for r in
            lk.read(spark, str(lake_dir), *runs.MANIFEST).orderBy("finished_at").collect()]  # a row per stage run


def test_transform_killed_after_its_nth_commit_is_invisible_to_readers_and_a_rerun_completes(
        spark, run, tmp_path, monkeypatch):
    """Transform fails right after its 1st and its last-but-one commit: each time the manifest gains
    nothing, the tables it did commit hold a newer Delta version than readers get, and readers get exactly the
    versions of the last complete transform. A re-run then completes and becomes what readers get."""
    lake_dir = tmp_path / "lake"
    shutil.copytree(Path(run["cfg"]["paths"]["lake"]), lake_dir)
    cfg = load_settings(None, [f"paths.raw={run['cfg']['paths']['raw']}", f"paths.lake={lake_dir}"])
    tables = sorted(run["counts"])
    complete = runs.pins(spark, str(lake_dir))
    manifest = _manifest_rows(spark, lake_dir)
    n = len(tables)
    for k in (1, n - 1):
        monkeypatch.setenv(runs.FAIL_AFTER_COMMITS, str(k))
        with pytest.raises(runs.InjectedFailure):
            with runs.stage(spark, str(lake_dir), "transform", f"killed-after-{k}"):
                transform(spark, cfg)
        assert _manifest_rows(spark, lake_dir) == manifest, k
        latest = _latest_versions(spark, lake_dir, tables)
        newer = [t for t in tables if latest[t] > complete[t]]
        assert len(newer) >= k, (k, latest, complete)  # this attempt's commits are in the tables ...
        with runs.stage(spark, str(lake_dir), None, "reader"):  # ... and no reader sees them
            assert {t: runs.version_to_read(str(lake_dir), *t.split("/")) for t in tables} == \
                {t: complete[t] for t in tables}, k
    monkeypatch.delenv(runs.FAIL_AFTER_COMMITS)
    with runs.stage(spark, str(lake_dir), "transform", "rerun") as rerun:
        assert transform(spark, cfg) == run["counts"]
    assert _manifest_rows(spark, lake_dir) == [*manifest, ("rerun", "transform")]
    assert set(rerun.written) == set(tables)
    assert rerun.written == _latest_versions(spark, lake_dir, tables)
    assert {t: v for t, v in runs.pins(spark, str(lake_dir)).items() if t in tables} == rerun.written


def test_transform_killed_by_sigkill_leaves_readers_on_the_last_complete_versions(spark, run, tmp_path):
    """kill -9 of the real job (spark-submit entry point) once it has committed silver/products."""
    lake_dir = tmp_path / "lake"
    shutil.copytree(Path(run["cfg"]["paths"]["lake"]), lake_dir)
    complete, manifest = runs.pins(spark, str(lake_dir)), _manifest_rows(spark, lake_dir)
    args = ["--set", f"paths.raw={run['cfg']['paths']['raw']}", "--set", f"paths.lake={lake_dir}"]
    killed = _run_job_and_kill("transform.py", args, lake_dir / "silver" / "products")
    assert killed, "the job finished before the kill"
    assert _manifest_rows(spark, lake_dir) == manifest
    assert _latest_versions(spark, lake_dir, ["silver/products"])["silver/products"] > complete["silver/products"]
    with runs.stage(spark, str(lake_dir), None, "reader"):
        for t in run["counts"]:
            assert runs.version_to_read(str(lake_dir), *t.split("/")) == complete[t], t


def test_two_ingests_started_together_one_is_refused_and_the_tables_stay_whole(spark, run, tmp_path):
    """Two real spark-submit runs of jobs/ingest.py with conf/local.yaml: one writer per lake, so the second fails
    at once (exit 4, naming the holder), the first finishes, and the new file's rows are in bronze once.

    This is also the suite's spark-submit test: every jobs/*.py is the same three lines (test_registry.py), so one
    job run through spark-submit, with Delta's jars from the properties file, checks the path they all take."""
    from ecomrec_spark.cli import LEASE_HELD_EXIT

    lake_dir = tmp_path / "lake"
    shutil.copytree(Path(run["cfg"]["paths"]["lake"]), lake_dir)
    raw_dir = Path(run["cfg"]["paths"]["raw"])
    new_file = raw_dir / "olist" / "olist_order_items_dataset_2019-02.csv"
    shutil.copy(raw_dir / "olist" / "olist_order_items_dataset.csv", new_file)
    props = REPO / ".cache" / "jars" / "spark-local.conf"
    assert props.is_file(), "the session factory writes it on first use"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    submit = [str(Path(sys.executable).parent / "spark-submit"), "--properties-file", str(props), "--master", "local[2]",
              "jobs/ingest.py", "--conf", "conf/local.yaml", "--set", f"paths.raw={raw_dir}",
              "--set", f"paths.lake={lake_dir}"]
    try:
        procs = [subprocess.Popen(submit, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        new_file.unlink()
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, LEASE_HELD_EXIT], [(out + err)[-2000:] for out, err in outs]
    # spark-submit's PythonRunner merges the driver's stderr into its stdout
    refused = next(out + err for p, (out, err) in zip(procs, outs, strict=True) if p.returncode == LEASE_HELD_EXIT)
    assert "lake busy: the lake is being written by another run" in refused and "`ecomrec ingest` (run " in refused
    assert "Traceback" not in refused
    won = next(out for p, (out, _) in zip(procs, outs, strict=True) if p.returncode == 0)
    assert "ingest: 1 new file(s)" in won
    assert not (lake_dir / "_writer_lease.json").exists()  # the winner gave it back
    recon = lk.read(spark, str(lake_dir), "bronze", "ingest_reconciliation")
    new = recon.where(F.col("file").endswith("_2019-02.csv")).collect()  # one row per file: a handful
    assert len(new) == 1 and new[0]["balanced"]
    bronze = lk.read(spark, str(lake_dir), "bronze", "olist_order_items")
    assert bronze.where(F.col("_source_file").endswith("_2019-02.csv")).count() == new[0]["bronze_rows"]
    assert new[0]["raw_records"] == run["truth"]["files"]["olist_order_items_dataset.csv"]["records"]
