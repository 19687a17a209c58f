"""Review-score prediction: leak-free training rows, an MLlib Pipeline around
``xgboost.spark.SparkXGBClassifier``, baselines, persistence and batch scoring."""
