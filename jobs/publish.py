"""spark-submit entry point: `ecomrec publish`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/publish.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["publish", *sys.argv[1:]]))
