"""spark-submit entry point: `ecomrec generate`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/generate.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
