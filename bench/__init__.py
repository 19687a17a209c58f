"""Benchmarks of the ecomrec_spark pipeline (see ``bench/README.md``)."""
