"""spark-submit entry point: `ecomrec train-review`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/train_review_model.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-review", *sys.argv[1:]]))
