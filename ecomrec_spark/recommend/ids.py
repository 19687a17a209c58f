"""Dense integer ids for MLlib models that need them (ALS), built on the executors.

Spark's ALS takes user and item ids as ``int`` (values outside the int range
fail), while the lake keeps customer and product ids as strings.  ``index_ids``
maps each distinct value of a column to ``0 .. n-1`` in sort order:

* **in the JVM** - ``distinct``, then a running count over a window ordered by the
  value (``row_number`` as a long), so nothing is collected and no row passes
  through Python. The window has no partition key, so the *distinct values* (not
  the rows of ``df``) are sorted in one task: a few hundred MB for ten million
  customer ids, which Spark's sorter spills as needed. The earlier
  ``RDD.zipWithIndex`` kept the sort distributed but ran every row through Python
  workers and cost an extra job per call: 5-8x slower (``bench/index_ids.py`` in
  BENCHMARKS.md);
* **deterministic** - the numbering is the rank of the value in ascending sort
  order, so the same set of ids always gets the same numbers whatever the input
  order or partitioning;
* **dense** - the numbers are exactly ``0 .. n-1``;
* **bounded** - a value numbered beyond the signed 32-bit range fails the query
  with a clear message (``raise_error``, checked on the executors, so no extra
  counting pass over the data).

Null ids are dropped (a model cannot learn anything for them).

Example
-------
>>> df = spark.createDataFrame([("b",), ("a",), ("b",)], ["customer_id"])   # doctest: +SKIP
>>> index_ids(df, "customer_id", "user_idx").orderBy("user_idx").show()     # doctest: +SKIP
+-----------+--------+
|customer_id|user_idx|
+-----------+--------+
|          a|       0|
|          b|       1|
+-----------+--------+
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

MAX_INT_ID = 2**31 - 1  # Java Integer.MAX_VALUE: the largest id ALS accepts


def index_ids(df: DataFrame, col: str, out_col: str) -> DataFrame:
    """Map every distinct non-null value of ``df[col]`` to a dense int ``0 .. n-1``.

    Parameters
    ----------
    df : DataFrame
        Any frame holding ``col``; duplicates and other columns are ignored.
    col : str
        Column with the original ids (any orderable type; strings in the lake).
    out_col : str
        Name of the int column to add.

    Returns
    -------
    DataFrame
        ``[col, out_col]``, one row per distinct non-null value, ``col`` keeps its
        original type and value and ``out_col`` is ``int``, equal to the
        value's 0-based rank in ascending order.

    Raises
    ------
    ValueError
        If ``col`` is missing or ``out_col`` equals ``col``.

    Notes
    -----
    With more than ``2**31 - 1`` distinct values, evaluating the result fails with
    a Spark error naming the column (not a silent wrap-around).  It runs no job at
    call time.  Cache the result when it is used more than once: every evaluation
    recomputes ``distinct`` and the sort (with the same result).

    Examples
    --------
    >>> ids = index_ids(orders, "product_id", "item_idx")                     # doctest: +SKIP
    >>> indexed = orders.join(ids, "product_id")                               # doctest: +SKIP
    """
    if col not in df.columns:
        raise ValueError(f"column {col!r} not in {df.columns}")
    if out_col == col:
        raise ValueError("out_col must differ from col")
    # one window over the distinct values only: rank in ascending order is the id (module docstring).  A running
    # count (a long), not row_number: an int, which overflows past 2**31 - 1 (a generic error under ANSI, a wrap
    # without it) before the check below could name the column
    values = df.select(col).where(F.col(col).isNotNull()).distinct()
    upto_here = Window.orderBy(col).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    idx = F.count(F.lit(1)).over(upto_here) - F.lit(1)
    checked = F.when(idx > F.lit(MAX_INT_ID), F.raise_error(F.lit(
        f"index_ids: more distinct values of {col!r} than fit in an int id (max {MAX_INT_ID:,})"))).otherwise(idx)
    return values.select(col, checked.cast("int").alias(out_col))
