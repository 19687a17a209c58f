"""``lineage.materialize`` / ``release``: the same rows, a plan without the frame's history, blocks freed."""

from __future__ import annotations

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark import lineage


@pytest.fixture
def frames(spark):
    src = spark.createDataFrame([("c1", "p1", 1.0), ("c1", "p2", 3.0), ("c2", "p1", 2.0)],
                                "customer_id string, product_id string, score double")
    deep = src.where(F.col("score") > 1.0).withColumn("score", F.col("score") * 2)
    return src, deep


def _column_ids(df):
    output = df._jdf.queryExecution().analyzed().output()
    return {output.apply(i).exprId().id() for i in range(output.size())}


def _stored_rdd(df):
    """The id of the RDD a materialized frame scans (the plan is a re-aliasing Project over a LogicalRDD)."""
    plan = df._jdf.queryExecution().analyzed()
    assert plan.getClass().getSimpleName() == "Project"
    return plan.child().rdd().id()


def test_materialize_keeps_the_rows_and_drops_the_plan_behind_them(spark, frames):
    src, deep = frames
    out = lineage.materialize(deep)
    assertDataFrameEqual(out, [Row(customer_id="c1", product_id="p2", score=6.0),
                               Row(customer_id="c2", product_id="p1", score=4.0)])
    plan = out._jdf.queryExecution().analyzed().toString()
    assert "LogicalRDD" in plan and "Filter" not in plan
    # fresh column ids: with the ids of the frame it came from, a build's metrics query (the stored lists joined
    # with truth read from the same lines table) failed to resolve in Spark 4.0
    assert not _column_ids(out) & _column_ids(deep)
    per_customer = out.groupBy("customer_id").agg(F.sum("score").alias("kept"))
    total = src.groupBy("customer_id").agg(F.sum("score").alias("all"))
    assertDataFrameEqual(per_customer.join(total, "customer_id"),
                         [Row(customer_id="c1", kept=6.0, all=4.0), Row(customer_id="c2", kept=4.0, all=2.0)])


def test_release_frees_the_stored_blocks(spark, frames):
    out = lineage.materialize(frames[1])
    rdd_id = _stored_rdd(out)
    assert rdd_id in set(spark.sparkContext._jsc.getPersistentRDDs().keySet())
    lineage.release(out)
    assert rdd_id not in set(spark.sparkContext._jsc.getPersistentRDDs().keySet())


def test_on_a_cluster_the_frame_is_persisted_and_release_unpersists_it(spark, frames, monkeypatch):
    monkeypatch.setattr(lineage, "runs_locally", lambda spark: False)
    out = lineage.materialize(frames[1])
    assert out.is_cached and "Filter" in out._jdf.queryExecution().analyzed().toString()
    lineage.release(out)
    assert not out.is_cached
