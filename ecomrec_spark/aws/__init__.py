"""AWS helpers: the EMR / EMR Serverless launcher, packaging and IAM policy rendering (boto3, no Spark)."""
