"""ecomrec_spark: Spark-native e-commerce recommendations and review-score prediction."""

__version__ = "0.1.0"
