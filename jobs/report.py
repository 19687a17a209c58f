"""spark-submit entry point: `ecomrec report`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/report.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
