"""Small aggregate helpers shared by the insights tables."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def n_rows() -> Column:
    """``count(1)``: the rows of a group."""
    return F.count(F.lit(1))


def pearson(x: str, y: str) -> Column:
    """Pearson correlation of two columns as an aggregate; null when either is constant or has < 2 rows.

    ``covar_pop / (stddev_pop(x) * stddev_pop(y))`` with ``try_divide``: the
    same value as ``F.corr``, which under ANSI mode raises DIVIDE_BY_ZERO on a
    constant series instead of returning null.

    Example
    -------
    >>> grid.groupBy("category").agg(pearson("units", "total_units").alias("r"))  # doctest: +SKIP
    """
    return F.try_divide(F.covar_pop(x, y), F.stddev_pop(x) * F.stddev_pop(y))

