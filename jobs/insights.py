"""spark-submit entry point: `ecomrec insights`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/insights.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["insights", *sys.argv[1:]]))
