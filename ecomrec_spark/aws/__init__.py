"""AWS helpers (boto3, no Spark): S3 I/O, the EMR / EMR Serverless launcher and IAM policy rendering."""
