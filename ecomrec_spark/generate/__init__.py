"""Deterministic, scalable synthetic Olist + REES46 data computed by Spark.

Use :func:`ecomrec_spark.generate.dataset.generate_dataset`; the planted
structure is documented in :mod:`ecomrec_spark.generate.dataset`.  Importing
this package starts no SparkSession.
"""

from ecomrec_spark.generate.dataset import generate_dataset

__all__ = ["generate_dataset"]
