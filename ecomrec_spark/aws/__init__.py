"""AWS helpers (boto3, no Spark): S3 I/O and the EMR / EMR Serverless launcher (``ecomrec emr ...``).

* :mod:`~ecomrec_spark.aws.s3` -- S3 URIs and ``ecomrec upload-raw``;
* :mod:`~ecomrec_spark.aws.settings` -- the ``emr:`` config section: defaults and every check, before any AWS call;
* :mod:`~ecomrec_spark.aws.layout` -- where things go in S3 (data prefixes, artifacts, logs);
* :mod:`~ecomrec_spark.aws.requests` -- the exact boto3 requests (cluster, steps, serverless, security configuration);
* :mod:`~ecomrec_spark.aws.iam` -- the IAM policy documents of ``emr/iam/``;
* :mod:`~ecomrec_spark.aws.packaging` -- the wheel, the locked wheelhouse, the packed venv and the upload;
* :mod:`~ecomrec_spark.aws.clusters` -- EMR on EC2: up, submit, status, wait, logs, down;
* :mod:`~ecomrec_spark.aws.serverless` -- EMR Serverless: the same for applications and job runs;
* :mod:`~ecomrec_spark.aws.clients` -- boto3 clients and waiter settings, and ``EmrError``;
* :mod:`~ecomrec_spark.aws.cli` -- ``ecomrec emr up|submit|status|logs|down|wait|policy``.
"""
