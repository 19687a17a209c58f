"""spark-submit entry point: `ecomrec run-all`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/run_all.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run-all", *sys.argv[1:]]))
