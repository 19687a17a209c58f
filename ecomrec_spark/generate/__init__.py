"""Deterministic, scalable synthetic Olist + REES46 data computed by Spark.

Use :func:`ecomrec_spark.generate.dataset.generate_dataset`; the planted
structure is documented in :mod:`ecomrec_spark.generate.dataset`.  Importing
this package imports nothing: :mod:`ecomrec_spark.settings` reads
:mod:`.settings` from it without loading the generator or Spark.
"""
