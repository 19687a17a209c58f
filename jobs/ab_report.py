"""spark-submit entry point: `ecomrec ab-report`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/ab_report.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ab-report", *sys.argv[1:]]))
