"""spark-submit entry point: `ecomrec transform`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/transform.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["transform", *sys.argv[1:]]))
