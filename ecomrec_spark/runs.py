"""Runs that are whole or absent: the run id on every commit and the manifest ``gold/pipeline_runs``.

A stage writes several tables, one Delta commit each.  Delta keeps each commit
whole, but a stage killed between two commits leaves some of its tables new and
some old.  So:

* **Stamp.** Every commit made while a stage runs carries ``{"run_id", "stage"}``
  as Delta commit metadata (``userMetadata`` in ``DESCRIBE HISTORY``), set once
  for the session, so it also covers writes that go around :mod:`ecomrec_spark.lake`.
* **Record.** Each write through :mod:`ecomrec_spark.lake` notes the version it
  made, after checking that commit is this run's (the lease keeps other writers
  out; a foreign commit in between fails the stage rather than be named as ours).
* **Commit last.** A stage that finishes appends one row to ``gold/pipeline_runs``
  as its last write: the run id, the stage and the Delta version of every table it
  wrote.  A stage that fails or is killed appends nothing.
* **Read what is complete.** While a stage (or a read-only command) runs, a table
  it has not written itself is read at the version named by the newest manifest
  row holding it (Delta time travel), so a half-written stage upstream is
  invisible.  A table the stage has written is read as written; a table no
  manifest names (a lake from before manifests) is read at its latest version.

Athena and Hive read each table's latest version; ``gold/pipeline_runs`` tells a
SQL user which versions belong together.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI makes run ids before (and without) Spark
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MANIFEST = ("gold", "pipeline_runs")
MANIFEST_SCHEMA = ("run_id string, stage string, started_at timestamp, finished_at timestamp, "
                   "tables map<string, bigint>")
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# Fault injection for the kill tests: fail a stage right after its n-th commit, as a kill between two commits
# would (tests/test_runs.py, tests/test_end_to_end.py).  Unset in every real run.
FAIL_AFTER_COMMITS = "ECOMREC_FAIL_AFTER_COMMITS"
# run-all's result key for the wall seconds of each stage (the CLI prints them after the stages)
TIMINGS = "stage_seconds"


class InjectedFailure(RuntimeError):
    """Raised after the commit named by ``ECOMREC_FAIL_AFTER_COMMITS`` (tests only)."""


class ForeignCommit(RuntimeError):
    """A table's newest commit is not this run's: another writer committed while the stage ran."""


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


@dataclass
class Run:
    lake: str
    run_id: str
    stage: str | None                 # None: a read-only command (no manifest row)
    pins: dict[str, int]              # "layer/table" -> version of the last complete stage that wrote it
    written: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))

    def stamp(self) -> str:
        return json.dumps({"run_id": self.run_id, "stage": self.stage}, sort_keys=True)


_active: Run | None = None  # stages run one after another in a process


def current() -> Run | None:
    return _active


def _key(layer: str, table: str) -> str:
    return f"{layer}/{table}"


def _same_lake(run: Run, lake: str) -> bool:
    return run.lake.rstrip("/") == lake.rstrip("/")


def pins(spark: SparkSession, lake: str) -> dict[str, int]:
    """``layer/table -> version`` from the newest manifest row naming each table (empty without a manifest)."""
    from pyspark.sql import functions as F

    from ecomrec_spark import lake as lk

    path = lk.table_path(lake, *MANIFEST)
    if not lk.exists(spark, path):
        return {}
    rows = (spark.read.format("delta").load(path)
            .select("finished_at", "run_id", F.explode("tables").alias("table", "version"))
            .groupBy("table").agg(F.max_by("version", F.struct("finished_at", "run_id")).alias("version"))
            .collect())  # one row per table of the lake: a few dozen
    return {r["table"]: int(r["version"]) for r in rows}


def version_to_read(lake: str, layer: str, table: str) -> int | None:
    """The version a read of ``layer/table`` should time-travel to, or None for the latest."""
    run = _active
    if run is None or not _same_lake(run, lake) or _key(layer, table) in run.written:
        return None
    return run.pins.get(_key(layer, table))


def wrote(spark: SparkSession, lake: str, layer: str, table: str, path: str) -> None:
    """Note the version the write just made (called by every write in :mod:`ecomrec_spark.lake`)."""
    run = _active
    if run is None or not _same_lake(run, lake):
        return
    from delta.tables import DeltaTable

    last = DeltaTable.forPath(spark, path).history(1).select("version", "userMetadata").first()
    assert last is not None, "a Delta table that was just written has at least one commit"
    if last["userMetadata"] != run.stamp():
        raise ForeignCommit(f"{path}: its newest commit (version {last['version']}, {last['userMetadata']!r}) is not "
                            f"this run's ({run.stamp()}): another writer committed while {run.stage} ran. Nothing "
                            "of this run is recorded as complete; find the other writer, then run the stage again")
    run.written[_key(layer, table)] = int(last["version"])
    run.commits += 1
    limit = os.environ.get(FAIL_AFTER_COMMITS)
    if limit and run.stage is not None and run.commits == int(limit):
        raise InjectedFailure(f"{FAIL_AFTER_COMMITS}={limit}: stage {run.stage} fails after its commit "
                              f"{run.commits} ({path} version {last['version']})")


def _append_manifest(spark: SparkSession, run: Run) -> None:
    from ecomrec_spark import lake as lk

    finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = spark.createDataFrame([(run.run_id, run.stage, run.started_at, finished, dict(run.written))],
                                MANIFEST_SCHEMA)
    (row.write.format("delta").mode("append").option("mergeSchema", "true")
        .save(lk.table_path(run.lake, *MANIFEST)))
    log.info("run %s: stage %s complete, %d table(s) recorded in %s", run.run_id, run.stage, len(run.written),
             "/".join(MANIFEST))


@contextmanager
def stage(spark: SparkSession, lake: str, name: str | None, run_id: str) -> Iterator[Run]:
    """Run a stage (``name``) or a read-only command (``None``) against the last complete tables of ``lake``.

    A stage that returns normally gets its manifest row; one that raises gets none.
    """
    global _active
    outer, previous = _active, spark.conf.get(USER_METADATA, None)
    run = Run(lake, run_id, name, pins(spark, lake))
    _active = run
    spark.conf.set(USER_METADATA, run.stamp())
    try:
        yield run
        if name is not None:
            _append_manifest(spark, run)
    finally:
        _active = outer
        if previous is None:
            spark.conf.unset(USER_METADATA)
        else:
            spark.conf.set(USER_METADATA, previous)
