"""Materialize a frame that a long job reuses, and cut its lineage there when Spark runs locally.

Why: Spark analyses and optimizes a query's *whole* logical plan, and looks every part of it up in the
cache, at each action and at most DataFrame calls. A cached frame saves the recomputation but keeps its
plan, so every later query still carries it. A recommendation build stacks fits, candidate lists, features
and scoring on each other, and its later queries carried hundreds of operators: the driver planned while
the two cores waited. A cProfile of one build on the tests' planted lake (ninth session): 210 s with the
fitted lists and the ranker's cuts cached, 132 s with them cut here, the same tables.

- **Local mode** (tests, ``make demo``, a laptop): ``localCheckpoint`` stores the rows in the block
  manager (memory, then disk) and the frame's plan becomes a scan of them. Checkpointed rows keep their
  column ids, and a build's metrics query (stored lists joined with truth read from the same lines table)
  then failed to resolve in Spark 4.0 ("Failure when resolving conflicting references in Join"), so the
  columns are re-aliased on top.
- **A cluster** (EMR): the frame is persisted, as before. A local checkpoint cannot be recomputed, so an
  executor lost to a spot reclaim or to dynamic allocation would fail the job; a cached frame is recomputed.

:func:`release` frees either kind once the frame has been used.

>>> lists = materialize(fitted_lists)          # doctest: +SKIP
>>> score(lists); release(lists)               # doctest: +SKIP
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecomrec_spark.session import runs_locally


def materialize(df: DataFrame) -> DataFrame:
    """``df`` computed once for its later uses: locally checkpointed in local mode, else persisted (lazily).

    Local mode computes it now (one job) and returns a frame whose plan is a scan of the stored rows.
    """
    if not runs_locally(df.sparkSession):
        return df.persist(StorageLevel.MEMORY_AND_DISK)
    stored = df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
    return stored.select(*[F.col(c).alias(c) for c in stored.columns])  # fresh column ids (see module notes)


def release(df: DataFrame) -> None:
    """Free what :func:`materialize` stored for ``df`` (its cache, or its checkpointed blocks); else nothing.

    Checkpointed blocks would otherwise stay until the JVM collects the frame, and a build makes several.
    """
    if df.is_cached:
        df.unpersist()
        return
    if not runs_locally(df.sparkSession):
        return
    plan = df._jdf.queryExecution().analyzed()  # materialize's shape: the re-aliasing Project over a LogicalRDD
    if plan.getClass().getSimpleName() == "Project" and plan.child().getClass().getSimpleName() == "LogicalRDD":
        plan.child().rdd().unpersist(False)
